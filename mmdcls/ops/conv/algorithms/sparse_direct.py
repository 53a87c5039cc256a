"""``'sparse_direct'``: the C library's register-blocked direct depthwise convolution over the
kernel's non-zero taps (:func:`mmdcls.ops.kernels.cpu.depthwise_conv2d`, ``depthwise_2d.c``),
with its gradients, where :func:`.c_library.why_c_depthwise_not` allows (2-D depthwise stride-1
float32 / float64 CPU convs). A trained DCLS ``v0`` kernel has ~100 of 289 taps non-zero, one as
initialised ~14."""
import math
from typing import Dict, Optional

import torch

from ...kernels import cpu
from ..algorithm import ConvAlgorithm
from ..problem import ConvProblem
from .c_library import why_c_depthwise_not
from .direct import SMALL_KERNEL_TAPS

# The cost constants (docs/cost_model.md, "sparse direct"), fitted on CPU to per-layer timings
# of ConvNeXt-DCLS-T against the FFTs:
#: cost of one tap per output point, by needs_grad
_CPU_PER_TAP: Dict[bool, float] = {True: 0.2, False: 0.82}
#: added per input point for channels-last input (it works on NCHW copies)
_CPU_CHANNELS_LAST = 110.0
#: outputs are computed in blocks of this many columns (the cost counts whole blocks)
_COLUMN_BLOCK = 8


class _SparseDirectDepthwise(torch.autograd.Function):
    """:func:`mmdcls.ops.kernels.cpu.depthwise_conv2d` with its gradients: d loss / d input is
    the same correlation of d loss / d output with the kernel rotated by 180 degrees (padding
    k - 1 - p), d loss / d kernel :func:`mmdcls.ops.kernels.cpu.depthwise_grad_kernel`."""

    @staticmethod
    def forward(ctx, input, kernel, bias, padding):
        ctx.save_for_backward(input, kernel)
        ctx.padding, ctx.has_bias = padding, bias is not None
        return cpu.depthwise_conv2d(input, kernel, bias, padding)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        input, kernel = ctx.saved_tensors
        ksize = kernel.shape[2:]
        grad_input = grad_kernel = grad_bias = None
        if ctx.needs_input_grad[0]:
            # d loss / d output zero-padded by k - 1 - p; where the forward padded by more
            # than k - 1 (legal, as in F.conv2d), the outermost d loss / d output rows and
            # columns touched only padding: cropped instead (the C conv takes no negative
            # padding)
            pads = [k - 1 - p for k, p in zip(ksize, ctx.padding)]
            crop = [max(0, -q) for q in pads]
            cropped = grad_out[:, :, crop[0]:grad_out.shape[2] - crop[0],
                               crop[1]:grad_out.shape[3] - crop[1]]
            grad_input = cpu.depthwise_conv2d(cropped, kernel.flip(2, 3), None,
                                              tuple(max(0, q) for q in pads))
        if ctx.needs_input_grad[1]:
            grad_kernel = cpu.depthwise_grad_kernel(input, grad_out, ksize, ctx.padding)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum((0, 2, 3))
        return grad_input, grad_kernel, grad_bias, None


class SparseDirect(ConvAlgorithm):
    name = 'sparse_direct'
    devices = ('cpu', )
    # zero taps are skipped, so a non-finite input under a zero tap does not reach the output
    propagates_non_finite = False

    def why_not(self, problem: ConvProblem) -> Optional[str]:
        return super().why_not(problem) or why_c_depthwise_not(problem)

    def cost(self, problem: ConvProblem) -> Optional[float]:
        """``a * t * O / prod(S)`` (+ the channels-last term) with ``O`` the outputs (last axis
        in whole column blocks), ``t`` the mean non-zero taps (inference) or twice them plus
        all taps (training: the kernel gradient covers every tap)."""
        if problem.taps <= SMALL_KERNEL_TAPS:
            return math.inf
        out_h, out_w = problem.out_size
        padded_out = out_h * -(-out_w // _COLUMN_BLOCK) * _COLUMN_BLOCK
        taps = problem.nonzero_taps
        tap_passes = 2 * taps + problem.taps if problem.needs_grad else taps
        cost = _CPU_PER_TAP[problem.needs_grad] * tap_passes * padded_out / math.prod(
            problem.spatial)
        return cost + (_CPU_CHANNELS_LAST if problem.channels_last else 0.0)

    def run(self, input, kernel, bias, problem, prepared=None):
        if problem.needs_grad:
            return _SparseDirectDepthwise.apply(input, kernel, bias, problem.padding)
        return cpu.depthwise_conv2d(input, kernel, bias, problem.padding)
