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
from torch import Tensor
from torch.nn import init

from .construct import VERSIONS, construct_kernel
from .conv import check_algo
from .dcls import (DclsLayer, as_ntuple, check_layer_counts, check_padding_mode,
                   checked_stride_and_padding)


class _LearnedAxisDcls(DclsLayer):
    """A DCLS conv of ``_conv_ndim`` spatial dims with learned positions on one kernel axis.

    Subclasses set ``_conv_ndim``, ``_versions`` (the versions ``dcls`` 0.1.1 implements for
    that layer) and ``_reference_init`` (``'normal'``: P ~ N(0, 0.5) clamped, as ``dcls``'s
    ``_DclsNd``; ``'uniform'``: P ~ U(-lim, lim), as its ``_DclsN_Md``), and implement
    :meth:`_row_shape` (the dims between ``(out, in / groups)`` and ``kernel_count`` of every
    parameter) and :meth:`_kernel_shape` (the dense kernel's spatial shape).
    """
    _conv_ndim: int
    _shape_hint = 'in/out channels, groups, kernel_count and the kernel sizes'
    _versions: Tuple[str, ...] = VERSIONS
    _reference_init: str = 'normal'

    def _setup(self, in_channels: int, out_channels: int, kernel_count: int, stride, padding,
               dilated_kernel_size, groups: int, bias: bool, padding_mode: str, version: str,
               conv_algo: Optional[str]) -> None:
        """Checks and stores the common arguments (the subclass has stored its own shape
        arguments already: :meth:`_kernel_shape` is called here) and creates the
        parameters."""
        owner = type(self).__name__
        check_layer_counts(in_channels, out_channels, kernel_count, groups)
        if version not in self._versions:
            raise ValueError(f'{owner}: version must be one of {self._versions} (the versions '
                             f'dcls 0.1.1 implements for it), but got {version!r}')
        check_padding_mode(padding_mode)
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
        self.stride, self.padding = checked_stride_and_padding(stride, padding, kernel_shape)
        # nn.Conv-like attributes read by mmcv's ConvModule and FLOP counters
        self.kernel_size = kernel_shape
        self.dilation = (1, ) * ndim
        self.transposed = False
        self.output_padding = (0, ) * ndim

        self._create_parameters(
            (out_channels, in_channels // groups, *self._row_shape(), kernel_count), 1, bias)
        self.reset_parameters()

    def _row_shape(self) -> Tuple[int, ...]:
        raise NotImplementedError

    def _kernel_shape(self) -> Tuple[int, ...]:
        raise NotImplementedError

    def reset_parameters(self) -> None:
        """The official initialisation, drawn in the same order (same seed -> same values)."""
        self._reset_weight_and_bias()
        lim = self.dilated_kernel_size[0] // 2
        with torch.no_grad():
            if self._reference_init == 'uniform':
                init.uniform_(self.P, -lim, lim)
            else:
                init.normal_(self.P, 0, 0.5).clamp_(-lim, lim)
            self._reset_sigma()

    @torch.no_grad()
    def clamp_parameters(self) -> None:
        """Clamps the positions into +- dilated_kernel_size // 2, in place."""
        lim = self.dilated_kernel_size[0] // 2
        self.P.clamp_(-lim, lim)

    def construct_kernel(self) -> Tensor:
        """The dense kernel (out, in / groups, *kernel_size): one 1-D DCLS construction per
        (out, in / groups, *dense) row, the rows' dense indices folded into the channel axis
        (a view for the usual contiguous parameters)."""
        out_channels, in_per_group = self.weight.shape[:2]
        kernel_count = self.kernel_count
        flat = (out_channels, in_per_group * math.prod(self._row_shape()), kernel_count)
        kernel = construct_kernel(
            self.weight.reshape(flat), self.P.reshape(1, *flat),
            None if self.SIG is None else self.SIG.reshape(1, *flat), self.dilated_kernel_size,
            self.version)
        return kernel.view(out_channels, in_per_group, *self.kernel_size)

    def _kernel_cache_key(self) -> tuple:
        return (self.version, self.dilated_kernel_size, self.kernel_size)

    def _extra_repr_shape(self) -> str:
        raise NotImplementedError
