"""The DCLS operator, depending on torch only: usable without OpenMMLab (e.g. in ImageNet
pretraining code). With a C compiler on the machine, 2-D kernel construction and depthwise
convolutions run through a small C library built on first use (:mod:`mmdcls.ops.native`;
``MMDCLS_NATIVE=0`` keeps everything in torch)."""
from .construct import VERSIONS, VERSIONS_WITH_SIGMA, construct_kernel, position_axes
from .conv_backend import conv_nd
from .dcls import (PADDING_MODES, Dcls1d, Dcls2d, Dcls3d, as_ntuple, dcls_conv1d, dcls_conv2d,
                   dcls_conv3d, same_padding)

__all__ = [
    'VERSIONS', 'VERSIONS_WITH_SIGMA', 'PADDING_MODES', 'construct_kernel', 'position_axes',
    'conv_nd', 'Dcls1d', 'Dcls2d', 'Dcls3d', 'dcls_conv1d', 'dcls_conv2d', 'dcls_conv3d',
    'same_padding', 'as_ntuple'
]
