"""DCLS conv layers for any OpenMMLab conv slot.

Registered as ``DCLS1d``, ``DCLS2d``, ``DCLS3d`` in mmengine's root ``MODELS``, where mmcv's
``build_conv_layer`` finds them under any default scope, and in mmdcls's, where the scoped names
(``'mmdcls.DCLS2d'``) resolve, also inside mmdcls's own scope. They take the call mmcv and mmdet
make for a conv, ``(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
bias)``, and replace it by a DCLS layer whose ``dilated_kernel_size`` comes from the config:

* ``kernel_count`` defaults to the replaced conv's number of taps (kernel_size ** ndim), so the
  parameter count stays the same (plus the positions);
* padding is derived so that the output has the replaced conv's size; the replaced conv's
  ``dilation`` only enters that derivation (the dilated kernel replaces it).

``dict(type='ResNet', depth=50, dcn=dict(type='DCLS2d', dilated_kernel_size=7),
stage_with_dcn=(False, True, True, True))`` gives the paper's ResNet-50-DCLS.

The layers learning positions along one kernel axis only are registered the same way:

* ``DCLS2dK1d`` (:class:`~mmdcls.ops.Dcls2dK1d`) replaces a 2-D conv by a line of
  ``dilated_kernel_size`` taps along H (``flat_dim=0``, default) or W (``flat_dim=1``); the
  other axis has one tap. ``kernel_count`` defaults to the replaced conv's number of taps;
* ``DCLS3_1d`` (:class:`~mmdcls.ops.Dcls3_1d`) replaces a 3-D conv by ``dense_kernel_size``
  (default: the replaced conv's first two kernel sizes) dense (D, H) taps, each with
  ``kernel_count`` (default: the replaced conv's last kernel size) learned positions along W;
  its default version is ``'gauss'`` as in ``dcls`` (which has no ``v0`` for this layer).

Both derive the same-output-size padding per axis as above.
"""
import math
from typing import Optional, Sequence, Tuple

from mmengine.registry import MODELS as MMENGINE_MODELS
from torch import Tensor

from mmdcls.ops import Dcls1d, Dcls2d, Dcls2dK1d, Dcls3_1d, Dcls3d, as_ntuple
from mmdcls.registry import MODELS
from ..utils.dcls_params import DEFAULT_VERSION


def _register(name: str):
    """Registers a conv-slot layer under ``name`` in mmengine's root ``MODELS`` and mmdcls's."""

    def register(cls):
        MODELS.register_module(name, module=cls)
        return MMENGINE_MODELS.register_module(name, module=cls)

    return register


def _same_size_padding(registered_name: str, sizes: Sequence[int], kernel_size, dilation,
                       padding) -> Tuple[int, ...]:
    """Per-axis padding that gives a conv of kernel ``sizes`` (dilation 1) the output size of
    the replaced conv (``kernel_size``, ``dilation``, ``padding``; ints or ndim-tuples), or a
    ValueError naming them."""
    ndim = len(sizes)
    kernel_size = as_ntuple(kernel_size, ndim, 'kernel_size')
    dilation = as_ntuple(dilation, ndim, 'dilation')
    padding = as_ntuple(padding, ndim, 'padding')
    result = []
    for size, k, d, p in zip(sizes, kernel_size, dilation, padding):
        extent = d * (k - 1) + 1
        if (size - extent) % 2 or p + (size - extent) // 2 < 0:
            raise ValueError(
                f'{registered_name}: a kernel of size {tuple(sizes)} cannot keep the output '
                f'size of the replaced conv (kernel_size {kernel_size}, dilation {dilation}, '
                f'padding {padding}); use odd sizes >= the replaced extent')
        result.append(p + (size - extent) // 2)
    return tuple(result)


def _keep_input_layout(input: Tensor, output: Tensor) -> Tensor:
    """Hands back the layout we were given: the conv backend may answer in channels-last and
    the next layer of an mmcv model may be a compiled op (RoIAlign, ...) that indexes the
    memory as NCHW regardless of the strides."""
    if input.is_contiguous() and not output.is_contiguous():
        output = output.contiguous()
    return output


def _checked_dilated_sizes(registered_name: str,
                           dilated_kernel_size,
                           ndim: int,
                           learned_axis: Optional[str] = None) -> Tuple[int, ...]:
    """``dilated_kernel_size`` of a conv-slot config as ``ndim`` positive ints. It is required
    (a replaced conv has no such argument to fall back on); with ``learned_axis`` (the one-axis
    layers) it must be a plain int, the length of that axis."""
    if dilated_kernel_size is None:
        raise ValueError(f'{registered_name} needs dilated_kernel_size in its config, '
                         f"e.g. dict(type='{registered_name}', dilated_kernel_size=7)")
    if learned_axis is not None and (not isinstance(dilated_kernel_size, int)
                                     or isinstance(dilated_kernel_size, bool)):
        raise TypeError(f'{registered_name}: dilated_kernel_size must be an int (the length of '
                        f'the {learned_axis}), got {dilated_kernel_size!r}')
    sizes = as_ntuple(dilated_kernel_size, ndim, 'dilated_kernel_size')
    if any(s < 1 for s in sizes):
        raise ValueError(f'dilated_kernel_size must be positive, got {dilated_kernel_size}')
    return sizes


class _KeepsInputLayout:
    """Mixin for the conv-slot layers: outputs in the input's memory layout (see
    :func:`_keep_input_layout`)."""

    def forward(self, input: Tensor) -> Tensor:
        return _keep_input_layout(input, super().forward(input))


def _conv_compatible(dcls_cls, registered_name: str):
    ndim = dcls_cls._ndim

    class DCLSConv(_KeepsInputLayout, dcls_cls):
        __doc__ = (f'{registered_name}: a {dcls_cls.__name__} built from a conv layer call '
                   '(see the module docstring).')

        def __init__(self,
                     in_channels: int,
                     out_channels: int,
                     kernel_size=3,
                     stride=1,
                     padding=0,
                     dilation=1,
                     groups: int = 1,
                     bias: bool = True,
                     *,
                     dilated_kernel_size=None,
                     kernel_count: Optional[int] = None,
                     version: str = DEFAULT_VERSION,
                     padding_mode: str = 'zeros',
                     conv_algo: Optional[str] = None) -> None:
            sizes = _checked_dilated_sizes(registered_name, dilated_kernel_size, ndim)
            kernel_size = as_ntuple(kernel_size, ndim, 'kernel_size')
            padding = _same_size_padding(registered_name, sizes, kernel_size, dilation, padding)
            if kernel_count is None:
                kernel_count = math.prod(kernel_size)
            super().__init__(
                in_channels,
                out_channels,
                kernel_count,
                stride=stride,
                padding=padding,
                dilated_kernel_size=sizes,
                groups=groups,
                bias=bias,
                padding_mode=padding_mode,
                version=version,
                conv_algo=conv_algo)

    DCLSConv.__name__ = DCLSConv.__qualname__ = f'DCLSConv{ndim}d'
    return _register(registered_name)(DCLSConv)


DCLSConv1d = _conv_compatible(Dcls1d, 'DCLS1d')
DCLSConv2d = _conv_compatible(Dcls2d, 'DCLS2d')
DCLSConv3d = _conv_compatible(Dcls3d, 'DCLS3d')


@_register('DCLS2dK1d')
class DCLSConv2dK1d(_KeepsInputLayout, Dcls2dK1d):
    """``DCLS2dK1d``: a :class:`~mmdcls.ops.Dcls2dK1d` built from a 2-D conv layer call (see
    the module docstring). Config: ``dilated_kernel_size`` (int, required), ``flat_dim``
    (0: positions along H, 1: along W), ``kernel_count``, ``version`` (default ``'v0'``),
    ``padding_mode``, ``conv_algo``."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size=3,
                 stride=1,
                 padding=0,
                 dilation=1,
                 groups: int = 1,
                 bias: bool = True,
                 *,
                 dilated_kernel_size=None,
                 flat_dim: int = 0,
                 kernel_count: Optional[int] = None,
                 version: str = DEFAULT_VERSION,
                 padding_mode: str = 'zeros',
                 conv_algo: Optional[str] = None) -> None:
        _checked_dilated_sizes('DCLS2dK1d', dilated_kernel_size, 1, 'learned axis')
        if isinstance(flat_dim, bool) or flat_dim not in (0, 1):
            raise ValueError(f'flat_dim must be 0 (positions along H) or 1 (along W), '
                             f'got {flat_dim!r}')
        sizes = [1, 1]
        sizes[flat_dim] = dilated_kernel_size
        kernel_size = as_ntuple(kernel_size, 2, 'kernel_size')
        padding = _same_size_padding('DCLS2dK1d', sizes, kernel_size, dilation, padding)
        if kernel_count is None:
            kernel_count = math.prod(kernel_size)
        super().__init__(
            in_channels,
            out_channels,
            kernel_count,
            stride=stride,
            padding=padding,
            dilated_kernel_size=dilated_kernel_size,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            version=version,
            flat_dim=flat_dim,
            conv_algo=conv_algo)


@_register('DCLS3_1d')
class DCLSConv3_1d(_KeepsInputLayout, Dcls3_1d):
    """``DCLS3_1d``: a :class:`~mmdcls.ops.Dcls3_1d` built from a 3-D conv layer call (see
    the module docstring). Config: ``dilated_kernel_size`` (int, required),
    ``dense_kernel_size`` (default: the replaced conv's kernel_size[:2]), ``kernel_count``
    (default: its kernel_size[2]), ``version`` (default ``'gauss'``), ``padding_mode``,
    ``conv_algo``."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size=3,
                 stride=1,
                 padding=0,
                 dilation=1,
                 groups: int = 1,
                 bias: bool = True,
                 *,
                 dilated_kernel_size=None,
                 dense_kernel_size=None,
                 kernel_count: Optional[int] = None,
                 version: str = 'gauss',
                 padding_mode: str = 'zeros',
                 conv_algo: Optional[str] = None) -> None:
        _checked_dilated_sizes('DCLS3_1d', dilated_kernel_size, 1, 'learned last axis')
        kernel_size = as_ntuple(kernel_size, 3, 'kernel_size')
        dense = as_ntuple(kernel_size[:2] if dense_kernel_size is None else dense_kernel_size, 2,
                          'dense_kernel_size')
        if any(s < 1 for s in dense):
            raise ValueError(f'dense_kernel_size must be positive, got {dense}')
        padding = _same_size_padding('DCLS3_1d', (*dense, dilated_kernel_size), kernel_size,
                                     dilation, padding)
        if kernel_count is None:
            kernel_count = kernel_size[2]
        super().__init__(
            in_channels,
            out_channels,
            kernel_count,
            stride=stride,
            padding=padding,
            dense_kernel_size=dense,
            dilated_kernel_size=dilated_kernel_size,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            version=version,
            conv_algo=conv_algo)
