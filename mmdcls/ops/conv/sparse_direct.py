"""``'sparse_direct'`` (alias ``'native'``): the register-blocked direct depthwise convolution of
the C library (:func:`mmdcls.ops.kernels.cpu.depthwise_conv2d`, ``csrc/depthwise_2d.c``) over the
kernel's non-zero taps, with its gradients, in training and inference: for depthwise stride-1
2-D convs of float32 / float64 CPU tensors (:func:`mmdcls.ops.kernels.cpu.depthwise_usable`); a
folded DCLS ``v0`` kernel has ~100 of 289 taps non-zero, one as initialised ~14. Elsewhere,
or without the C library, ``'channels_last'``."""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..kernels import cpu
from .channels_last import conv_channels_last
from .direct import needs_grad


class _SparseDirectDepthwise(torch.autograd.Function):
    """:func:`mmdcls.ops.kernels.cpu.depthwise_conv2d` with its gradients: d loss / d input is the
    same correlation of d loss / d output with the kernel rotated by 180 degrees (padding
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


def conv_sparse_direct(input: Tensor, kernel: Tensor, bias: Optional[Tensor],
                       stride: Tuple[int, ...], padding: Tuple[int, ...], groups: int) -> Tensor:
    """The sparse direct depthwise convolution of :mod:`mmdcls.ops.native` (with its gradients)
    where it applies (:func:`mmdcls.ops.kernels.cpu.depthwise_usable`), else
    :func:`~mmdcls.ops.conv.channels_last.conv_channels_last`."""
    if cpu.depthwise_usable(input, kernel, bias, stride, groups):
        if needs_grad(input, kernel, bias):
            return _SparseDirectDepthwise.apply(input, kernel, bias, tuple(padding))
        return cpu.depthwise_conv2d(input, kernel, bias, padding)
    return conv_channels_last(input, kernel, bias, stride, padding, groups)
