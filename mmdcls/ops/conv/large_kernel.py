"""``nn.Conv{1,2,3}d`` subclasses computed by :func:`mmdcls.ops.conv.conv_nd`: the same
arguments, parameters and state dict, exported as one standard Conv, for plain large-kernel
convs and for DCLS layers folded for deployment (:func:`mmdcls.deploy.fold_dcls`)."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..graph_state import records_graph
from ..kernel_cache import CachedKernelMixin
from .dispatch import conv_nd
from .selection import check_algo


class _LargeKernelConvMixin(CachedKernelMixin):
    """Forward of :class:`LargeKernelConv1d` / ``2d`` / ``3d``: ``conv_nd`` with the module's
    ``conv_algo`` in eager mode (in inference with the weight as a constant kernel: what the
    algorithm prepares from it, e.g. its FFT spectra, is kept while its values are unchanged;
    see :mod:`mmdcls.ops.kernel_cache`); plain ``F.conv`` while tracing / exporting (one
    standard Conv node in ONNX)."""

    def _check_large_kernel_args(self) -> None:
        check_algo(self.conv_algo, 'conv_algo')
        if any(d != 1 for d in self.dilation):
            raise ValueError(f'{type(self).__name__} supports dilation 1 only, got '
                             f'{self.dilation}')

    def forward(self, input: Tensor) -> Tensor:
        if records_graph() or torch.onnx.is_in_onnx_export():
            return self._conv_forward(input, self.weight, self.bias)
        padding = self.padding
        if isinstance(padding, str) or self.padding_mode != 'zeros':
            # Explicit pad, as nn.ConvNd does for non-zero modes; also covers padding='same'.
            mode = 'constant' if self.padding_mode == 'zeros' else self.padding_mode
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=mode)
            padding = (0, ) * len(self.kernel_size)
        weight, constant = self._forward_kernel((self.weight, ), lambda: self.weight)
        return conv_nd(
            input,
            weight,
            self.bias,
            self.stride,
            padding,
            self.groups,
            algo=self.conv_algo,
            constant=constant)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.conv_algo is None else f'{s}, conv_algo={self.conv_algo}'


class LargeKernelConv1d(_LargeKernelConvMixin, nn.Conv1d):
    """``nn.Conv1d`` (same arguments, parameters, state dict; dilation 1) computed by
    :func:`conv_nd`. Keyword ``conv_algo``: one of :func:`.selection.algo_choices` or None."""

    def __init__(self, *args, conv_algo: Optional[str] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conv_algo = conv_algo
        self._check_large_kernel_args()


class LargeKernelConv2d(_LargeKernelConvMixin, nn.Conv2d):
    """``nn.Conv2d`` (same arguments, parameters, state dict; dilation 1) computed by
    :func:`conv_nd`: FFT or channels-last for large kernels. Input (N, C_in, H, W)."""

    def __init__(self, *args, conv_algo: Optional[str] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conv_algo = conv_algo
        self._check_large_kernel_args()


class LargeKernelConv3d(_LargeKernelConvMixin, nn.Conv3d):
    """``nn.Conv3d`` (same arguments, parameters, state dict; dilation 1) computed by
    :func:`conv_nd`."""

    def __init__(self, *args, conv_algo: Optional[str] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conv_algo = conv_algo
        self._check_large_kernel_args()


class LargeKernelDepthwiseConv2d(LargeKernelConv2d):
    """Depthwise large-kernel conv keeping the spatial size: (N, C, H, W) -> (N, C, H, W) for
    odd ``kernel_size`` (padding ``kernel_size // 2``, groups = channels)."""

    def __init__(self,
                 channels: int,
                 kernel_size=17,
                 bias: bool = True,
                 padding_mode: str = 'zeros',
                 *,
                 conv_algo: Optional[str] = None) -> None:
        ks = (kernel_size, ) * 2 if isinstance(kernel_size, int) else tuple(kernel_size)
        if len(ks) != 2 or any(not isinstance(k, int) or k < 1 or k % 2 == 0 for k in ks):
            raise ValueError(f'kernel_size must be an odd positive int or two of them, got '
                             f'{kernel_size!r}')
        super().__init__(
            channels,
            channels,
            ks,
            padding=tuple(k // 2 for k in ks),
            groups=channels,
            bias=bias,
            padding_mode=padding_mode,
            conv_algo=conv_algo)
