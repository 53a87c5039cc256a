"""Bindings of ``csrc/depthwise_2d.c``: the sparse direct depthwise convolution.

A register-blocked direct depthwise convolution (2-D, stride 1, zero padding) over each
kernel's non-zero taps, and its kernel gradient: the ``'sparse_direct'`` algorithm of
:mod:`mmdcls.ops.conv.algorithms.sparse_direct`, in training and inference.
"""
from typing import Optional, Sequence

from torch import Tensor

from .loader import call, threads_for
from .prototypes import REAL_TYPES

_NEEDED_BY = 'the sparse direct depthwise convolution'


def _check_depthwise(input: Tensor,
                     kernel: Tensor,
                     bias: Optional[Tensor] = None,
                     padding: Sequence[int] = (0, 0)) -> None:
    """TypeError / ValueError unless input (N, C, H, W), kernel (C, 1, kh, kw) and bias (C,)
    are CPU tensors of one float dtype and padding is two non-negative ints: the C code reads
    and writes raw pointers with these extents."""
    if len(padding) != 2 or any(int(p) < 0 for p in padding):
        raise ValueError(f'{_NEEDED_BY} needs two non-negative paddings, got {tuple(padding)}')
    tensors = [t for t in (input, kernel, bias) if t is not None]
    if any(t.dtype != input.dtype or t.device.type != 'cpu'
           for t in tensors) or (input.dtype not in REAL_TYPES):
        raise TypeError(f'{_NEEDED_BY} needs float32 / float64 CPU tensors of one dtype, got '
                        f'{[(t.dtype, str(t.device)) for t in tensors]}')
    if (input.dim() != 4 or kernel.dim() != 4 or kernel.shape[1] != 1
            or kernel.shape[0] != input.shape[1]
            or (bias is not None and tuple(bias.shape) != (input.shape[1], ))):
        raise ValueError(f'{_NEEDED_BY} needs input (N, C, H, W), kernel (C, 1, kh, kw) and '
                         f'bias (C,), got {tuple(input.shape)}, {tuple(kernel.shape)}, '
                         f'{None if bias is None else tuple(bias.shape)}')


def depthwise_conv2d(input: Tensor, kernel: Tensor, bias: Optional[Tensor],
                     padding: Sequence[int]) -> Tensor:
    """Depthwise stride-1 correlation of input (N, C, H, W) zero-padded by ``padding`` with
    kernel (C, 1, kh, kw) over its non-zero taps, plus bias: (N, C, OH, OW), as
    ``F.conv2d(input, kernel, bias, 1, padding, 1, C)``; no autograd (the ``'sparse_direct'``
    algorithm wraps it with its gradients)."""
    _check_depthwise(input, kernel, bias, padding)
    # every tensor handed to C held in a local until the call returns
    input, kernel = input.contiguous(), kernel.contiguous()
    n, c, h, w = input.shape
    kh, kw = kernel.shape[2:]
    ph, pw = padding
    out = input.new_empty((n, c, h + 2 * ph - kh + 1, w + 2 * pw - kw + 1))
    if out.numel() == 0:
        return out
    bias = None if bias is None else bias.contiguous()  # alive through the call
    call(
        'depthwise_forward',
        input.dtype,
        input.data_ptr(),
        kernel.data_ptr(),
        None if bias is None else bias.data_ptr(),
        out.data_ptr(),
        n,
        c,
        h,
        w,
        kh,
        kw,
        ph,
        pw,
        threads=threads_for(n * c),
        needed_by=_NEEDED_BY)
    return out


def depthwise_grad_kernel(input: Tensor, grad_output: Tensor, kernel_size: Sequence[int],
                          padding: Sequence[int]) -> Tensor:
    """d loss / d kernel (C, 1, kh, kw) of :func:`depthwise_conv2d` from its input
    (N, C, H, W) and d loss / d output (N, C, OH, OW)."""
    n, c, h, w = input.shape
    kh, kw = kernel_size
    _check_depthwise(input, input.new_empty((c, 1, kh, kw)), None, padding)
    out_shape = (n, c, h + 2 * padding[0] - kh + 1, w + 2 * padding[1] - kw + 1)
    if grad_output.dtype != input.dtype or tuple(grad_output.shape) != out_shape:
        raise ValueError(f'grad_output must be {input.dtype} {out_shape}, got '
                         f'{grad_output.dtype} {tuple(grad_output.shape)}')
    input, grad_output = input.contiguous(), grad_output.contiguous()
    grad_kernel = input.new_empty((c, 1, kh, kw))
    call(
        'depthwise_grad_kernel',
        input.dtype,
        input.data_ptr(),
        grad_output.data_ptr(),
        grad_kernel.data_ptr(),
        n,
        c,
        h,
        w,
        kh,
        kw,
        padding[0],
        padding[1],
        threads=threads_for(c),
        needed_by=_NEEDED_BY)
    return grad_kernel
