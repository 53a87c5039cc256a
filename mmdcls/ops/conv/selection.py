"""Which algorithm :func:`mmdcls.ops.conv.conv_nd` runs: the names, their aliases, the
``MMDCLS_CONV_ALGO`` environment variable, ``'auto'`` (the cost model of :mod:`.cost_model`) and
``'benchmark'`` (timed once per key, cached for the process).

Selection (first that applies): the call's ``algo`` (a DCLS module's ``conv_algo``), the
``MMDCLS_CONV_ALGO`` environment variable, then ``'auto'``.
"""
import math
import os
import time
from typing import Callable, Dict, Optional

import torch
from torch import Tensor

from ..kernels import cpu
from ..torch_compat import get_autocast_dtype, is_autocast_enabled
from .channels_last import conv_channels_last
from .cost_model import heuristic_algo
from .direct import conv_direct, needs_grad
from .fft import conv_fft
from .sparse_direct import conv_sparse_direct

#: the concrete algorithms
ALGORITHMS = ('direct', 'channels_last', 'fft', 'sparse_direct')
#: earlier names, accepted wherever an algorithm name is: ``'native'`` was the sparse direct
#: conv's name while it was the only C convolution (the FFT is C code too)
ALIASES = {'native': 'sparse_direct'}
#: every value ``algo`` / ``conv_algo`` / ``MMDCLS_CONV_ALGO`` accepts
ALGOS = ('auto', 'benchmark') + ALGORITHMS + tuple(ALIASES)
ENV_VAR = 'MMDCLS_CONV_ALGO'
#: each concrete algorithm's function, all with the arguments
#: ``(input, kernel, bias, stride, padding, groups)``
ALGORITHM_FNS: Dict[str, Callable] = {
    'direct': conv_direct,
    'channels_last': conv_channels_last,
    'fft': conv_fft,
    'sparse_direct': conv_sparse_direct,
}


def check_algo(algo: Optional[str], name: str = 'algo') -> None:
    """Raises ValueError unless ``algo`` is None or one of :data:`ALGOS`."""
    if algo is not None and algo not in ALGOS:
        raise ValueError(f'{name} must be one of {ALGOS} (or None), got {algo!r}')


def resolve_algo(algo: Optional[str] = None) -> str:
    """The requested algorithm name: ``algo``, else ``$MMDCLS_CONV_ALGO``, else ``'auto'``;
    aliases (:data:`ALIASES`) replaced by the name they stand for."""
    check_algo(algo)
    if algo is not None:
        return ALIASES.get(algo, algo)
    env = os.environ.get(ENV_VAR)
    if env is None or env == '':
        return 'auto'
    check_algo(env, f'environment variable {ENV_VAR}')
    return ALIASES.get(env, env)


# key (see _benchmark_key) -> fastest algorithm, for the process
_BENCHMARK_CACHE: Dict[tuple, str] = {}


def clear_benchmark_cache() -> None:
    """Forgets the timings of ``algo='benchmark'``."""
    _BENCHMARK_CACHE.clear()


def _benchmark_key(input: Tensor, kernel: Tensor, bias: Optional[Tensor], stride, padding,
                   groups) -> tuple:
    device_type = input.device.type
    autocast = (get_autocast_dtype(device_type) if is_autocast_enabled(device_type) else None)
    return (str(input.device), input.dtype, kernel.dtype, autocast, tuple(input.shape),
            tuple(kernel.shape), bias is not None, stride, padding, groups, torch.is_grad_enabled()
            and (input.requires_grad or kernel.requires_grad))


def _time_algorithm(name: str,
                    input: Tensor,
                    kernel: Tensor,
                    bias: Optional[Tensor],
                    stride,
                    padding,
                    groups,
                    backward: bool,
                    repeats: int = 2) -> float:
    fn = ALGORITHM_FNS[name]
    x = torch.randn_like(input).requires_grad_(backward)
    # the real kernel, not a random one: 'sparse_direct' skips its zero taps
    k = kernel.detach().clone().requires_grad_(backward)
    b = None if bias is None else torch.randn_like(bias).requires_grad_(backward)
    sync = torch.cuda.synchronize if input.is_cuda else (lambda: None)
    best = math.inf
    for _ in range(repeats + 1):  # first call warms up
        sync()
        start = time.perf_counter()
        y = fn(x, k, b, stride, padding, groups)
        if backward:
            y.backward(torch.ones_like(y))
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def benchmark_algo(input: Tensor, kernel: Tensor, bias: Optional[Tensor], stride, padding,
                   groups) -> str:
    """``'benchmark'``'s choice: the fastest algorithm for this key, timed once and cached."""
    key = _benchmark_key(input, kernel, bias, stride, padding, groups)
    name = _BENCHMARK_CACHE.get(key)
    if name is None:
        backward = key[-1]
        with torch.enable_grad() if backward else torch.no_grad():
            times = {
                a:
                _time_algorithm(a, input.detach(), kernel.detach(),
                                None if bias is None else bias.detach(), stride, padding, groups,
                                backward)
                for a in ALGORITHMS
            }
        name = _BENCHMARK_CACHE[key] = min(times, key=times.get)
    return name


def _mean_nonzero_taps(kernel: Tensor) -> float:
    """Mean non-zero taps per output channel; remembered on weights (leaf tensors: folded
    layers count a ~0.2 ms pass once instead of every call) until modified in place."""
    if not kernel.is_leaf or kernel.is_inference():
        return int(torch.count_nonzero(kernel)) / kernel.shape[0]
    cached = getattr(kernel, '_mmdcls_nonzero_taps', None)
    if cached is None or cached[0] != kernel._version:
        cached = (kernel._version, int(torch.count_nonzero(kernel)) / kernel.shape[0])
        kernel._mmdcls_nonzero_taps = cached
    return cached[1]


def select_algo(input: Tensor,
                kernel: Tensor,
                bias: Optional[Tensor],
                stride,
                padding,
                groups,
                algo: Optional[str] = None,
                kernel_spectrum_cached: bool = False) -> str:
    """The concrete algorithm (one of :data:`ALGORITHMS`) ``conv_nd`` runs for these arguments
    (see the module docstring). ``kernel_spectrum_cached``: ``'auto'`` counts the kernel's
    transform as free (a cached spectrum of a constant kernel)."""
    name = resolve_algo(algo)
    if name == 'auto':
        nonzero_taps = None
        if cpu.depthwise_usable(input, kernel, bias, stride, groups):
            nonzero_taps = _mean_nonzero_taps(kernel)
        channels_last = (
            input.dim() == 4 and not input.is_contiguous()
            and input.is_contiguous(memory_format=torch.channels_last))
        return heuristic_algo(input.shape, kernel.shape, stride, padding, groups, input.device.type,
                              needs_grad(input, kernel, bias), kernel_spectrum_cached, nonzero_taps,
                              channels_last)
    if name == 'benchmark':
        return benchmark_algo(input, kernel, bias, stride, padding, groups)
    return name
