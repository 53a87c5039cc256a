"""``'c_fft'``: the C library's FFT depthwise convolution (:mod:`mmdcls.ops.kernels.cpu`,
``depthwise_fft_2d.c``: 2-D transforms vectorised across channels, any input layout,
channels-last output for channels-last input), with the gradients of :class:`_CDepthwiseFFT`;
where :func:`.c_library.why_c_depthwise_not` allows (2-D depthwise stride-1 float32 / float64
CPU convs)."""
from typing import Dict, Optional

import torch
from torch import Tensor

from ...kernels import cpu
from ..algorithm import ConvAlgorithm
from ..problem import ConvProblem
from .c_library import why_c_depthwise_not
from .fft_sizes import fft_cost, fft_lengths

#: cost of one transform per point and log2(points), by needs_grad; fitted on CPU to the
#: per-layer fastest of ConvNeXt-DCLS-T (docs/cost_model.md, "C FFT")
_CPU_PER_POINT: Dict[bool, float] = {True: 1.5, False: 2.3}


class _CDepthwiseFFT(torch.autograd.Function):
    """The C library's depthwise stride-1 FFT convolution with its gradients: d loss / d x from
    the same spectra (convolution instead of correlation), d loss / d kernel by
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


class CFFT(ConvAlgorithm):
    name = 'c_fft'
    devices = ('cpu', )
    # a non-finite input spreads over its whole (sample, channel) plane
    propagates_non_finite = False
    non_finite_fills_planes = True

    def why_not(self, problem: ConvProblem) -> Optional[str]:
        return super().why_not(problem) or why_c_depthwise_not(problem)

    def cost(self, problem: ConvProblem) -> Optional[float]:
        return fft_cost(problem, _CPU_PER_POINT[problem.needs_grad])

    def prepare_key(self, problem: ConvProblem) -> Optional[tuple]:
        return fft_lengths(problem.spatial, problem.kernel_size, problem.padding)

    def prepare(self, kernel: Tensor, problem: ConvProblem) -> Tensor:
        return cpu.depthwise_fft_spectra(kernel, self.prepare_key(problem))

    def run(self, input, kernel, bias, problem, prepared=None):
        lengths = fft_lengths(problem.spatial, problem.kernel_size, problem.padding)
        full = problem.out_size  # stride 1
        if problem.needs_grad:
            return _CDepthwiseFFT.apply(input, kernel, bias, problem.padding, lengths, full)
        spectra = cpu.depthwise_fft_spectra(kernel, lengths) if prepared is None else prepared
        return cpu.depthwise_fft_filter(input, spectra, bias, problem.padding, (0, 0), full,
                                        lengths)
