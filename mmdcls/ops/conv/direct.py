"""``'direct'``: ``F.conv{1,2,3}d`` on the tensors as given (NCHW), the reference every other
algorithm matches; and the two helpers the algorithms share."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

#: ``F.conv`` by number of spatial dimensions
CONV_FNS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def needs_grad(*tensors: Optional[Tensor]) -> bool:
    """Whether autograd will want gradients of any of ``tensors`` (None entries ignored)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def conv_direct(input: Tensor, kernel: Tensor, bias: Optional[Tensor], stride: Tuple[int, ...],
                padding: Tuple[int, ...], groups: int) -> Tensor:
    """``F.conv{1,2,3}d``. input (N, C_in, *S), kernel (C_out, C_in / groups, *k)."""
    return CONV_FNS[kernel.dim() - 2](input, kernel, bias, stride, padding, 1, groups)
