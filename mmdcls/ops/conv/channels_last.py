"""``'channels_last'``: ``F.conv2d`` / ``F.conv3d`` on channels-last copies. oneDNN's depthwise
kernels are several times faster in that layout on CPU, and the channels-last output makes
ConvNeXt's ``permute(0, 2, 3, 1)`` free. 1-D tensors have no channels-last layout in torch:
there it is ``'direct'``. Depthwise convs that need gradients go through
:class:`_DepthwiseChannelsLast` for a fast kernel gradient."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..torch_compat import get_autocast_dtype, is_autocast_enabled
from .direct import CONV_FNS, conv_direct, needs_grad

# memory format by number of spatial dimensions (1-D tensors have none)
_CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}


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
        return CONV_FNS[kernel.dim() - 2](input, kernel, bias, stride, padding, 1, kernel.shape[0])

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


def conv_channels_last(input: Tensor, kernel: Tensor, bias: Optional[Tensor],
                       stride: Tuple[int, ...], padding: Tuple[int, ...], groups: int) -> Tensor:
    """``F.conv{2,3}d`` in channels-last layout; the output stays channels-last (same values
    and shape as ``'direct'``). Depthwise convs (C_out == C_in == groups) needing gradients
    use :class:`_DepthwiseChannelsLast` for a fast kernel gradient."""
    ndim = kernel.dim() - 2
    fmt = _CHANNELS_LAST.get(ndim)
    if fmt is None:
        return conv_direct(input, kernel, bias, stride, padding, groups)
    # (an empty batch takes F.conv's own backward: the pair trick below would convolve zero
    # channels)
    depthwise = (
        kernel.shape[1] == 1 and kernel.shape[0] == input.shape[1] == groups and input.numel() > 0)
    grad_needed = needs_grad(input, kernel, bias)
    device_type = input.device.type
    if depthwise and grad_needed:
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
