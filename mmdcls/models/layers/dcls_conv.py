"""DCLS conv layers for any OpenMMLab conv slot.

Registered in mmengine's root ``MODELS`` (where mmcv's ``build_conv_layer`` looks) as ``DCLS1d``,
``DCLS2d``, ``DCLS3d``. They take the call mmcv and mmdet make for a conv,
``(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)``, and
replace it by a DCLS layer whose ``dilated_kernel_size`` comes from the config:

* ``kernel_count`` defaults to the replaced conv's number of taps (kernel_size ** ndim), so the
  parameter count stays the same (plus the positions);
* padding is derived so that the output has the replaced conv's size; the replaced conv's
  ``dilation`` only enters that derivation (the dilated kernel replaces it).

``dict(type='ResNet', depth=50, dcn=dict(type='DCLS2d', dilated_kernel_size=7),
stage_with_dcn=(False, True, True, True))`` gives the paper's ResNet-50-DCLS.
"""
from typing import Optional

from torch import Tensor

from mmengine.registry import MODELS as MMENGINE_MODELS

from mmdcls.ops import Dcls1d, Dcls2d, Dcls3d
from mmdcls.ops import as_ntuple


def _conv_compatible(dcls_cls, registered_name: str):
    ndim = dcls_cls._ndim

    class DCLSConv(dcls_cls):
        __doc__ = (f'{registered_name}: a {dcls_cls.__name__} built from a conv layer call '
                   '(see the module docstring).')

        def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1,
                     padding=0, dilation=1, groups: int = 1, bias: bool = True, *,
                     dilated_kernel_size=None, kernel_count: Optional[int] = None,
                     version: str = 'v0', padding_mode: str = 'zeros',
                     conv_algo: Optional[str] = None) -> None:
            if dilated_kernel_size is None:
                raise ValueError(f'{registered_name} needs dilated_kernel_size in its config, '
                                 f"e.g. dict(type='{registered_name}', dilated_kernel_size=7)")
            sizes = as_ntuple(dilated_kernel_size, ndim, 'dilated_kernel_size')
            if any(s < 1 for s in sizes):
                raise ValueError(f'dilated_kernel_size must be positive, got {sizes}')
            kernel_size = as_ntuple(kernel_size, ndim, 'kernel_size')
            dilation = as_ntuple(dilation, ndim, 'dilation')
            padding = as_ntuple(padding, ndim, 'padding')
            same_size_padding = []
            for size, k, d, p in zip(sizes, kernel_size, dilation, padding):
                extent = d * (k - 1) + 1
                if (size - extent) % 2 or p + (size - extent) // 2 < 0:
                    raise ValueError(
                        f'{registered_name}: dilated_kernel_size {sizes} cannot keep the output '
                        f'size of the replaced conv (kernel_size {kernel_size}, dilation '
                        f'{dilation}, padding {padding}); use odd sizes >= the replaced extent')
                same_size_padding.append(p + (size - extent) // 2)
            if kernel_count is None:
                kernel_count = 1
                for k in kernel_size:
                    kernel_count *= k
            super().__init__(in_channels, out_channels, kernel_count, stride=stride,
                             padding=tuple(same_size_padding), dilated_kernel_size=sizes,
                             groups=groups, bias=bias, padding_mode=padding_mode,
                             version=version, conv_algo=conv_algo)

        def forward(self, input: Tensor) -> Tensor:
            output = super().forward(input)
            # Hand back the layout we were given: the conv backend may answer in channels-last
            # and the next layer of an mmcv model may be a compiled op (RoIAlign, ...) that
            # indexes the memory as NCHW regardless of the strides.
            if input.is_contiguous() and not output.is_contiguous():
                output = output.contiguous()
            return output

    DCLSConv.__name__ = DCLSConv.__qualname__ = f'DCLSConv{ndim}d'
    return MMENGINE_MODELS.register_module(registered_name)(DCLSConv)


DCLSConv1d = _conv_compatible(Dcls1d, 'DCLS1d')
DCLSConv2d = _conv_compatible(Dcls2d, 'DCLS2d')
DCLSConv3d = _conv_compatible(Dcls3d, 'DCLS3d')
