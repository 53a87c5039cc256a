"""The DCLS operator, depending on torch only: usable without OpenMMLab (e.g. in ImageNet
pretraining code). With a C compiler on the machine, 2-D kernel construction and depthwise
convolutions run through a small C library built on first use (:mod:`mmdcls.ops.native`;
``MMDCLS_NATIVE=0`` keeps everything in torch).

Layout: :mod:`.dcls` (the ``Dcls{1,2,3}d`` layers and functions), :mod:`.dcls2d_k1d` /
:mod:`.dcls3_1d` (``Dcls2dK1d`` / ``Dcls3_1d``, positions along one axis, on
:mod:`.learned_axis`), :mod:`.kernel_cache` (eval-mode kernel reuse), :mod:`.construct` (kernel
construction), :mod:`.conv` (the convolution algorithms and ``conv_nd``), :mod:`.native` (the
C library), ``csrc/`` (its sources); ``docs/architecture.md`` follows a forward pass through
them."""
from .construct import VERSIONS, VERSIONS_WITH_SIGMA, construct_kernel, position_axes
from .conv import LargeKernelConv2d, LargeKernelDepthwiseConv2d, conv_nd
from .dcls import (PADDING_MODES, Dcls1d, Dcls2d, Dcls3d, DclsLayer, as_ntuple, dcls_conv1d,
                   dcls_conv2d, dcls_conv3d, same_padding)
from .dcls2d_k1d import Dcls2dK1d
from .dcls3_1d import Dcls3_1d

__all__ = [
    'VERSIONS', 'VERSIONS_WITH_SIGMA', 'PADDING_MODES', 'construct_kernel', 'position_axes',
    'conv_nd', 'LargeKernelConv2d', 'LargeKernelDepthwiseConv2d', 'DclsLayer', 'Dcls1d', 'Dcls2d',
    'Dcls3d', 'Dcls2dK1d', 'Dcls3_1d', 'dcls_conv1d', 'dcls_conv2d', 'dcls_conv3d', 'same_padding',
    'as_ntuple'
]
