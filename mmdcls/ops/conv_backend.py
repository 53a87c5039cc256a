"""Exact convolution algorithms for the dense (large, often depthwise) kernels of DCLS layers.

``conv_nd`` is the single entry point the DCLS layers call once their kernel is built; it is
equally usable for plain large-kernel convs (see :class:`LargeKernelConv2d`). Every algorithm
computes the same zero-padded cross-correlation as ``F.conv{1,2,3}d`` (dilation 1) and is
differentiable with respect to input, kernel and bias through ordinary torch ops:

* ``'direct'``: ``F.conv{1,2,3}d`` on the tensors as given (NCHW).
* ``'channels_last'``: ``F.conv2d`` / ``F.conv3d`` on channels-last copies; oneDNN's depthwise
  kernels are several times faster in that layout on CPU, and the channels-last output makes
  ConvNeXt's ``permute(0, 2, 3, 1)`` free. 1-D tensors have no channels-last layout in torch:
  there it is ``'direct'``.
* ``'fft'``: its cost does not depend on the kernel size. Depthwise stride-1 2-D convs of
  float32 / float64 CPU tensors outside autocast (:func:`native_fft_applies`) run the C
  library's FFT convolution (:func:`mmdcls.ops.native.depthwise_fft_filter`: transforms
  vectorised across channels, any input layout, channels-last output for channels-last input).
  Otherwise ``torch.fft.rfftn`` of input and kernel, a per-frequency product (a broadcast
  multiply when ``in_channels / groups == 1``, a complex contraction otherwise), ``irfftn``;
  the input is zero-padded once to the transform length (front: the conv padding), stride is a
  subsampling of the stride-1 result; computed in float32 (float64 for float64 inputs) with
  autocast off, so bf16/fp16 autocast never reaches the transforms; the output has the dtype
  ``F.conv`` would give.
* ``'native'``: for inference (no gradient needed) of depthwise stride-1 2-D convs on float32 /
  float64 CPU tensors, the register-blocked direct convolution of :mod:`mmdcls.ops.native`
  over the kernel's non-zero taps (a folded DCLS ``v0`` kernel has ~100 of 289); otherwise,
  or without the C library, ``'channels_last'``.

Selection (first that applies): the call's ``algo`` (a DCLS module's ``conv_algo``), the
``MMDCLS_CONV_ALGO`` environment variable, then ``'auto'``. Besides the four algorithms:

* ``'auto'``: a cost model fitted on this project's CPU measurements (see
  :func:`heuristic_algo`); CUDA inputs use ``'direct'`` (cuDNN).
* ``'benchmark'``: like ``torch.backends.cudnn.benchmark``: the first call for a key (device,
  dtype, input shape, kernel shape, stride, padding, groups, grad mode) times every algorithm
  (forward, plus backward when grad is enabled) and caches the fastest for the process.
"""
import functools
import math
import os
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import native
from .torch_compat import get_autocast_dtype, is_autocast_enabled, is_compiling

#: the concrete algorithms
ALGORITHMS = ('direct', 'channels_last', 'fft', 'native')
#: every value ``algo`` / ``conv_algo`` / ``MMDCLS_CONV_ALGO`` accepts
ALGOS = ('auto', 'benchmark') + ALGORITHMS
ENV_VAR = 'MMDCLS_CONV_ALGO'

_CONV_FNS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}


def check_algo(algo: Optional[str], name: str = 'algo') -> None:
    """Raises ValueError unless ``algo`` is None or one of :data:`ALGOS`."""
    if algo is not None and algo not in ALGOS:
        raise ValueError(f'{name} must be one of {ALGOS} (or None), got {algo!r}')


def resolve_algo(algo: Optional[str] = None) -> str:
    """The requested algorithm name: ``algo``, else ``$MMDCLS_CONV_ALGO``, else ``'auto'``."""
    check_algo(algo)
    if algo is not None:
        return algo
    env = os.environ.get(ENV_VAR)
    if env is None or env == '':
        return 'auto'
    check_algo(env, f'environment variable {ENV_VAR}')
    return env


# ---------------------------------------------------------------------------------- algorithms
def conv_direct(input: Tensor, kernel: Tensor, bias: Optional[Tensor], stride: Tuple[int, ...],
                padding: Tuple[int, ...], groups: int) -> Tensor:
    """``F.conv{1,2,3}d``. input (N, C_in, *S), kernel (C_out, C_in / groups, *k)."""
    return _CONV_FNS[kernel.dim() - 2](input, kernel, bias, stride, padding, 1, groups)


class _DepthwiseChannelsLast(torch.autograd.Function):
    """Depthwise (C_out == C_in == groups) convolution in channels-last layout with a fast
    backward. torch's own kernel-gradient of a depthwise conv on CPU gets very slow for large
    kernels (seconds for 17x17 on a 96x96 map); here it is itself a depthwise convolution:
    grad_kernel[c] = sum_n correlate(pad(input)[n, c], grad_out[n, c]), run as one conv with the
    (n, c) pairs as channels and grad_out as a (dilation = stride) kernel."""

    @staticmethod
    def forward(ctx, input, kernel, bias, stride, padding):
        fmt = _CHANNELS_LAST[kernel.dim() - 2]
        input = input.contiguous(memory_format=fmt)
        kernel = kernel.contiguous(memory_format=fmt)
        ctx.save_for_backward(input, kernel)
        ctx.has_bias = bias is not None
        ctx.stride, ctx.padding = stride, padding
        return _CONV_FNS[kernel.dim() - 2](input, kernel, bias, stride, padding, 1,
                                           kernel.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        input, kernel = ctx.saved_tensors
        ndim = kernel.dim() - 2
        fmt = _CHANNELS_LAST[ndim]
        n, c = input.shape[:2]
        grad_out = grad_out.contiguous(memory_format=fmt)
        grad_input = grad_kernel = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = torch.ops.aten.convolution_backward(
                grad_out, input, kernel, None, ctx.stride, ctx.padding, (1, ) * ndim, False,
                (0, ) * ndim, c, (True, False, False))[0]
        if ctx.needs_input_grad[1]:
            padded = F.pad(input, [q for p in reversed(ctx.padding) for q in (p, p)])
            # (N, C, *S) -> (1, N * C, *S), channels-last: (n, c) pairs become channels.
            perm = tuple(range(2, ndim + 2)) + (0, 1)
            pairs = padded.permute(*perm).reshape(1, *padded.shape[2:], n * c)
            pairs = pairs.permute(0, ndim + 1, *range(1, ndim + 1))
            weights = grad_out.reshape(n * c, 1, *grad_out.shape[2:])
            full = _CONV_FNS[ndim](pairs, weights, None, 1, 0, ctx.stride, n * c)
            crop = tuple(slice(0, k) for k in kernel.shape[2:])
            grad_kernel = full.view(n, c, *full.shape[2:])[(Ellipsis, ) + crop].sum(0)
            grad_kernel = grad_kernel.unsqueeze(1).contiguous()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum(dim=(0, ) + tuple(range(2, ndim + 2)))
        return grad_input, grad_kernel, grad_bias, None, None


def conv_channels_last(input: Tensor, kernel: Tensor, bias: Optional[Tensor],
                       stride: Tuple[int, ...], padding: Tuple[int, ...], groups: int) -> Tensor:
    """``F.conv{2,3}d`` in channels-last layout; the output stays channels-last (same values
    and shape as ``'direct'``). Depthwise convs (C_out == C_in == groups) needing gradients
    use :class:`_DepthwiseChannelsLast` for a fast kernel gradient."""
    ndim = kernel.dim() - 2
    fmt = _CHANNELS_LAST.get(ndim)
    if fmt is None:
        return conv_direct(input, kernel, bias, stride, padding, groups)
    depthwise = kernel.shape[1] == 1 and kernel.shape[0] == input.shape[1] == groups
    needs_grad = _needs_grad(input, kernel, bias)
    device_type = input.device.type
    if depthwise and needs_grad:
        if is_autocast_enabled(device_type):
            # Custom Functions see autocast's inputs uncast: cast as F.conv would.
            dtype = get_autocast_dtype(device_type)
            input, kernel = input.to(dtype), kernel.to(dtype)
            bias = None if bias is None else bias.to(dtype)
            with torch.autocast(device_type, enabled=False):
                return _DepthwiseChannelsLast.apply(input, kernel, bias, stride, padding)
        if input.dtype != kernel.dtype:
            raise TypeError(f'input ({input.dtype}) and kernel ({kernel.dtype}) must have the '
                            'same dtype outside autocast')
        return _DepthwiseChannelsLast.apply(input, kernel, bias, stride, padding)
    input = input.contiguous(memory_format=fmt)
    kernel = kernel.contiguous(memory_format=fmt)
    return conv_direct(input, kernel, bias, stride, padding, groups)


@functools.lru_cache(maxsize=None)
def _fast_len(n: int) -> int:
    """Smallest 2-3-5-smooth integer >= n, even when > 1 (fast for pocketfft / MKL / cuFFT)."""
    m = max(n, 1)
    while True:
        r = m
        for p in (2, 3, 5):
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


def _needs_grad(*tensors: Optional[Tensor]) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


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
    return F.pad(x, [q for L, s, p in zip(reversed(lengths), reversed(spatial),
                                          reversed(padding)) for q in (p, L - s - p)])


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
        return torch.fft.irfftn(spectrum, s=tuple(lengths),
                                dim=tuple(range(-len(lengths), 0)))[index]
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
            spectrum = torch.fft.fft(torch.fft.rfft(k, n=lengths[1], dim=-1), n=lengths[0],
                                     dim=-2)
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
        gf = torch.fft.rfftn(F.pad(grad_y, [q for L, f in zip(reversed(lengths), reversed(full))
                                            for q in (0, L - f)]), dim=dims)
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
    :func:`mmdcls.ops.native.depthwise_fft_grad_kernel`. Saves x and the kernel's spectra.
    x (N, C, H, W), kernel (C, 1, kh, kw), bias (C,) or None, float32 / float64."""

    @staticmethod
    def forward(ctx, x, kernel, bias, padding, lengths, full):
        spectra = native.depthwise_fft_spectra(kernel, lengths)
        ctx.save_for_backward(x, spectra)
        ctx.geometry = (padding, lengths, tuple(kernel.shape[2:]))
        ctx.has_bias = bias is not None
        return native.depthwise_fft_filter(x, spectra, bias, padding, (0, 0), full, lengths)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        x, spectra = ctx.saved_tensors
        padding, lengths, ksize = ctx.geometry
        grad_x = grad_kernel = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = native.depthwise_fft_filter(grad_y, spectra, None, (0, 0), padding,
                                                 x.shape[2:], lengths, conjugate=True)
        if ctx.needs_input_grad[1]:
            grad_kernel = native.depthwise_fft_grad_kernel(x, grad_y, padding, ksize, lengths)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_y.sum((0, 2, 3))
        return grad_x, grad_kernel, grad_bias, None, None, None


def kernel_spectrum_for(kernel: Tensor, lengths: Sequence[int], native_form: bool) -> Tensor:
    """What :func:`conv_fft` multiplies by for ``kernel`` and transform ``lengths``: the
    spectra of :func:`mmdcls.ops.native.depthwise_fft_spectra` when ``native_form`` (see
    :func:`native_fft_applies`), else :func:`fft_kernel_spectrum`."""
    if native_form:
        return native.depthwise_fft_spectra(kernel, lengths)
    return fft_kernel_spectrum(kernel, lengths)


def native_fft_applies(input: Tensor, kernel: Tensor, bias: Optional[Tensor], stride,
                       groups: int) -> bool:
    """Whether :func:`conv_fft` runs the C library's FFT convolution (transforms vectorised
    across channels, ~3-4x faster than ``torch.fft`` on depthwise ConvNeXt shapes): the cases
    of :func:`mmdcls.ops.native.depthwise_usable` (2-D depthwise stride 1, float32 / float64
    CPU, no autocast, eager)."""
    return native.depthwise_usable(input, kernel, bias, stride, groups)


def conv_fft(input: Tensor, kernel: Tensor, bias: Optional[Tensor], stride: Tuple[int, ...],
             padding: Tuple[int, ...], groups: int,
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
    lengths = fft_lengths(spatial, ksize, padding)
    if native_fft_applies(input, kernel, bias, stride, groups):
        if _needs_grad(input, kernel, bias):
            return _NativeDepthwiseFFT.apply(input, kernel, bias, tuple(padding), lengths, full)
        if kernel_spectrum is None:
            kernel_spectrum = native.depthwise_fft_spectra(kernel, lengths)
        return native.depthwise_fft_filter(input, kernel_spectrum, bias, padding, (0, 0), full,
                                           lengths)
    out_dtype = _out_dtype(input, kernel)
    ndim = kernel.dim() - 2
    n, c_in = input.shape[:2]
    c_out, c_in_g = kernel.shape[:2]
    dims = tuple(range(-ndim, 0))
    compute = _fft_compute_dtype(input.dtype)
    in_place = not _needs_grad(input, kernel, bias)
    with torch.autocast(input.device.type, enabled=False):
        x = input.to(compute)
        if (not in_place and c_in_g == 1 and c_out == c_in == groups and kernel_spectrum is None
                and all(st == 1 for st in stride)):
            y = _DepthwiseFFT.apply(x, kernel.to(compute),
                                    None if bias is None else bias.to(compute), tuple(padding),
                                    lengths, full)
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


class _NativeDepthwise(torch.autograd.Function):
    """:func:`mmdcls.ops.native.depthwise_conv2d` with its gradients: d loss / d input is the
    same correlation of d loss / d output with the kernel rotated by 180 degrees (padding
    k - 1 - p), d loss / d kernel :func:`mmdcls.ops.native.depthwise_grad_kernel`."""

    @staticmethod
    def forward(ctx, input, kernel, bias, padding):
        ctx.save_for_backward(input, kernel)
        ctx.padding, ctx.has_bias = padding, bias is not None
        return native.depthwise_conv2d(input, kernel, bias, padding)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        input, kernel = ctx.saved_tensors
        ksize = kernel.shape[2:]
        grad_input = grad_kernel = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = native.depthwise_conv2d(
                grad_out, kernel.flip(2, 3), None,
                tuple(k - 1 - p for k, p in zip(ksize, ctx.padding)))
        if ctx.needs_input_grad[1]:
            grad_kernel = native.depthwise_grad_kernel(input, grad_out, ksize, ctx.padding)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum((0, 2, 3))
        return grad_input, grad_kernel, grad_bias, None


def conv_native(input: Tensor, kernel: Tensor, bias: Optional[Tensor],
                stride: Tuple[int, ...], padding: Tuple[int, ...], groups: int) -> Tensor:
    """The direct depthwise convolution of :mod:`mmdcls.ops.native` (with its gradients) where
    it applies (:func:`mmdcls.ops.native.depthwise_usable`), else
    :func:`conv_channels_last`."""
    if native.depthwise_usable(input, kernel, bias, stride, groups):
        if _needs_grad(input, kernel, bias):
            return _NativeDepthwise.apply(input, kernel, bias, tuple(padding))
        return native.depthwise_conv2d(input, kernel, bias, padding)
    return conv_channels_last(input, kernel, bias, stride, padding, groups)


_ALGORITHM_FNS: Dict[str, Callable] = {
    'direct': conv_direct,
    'channels_last': conv_channels_last,
    'fft': conv_fft,
    'native': conv_native,
}


# ---------------------------------------------------------------------------------- selection
#: cost of one real FFT, per point and log2(points), in multiply-adds, for training (True) and
#: inference (False), fitted on CPU (2 threads, idle machine) to the per-layer choices of
#: ``'benchmark'`` on ConvNeXt-DCLS-T (17x17 and 23x23 depthwise, 12x12 to 128x128 maps), FFT
#: against channels-last (the native direct conv is costed by ``_NATIVE_COST_PER_TAP``).
#: Training: FFT on every such layer, which over the whole train step measured 1.08x / 1.10x
#: the 7x7 network at 2x3x512x512 (v0 / gauss) against 1.36x / 1.73x with channels-last
#: direct, for ~25% more peak memory. Inference (refitted for the in-place product, the bias
#: on the zero-frequency bin and, in :class:`LargeKernelConv2d`, the cached kernel spectrum):
#: FFT for 17x17 / 23x23 depthwise on every ConvNeXt-T map of 16x16 and more (1.2-3.9x faster
#: than channels-last), channels-last on 12x12 where it measured faster.
_FFT_COST_PER_POINT = {True: 3.5, False: 6.0}
#: the same for the C library's FFT convolution (depthwise stride-1 2-D float32 / float64 CPU:
#: where ``'native'`` applies), fitted the same way to per-layer timings on ConvNeXt-T maps
#: (1x384 and 2x512 inputs) against the native direct conv: training 1.0-1.8 (FFT faster on
#: every layer, v0 and gauss), inference 1.8-3.1 (native faster for v0 kernels on maps of
#: 48x48 and less, FFT for the rest and for every dense 23x23 Gaussian kernel).
_NATIVE_FFT_COST_PER_POINT = {True: 1.5, False: 2.3}
#: cost of one tap of the native direct depthwise conv per output point, in the units above,
#: for training (True: forward and input gradient over the non-zero taps, kernel gradient
#: over all taps) and inference (False), fitted to per-layer timings against FFT on
#: ConvNeXt-T maps with positions spread as in trained checkpoints (training 0.17-0.24,
#: inference 0.58-1.06 across layers). Against the torch FFT native won for v0 kernels (~108
#: of 289 taps); against the C library's FFT it wins for sparser kernels only (below).
_NATIVE_COST_PER_TAP = {True: 0.2, False: 0.65}
#: added to the native direct conv's cost (units above, per input point) for channels-last
#: input: it works on NCHW copies and returns NCHW, which a ConvNeXt block (channels-last
#: input, NHWC consumer) lays out twice more, while the C FFT reads and writes channels-last.
#: Fitted on folded v0 ConvNeXt-T layers with that consumer (33-111 across layers).
_NATIVE_CHANNELS_LAST_COST = 40.0
#: kernels with at most this many taps always use direct convolution
_SMALL_KERNEL = 25


def heuristic_algo(input_shape: Sequence[int], kernel_shape: Sequence[int],
                   stride: Sequence[int], padding: Sequence[int], groups: int,
                   device_type: str = 'cpu', needs_grad: bool = True,
                   kernel_spectrum_cached: bool = False,
                   nonzero_taps: Optional[float] = None,
                   channels_last_input: bool = False) -> str:
    """``'auto'``'s choice. CUDA and other devices: ``'direct'`` (use ``'benchmark'`` to time
    the alternatives there). CPU: kernels of at most 25 taps run direct; otherwise a cost model
    in multiply-adds per element of one (sample, output channel) input-sized map, with
    ``S`` the input size, ``L`` the transform lengths, ``P = prod(L)``:

    * direct: ``taps * (C_in / groups) * prod(S_out) / prod(S)``;
    * FFT: ``c * P * log2(P) / prod(S) * (C_in / C_out + 1 + (C_in / groups) / N)`` for the
      input, output and kernel transforms (the last dropped when ``kernel_spectrum_cached``:
      constant kernels of :class:`LargeKernelConv2d` in inference), plus
      ``2 * (C_in / groups) * P / prod(S)`` for the per-frequency products; ``c`` from
      ``_FFT_COST_PER_POINT`` (with / without gradients, fitted to ``'benchmark'``'s choices),
      or ``_NATIVE_FFT_COST_PER_POINT`` when ``nonzero_taps`` is given (the C library's
      transforms apply);
    * native (only when ``nonzero_taps``, the mean non-zero taps per channel, is given:
      :func:`select_algo` passes it where ``'native'`` applies): ``a * t * O / prod(S)`` with
      ``O = prod(S_out)`` (last axis rounded up to 8), ``t`` the non-zero taps (inference) or
      twice them plus all taps (training), ``a`` from ``_NATIVE_COST_PER_TAP``, plus
      ``_NATIVE_CHANNELS_LAST_COST`` for ``channels_last_input``.

    The cheaper wins; direct runs channels-last for 2-D / 3-D (oneDNN's fast depthwise path),
    NCHW for 1-D.
    """
    ndim = len(kernel_shape) - 2
    direct_name = 'direct' if ndim == 1 else 'channels_last'
    if device_type != 'cpu':
        return 'direct'
    taps = math.prod(kernel_shape[2:])
    if taps <= _SMALL_KERNEL:
        return direct_name
    n, c_in = input_shape[:2]
    c_out, c_in_g = kernel_shape[:2]
    spatial, ksize = input_shape[2:], kernel_shape[2:]
    out = [(s + 2 * p - k) // st + 1 for s, p, k, st in zip(spatial, padding, ksize, stride)]
    points = math.prod(fft_lengths(spatial, ksize, padding))
    size = math.prod(spatial)
    direct = taps * c_in_g * math.prod(out) / size
    transforms = c_in / c_out + 1 + (0 if kernel_spectrum_cached else c_in_g / n)
    per_point = (_FFT_COST_PER_POINT if nonzero_taps is None else _NATIVE_FFT_COST_PER_POINT)
    fft = (per_point[bool(needs_grad)] * points * math.log2(max(points, 2)) / size *
           transforms + 2 * c_in_g * points / size)
    costs = {'fft': fft, direct_name: direct}
    if nonzero_taps is not None:
        padded_out = math.prod(out[:-1]) * -(-out[-1] // 8) * 8
        tap_passes = 2 * nonzero_taps + taps if needs_grad else nonzero_taps
        costs['native'] = (_NATIVE_COST_PER_TAP[bool(needs_grad)] * tap_passes * padded_out /
                           size + (_NATIVE_CHANNELS_LAST_COST if channels_last_input else 0))
    return min(costs, key=costs.get)


_BENCHMARK_CACHE: Dict[tuple, str] = {}


def clear_benchmark_cache() -> None:
    """Forgets the timings of ``algo='benchmark'``."""
    _BENCHMARK_CACHE.clear()


def _benchmark_key(input: Tensor, kernel: Tensor, bias: Optional[Tensor], stride, padding,
                   groups) -> tuple:
    device_type = input.device.type
    autocast = (get_autocast_dtype(device_type)
                if is_autocast_enabled(device_type) else None)
    return (str(input.device), input.dtype, kernel.dtype, autocast, tuple(input.shape),
            tuple(kernel.shape), bias is not None, stride, padding, groups,
            torch.is_grad_enabled() and (input.requires_grad or kernel.requires_grad))


def _time_algorithm(name: str, input: Tensor, kernel: Tensor, bias: Optional[Tensor], stride,
                    padding, groups, backward: bool, repeats: int = 2) -> float:
    fn = _ALGORITHM_FNS[name]
    x = torch.randn_like(input).requires_grad_(backward)
    # the real kernel, not a random one: 'native' skips its zero taps
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
            times = {a: _time_algorithm(a, input.detach(), kernel.detach(),
                                        None if bias is None else bias.detach(), stride,
                                        padding, groups, backward) for a in ALGORITHMS}
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


def select_algo(input: Tensor, kernel: Tensor, bias: Optional[Tensor], stride, padding,
                groups, algo: Optional[str] = None, kernel_spectrum_cached: bool = False) -> str:
    """The concrete algorithm ``conv_nd`` runs for these arguments (see the module docstring)."""
    name = resolve_algo(algo)
    if name == 'auto':
        nonzero_taps = None
        if native.depthwise_usable(input, kernel, bias, stride, groups):
            nonzero_taps = _mean_nonzero_taps(kernel)
        channels_last = (input.dim() == 4 and not input.is_contiguous()
                         and input.is_contiguous(memory_format=torch.channels_last))
        return heuristic_algo(input.shape, kernel.shape, stride, padding, groups,
                              input.device.type, _needs_grad(input, kernel, bias),
                              kernel_spectrum_cached, nonzero_taps, channels_last)
    if name == 'benchmark':
        return benchmark_algo(input, kernel, bias, stride, padding, groups)
    return name


def conv_nd(input: Tensor, kernel: Tensor, bias: Optional[Tensor], stride: Sequence[int],
            padding: Sequence[int], groups: int, algo: Optional[str] = None,
            kernel_spectrum: Optional[Callable[[Tuple[int, ...], bool], Tensor]] = None
            ) -> Tensor:
    """Zero-padded N-d convolution (cross-correlation, dilation 1) of ``input``
    (N, C_in, *spatial) with a dense ``kernel`` (C_out, C_in / groups, *k) and optional
    ``bias`` (C_out,) -> (N, C_out, *out). ``algo``: one of :data:`ALGOS` or None (then
    ``$MMDCLS_CONV_ALGO``, else ``'auto'``). ``kernel_spectrum``: for constant kernels, a
    function of (transform lengths, native_form) returning :func:`kernel_spectrum_for` the
    kernel (e.g. from a cache); used, and counted as free by ``'auto'``, when no gradient is
    needed."""
    ndim = kernel.dim() - 2
    if ndim not in _CONV_FNS:
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
    if torch.jit.is_tracing():
        # a trace (FLOP counters, exporters) records one standard conv; the exact algorithms
        # all compute the same values
        return conv_direct(input, kernel, bias, stride, padding, groups)
    if kernel_spectrum is not None and not _needs_grad(input, kernel, bias):
        name = select_algo(input, kernel, bias, stride, padding, groups, algo, True)
        if name == 'fft':
            lengths = fft_lengths(input.shape[2:], kernel.shape[2:], padding)
            native_form = native_fft_applies(input, kernel, bias, stride, groups)
            return conv_fft(input, kernel, bias, stride, padding, groups,
                            kernel_spectrum=kernel_spectrum(lengths, native_form))
    else:
        name = select_algo(input, kernel, bias, stride, padding, groups, algo)
    return _ALGORITHM_FNS[name](input, kernel, bias, stride, padding, groups)


# ---------------------------------------------------------------------------------- modules
class _LargeKernelConvMixin:
    """Forward of :class:`LargeKernelConv1d` / ``2d`` / ``3d``: ``conv_nd`` with the module's
    ``conv_algo`` in eager mode; plain ``F.conv`` while tracing / exporting (one standard Conv
    node in ONNX)."""

    def _check_large_kernel_args(self) -> None:
        check_algo(self.conv_algo, 'conv_algo')
        if any(d != 1 for d in self.dilation):
            raise ValueError(f'{type(self).__name__} supports dilation 1 only, got '
                             f'{self.dilation}')

    def forward(self, input: Tensor) -> Tensor:
        if (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()
                or is_compiling()):
            return self._conv_forward(input, self.weight, self.bias)
        padding = self.padding
        if isinstance(padding, str) or self.padding_mode != 'zeros':
            # Explicit pad, as nn.ConvNd does for non-zero modes; also covers padding='same'.
            mode = 'constant' if self.padding_mode == 'zeros' else self.padding_mode
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=mode)
            padding = (0, ) * len(self.kernel_size)
        return conv_nd(input, self.weight, self.bias, self.stride, padding, self.groups,
                       algo=self.conv_algo, kernel_spectrum=self._kernel_spectrum)

    def _kernel_spectrum(self, lengths: Tuple[int, ...], native_form: bool) -> Tensor:
        """:func:`kernel_spectrum_for` the weight, cached while the weight is unchanged (same
        tensor, same in-place version) and the lengths and form are the same (one entry: the
        input size of the last inference call). Not in the state dict."""
        weight = self.weight
        try:
            version = weight._version
        except RuntimeError:  # inference tensors have no version counter: no cache
            return kernel_spectrum_for(weight, lengths, native_form)
        key = (weight.data_ptr(), version, weight.dtype, weight.device, lengths, native_form)
        cached = getattr(self, '_spectrum_cache', None)
        if cached is None or cached[0] != key:
            with torch.no_grad():
                cached = (key, kernel_spectrum_for(weight, lengths, native_form))
            self._spectrum_cache = cached
        return cached[1]

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.conv_algo is None else f'{s}, conv_algo={self.conv_algo}'


class LargeKernelConv1d(_LargeKernelConvMixin, nn.Conv1d):
    """``nn.Conv1d`` (same arguments, parameters, state dict; dilation 1) computed by
    :func:`conv_nd`. Keyword ``conv_algo``: one of :data:`ALGOS` or None."""

    def __init__(self, *args, conv_algo: Optional[str] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conv_algo = conv_algo
        self._check_large_kernel_args()


class LargeKernelConv2d(_LargeKernelConvMixin, nn.Conv2d):
    """``nn.Conv2d`` (same arguments, parameters, state dict; dilation 1) computed by
    :func:`conv_nd`: FFT or channels-last for large kernels. Input (N, C_in, H, W)."""

    def __init__(self, *args, conv_algo: Optional[str] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conv_algo = conv_algo
        self._check_large_kernel_args()


class LargeKernelConv3d(_LargeKernelConvMixin, nn.Conv3d):
    """``nn.Conv3d`` (same arguments, parameters, state dict; dilation 1) computed by
    :func:`conv_nd`."""

    def __init__(self, *args, conv_algo: Optional[str] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conv_algo = conv_algo
        self._check_large_kernel_args()


class LargeKernelDepthwiseConv2d(LargeKernelConv2d):
    """Depthwise large-kernel conv keeping the spatial size: (N, C, H, W) -> (N, C, H, W) for
    odd ``kernel_size`` (padding ``kernel_size // 2``, groups = channels)."""

    def __init__(self, channels: int, kernel_size=17, bias: bool = True,
                 padding_mode: str = 'zeros', *, conv_algo: Optional[str] = None) -> None:
        ks = (kernel_size, ) * 2 if isinstance(kernel_size, int) else tuple(kernel_size)
        if len(ks) != 2 or any(not isinstance(k, int) or k < 1 or k % 2 == 0 for k in ks):
            raise ValueError(f'kernel_size must be an odd positive int or two of them, got '
                             f'{kernel_size!r}')
        super().__init__(channels, channels, ks, padding=tuple(k // 2 for k in ks),
                         groups=channels, bias=bias, padding_mode=padding_mode,
                         conv_algo=conv_algo)
