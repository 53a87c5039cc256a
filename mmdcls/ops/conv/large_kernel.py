"""``nn.Conv{1,2,3}d`` subclasses computed by :func:`mmdcls.ops.conv.conv_nd`: the same
arguments, parameters and state dict, exported as one standard Conv, for plain large-kernel
convs and for DCLS layers folded for deployment (:func:`mmdcls.deploy.fold_dcls`)."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..torch_compat import is_compiling
from .dispatch import conv_nd
from .fft import kernel_spectrum_for
from .selection import check_algo


class _LargeKernelConvMixin:
    """Forward of :class:`LargeKernelConv1d` / ``2d`` / ``3d``: ``conv_nd`` with the module's
    ``conv_algo`` in eager mode; plain ``F.conv`` while tracing / exporting (one standard Conv
    node in ONNX)."""

    def _check_large_kernel_args(self) -> None:
        check_algo(self.conv_algo, 'conv_algo')
        if any(d != 1 for d in self.dilation):
            raise ValueError(f'{type(self).__name__} supports dilation 1 only, got '
                             f'{self.dilation}')

    def forward(self, input: Tensor) -> Tensor:
        if (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()
                or is_compiling()):
            return self._conv_forward(input, self.weight, self.bias)
        padding = self.padding
        if isinstance(padding, str) or self.padding_mode != 'zeros':
            # Explicit pad, as nn.ConvNd does for non-zero modes; also covers padding='same'.
            mode = 'constant' if self.padding_mode == 'zeros' else self.padding_mode
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=mode)
            padding = (0, ) * len(self.kernel_size)
        return conv_nd(
            input,
            self.weight,
            self.bias,
            self.stride,
            padding,
            self.groups,
            algo=self.conv_algo,
            kernel_spectrum=self._kernel_spectrum)

    def _kernel_spectrum(self, lengths: Tuple[int, ...], native_form: bool) -> Tensor:
        """:func:`kernel_spectrum_for` the weight, cached while the weight is unchanged (same
        tensor, same in-place version) and the lengths and form are the same (one entry: the
        input size of the last inference call). Not in the state dict."""
        weight = self.weight
        try:
            version = weight._version
        except RuntimeError:  # inference tensors have no version counter: no cache
            return kernel_spectrum_for(weight, lengths, native_form)
        key = (weight.data_ptr(), version, weight.dtype, weight.device, lengths, native_form)
        cached = getattr(self, '_spectrum_cache', None)
        if cached is None or cached[0] != key:
            with torch.no_grad():
                cached = (key, kernel_spectrum_for(weight, lengths, native_form))
            self._spectrum_cache = cached
        return cached[1]

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.conv_algo is None else f'{s}, conv_algo={self.conv_algo}'


class LargeKernelConv1d(_LargeKernelConvMixin, nn.Conv1d):
    """``nn.Conv1d`` (same arguments, parameters, state dict; dilation 1) computed by
    :func:`conv_nd`. Keyword ``conv_algo``: one of :data:`.selection.ALGOS` or None."""

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
