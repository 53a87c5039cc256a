"""Convolution algorithms for the dense kernels DCLS layers construct.

``conv_nd`` is the single entry point the DCLS layers call once their kernel is built.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

_CONV_FNS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def conv_nd(input: torch.Tensor, kernel: torch.Tensor, bias: Optional[torch.Tensor],
            stride: Sequence[int], padding: Sequence[int], groups: int,
            algo: Optional[str] = None) -> torch.Tensor:
    """Zero-padded N-d convolution of ``input`` (N, C_in, *spatial) with a dense ``kernel``
    (C_out, C_in / groups, *k). ``algo`` picks the algorithm (None: the default)."""
    return _CONV_FNS[kernel.dim() - 2](input, kernel, bias, tuple(stride), tuple(padding), 1,
                                       groups)
