"""DCLS convolution modules and functions, drop-in for the official ``dcls`` 0.1.1 ones.

Same constructor arguments, defaults, parameter names, shapes and initialisation as
``DCLS.construct.modules.Dcls{1,2,3}d``, so an official state dict loads unchanged. The kernel is
built by :func:`construct_kernel` (fast, exact) and convolved by
:func:`mmdcls.ops.conv.conv_nd`.
"""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn import init

from .construct import VERSIONS_WITH_SIGMA, check_version, construct_kernel
from .conv import conv_nd
from .kernel_cache import CachedKernelMixin

PADDING_MODES = ('zeros', 'reflect', 'replicate', 'circular')
_INPUT_LAYOUTS = {1: '(N, C, L)', 2: '(N, C, H, W)', 3: '(N, C, D, H, W)'}


def as_ntuple(value, ndim: int, name: str) -> Tuple[int, ...]:
    """``value`` as an ndim-tuple of ints (an int is repeated), or a clear error."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, ) * ndim
    if isinstance(value, (tuple, list)) and len(value) == ndim and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise TypeError(f'{name} must be an int or a tuple of {ndim} ints, got {value!r}')


def same_padding(dilated_kernel_size: Sequence[int]) -> Tuple[int, ...]:
    """Padding that keeps the spatial size at stride 1 (needs odd sizes)."""
    if any(s % 2 == 0 for s in dilated_kernel_size):
        raise ValueError('padding="same" needs an odd dilated_kernel_size on every axis, got '
                         f'{tuple(dilated_kernel_size)}')
    return tuple(s // 2 for s in dilated_kernel_size)


def check_layer_counts(in_channels: int, out_channels: int, kernel_count: int, groups: int) -> None:
    """Raises ValueError unless the four counts are positive ints and ``groups`` divides both
    channel counts (the checks every DCLS layer's constructor makes)."""
    for name, value in (('in_channels', in_channels), ('out_channels', out_channels),
                        ('kernel_count', kernel_count), ('groups', groups)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f'{name} must be a positive int, got {value!r}')
    if in_channels % groups or out_channels % groups:
        raise ValueError(f'in_channels ({in_channels}) and out_channels ({out_channels}) '
                         f'must both be divisible by groups ({groups})')


def check_padding_mode(padding_mode: str) -> None:
    if padding_mode not in PADDING_MODES:
        raise ValueError(f'padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}')


def checked_stride_and_padding(
        stride, padding, kernel_shape: Sequence[int]) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """``(stride, padding)`` as tuples of ``len(kernel_shape)`` ints; ``padding='same'`` is the
    padding that keeps the size for ``kernel_shape`` (the dense kernel's spatial shape)."""
    ndim = len(kernel_shape)
    stride = as_ntuple(stride, ndim, 'stride')
    if any(s < 1 for s in stride):
        raise ValueError(f'stride must be positive, got {stride}')
    padding = (
        same_padding(kernel_shape) if padding == 'same' else as_ntuple(padding, ndim, 'padding'))
    if any(p < 0 for p in padding):
        raise ValueError(f'padding must be non-negative, got {padding}')
    return stride, padding


def _check_input(input: Tensor, ndim: int, channels: int, owner: str) -> None:
    if input.dim() != ndim + 2:
        raise ValueError(f'{owner} expects input of shape {_INPUT_LAYOUTS[ndim]} '
                         f'({ndim + 2}-D), got a {input.dim()}-D tensor {tuple(input.shape)}')
    if input.shape[1] != channels:
        raise ValueError(f'{owner} expects input with {channels} channels (dim 1), got '
                         f'{tuple(input.shape)}')


def _apply_padding_mode(input: Tensor, padding: Tuple[int, ...],
                        padding_mode: str) -> Tuple[Tensor, Tuple[int, ...]]:
    """``(input, padding)`` for ``conv_nd``'s zero padding: a non-zero ``padding_mode`` pads
    explicitly first (as ``nn.ConvNd`` does) and leaves no padding to the convolution."""
    if padding_mode == 'zeros':
        return input, padding
    # F.pad takes the last axis first
    input = F.pad(input, [p for p in reversed(padding) for _ in range(2)], mode=padding_mode)
    return input, (0, ) * len(padding)


def _dcls_conv(input: Tensor, weight: Tensor, P: Tensor, SIG: Optional[Tensor],
               bias: Optional[Tensor], stride, padding, dilated_kernel_size, groups: int,
               version: str, padding_mode: str, conv_algo: Optional[str], ndim: int) -> Tensor:
    sizes = as_ntuple(dilated_kernel_size, ndim, 'dilated_kernel_size')
    stride, padding = checked_stride_and_padding(stride, padding, sizes)
    check_padding_mode(padding_mode)
    _check_input(input, ndim, weight.shape[1] * groups, f'dcls_conv{ndim}d')
    kernel = construct_kernel(weight, P, SIG, sizes, version)
    input, padding = _apply_padding_mode(input, padding, padding_mode)
    return conv_nd(input, kernel, bias, stride, padding, groups, algo=conv_algo)


def dcls_conv1d(input,
                weight,
                P,
                SIG=None,
                bias=None,
                stride=1,
                padding=0,
                dilated_kernel_size=1,
                groups=1,
                version='v0',
                padding_mode='zeros',
                conv_algo=None):
    """1-D DCLS convolution. input (N, C_in, L); weight (C_out, C_in / groups, K);
    P / SIG (1, C_out, C_in / groups, K) -> (N, C_out, L_out)."""
    return _dcls_conv(input, weight, P, SIG, bias, stride, padding, dilated_kernel_size, groups,
                      version, padding_mode, conv_algo, 1)


def dcls_conv2d(input,
                weight,
                P,
                SIG=None,
                bias=None,
                stride=1,
                padding=0,
                dilated_kernel_size=1,
                groups=1,
                version='v0',
                padding_mode='zeros',
                conv_algo=None):
    """2-D DCLS convolution. input (N, C_in, H, W); weight (C_out, C_in / groups, K);
    P / SIG (2, C_out, C_in / groups, K) -> (N, C_out, H_out, W_out)."""
    return _dcls_conv(input, weight, P, SIG, bias, stride, padding, dilated_kernel_size, groups,
                      version, padding_mode, conv_algo, 2)


def dcls_conv3d(input,
                weight,
                P,
                SIG=None,
                bias=None,
                stride=1,
                padding=0,
                dilated_kernel_size=1,
                groups=1,
                version='v0',
                padding_mode='zeros',
                conv_algo=None):
    """3-D DCLS convolution. input (N, C_in, D, H, W); weight (C_out, C_in / groups, K);
    P / SIG (3, C_out, C_in / groups, K) -> (N, C_out, D_out, H_out, W_out)."""
    return _dcls_conv(input, weight, P, SIG, bias, stride, padding, dilated_kernel_size, groups,
                      version, padding_mode, conv_algo, 3)


class DclsLayer(CachedKernelMixin, nn.Module):
    """What every DCLS layer (:class:`_DclsNd`, and the one-axis layers of :mod:`.learned_axis`)
    does once its parameters exist: the forward pass (kernel construction, then
    :func:`conv_nd`), shape-checked state-dict loading and the repr.

    Subclasses provide ``_conv_ndim`` (spatial dims of the convolution), ``construct_kernel()``,
    ``_kernel_cache_key()`` (what besides the parameters the kernel depends on),
    ``_extra_repr_shape()`` and ``_shape_hint`` (what to check when a checkpoint's shapes do not
    match).
    """
    _conv_ndim: int
    _shape_hint: str

    def _kernel_cache_key(self) -> tuple:
        raise NotImplementedError

    def _extra_repr_shape(self) -> str:
        raise NotImplementedError

    def _create_parameters(self, weight_shape: Tuple[int, ...], position_components: int,
                           bias: bool) -> None:
        """``weight`` of ``weight_shape``, ``P`` (and ``SIG`` for the versions with a width)
        of ``(position_components, *weight_shape)``, ``bias`` (out) or None; uninitialised."""
        self.weight = nn.Parameter(torch.empty(weight_shape))
        self.P = nn.Parameter(torch.empty(position_components, *weight_shape))
        if self.version in VERSIONS_WITH_SIGMA:
            self.SIG = nn.Parameter(torch.empty(position_components, *weight_shape))
        else:
            self.register_parameter('SIG', None)
        if bias:
            self.bias = nn.Parameter(torch.empty(weight_shape[0]))
        else:
            self.register_parameter('bias', None)

    def _reset_weight_and_bias(self) -> None:
        """``dcls`` 0.1.1's (and nn.ConvNd's) weight and bias initialisation."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound)

    @torch.no_grad()
    def _reset_sigma(self) -> None:
        """``dcls`` 0.1.1's width initialisation: 0.23 for gauss, 0 for max."""
        if self.SIG is not None:
            init.constant_(self.SIG, 0.23 if self.version == 'gauss' else 0.0)

    def forward(self, input: Tensor) -> Tensor:
        """Constructs the kernel (in eval / no-grad: reuses the one built for unchanged
        parameters, see :mod:`.kernel_cache`) and convolves with :func:`conv_nd`."""
        _check_input(input, self._conv_ndim, self.in_channels, type(self).__name__)
        kernel, constant = self._forward_kernel((self.weight, self.P, self.SIG),
                                                self.construct_kernel, self._kernel_cache_key())
        input, padding = _apply_padding_mode(input, self.padding, self.padding_mode)
        return conv_nd(
            input,
            kernel,
            self.bias,
            self.stride,
            padding,
            self.groups,
            algo=self.conv_algo,
            constant=constant)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        for name, param in self.named_parameters(recurse=False):
            key = prefix + name
            if key in state_dict and tuple(state_dict[key].shape) != tuple(param.shape):
                raise ValueError(
                    f'{key}: checkpoint shape {tuple(state_dict[key].shape)} does not match '
                    f'{tuple(param.shape)} of {type(self).__name__}({self.extra_repr()}); '
                    f'check {self._shape_hint}')
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        s = (f'{self.in_channels}, {self.out_channels}, kernel_count={self.kernel_count}, '
             f'{self._extra_repr_shape()}, stride={self.stride}, padding={self.padding}, '
             f'version={self.version}')
        if self.groups != 1:
            s += f', groups={self.groups}'
        if self.bias is None:
            s += ', bias=False'
        if self.padding_mode != 'zeros':
            s += f', padding_mode={self.padding_mode}'
        if self.conv_algo is not None:
            s += f', conv_algo={self.conv_algo}'
        return s


class _DclsNd(DclsLayer):
    """Shared body of :class:`Dcls1d`, :class:`Dcls2d`, :class:`Dcls3d`.

    Parameters (as ``dcls`` 0.1.1): ``weight`` (out, in / groups, kernel_count), ``P``
    (ndim, out, in / groups, kernel_count), ``SIG`` like ``P`` for ``gauss`` / ``max``,
    ``bias`` (out).
    """
    _ndim: int
    _shape_hint = 'in/out channels, groups, kernel_count and the number of dimensions'

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_count: int,
                 stride: Union[int, Tuple[int, ...]] = 1,
                 padding: Union[int, Tuple[int, ...], str] = 0,
                 dilated_kernel_size: Union[int, Tuple[int, ...]] = 1,
                 groups: int = 1,
                 bias: bool = True,
                 padding_mode: str = 'zeros',
                 version: str = 'gauss',
                 *,
                 conv_algo: Optional[str] = None) -> None:
        super().__init__()
        ndim = self._ndim
        check_layer_counts(in_channels, out_channels, kernel_count, groups)
        check_version(version)
        check_padding_mode(padding_mode)
        sizes = as_ntuple(dilated_kernel_size, ndim, 'dilated_kernel_size')
        if any(s < 1 for s in sizes):
            raise ValueError(f'dilated_kernel_size must be positive, got {sizes}')
        self.stride, self.padding = checked_stride_and_padding(stride, padding, sizes)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_count = kernel_count
        self.dilated_kernel_size = sizes
        self.groups = groups
        self.padding_mode = padding_mode
        self.version = version
        self.conv_algo = conv_algo
        # nn.Conv-like attributes read by mmcv's ConvModule and FLOP counters.
        self.kernel_size = sizes
        self.dilation = (1, ) * ndim
        self.transposed = False
        self.output_padding = (0, ) * ndim

        self._create_parameters((out_channels, in_channels // groups, kernel_count), ndim, bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation, drawn in the same order (same seed -> same values)."""
        self._reset_weight_and_bias()
        with torch.no_grad():
            for i, size in enumerate(self.dilated_kernel_size):
                init.normal_(self.P.select(0, i), 0, 0.5).clamp_(-(size // 2), size // 2)
            self._reset_sigma()

    @torch.no_grad()
    def clamp_parameters(self) -> None:
        """Clamps each position component into +- dilated_kernel_size[i] // 2, in place."""
        for i, size in enumerate(self.dilated_kernel_size):
            self.P.select(0, i).clamp_(-(size // 2), size // 2)

    def construct_kernel(self) -> Tensor:
        """The dense kernel (out, in / groups, *dilated_kernel_size)."""
        return construct_kernel(self.weight, self.P, self.SIG, self.dilated_kernel_size,
                                self.version)

    @property
    def _conv_ndim(self) -> int:
        return self._ndim

    def _kernel_cache_key(self) -> tuple:
        return (self.version, self.dilated_kernel_size)

    def _extra_repr_shape(self) -> str:
        return f'dilated_kernel_size={self.dilated_kernel_size}'


class Dcls1d(_DclsNd):
    """1-D DCLS convolution: input (N, C_in, L) -> (N, C_out, L_out)."""
    _ndim = 1


class Dcls2d(_DclsNd):
    """2-D DCLS convolution: input (N, C_in, H, W) -> (N, C_out, H_out, W_out)."""
    _ndim = 2


class Dcls3d(_DclsNd):
    """3-D DCLS convolution: input (N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out)."""
    _ndim = 3
