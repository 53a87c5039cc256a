"""``conv_nd``: the one entry point of the convolution algorithms. It checks the arguments, asks
:mod:`.selection` which algorithm to run and runs it; the DCLS layers call it once their kernel
is built, :mod:`.large_kernel`'s modules for plain large-kernel convs."""
from typing import Callable, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..torch_compat import eager_under_old_dynamo
from . import selection
from .direct import CONV_FNS, conv_direct, needs_grad
from .fft import conv_fft, fft_lengths, native_fft_applies
from .selection import select_algo


@eager_under_old_dynamo
def conv_nd(input: Tensor,
            kernel: Tensor,
            bias: Optional[Tensor],
            stride: Sequence[int],
            padding: Sequence[int],
            groups: int,
            algo: Optional[str] = None,
            kernel_spectrum: Optional[Callable[[Tuple[int, ...], bool], Tensor]] = None) -> Tensor:
    """Zero-padded N-d convolution (cross-correlation, dilation 1) of ``input``
    (N, C_in, *spatial) with a dense ``kernel`` (C_out, C_in / groups, *k) and optional
    ``bias`` (C_out,) -> (N, C_out, *out). ``algo``: one of :data:`.selection.ALGOS` or None
    (then ``$MMDCLS_CONV_ALGO``, else ``'auto'``). ``kernel_spectrum``: for constant kernels, a
    function of (transform lengths, native_form) returning :func:`.fft.kernel_spectrum_for` the
    kernel (e.g. from a cache); used, and counted as free by ``'auto'``, when no gradient is
    needed."""
    ndim = kernel.dim() - 2
    if ndim not in CONV_FNS:
        raise ValueError(f'kernel must be 3-D, 4-D or 5-D (C_out, C_in / groups, *k), got shape '
                         f'{tuple(kernel.shape)}')
    if input.dim() != ndim + 2:
        raise ValueError(f'input must be {ndim + 2}-D for a {ndim}-D kernel, got shape '
                         f'{tuple(input.shape)}')
    stride, padding = tuple(stride), tuple(padding)
    if len(stride) != ndim or len(padding) != ndim:
        raise ValueError(f'stride {stride} and padding {padding} must have {ndim} entries')
    if input.shape[1] != kernel.shape[1] * groups or kernel.shape[0] % groups:
        raise ValueError(f'input channels {input.shape[1]} / kernel {tuple(kernel.shape)} do not '
                         f'match groups={groups}')
    if input.numel() == 0:
        # an empty batch (or empty maps): F.conv's empty output and backward (zero kernel and
        # bias gradients), whatever the algorithm; there is nothing to choose between
        return conv_direct(input, kernel, bias, stride, padding, groups)
    if torch.jit.is_tracing():
        # a trace (FLOP counters, exporters) records one standard conv; the exact algorithms
        # all compute the same values
        return conv_direct(input, kernel, bias, stride, padding, groups)
    if kernel_spectrum is not None and not needs_grad(input, kernel, bias):
        name = select_algo(input, kernel, bias, stride, padding, groups, algo, True)
        if name == 'fft':
            lengths = fft_lengths(input.shape[2:], kernel.shape[2:], padding)
            native_form = native_fft_applies(input, kernel, bias, stride, groups)
            return conv_fft(
                input,
                kernel,
                bias,
                stride,
                padding,
                groups,
                kernel_spectrum=kernel_spectrum(lengths, native_form))
    else:
        name = select_algo(input, kernel, bias, stride, padding, groups, algo)
    return selection.ALGORITHM_FNS[name](input, kernel, bias, stride, padding, groups)
