"""``F.conv``'s semantics for non-finite inputs around the algorithms that do not have them by
construction (``propagates_non_finite = False``: those skipping zero taps, the FFTs): a NaN or
inf input makes exactly the outputs whose window covers it non-finite (NaN here), whatever
the kernel's values, and leaves the others as computed from the finite inputs."""
import math
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .algorithm import ConvAlgorithm
from .problem import ConvProblem


def _window_any(bad: Tensor, problem: ConvProblem) -> Tensor:
    """(N, C_out, *out_size) bool: whether the window of each output covers a True of ``bad``
    (N, C_in, *spatial) in any input channel of its group. Per axis, a window count is a
    difference of a zero-padded cumulative sum (no convolution with the kernel's extent)."""
    n, g = problem.batch, problem.groups
    counts = bad.reshape(n, g, problem.in_channels // g, *problem.spatial).any(2).to(torch.int32)
    for axis, (k, s, p, out) in enumerate(
            zip(problem.kernel_size, problem.stride, problem.padding, problem.out_size)):
        dim = axis + 2
        size = counts.shape[dim]
        back = max(0, (out - 1) * s + k - (size + p))
        pad = [0, 0] * (counts.dim() - dim - 1) + [p + 1, back]  # +1: a leading zero
        cumulative = torch.cumsum(F.pad(counts, pad), dim, dtype=torch.int32)
        starts = torch.arange(out, device=bad.device) * s
        counts = cumulative.index_select(dim, starts + k) - cumulative.index_select(dim, starts)
    reach = counts > 0
    return reach.repeat_interleave(problem.out_channels // g, dim=1)


def _all_finite(tensor: Tensor) -> bool:
    """Whether every element of ``tensor`` is finite, by one sum (a finite sum that overflows
    reads as non-finite: the exact path then runs, which is correct too)."""
    return math.isfinite(float(tensor.detach().sum()))


def run_with_conv_semantics(algorithm: ConvAlgorithm, input: Tensor, kernel: Tensor,
                            bias: Optional[Tensor], problem: ConvProblem, prepared: Any) -> Tensor:
    """``algorithm.run(...)`` with ``F.conv``'s non-finite semantics. On the CPU in eager mode
    a finite input runs as it is: for an algorithm whose non-finite inputs fill their output
    planes (the FFTs), the first output of every plane tells, read after the run; otherwise one
    sum of the input. Elsewhere, and always on other devices and in traced graphs (no host
    read), the algorithm convolves the input with its non-finite elements zeroed and the outputs
    their windows reach are set to NaN."""
    if problem.eager and problem.device_type == 'cpu':
        if algorithm.non_finite_fills_planes:
            output = algorithm.run(input, kernel, bias, problem, prepared)
            if _all_finite(output[(slice(None), slice(None)) + (0, ) * problem.ndim]):
                return output
        elif _all_finite(input):
            return algorithm.run(input, kernel, bias, problem, prepared)
    bad = ~torch.isfinite(input.detach())
    output = algorithm.run(input.masked_fill(bad, 0), kernel, bias, problem, prepared)
    return output.masked_fill(_window_any(bad, problem), math.nan)
