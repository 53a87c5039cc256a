"""Triton kernels for CUDA: the depthwise stride-1 convolution of large kernels, with its input,
kernel and bias gradients (:func:`depthwise_conv2d`).

Importing this package does not import triton: :func:`availability` does, and the kernels are
compiled and their torch operators registered on the first :func:`depthwise_conv2d`. Under
triton's interpreter (``TRITON_INTERPRET=1`` in the environment before triton is imported) the
kernels run on CPU tensors, slowly: the tests check them so without a GPU.
"""
import functools
import os
import sys
from typing import Optional, Tuple

import torch
from torch import Tensor

#: oldest triton the kernels support (torch 2.1's CUDA wheels pin triton 2.1.0)
MIN_TRITON_VERSION = (3, 0)
#: the torch operators (``torch.ops.mmdcls.<name>``): the convolution and the two gradients
#: its autograd formula calls
FORWARD_OP = 'mmdcls::triton_depthwise_conv2d'
GRAD_INPUT_OP = 'mmdcls::triton_depthwise_conv2d_grad_input'
GRAD_KERNEL_OP = 'mmdcls::triton_depthwise_conv2d_grad_kernel'
_INTERPRET_ENV_VAR = 'TRITON_INTERPRET'

__all__ = [
    'MIN_TRITON_VERSION', 'FORWARD_OP', 'GRAD_INPUT_OP', 'GRAD_KERNEL_OP', 'availability',
    'interpreter_enabled', 'usable_on', 'depthwise_conv2d'
]


@functools.lru_cache(maxsize=None)
def _triton_support() -> Tuple[bool, str]:
    """(triton importable at a supported version, its version or why not)."""
    try:
        import triton
    except ImportError as err:
        return False, f'triton is not installed ({err})'
    version = triton.__version__
    numbers = tuple(int(part) for part in version.split('+')[0].split('.')[:2] if part.isdigit())
    if numbers < MIN_TRITON_VERSION:
        oldest = '.'.join(map(str, MIN_TRITON_VERSION))
        return False, (f'triton {version} is installed; the Triton kernels need triton >= '
                       f'{oldest} (torch 2.1 pins triton 2.1.0: unsupported)')
    return True, f'triton {version}'


def interpreter_enabled() -> bool:
    """Whether the kernels run in triton's interpreter: as they were decorated once imported,
    else as ``TRITON_INTERPRET`` says now."""
    kernels = sys.modules.get(__name__ + '.depthwise_conv')
    if kernels is not None:
        return kernels.INTERPRETED
    return os.environ.get(_INTERPRET_ENV_VAR, '0').strip().lower() in ('1', 'true', 'on')


def availability() -> Tuple[bool, str]:
    """(whether the kernels can run here, why): triton >= :data:`MIN_TRITON_VERSION` importable,
    and CUDA available or triton's interpreter on (then they also run on CPU tensors)."""
    supported, reason = _triton_support()
    if not supported:
        return False, reason
    if interpreter_enabled():
        return True, f'{reason} in its interpreter ({_INTERPRET_ENV_VAR}=1): CPU and CUDA tensors'
    if torch.cuda.is_available():
        return True, f'{reason}: CUDA tensors'
    return False, (f'{reason} is installed, but there is no CUDA device and its interpreter is '
                   f'off ({_INTERPRET_ENV_VAR}=1, set before triton is imported, runs the kernels '
                   'on CPU tensors)')


def usable_on(device: torch.device) -> Tuple[bool, str]:
    """(whether the kernels run on tensors of ``device``, why): CUDA devices when
    :func:`availability` holds, CPU too under the interpreter."""
    available, reason = availability()
    if not available:
        return False, reason
    if device.type == 'cuda' or (device.type == 'cpu' and interpreter_enabled()):
        return True, reason
    return False, f'{reason}; not {device.type} tensors'


def depthwise_conv2d(input: Tensor,
                     kernel: Tensor,
                     bias: Optional[Tensor],
                     padding,
                     skip_zero_taps: bool = False) -> Tensor:
    """``F.conv2d(input, kernel, bias, 1, padding, 1, C)``, differentiable in input, kernel and
    bias: the :data:`FORWARD_OP` operator.

    Args:
        input: (N, C, H, W), NCHW- or channels-last-contiguous (other strides are copied into
            the nearer of the two); float32, float16 or bfloat16, on a CUDA device (or the CPU
            under triton's interpreter).
        kernel: (C, 1, kh, kw), any size; bias: (C,) or None; both of the input's dtype (under
            autocast the caller casts them) and on its device.
        padding: (ph, pw), ints >= 0 (zero padding; may exceed k - 1).
        skip_zero_taps: skip, in the forward and input-gradient kernels, every tap whose weight
            is zero in all channels of a tile's channel block. Faster for sparse (DCLS) kernels,
            but a NaN or inf input under a skipped tap then does not reach the output (with
            ``False``, as in ``F.conv2d``, every output whose window covers a non-finite input
            is non-finite): the caller must handle non-finite inputs itself.

    Returns:
        (N, C, H + 2 ph - kh + 1, W + 2 pw - kw + 1) in the input's dtype and memory format; sums
        in float32. The kernel gradient is reduced without atomics (deterministic for a given
        choice of tiles, which triton autotunes per shape on the first call).
    """
    from .ops import depthwise_conv2d as operator  # imports triton, registers the operators
    return operator(input, kernel, bias, padding, skip_zero_taps)
