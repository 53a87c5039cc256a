"""``'fft'``: convolution through FFTs, whose cost does not depend on the kernel size.

Depthwise stride-1 2-D convs of float32 / float64 CPU tensors outside autocast
(:func:`native_fft_applies`) run the C library's FFT convolution
(:func:`mmdcls.ops.kernels.cpu.depthwise_fft_filter`: transforms vectorised across channels, any
input layout, channels-last output for channels-last input), with the gradients of
:class:`_NativeDepthwiseFFT`. Otherwise ``torch.fft.rfftn`` of input and kernel, a
per-frequency product (a broadcast multiply when ``in_channels / groups == 1``, a complex
contraction otherwise), ``irfftn``; the input is zero-padded once to the transform length
(front: the conv padding), stride is a subsampling of the stride-1 result; computed in float32
(float64 for float64 inputs) with autocast off, so bf16/fp16 autocast never reaches the
transforms; the output has the dtype ``F.conv`` would give. Depthwise stride-1 convs that
need gradients use the hand-written backward of :class:`_DepthwiseFFT`.
"""
import functools
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..kernels import cpu
from ..torch_compat import get_autocast_dtype, is_autocast_enabled
from .direct import conv_direct, needs_grad


@functools.lru_cache(maxsize=None)
def _fast_len(n: int) -> int:
    """Smallest 2-3-5-smooth integer >= n, even when > 1 (fast for pocketfft / MKL / cuFFT)."""
    m = max(n, 1)
    while True:
        r = m
        for p in cpu.FFT_RADICES:
            while r % p == 0:
                r //= p
        if r == 1 and (m == 1 or m % 2 == 0):
            return m
        m += 1


def fft_lengths(spatial: Sequence[int], kernel_size: Sequence[int],
                padding: Sequence[int]) -> Tuple[int, ...]:
    """Transform length per axis for which the circular correlation has no wrap-around on the
    needed outputs: >= size + padding (the left padding wraps onto the zero tail), >= the
    stride-1 output size and >= the kernel size; rounded up to a fast length."""
    lengths = []
    for s, k, p in zip(spatial, kernel_size, padding):
        out = s + 2 * p - k + 1
        lengths.append(_fast_len(max(s + p, out, k)))
    return tuple(lengths)


def _out_dtype(input: Tensor, kernel: Tensor) -> torch.dtype:
    device_type = input.device.type
    if (input.is_floating_point() and is_autocast_enabled(device_type)):
        return get_autocast_dtype(device_type)
    if input.dtype != kernel.dtype:
        raise TypeError(f'input ({input.dtype}) and kernel ({kernel.dtype}) must have the same '
                        'dtype outside autocast')
    return input.dtype


def _fft_compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _pad_to_transform(x: Tensor, lengths: Sequence[int], padding: Sequence[int]) -> Tensor:
    """Zero padding in front, the transform's zero tail behind: outputs land at 0 .. out-1 and
    wrap-around only ever reads the front zeros (length >= size + padding)."""
    spatial = x.shape[2:]
    return F.pad(x, [
        q for L, s, p in zip(reversed(lengths), reversed(spatial), reversed(padding))
        for q in (p, L - s - p)
    ])


def _add_bias_in_spectrum(yf: Tensor, bias: Tensor, lengths: Sequence[int]) -> None:
    """Adds ``bias`` (C,) in place to the spectrum (N, C, *F) of an output: irfftn divides by
    prod(lengths), so a constant b everywhere is b * prod(lengths) at frequency 0."""
    yf[(slice(None), slice(None)) + (0, ) * len(lengths)] += bias * math.prod(lengths)


def _irfft_region(spectrum: Tensor, lengths: Sequence[int], region: Sequence[slice]) -> Tensor:
    """``irfftn(spectrum, s=lengths)[..., *region]`` over the trailing axes. In 2-D the column
    pass runs first and the row pass only on the rows kept (a kernel gradient keeps 23 of
    ~108): the same arithmetic, a fraction of the second pass and of its input copy."""
    index = (Ellipsis, ) + tuple(region)
    if len(lengths) != 2:
        return torch.fft.irfftn(
            spectrum, s=tuple(lengths), dim=tuple(range(-len(lengths), 0)))[index]
    rows = torch.fft.ifft(spectrum, dim=-2)[..., region[0], :]
    return torch.fft.irfft(rows, n=lengths[1], dim=-1)[..., region[1]]


def fft_kernel_spectrum(kernel: Tensor, lengths: Sequence[int]) -> Tensor:
    """The conjugated real FFT of ``kernel`` (C_out, C_in / groups, *k) zero-padded to
    ``lengths``, in float32 (float64 for float64 kernels): what :func:`conv_fft` multiplies
    the input's spectrum by. Constant kernels (inference) can compute it once and pass it to
    :func:`conv_fft` as ``kernel_spectrum``."""
    ndim = kernel.dim() - 2
    with torch.autocast(kernel.device.type, enabled=False):
        k = kernel.to(_fft_compute_dtype(kernel.dtype))
        if ndim == 2:
            # row transforms of the kernel's k0 rows only, then the column transforms (the
            # zero rows of the padding transform to zeros): ~30% less than rfftn
            spectrum = torch.fft.fft(torch.fft.rfft(k, n=lengths[1], dim=-1), n=lengths[0], dim=-2)
        else:
            spectrum = torch.fft.rfftn(k, s=tuple(lengths), dim=tuple(range(-ndim, 0)))
        # physical conjugate: products with a lazily conjugated operand copy it every call
        return torch.conj_physical(spectrum)


class _DepthwiseFFT(torch.autograd.Function):
    """Depthwise stride-1 FFT convolution with a hand-written backward. Autograd through
    ``rfftn`` / ``irfftn`` differentiates each transform separately (complex-to-complex
    transforms and Hermitian fix-ups); here the gradients are the real circular identities
    directly: with X = rfft(pad(x)), K = conj(rfft(kernel)), G = rfft(d loss / d y placed at
    the output positions), d loss / d pad(x) = irfft(G conj(K)) and d loss / d kernel =
    irfft(sum over the batch of conj(G) X): one real transform of d loss / d y and two inverse
    ones (the kernel's over C maps only), no complex-to-complex transforms.
    x (N, C, *S), kernel (C, 1, *k), bias (C,) or None, all in the compute dtype."""

    @staticmethod
    def forward(ctx, x, kernel, bias, padding, lengths, full):
        ndim = kernel.dim() - 2
        dims = tuple(range(-ndim, 0))
        spatial = x.shape[2:]
        xf = torch.fft.rfftn(_pad_to_transform(x, lengths, padding), dim=dims)
        kf = fft_kernel_spectrum(kernel, lengths).view(kernel.shape[0], *xf.shape[2:])
        yf = xf * kf
        if bias is not None:
            _add_bias_in_spectrum(yf, bias, lengths)
        ctx.save_for_backward(xf, kf)
        ctx.geometry = (tuple(spatial), tuple(kernel.shape[2:]), padding, lengths, full)
        ctx.has_bias = bias is not None
        return _irfft_region(yf, lengths, [slice(0, f) for f in full])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        xf, kf = ctx.saved_tensors
        spatial, ksize, padding, lengths, full = ctx.geometry
        dims = tuple(range(-len(lengths), 0))
        grad_x = grad_kernel = grad_bias = None
        gf = torch.fft.rfftn(
            F.pad(grad_y,
                  [q for L, f in zip(reversed(lengths), reversed(full)) for q in (0, L - f)]),
            dim=dims)
        if ctx.needs_input_grad[0]:
            grad_x = _irfft_region(gf * kf.conj(), lengths,
                                   [slice(p, p + s) for p, s in zip(padding, spatial)])
        if ctx.needs_input_grad[1]:
            cross = (xf * gf.conj_physical_()).sum(0)  # gf is not needed any more
            grad_kernel = _irfft_region(cross, lengths, [slice(0, k) for k in ksize])
            grad_kernel = grad_kernel.unsqueeze(1).contiguous()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_y.sum((0, ) + dims)
        return grad_x, grad_kernel, grad_bias, None, None, None


class _NativeDepthwiseFFT(torch.autograd.Function):
    """Depthwise stride-1 FFT convolution of :mod:`mmdcls.ops.native` (transforms vectorised
    across channels) with the gradients of :class:`_DepthwiseFFT`: d loss / d x from the same
    spectra (convolution instead of correlation), d loss / d kernel by
    :func:`mmdcls.ops.kernels.cpu.depthwise_fft_grad_kernel`. Saves x and the kernel's spectra.
    x (N, C, H, W), kernel (C, 1, kh, kw), bias (C,) or None, float32 / float64."""

    @staticmethod
    def forward(ctx, x, kernel, bias, padding, lengths, full):
        spectra = cpu.depthwise_fft_spectra(kernel, lengths)
        ctx.save_for_backward(x, spectra)
        ctx.geometry = (padding, lengths, tuple(kernel.shape[2:]))
        ctx.has_bias = bias is not None
        return cpu.depthwise_fft_filter(x, spectra, bias, padding, (0, 0), full, lengths)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        x, spectra = ctx.saved_tensors
        padding, lengths, ksize = ctx.geometry
        grad_x = grad_kernel = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = cpu.depthwise_fft_filter(
                grad_y, spectra, None, (0, 0), padding, x.shape[2:], lengths, conjugate=True)
        if ctx.needs_input_grad[1]:
            grad_kernel = cpu.depthwise_fft_grad_kernel(x, grad_y, padding, ksize, lengths)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_y.sum((0, 2, 3))
        return grad_x, grad_kernel, grad_bias, None, None, None


def kernel_spectrum_for(kernel: Tensor, lengths: Sequence[int], native_form: bool) -> Tensor:
    """What :func:`conv_fft` multiplies by for ``kernel`` and transform ``lengths``: the
    spectra of :func:`mmdcls.ops.kernels.cpu.depthwise_fft_spectra` when ``native_form`` (see
    :func:`native_fft_applies`), else :func:`fft_kernel_spectrum`."""
    if native_form:
        return cpu.depthwise_fft_spectra(kernel, lengths)
    return fft_kernel_spectrum(kernel, lengths)


def native_fft_applies(input: Tensor, kernel: Tensor, bias: Optional[Tensor], stride,
                       groups: int) -> bool:
    """Whether :func:`conv_fft` runs the C library's FFT convolution (transforms vectorised
    across channels, ~3-4x faster than ``torch.fft`` on depthwise ConvNeXt shapes): the cases
    of :func:`mmdcls.ops.kernels.cpu.depthwise_usable` (2-D depthwise stride 1, float32 / float64
    CPU, no autocast, eager)."""
    return cpu.depthwise_usable(input, kernel, bias, stride, groups)


def conv_fft(input: Tensor,
             kernel: Tensor,
             bias: Optional[Tensor],
             stride: Tuple[int, ...],
             padding: Tuple[int, ...],
             groups: int,
             kernel_spectrum: Optional[Tensor] = None) -> Tensor:
    """Convolution through real FFTs. input (N, C_in, *S), kernel (C_out, C_in / groups, *k)
    -> (N, C_out, *S_out) with S_out = (S + 2 * padding - k) // stride + 1.
    ``kernel_spectrum``: :func:`kernel_spectrum_for` ``kernel``, ``fft_lengths(S, k, padding)``
    and ``native_fft_applies(...)``, if already known (then ``kernel`` gives only its shape).
    Where :func:`native_fft_applies`, the C library computes it; otherwise ``torch.fft``,
    where without gradients the product and the bias are applied in place on the spectrum
    (the bias as a constant on the zero-frequency bin), saving two passes over the output."""
    spatial, ksize = tuple(input.shape[2:]), tuple(kernel.shape[2:])
    full = tuple(s + 2 * p - k + 1 for s, p, k in zip(spatial, padding, ksize))
    if any(f < 1 for f in full):
        raise ValueError(f'kernel {ksize} is larger than the padded input '
                         f'{tuple(s + 2 * p for s, p in zip(spatial, padding))}')
    if input.numel() == 0:  # an empty batch: nothing to transform (MKL rejects it)
        return conv_direct(input, kernel, bias, stride, padding, groups)
    lengths = fft_lengths(spatial, ksize, padding)
    if native_fft_applies(input, kernel, bias, stride, groups):
        if needs_grad(input, kernel, bias):
            return _NativeDepthwiseFFT.apply(input, kernel, bias, tuple(padding), lengths, full)
        if kernel_spectrum is None:
            kernel_spectrum = cpu.depthwise_fft_spectra(kernel, lengths)
        return cpu.depthwise_fft_filter(input, kernel_spectrum, bias, padding, (0, 0), full,
                                           lengths)
    out_dtype = _out_dtype(input, kernel)
    ndim = kernel.dim() - 2
    n, c_in = input.shape[:2]
    c_out, c_in_g = kernel.shape[:2]
    dims = tuple(range(-ndim, 0))
    compute = _fft_compute_dtype(input.dtype)
    in_place = not needs_grad(input, kernel, bias)
    with torch.autocast(input.device.type, enabled=False):
        x = input.to(compute)
        if (not in_place and c_in_g == 1 and c_out == c_in == groups and kernel_spectrum is None
                and all(st == 1 for st in stride)):
            y = _DepthwiseFFT.apply(x,
                                    kernel.to(compute), None if bias is None else bias.to(compute),
                                    tuple(padding), lengths, full)
            return y.to(out_dtype)
        xf = torch.fft.rfftn(_pad_to_transform(x, lengths, padding), dim=dims)
        kf = fft_kernel_spectrum(kernel, lengths) if kernel_spectrum is None else kernel_spectrum
        freq = xf.shape[2:]
        g = groups
        if c_in_g == 1 and c_out == c_in:
            # depthwise: (N, C, *F) * (C, *F)
            kf = kf.view(c_out, *freq)
            yf = xf.mul_(kf) if in_place else xf * kf
        elif c_in_g == 1:
            # (N, G, 1, *F) * (G, C_out / G, *F): channel multipliers.
            yf = xf.view(n, g, 1, *freq) * kf.view(g, c_out // g, *freq)
        else:
            yf = torch.einsum('ngc...,goc...->ngo...', xf.view(n, g, c_in_g, *freq),
                              kf.view(g, c_out // g, c_in_g, *freq))
        yf = yf.reshape(n, c_out, *freq)
        if bias is not None and in_place:
            _add_bias_in_spectrum(yf, bias.to(compute), lengths)
        y = _irfft_region(yf, lengths, [slice(0, f, st) for f, st in zip(full, stride)])
        if bias is not None and not in_place:
            y = y + bias.to(compute).view(1, -1, *(1, ) * ndim)
    return y.to(out_dtype)
