"""Measurement helpers shared by the benchmark scripts (pure torch)."""
from typing import Callable

from torch.profiler import ProfilerActivity, profile


def peak_cpu_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes allocated on the CPU while ``fn`` runs (above what was allocated before),
    from the profiler's allocation / release events in time order."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == '[memory]']
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return peak
