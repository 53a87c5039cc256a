"""Measurement helpers shared by the benchmark scripts (pure torch)."""
import os
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from mmdcls.deploy.fold import is_dcls_layer
from mmdcls.ops.torch_compat import profiler_event_start_ns

#: the release's ConvNeXt-DCLS-T depthwise settings that the benchmarks time, as
#: ``mmdcls.models.ConvNeXtDCLS`` keyword arguments: v0 at 17x17 with the arch's 34 positions
#: (the backbone's defaults), gauss at 23x23 with 26
CONVNEXT_DCLS_VARIANTS = {
    'v0': dict(version='v0', dilated_kernel_size=17),
    'gauss': dict(version='gauss', dilated_kernel_size=23, kernel_count=26),
}


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


def peak_cuda_bytes(fn: Callable[[], object], device=None) -> int:
    """Peak bytes allocated on the CUDA ``device`` while ``fn`` runs (above what was allocated
    before): ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, the device
    synchronised around the call."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


@torch.no_grad()
def spread_positions(model: nn.Module) -> None:
    """Draws the positions of every DCLS layer in ``model`` (the model itself included)
    uniformly over its dilated kernel, per axis, as they lie in trained checkpoints. At
    initialisation they cluster near the centre (a folded ``v0`` kernel then has ~14 distinct
    non-zero taps instead of ~100), which flatters the convolutions that skip zero taps."""
    for module in model.modules():
        if is_dcls_layer(module):
            for component, size in enumerate(module.dilated_kernel_size):
                module.P[component].uniform_(-(size // 2), size // 2)


def timed_rounds(
    fns: Dict[str, Callable[..., object]],
    rounds: int,
    warmup: int = 1,
    make_args: Optional[Callable[[], Sequence]] = None
) -> Tuple[Dict[str, List[float]], Dict[str, object]]:
    """``({name: [ms per round]}, {name: last return value})``: ``warmup`` untimed calls of
    each callable, then ``rounds`` rounds in which each runs once, in the given order on even
    rounds and reversed on odd ones, so that a slow spell of the machine and whatever the
    previous call left in the caches fall on every callable alike. ``make_args()``, if given,
    is called before each call, outside the timing, for the call's arguments (e.g. a fresh copy
    of a batch that the call modifies)."""
    if rounds < 1 or warmup < 0:
        raise ValueError(f'rounds must be >= 1 and warmup >= 0, got {rounds}, {warmup}')
    args = make_args or tuple
    results = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            results[name] = fn(*args())
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            call_args = args()
            start = time.perf_counter()
            results[name] = fns[name](*call_args)
            times[name].append(1e3 * (time.perf_counter() - start))
    return times, results


def paired_ratio(times: Dict[str, List[float]], name: str, base: str) -> float:
    """The median over rounds of ``times[name][r] / times[base][r]`` (:func:`timed_rounds`):
    each ratio compares two calls made back to back, so the machine's drift between rounds
    (on shared CPUs, the same model's time moves by 10-30% over a minute) cancels out of it,
    which a ratio of the two medians, taken over different moments, does not do."""
    return statistics.median(a / b for a, b in zip(times[name], times[base]))
