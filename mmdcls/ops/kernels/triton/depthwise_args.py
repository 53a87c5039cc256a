"""Arguments of the Triton depthwise convolution: their checks, the output size and the memory
format rule. Pure torch: used before triton is imported, and by the fake (shape-only)
implementations of the custom ops."""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

#: dtypes the kernels read and write (input, kernel and bias share one; fp32 accumulation)
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: most channels: the second axis of a launch grid (at most 65535 programs) may hold one
#: program per channel
MAX_CHANNELS = 65535
#: most elements of one image (C * H * W of the input, of the output): offsets inside an image
#: are 32-bit in the kernels (the batch offset is 64-bit)
MAX_IMAGE_ELEMENTS = 2**31 - 1

_NAME = 'the Triton depthwise convolution'


def memory_format(input: Tensor) -> torch.memory_format:
    """The layout the kernels use for ``input`` (N, C, H, W) and give its output: NCHW when it
    is NCHW-contiguous, channels-last when it is channels-last-contiguous, otherwise the nearer
    of the two (channels-last when channels are closer in memory than columns)."""
    if input.is_contiguous():
        return torch.contiguous_format
    if input.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.channels_last if input.stride(1) < input.stride(3) else torch.contiguous_format


def output_size(height: int, width: int, kernel_size: Sequence[int],
                padding: Sequence[int]) -> Tuple[int, int]:
    """(OH, OW) of a stride-1 correlation of an H x W image zero-padded by ``padding`` with a
    ``kernel_size`` kernel."""
    return (height + 2 * padding[0] - kernel_size[0] + 1,
            width + 2 * padding[1] - kernel_size[1] + 1)


def check_padding(padding) -> Tuple[int, int]:
    """``padding`` as (ph, pw); ValueError unless it is two ints >= 0."""
    if (not isinstance(padding, (tuple, list)) or len(padding) != 2
            or any(isinstance(p, bool) or not isinstance(p, int) or p < 0 for p in padding)):
        raise ValueError(f'{_NAME} needs padding as two ints >= 0 (ph, pw), got {padding!r}')
    return int(padding[0]), int(padding[1])


def check_arguments(input: Tensor, kernel: Tensor, bias: Optional[Tensor],
                    padding) -> Tuple[int, int]:
    """(ph, pw) once input (N, C, H, W), kernel (C, 1, kh, kw), bias (C,) or None and padding
    are valid: TypeError for a non-tensor or a dtype outside :data:`SUPPORTED_DTYPES` or
    differing between them, ValueError for shapes, sizes, devices and padding."""
    tensors = {'input': input, 'kernel': kernel}
    if bias is not None:
        tensors['bias'] = bias
    for name, tensor in tensors.items():
        if not isinstance(tensor, Tensor):
            raise TypeError(f'{_NAME}: {name} must be a tensor, got {type(tensor).__name__}')
    dtypes = {name: t.dtype for name, t in tensors.items()}
    if input.dtype not in SUPPORTED_DTYPES or len(set(dtypes.values())) != 1:
        raise TypeError(f'{_NAME} needs input, kernel and bias of one dtype among '
                        f'{SUPPORTED_DTYPES}, got {dtypes}')
    devices = {name: str(t.device) for name, t in tensors.items()}
    if len(set(devices.values())) != 1:
        raise ValueError(f'{_NAME} needs input, kernel and bias on one device, got {devices}')
    ph, pw = check_padding(padding)
    if (input.dim() != 4 or kernel.dim() != 4 or kernel.shape[1] != 1
            or kernel.shape[0] != input.shape[1]
            or (bias is not None and tuple(bias.shape) != (input.shape[1], ))):
        raise ValueError(f'{_NAME} needs input (N, C, H, W), kernel (C, 1, kh, kw) and bias '
                         f'(C,) or None, got {tuple(input.shape)}, {tuple(kernel.shape)}, '
                         f'{None if bias is None else tuple(bias.shape)}')
    n, c, h, w = input.shape
    kh, kw = kernel.shape[2:]
    if min(c, h, w, kh, kw) < 1 or n < 0:
        raise ValueError(f'{_NAME} needs C, H, W, kh and kw >= 1, got input '
                         f'{tuple(input.shape)} and kernel {tuple(kernel.shape)}')
    oh, ow = output_size(h, w, (kh, kw), (ph, pw))
    if oh < 1 or ow < 1:
        raise ValueError(f'{_NAME}: the kernel ({kh}, {kw}) is larger than the padded input '
                         f'({h + 2 * ph}, {w + 2 * pw})')
    if c > MAX_CHANNELS:
        raise ValueError(f'{_NAME} takes at most {MAX_CHANNELS} channels, got {c}')
    if c * max(h * w, oh * ow) > MAX_IMAGE_ELEMENTS:
        raise ValueError(f'{_NAME} takes images of at most {MAX_IMAGE_ELEMENTS} elements '
                         f'(C * H * W of input and output), got C={c}, input {h}x{w}, output '
                         f'{oh}x{ow}')
    return ph, pw
