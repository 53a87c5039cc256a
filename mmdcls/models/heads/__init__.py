"""Classification with mmpretrain: the released ConvNeXt(-DCLS) head and its backbone form.

:class:`ConvNeXtDCLSNoOutNorm` needs only mmengine / mmcv; :class:`ConvNeXtDCLSClsHead` is an
mmpretrain ``ClsHead`` and is registered only when mmpretrain is installed (``mmdcls[cls]``).
"""
import importlib.util

from .cls_features import ConvNeXtDCLSNoOutNorm

__all__ = ['ConvNeXtDCLSNoOutNorm']

# Not a try/except ImportError: with mmpretrain present, a broken registration must fail loudly.
if importlib.util.find_spec('mmpretrain') is not None:
    from .convnext_dcls_cls_head import ConvNeXtDCLSClsHead  # noqa: F401

    __all__.append('ConvNeXtDCLSClsHead')
