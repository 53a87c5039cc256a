"""mmdcls models: DCLS conv layers (root registry), backbones and classification heads (mmdcls
registry)."""
from . import heads  # noqa: F401  (registers ConvNeXtDCLSClsHead where mmpretrain imports)
from . import layers  # noqa: F401  registers DCLS1d/2d/3d for mmcv's build_conv_layer
from . import utils  # noqa: F401  registers LN2d
from .backbones import ConvNeXtDCLS
from .classifiers import ConvNeXtDCLSClassifier

__all__ = ['ConvNeXtDCLS', 'ConvNeXtDCLSClassifier']
