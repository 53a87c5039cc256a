"""``'fft'``: convolution through ``torch.fft``, whose cost does not depend on the kernel size;
any groups, stride and dimensions, on any device.

``rfftn`` of the input (zero-padded once to the transform length, the conv padding in front)
and of the kernel, a per-frequency product (a broadcast multiply when ``C_in / groups == 1``, a
complex contraction otherwise), ``irfftn``; stride is a subsampling of the stride-1 result.
Computed in float32 (float64 for float64 inputs) with autocast off, so bf16 / fp16 never reach
the transforms; the output has the dtype ``F.conv`` would give. Depthwise stride-1 convs that
need gradients use the hand-written backward of :class:`_DepthwiseFFT`; without gradients the
product and the bias are applied in place on the spectrum. Transform lengths and the cost
model: :mod:`.fft_sizes` (shared with the C FFT).
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..algorithm import ConvAlgorithm
from ..problem import ConvProblem
from .fft_sizes import fft_cost, fft_lengths

#: cost of one real transform per point and log2(points), by needs_grad; fitted on CPU to
#: the per-layer fastest of ConvNeXt-DCLS-T (docs/cost_model.md, "torch FFT")
_CPU_PER_POINT: Dict[bool, float] = {True: 3.5, False: 6.0}


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
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
    ``lengths``, in float32 (float64 for float64 kernels): what the input's spectrum is
    multiplied by (:meth:`TorchFFT.prepare` of a constant kernel)."""
    ndim = kernel.dim() - 2
    with torch.autocast(kernel.device.type, enabled=False):
        k = kernel.to(_compute_dtype(kernel.dtype))
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


def _stride_one_size(problem: ConvProblem) -> Tuple[int, ...]:
    """The stride-1 output size (what the transforms compute; stride subsamples it)."""
    return tuple(s + 2 * p - k + 1
                 for s, p, k in zip(problem.spatial, problem.padding, problem.kernel_size))


def conv_torch_fft(input: Tensor,
                   kernel: Tensor,
                   bias: Optional[Tensor],
                   problem: ConvProblem,
                   kernel_spectrum: Optional[Tensor] = None) -> Tensor:
    """The convolution of ``problem`` through ``torch.fft``; ``kernel_spectrum``:
    :func:`fft_kernel_spectrum` of ``kernel``, if known (then ``kernel`` gives only its
    shape)."""
    lengths = fft_lengths(problem.spatial, problem.kernel_size, problem.padding)
    full = _stride_one_size(problem)
    ndim = problem.ndim
    n, c_in = problem.batch, problem.in_channels
    c_out, c_in_g, g = problem.out_channels, problem.in_per_group, problem.groups
    dims = tuple(range(-ndim, 0))
    compute = _compute_dtype(input.dtype)
    in_place = not problem.needs_grad
    with torch.autocast(input.device.type, enabled=False):
        x = input.to(compute)
        if (problem.needs_grad and problem.depthwise and kernel_spectrum is None
                and problem.stride_one):
            y = _DepthwiseFFT.apply(x, kernel.to(compute),
                                    None if bias is None else bias.to(compute), problem.padding,
                                    lengths, full)
            return y.to(problem.compute_dtype)
        xf = torch.fft.rfftn(_pad_to_transform(x, lengths, problem.padding), dim=dims)
        kf = fft_kernel_spectrum(kernel, lengths) if kernel_spectrum is None else kernel_spectrum
        freq = xf.shape[2:]
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
        y = _irfft_region(yf, lengths, [slice(0, f, st) for f, st in zip(full, problem.stride)])
        if bias is not None and not in_place:
            y = y + bias.to(compute).view(1, -1, *(1, ) * ndim)
    return y.to(problem.compute_dtype)


class TorchFFT(ConvAlgorithm):
    name = 'fft'
    devices = ('cpu', 'cuda')
    # a non-finite input spreads over its whole (sample, channel) plane
    propagates_non_finite = False
    non_finite_fills_planes = True

    def why_not(self, problem: ConvProblem) -> Optional[str]:
        if problem.compute_dtype not in (torch.float16, torch.bfloat16, torch.float32,
                                         torch.float64):
            return f'it transforms floating-point tensors, not {problem.compute_dtype}'
        return super().why_not(problem)

    def cost(self, problem: ConvProblem) -> Optional[float]:
        if problem.device_type != 'cpu':
            return None
        return fft_cost(problem, _CPU_PER_POINT[problem.needs_grad])

    def prepare_key(self, problem: ConvProblem) -> Optional[tuple]:
        lengths = fft_lengths(problem.spatial, problem.kernel_size, problem.padding)
        return (lengths, _compute_dtype(problem.kernel_dtype))

    def prepare(self, kernel: Tensor, problem: ConvProblem) -> Tensor:
        return fft_kernel_spectrum(kernel, self.prepare_key(problem)[0])

    def run(self, input, kernel, bias, problem, prepared=None):
        return conv_torch_fft(input, kernel, bias, problem, kernel_spectrum=prepared)
