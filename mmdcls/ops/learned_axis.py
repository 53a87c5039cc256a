"""Shared body of the DCLS layers whose positions are learned along ONE kernel axis only:
:class:`~mmdcls.ops.Dcls2dK1d` and :class:`~mmdcls.ops.Dcls3_1d` (``dcls`` 0.1.1's two
"partial" layers).

Both build a 1-D DCLS kernel of length ``dilated_kernel_size`` per (out, in / groups, *dense)
row with :func:`~mmdcls.ops.construct.construct_kernel` (the 1-D interpolations of ``dcls``
0.1.1 are exactly those of its ``ConstructKernel1d`` / ``ConstructKernel3_1d``), give it the
layer's other (dense or flat) kernel axes as a view, and convolve with
:func:`~mmdcls.ops.conv.conv_nd`. The subclasses say how the parameters and the kernel are
shaped (:meth:`_row_shape`, :meth:`_kernel_shape`).
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn import init

from .construct import VERSIONS, VERSIONS_WITH_SIGMA, construct_kernel
from .conv import check_algo, conv_nd
from .dcls import PADDING_MODES, _check_input, as_ntuple, same_padding
from .kernel_cache import CachedKernelMixin


class _LearnedAxisDcls(CachedKernelMixin, nn.Module):
    """A DCLS conv of ``_conv_ndim`` spatial dims with learned positions on one kernel axis.

    Subclasses set ``_conv_ndim``, ``_versions`` (the versions ``dcls`` 0.1.1 implements for
    that layer) and ``_reference_init`` (``'normal'``: P ~ N(0, 0.5) clamped, as ``dcls``'s
    ``_DclsNd``; ``'uniform'``: P ~ U(-lim, lim), as its ``_DclsN_Md``), and implement
    :meth:`_row_shape` (the dims between ``(out, in / groups)`` and ``kernel_count`` of every
    parameter) and :meth:`_kernel_shape` (the dense kernel's spatial shape).
    """
    _conv_ndim: int
    _versions: Tuple[str, ...] = VERSIONS
    _reference_init: str = 'normal'

    def _setup(self, in_channels: int, out_channels: int, kernel_count: int, stride, padding,
               dilated_kernel_size, groups: int, bias: bool, padding_mode: str, version: str,
               conv_algo: Optional[str]) -> None:
        """Checks and stores the common arguments (the subclass has stored its own shape
        arguments already: :meth:`_kernel_shape` is called here) and creates the
        parameters."""
        owner = type(self).__name__
        for name, value in (('in_channels', in_channels), ('out_channels', out_channels),
                            ('kernel_count', kernel_count), ('groups', groups)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f'{name} must be a positive int, got {value!r}')
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'in_channels ({in_channels}) and out_channels ({out_channels}) '
                             f'must both be divisible by groups ({groups})')
        if version not in self._versions:
            raise ValueError(f'{owner}: version must be one of {self._versions} (the versions '
                             f'dcls 0.1.1 implements for it), but got {version!r}')
        if padding_mode not in PADDING_MODES:
            raise ValueError(f'padding_mode must be one of {PADDING_MODES}, '
                             f'got {padding_mode!r}')
        check_algo(conv_algo, 'conv_algo')
        sizes = as_ntuple(dilated_kernel_size, 1, 'dilated_kernel_size')
        if sizes[0] < 1:
            raise ValueError(f'dilated_kernel_size must be positive, got {sizes}')
        ndim = self._conv_ndim
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_count = kernel_count
        self.dilated_kernel_size = sizes
        self.groups = groups
        self.padding_mode = padding_mode
        self.version = version
        self.conv_algo = conv_algo
        kernel_shape = self._kernel_shape()
        self.stride = as_ntuple(stride, ndim, 'stride')
        if any(s < 1 for s in self.stride):
            raise ValueError(f'stride must be positive, got {self.stride}')
        self.padding = (same_padding(kernel_shape) if padding == 'same' else
                        as_ntuple(padding, ndim, 'padding'))
        if any(p < 0 for p in self.padding):
            raise ValueError(f'padding must be non-negative, got {self.padding}')
        # nn.Conv-like attributes read by mmcv's ConvModule and FLOP counters
        self.kernel_size = kernel_shape
        self.dilation = (1,) * ndim
        self.transposed = False
        self.output_padding = (0,) * ndim

        shape = (out_channels, in_channels // groups, *self._row_shape(), kernel_count)
        self.weight = nn.Parameter(torch.empty(shape))
        self.P = nn.Parameter(torch.empty(1, *shape))
        if version in VERSIONS_WITH_SIGMA:
            self.SIG = nn.Parameter(torch.empty(1, *shape))
        else:
            self.register_parameter('SIG', None)
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter('bias', None)
        self.reset_parameters()

    def _row_shape(self) -> Tuple[int, ...]:
        raise NotImplementedError

    def _kernel_shape(self) -> Tuple[int, ...]:
        raise NotImplementedError

    def reset_parameters(self) -> None:
        """The official initialisation, drawn in the same order (same seed -> same values)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound)
        lim = self.dilated_kernel_size[0] // 2
        with torch.no_grad():
            if self._reference_init == 'uniform':
                init.uniform_(self.P, -lim, lim)
            else:
                init.normal_(self.P, 0, 0.5).clamp_(-lim, lim)
            if self.SIG is not None:
                init.constant_(self.SIG, 0.23 if self.version == 'gauss' else 0.0)

    @torch.no_grad()
    def clamp_parameters(self) -> None:
        """Clamps the positions into +- dilated_kernel_size // 2, in place."""
        self._drop_kernel_cache()  # (clamp_ bumps P's version anyway)
        lim = self.dilated_kernel_size[0] // 2
        self.P.clamp_(-lim, lim)

    def construct_kernel(self) -> Tensor:
        """The dense kernel (out, in / groups, *kernel_size): one 1-D DCLS construction per
        (out, in / groups, *dense) row, the rows' dense indices folded into the channel axis
        (a view for the usual contiguous parameters)."""
        out_channels, in_per_group = self.weight.shape[:2]
        kernel_count = self.kernel_count
        flat = (out_channels, in_per_group * math.prod(self._row_shape()), kernel_count)
        kernel = construct_kernel(self.weight.reshape(flat), self.P.reshape(1, *flat),
                                  None if self.SIG is None else self.SIG.reshape(1, *flat),
                                  self.dilated_kernel_size, self.version)
        return kernel.view(out_channels, in_per_group, *self.kernel_size)

    def forward(self, input: Tensor) -> Tensor:
        _check_input(input, self._conv_ndim, self.in_channels, type(self).__name__)
        # in eval / no-grad: the kernel built for unchanged parameters (see .kernel_cache)
        kernel, spectrum = self._forward_kernel(
            (self.weight, self.P, self.SIG), self.construct_kernel,
            (self.version, self.dilated_kernel_size, self.kernel_size))
        padding = self.padding
        if self.padding_mode != 'zeros':
            # F.pad takes the last axis first
            input = F.pad(input, [p for p in reversed(padding) for _ in range(2)],
                          mode=self.padding_mode)
            padding = (0,) * self._conv_ndim
        return conv_nd(input, kernel, self.bias, self.stride, padding, self.groups,
                       algo=self.conv_algo, kernel_spectrum=spectrum)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        self._drop_kernel_cache()  # (copy_ bumps the versions anyway)
        for name, param in self.named_parameters(recurse=False):
            key = prefix + name
            if key in state_dict and tuple(state_dict[key].shape) != tuple(param.shape):
                raise ValueError(
                    f'{key}: checkpoint shape {tuple(state_dict[key].shape)} does not match '
                    f'{tuple(param.shape)} of {type(self).__name__}({self.extra_repr()}); '
                    'check in/out channels, groups, kernel_count and the kernel sizes')
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def _extra_repr_shape(self) -> str:
        raise NotImplementedError

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
