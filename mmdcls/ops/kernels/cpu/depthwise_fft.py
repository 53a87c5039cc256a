"""Bindings of ``csrc/depthwise_fft_2d.c``: the FFT depthwise convolution.

2-D transforms vectorised across channels: :func:`depthwise_fft_spectra` of a kernel, then
:func:`depthwise_fft_filter` (forward, and with ``conjugate`` the input gradient) and
:func:`depthwise_fft_grad_kernel`: the ``'c_fft'`` algorithm of
:mod:`mmdcls.ops.conv.algorithms.c_fft`.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from .constants import FFT_RADICES, VECTOR_BYTES, lanes
from .loader import call, threads_for
from .prototypes import strides

_NEEDED_BY = 'the FFT depthwise convolution'


def _groups(channels: int, dtype: torch.dtype) -> int:
    """Complex transforms for ``channels``: each carries two vectors of channels (one in the
    real part, one in the imaginary part)."""
    return -(-channels // (2 * lanes(dtype)))


def _spectra_shape(channels: int, lengths: Tuple[int, int], dtype: torch.dtype) -> tuple:
    """Shape of the spectra of :func:`depthwise_fft_spectra`: per transform group and frequency
    (L0, L1 // 2 + 1), the two complex vectors P and M (csrc/depthwise_fft_2d.c)."""
    return (_groups(channels, dtype), lengths[0], lengths[1] // 2 + 1, 2, 2, lanes(dtype))


def _check_lengths(lengths: Sequence[int]) -> Tuple[int, int]:
    """The transform lengths (L0, L1): positive, with no prime factor outside
    :data:`.constants.FFT_RADICES` (:func:`mmdcls.ops.conv.fft.fft_lengths` gives such)."""
    lengths = tuple(lengths)
    for length in lengths:
        rest = length if isinstance(length, int) and length > 0 else 0
        for p in FFT_RADICES:
            while rest and rest % p == 0:
                rest //= p
        if len(lengths) != 2 or rest != 1:
            raise ValueError(f'lengths must be two positive ints with no prime factor other '
                             f'than {", ".join(map(str, FFT_RADICES))}, got {lengths}')
    return lengths


def _aligned(tensor: Tensor, what: str) -> Tensor:
    if tensor.data_ptr() % VECTOR_BYTES:  # the C code reads it as whole vectors
        raise RuntimeError(f'mmdcls: {what} at {tensor.data_ptr():#x} is not '
                           f'{VECTOR_BYTES}-byte aligned')
    return tensor


def depthwise_fft_spectra(kernel: Tensor, lengths: Sequence[int]) -> Tensor:
    """The spectra of depthwise ``kernel`` (C, 1, kh, kw) for :func:`depthwise_fft_filter`
    with transform ``lengths`` (L0, L1) (see :func:`_check_lengths`): an opaque float tensor
    (ceil(C / group), L0, L1 // 2 + 1, 2, 2, lanes) of the kernel's dtype."""
    kernel = kernel.contiguous()
    c, _, kh, kw = kernel.shape
    L0, L1 = lengths = _check_lengths(lengths)
    spectra = _aligned(kernel.new_empty(_spectra_shape(c, lengths, kernel.dtype)), 'spectra')
    groups = spectra.shape[0]
    call(
        'depthwise_fft_spectra',
        kernel.dtype,
        kernel.data_ptr(),
        spectra.data_ptr(),
        c,
        kh,
        kw,
        L0,
        L1,
        threads=threads_for(groups),
        needed_by=_NEEDED_BY)
    return spectra


def _like_layout(input: Tensor, shape: Sequence[int]) -> Tensor:
    """An empty tensor of ``shape`` in input's memory format: channels-last for channels-last
    input (ConvNeXt's blocks pass that; the output then permutes to NHWC for free)."""
    channels_last = (
        input.is_contiguous(memory_format=torch.channels_last) and not input.is_contiguous())
    return torch.empty(
        tuple(shape),
        dtype=input.dtype,
        device=input.device,
        memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def depthwise_fft_filter(input: Tensor,
                         spectra: Tensor,
                         bias: Optional[Tensor],
                         in_offset: Sequence[int],
                         out_offset: Sequence[int],
                         out_size: Sequence[int],
                         lengths: Sequence[int],
                         conjugate: bool = False) -> Tensor:
    """Each map of input (N, C, H, W), placed at ``in_offset`` in a zero (L0, L1) plane,
    circularly correlated with its kernel (``conjugate``: convolved) through ``spectra`` of
    :func:`depthwise_fft_spectra`, read at ``out_offset`` (``out_size`` values), plus bias:
    (N, C, *out_size), channels-last if input is. No autograd."""
    n, c, h, w = input.shape
    lengths = _check_lengths(lengths)
    expected = _spectra_shape(c, lengths, input.dtype)
    groups = expected[0]
    if (tuple(spectra.shape) != expected or spectra.dtype != input.dtype
            or not spectra.is_contiguous()):
        raise ValueError(f'spectra must be depthwise_fft_spectra of a ({c}, 1, kh, kw) '
                         f'{input.dtype} kernel for lengths {tuple(lengths)}: contiguous '
                         f'{expected}, got {spectra.dtype} {tuple(spectra.shape)}')
    if bias is not None and (bias.shape != (c, ) or bias.dtype != input.dtype):
        raise ValueError(f'bias must be None or ({c},) {input.dtype}, got {bias.dtype} '
                         f'{tuple(bias.shape)}')
    out = _like_layout(input, (n, c, *out_size))
    if out.numel() == 0:
        return out
    bias = None if bias is None else bias.contiguous()  # alive through the call
    call(
        'depthwise_fft_filter',
        input.dtype,
        input.data_ptr(),
        strides(input),
        _aligned(spectra, 'spectra').data_ptr(),
        None if bias is None else bias.data_ptr(),
        out.data_ptr(),
        strides(out),
        n,
        c,
        h,
        w,
        *in_offset,
        *out_size,
        *out_offset,
        *lengths,
        int(conjugate),
        threads=threads_for(n * groups),
        needed_by=_NEEDED_BY)
    return out


def depthwise_fft_grad_kernel(input: Tensor, grad: Tensor, in_offset: Sequence[int],
                              kernel_size: Sequence[int], lengths: Sequence[int]) -> Tensor:
    """(C, 1, kh, kw): sum over the batch of the circular correlation of grad (N, C, GH, GW)
    at (0, 0) with input (N, C, H, W) at ``in_offset`` in (L0, L1) planes, at shifts 0 .. k - 1:
    the kernel gradient of the correlation :func:`depthwise_fft_filter` computes."""
    n, c, h, w = input.shape
    kh, kw = kernel_size
    lengths = _check_lengths(lengths)
    if (grad.dtype != input.dtype or grad.dim() != 4 or tuple(grad.shape[:2]) != (n, c)
            or input.device.type != 'cpu' or grad.device.type != 'cpu'):
        raise ValueError(f'grad must be a (N, C, GH, GW) CPU tensor like input {input.dtype} '
                         f'{tuple(input.shape)}, got {grad.dtype} {tuple(grad.shape)} on '
                         f'{grad.device}')
    grad_kernel = input.new_empty((c, 1, kh, kw))
    groups = _groups(c, input.dtype)
    call(
        'depthwise_fft_grad_kernel',
        input.dtype,
        input.data_ptr(),
        strides(input),
        grad.data_ptr(),
        strides(grad),
        grad_kernel.data_ptr(),
        n,
        c,
        h,
        w,
        *in_offset,
        *grad.shape[2:],
        kh,
        kw,
        *lengths,
        threads=threads_for(groups),
        needed_by=_NEEDED_BY)
    return grad_kernel
