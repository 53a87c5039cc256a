"""The Triton depthwise convolution as torch operators with autograd.

Three operators of the ``mmdcls`` library, registered with ``torch.library.custom_op`` (torch
>= 2.4) with fake implementations, so that ``torch.compile`` keeps each one opaque
(``fullgraph=True`` holds): :data:`FORWARD_OP`, and :data:`GRAD_INPUT_OP` and
:data:`GRAD_KERNEL_OP`, which its autograd formula calls. On torch without ``custom_op`` the
same functions run in a ``torch.autograd.Function``. This module imports triton: the package
imports it on first use, so that the registration happens once, then.
"""
from typing import List, Optional

import torch
from torch import Tensor

from . import FORWARD_OP, GRAD_INPUT_OP, GRAD_KERNEL_OP, usable_on
from .depthwise_args import check_arguments, memory_format, output_size
from .depthwise_conv import depthwise_forward, depthwise_grad_input
from .depthwise_grad import depthwise_grad_kernel

#: whether torch registers Python custom operators (``torch.library.custom_op``, torch >= 2.4)
HAS_CUSTOM_OP = hasattr(torch.library, 'custom_op')


def _require_usable(tensor: Tensor) -> None:
    """RuntimeError unless the kernels run on ``tensor``'s device."""
    usable, reason = usable_on(tensor.device)
    if not usable:
        raise RuntimeError(f'the Triton depthwise convolution cannot run on {tensor.device}: '
                           f'{reason}')


def _forward_impl(input: Tensor, kernel: Tensor, bias: Optional[Tensor], padding: List[int],
                  skip_zero_taps: bool) -> Tensor:
    _require_usable(input)
    return depthwise_forward(input, kernel, bias, padding, skip_zero_taps)


def _grad_input_impl(grad_output: Tensor, kernel: Tensor, input_size: List[int], padding: List[int],
                     channels_last: bool, skip_zero_taps: bool) -> Tensor:
    _require_usable(grad_output)
    return depthwise_grad_input(grad_output, kernel, input_size, padding, channels_last,
                                skip_zero_taps)


def _grad_kernel_impl(grad_output: Tensor, input: Tensor, kernel_size: List[int],
                      padding: List[int]) -> Tensor:
    _require_usable(grad_output)
    return depthwise_grad_kernel(grad_output, input, kernel_size, padding)


def _forward_fake(input, kernel, bias, padding, skip_zero_taps):
    n, c, h, w = input.shape
    return torch.empty((n, c, *output_size(h, w, kernel.shape[2:], padding)),
                       dtype=input.dtype,
                       device=input.device,
                       memory_format=memory_format(input))


def _grad_input_fake(grad_output, kernel, input_size, padding, channels_last, skip_zero_taps):
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty((*grad_output.shape[:2], *input_size),
                       dtype=grad_output.dtype,
                       device=grad_output.device,
                       memory_format=layout)


def _grad_kernel_fake(grad_output, input, kernel_size, padding):
    return input.new_empty((input.shape[1], 1, *kernel_size))


if HAS_CUSTOM_OP:
    _forward = torch.library.custom_op(FORWARD_OP, mutates_args=())(_forward_impl)
    _grad_input = torch.library.custom_op(GRAD_INPUT_OP, mutates_args=())(_grad_input_impl)
    _grad_kernel = torch.library.custom_op(GRAD_KERNEL_OP, mutates_args=())(_grad_kernel_impl)
    _forward.register_fake(_forward_fake)
    _grad_input.register_fake(_grad_input_fake)
    _grad_kernel.register_fake(_grad_kernel_fake)
else:
    _forward, _grad_input, _grad_kernel = _forward_impl, _grad_input_impl, _grad_kernel_impl


def _setup_context(ctx, inputs, output) -> None:
    """Saves what the wanted gradients need: the kernel for d input, the input for d kernel."""
    input, kernel, bias, padding, skip_zero_taps = inputs
    needs_input_grad = ctx.needs_input_grad
    ctx.save_for_backward(input if needs_input_grad[1] else None,
                          kernel if needs_input_grad[0] else None)
    ctx.input_size, ctx.kernel_size = list(input.shape[2:]), list(kernel.shape[2:])
    ctx.channels_last = memory_format(input) == torch.channels_last
    ctx.padding, ctx.skip_zero_taps, ctx.has_bias = padding, skip_zero_taps, bias is not None


def _backward(ctx, grad_output: Tensor):
    """(d input, d kernel, d bias, None, None), each computed only when wanted."""
    input, kernel = ctx.saved_tensors
    needs_input_grad = ctx.needs_input_grad
    grad_input = grad_kernel = grad_bias = None
    if needs_input_grad[0]:
        grad_input = _grad_input(grad_output, kernel, ctx.input_size, ctx.padding,
                                 ctx.channels_last, ctx.skip_zero_taps)
    if needs_input_grad[1]:
        grad_kernel = _grad_kernel(grad_output, input, ctx.kernel_size, ctx.padding)
    if ctx.has_bias and needs_input_grad[2]:
        grad_bias = grad_output.sum((0, 2, 3), dtype=torch.float32).to(grad_output.dtype)
    return grad_input, grad_kernel, grad_bias, None, None


class _DepthwiseConv2dFunction(torch.autograd.Function):
    """The operator's autograd on torch without ``torch.library.custom_op``."""

    @staticmethod
    def forward(ctx, input, kernel, bias, padding, skip_zero_taps):
        output = _forward(input, kernel, bias, padding, skip_zero_taps)
        _setup_context(ctx, (input, kernel, bias, padding, skip_zero_taps), output)
        return output

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        return _backward(ctx, grad_output)


if HAS_CUSTOM_OP:
    _forward.register_autograd(_backward, setup_context=_setup_context)


def depthwise_conv2d(input: Tensor,
                     kernel: Tensor,
                     bias: Optional[Tensor],
                     padding,
                     skip_zero_taps: bool = False) -> Tensor:
    """See :func:`mmdcls.ops.kernels.triton.depthwise_conv2d`."""
    padding = list(check_arguments(input, kernel, bias, padding))
    if not isinstance(skip_zero_taps, bool):
        raise TypeError(f'the Triton depthwise convolution: skip_zero_taps must be a bool, got '
                        f'{skip_zero_taps!r}')
    if HAS_CUSTOM_OP:
        return _forward(input, kernel, bias, padding, skip_zero_taps)
    return _DepthwiseConv2dFunction.apply(input, kernel, bias, padding, skip_zero_taps)
