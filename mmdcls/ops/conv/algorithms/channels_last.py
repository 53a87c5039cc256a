"""``'channels_last'``: ``F.conv2d`` / ``F.conv3d`` on channels-last copies, the output staying
channels-last. On CPU oneDNN's depthwise kernels are several times faster in that layout, and
the channels-last output makes ConvNeXt's ``permute(0, 2, 3, 1)`` free; on CUDA it is cuDNN.
Depthwise convs that need gradients go through :class:`_DepthwiseChannelsLast` for a fast
kernel gradient."""
from typing import Optional

import torch
import torch.nn.functional as F

from ..algorithm import ConvAlgorithm, run_as_f_conv
from ..problem import CHANNELS_LAST_FORMATS, ConvProblem
from .direct import CONV_FNS, conv_direct, dense_cpu_cost, why_f_conv_not


class _DepthwiseChannelsLast(torch.autograd.Function):
    """Depthwise (C_out == C_in == groups) convolution in channels-last layout with a fast
    backward. torch's own kernel gradient of a depthwise conv on CPU is very slow for large
    kernels (seconds for 17x17 on a 96x96 map); here it is itself a depthwise convolution:
    grad_kernel[c] = sum_n correlate(pad(input)[n, c], grad_out[n, c]), run as one conv with the
    (n, c) pairs as channels and grad_out as a (dilation = stride) kernel."""

    @staticmethod
    def forward(ctx, input, kernel, bias, stride, padding):
        fmt = CHANNELS_LAST_FORMATS[kernel.dim() - 2]
        input = input.contiguous(memory_format=fmt)
        kernel = kernel.contiguous(memory_format=fmt)
        ctx.save_for_backward(input, kernel)
        ctx.has_bias = bias is not None
        ctx.stride, ctx.padding = stride, padding
        return CONV_FNS[kernel.dim() - 2](input, kernel, bias, stride, padding, 1, kernel.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        input, kernel = ctx.saved_tensors
        ndim = kernel.dim() - 2
        fmt = CHANNELS_LAST_FORMATS[ndim]
        n, c = input.shape[:2]
        grad_out = grad_out.contiguous(memory_format=fmt)
        grad_input = grad_kernel = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = torch.ops.aten.convolution_backward(grad_out, input, kernel, None,
                                                             ctx.stride, ctx.padding, (1, ) * ndim,
                                                             False, (0, ) * ndim, c,
                                                             (True, False, False))[0]
        if ctx.needs_input_grad[1]:
            padded = F.pad(input, [q for p in reversed(ctx.padding) for q in (p, p)])
            # (N, C, *S) -> (1, N * C, *S), channels-last: (n, c) pairs become channels.
            perm = tuple(range(2, ndim + 2)) + (0, 1)
            pairs = padded.permute(*perm).reshape(1, *padded.shape[2:], n * c)
            pairs = pairs.permute(0, ndim + 1, *range(1, ndim + 1))
            weights = grad_out.reshape(n * c, 1, *grad_out.shape[2:])
            full = CONV_FNS[ndim](pairs, weights, None, 1, 0, ctx.stride, n * c)
            crop = tuple(slice(0, k) for k in kernel.shape[2:])
            grad_kernel = full.view(n, c, *full.shape[2:])[(Ellipsis, ) + crop].sum(0)
            grad_kernel = grad_kernel.unsqueeze(1).contiguous()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum(dim=(0, ) + tuple(range(2, ndim + 2)))
        return grad_input, grad_kernel, grad_bias, None, None


class ChannelsLast(ConvAlgorithm):
    name = 'channels_last'
    devices = ('cpu', 'cuda')

    def why_not(self, problem: ConvProblem) -> Optional[str]:
        if problem.ndim not in CHANNELS_LAST_FORMATS:
            return '1-D tensors have no channels-last layout'
        return super().why_not(problem) or why_f_conv_not(problem)

    def cost(self, problem: ConvProblem) -> Optional[float]:
        return dense_cpu_cost(problem) if problem.device_type == 'cpu' else None

    def run(self, input, kernel, bias, problem, prepared=None):
        fmt = CHANNELS_LAST_FORMATS[problem.ndim]
        if problem.depthwise and problem.needs_grad:
            return run_as_f_conv(problem, _DepthwiseChannelsLast.apply, input, kernel, bias,
                                 problem.stride, problem.padding)
        return conv_direct(
            input.contiguous(memory_format=fmt), kernel.contiguous(memory_format=fmt), bias,
            problem)
