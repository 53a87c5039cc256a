"""What both FFT algorithms (``'fft'``, ``'c_fft'``) share: the transform lengths (no
wrap-around on the needed outputs, no prime factor outside the C FFT's radices, on which
pocketfft, MKL and cuFFT are fast too) and the cost model of an FFT convolution on CPU."""
import math
from typing import Dict, Sequence, Tuple

from ...kernels.cpu.constants import FFT_RADICES
from ...torch_compat import is_compiling
from ..problem import ConvProblem
from .direct import SMALL_KERNEL_TAPS


def _smooth_lengths(limit: int) -> Tuple[int, ...]:
    """Sorted 1 and the even integers <= ``limit`` with no prime factor outside ``FFT_RADICES``
    (the C FFT's radices; pocketfft, MKL and cuFFT are fast on them too)."""
    found = {1}
    frontier = [1]
    while frontier:
        value = frontier.pop()
        for p in FFT_RADICES:
            if value * p <= limit and value * p not in found:
                found.add(value * p)
                frontier.append(value * p)
    return tuple(sorted(v for v in found if v == 1 or v % 2 == 0))


_FAST_LENGTHS = _smooth_lengths(1 << 24)
# (spatial, kernel size, padding) -> lengths, asked several times per call in eager mode
_LENGTHS: Dict[tuple, Tuple[int, ...]] = {}
_MAX_REMEMBERED = 4096


def _fast_len(n: int) -> int:
    """Smallest integer >= n with no prime factor outside ``FFT_RADICES``, even when > 1."""
    if n > _FAST_LENGTHS[-1]:
        raise ValueError(f'FFT length {n} exceeds {_FAST_LENGTHS[-1]}')
    low, high = 0, len(_FAST_LENGTHS) - 1  # a binary search in Python: torch.compile traces it
    while low < high:
        middle = (low + high) // 2
        if _FAST_LENGTHS[middle] < n:
            low = middle + 1
        else:
            high = middle
    return _FAST_LENGTHS[low]


def fft_lengths(spatial: Sequence[int], kernel_size: Sequence[int],
                padding: Sequence[int]) -> Tuple[int, ...]:
    """Transform length per axis for which the circular correlation has no wrap-around on the
    needed outputs: >= size + padding (the left padding wraps onto the zero tail), >= the
    stride-1 output size and >= the kernel size; rounded up to a fast length."""
    key = (tuple(spatial), tuple(kernel_size), tuple(padding))
    eager = not is_compiling()  # (a graph being traced computes them as constants)
    if eager and key in _LENGTHS:
        return _LENGTHS[key]
    lengths = tuple(
        _fast_len(max(s + p, s + 2 * p - k + 1, k))
        for s, k, p in zip(spatial, kernel_size, padding))
    if eager:
        if len(_LENGTHS) >= _MAX_REMEMBERED:
            _LENGTHS.clear()
        _LENGTHS[key] = lengths
    return lengths


def fft_cost(problem: ConvProblem, per_point: float) -> float:
    """The cost model of an FFT convolution on CPU, with ``S`` the input size and ``P`` the
    points of a transform: ``per_point * P * log2(P) / prod(S) * (C_in / C_out + 1 +
    (C_in / groups) / N)`` for the input, output and kernel transforms (the kernel's dropped
    for a constant kernel, whose spectrum is prepared once), plus ``2 * (C_in / groups) * P /
    prod(S)`` for the per-frequency products; infinite for small kernels (always dense)."""
    if problem.taps <= SMALL_KERNEL_TAPS:
        return math.inf
    points = math.prod(fft_lengths(problem.spatial, problem.kernel_size, problem.padding))
    size = math.prod(problem.spatial)
    kernel_transforms = 0 if problem.constant is not None else problem.in_per_group / problem.batch
    transforms = problem.in_channels / problem.out_channels + 1 + kernel_transforms
    return (per_point * points * math.log2(max(points, 2)) / size * transforms +
            2 * problem.in_per_group * points / size)
