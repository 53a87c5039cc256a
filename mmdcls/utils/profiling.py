"""Measurement helpers shared by the benchmark scripts (pure torch)."""
import os
from typing import Callable

from torch.profiler import ProfilerActivity, profile

from mmdcls.ops.torch_compat import profiler_event_start_ns


def peak_cpu_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes allocated on the CPU while ``fn`` runs (above what was allocated before),
    from the profiler's allocation / release events in time order."""
    # The profiler's kineto backend writes 'USDT: ... profiler_start' / 'profiler_stop' to
    # stderr on every start and stop (interleaved with the benchmarks' tables). USDT is kineto's
    # highest log level, so only a threshold above all levels (6) hides them; kineto reads
    # KINETO_LOG_LEVEL when the profiler first starts. Set it to see them.
    os.environ.setdefault('KINETO_LOG_LEVEL', '6')
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == '[memory]']
    events.sort(key=profiler_event_start_ns)
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return peak
