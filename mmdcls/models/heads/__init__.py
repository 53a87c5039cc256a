"""Classification with mmpretrain: the released ConvNeXt(-DCLS) head.

:class:`ConvNeXtDCLSClsHead` (behind ``mmdcls.ConvNeXtDCLS`` with ``out_norms=False``) is an
mmpretrain ``ClsHead`` and is registered only when mmpretrain is installed (``mmdcls[cls]``).
"""
import importlib.util
import warnings

__all__ = []


def _mmpretrain_import_error():
    """None when mmpretrain imports; otherwise why not (it is installed: find_spec found it)."""
    try:
        import mmpretrain  # noqa: F401
    except ImportError as err:  # e.g. a torchvision built for another torch
        return err
    return None


if importlib.util.find_spec('mmpretrain') is not None:
    _error = _mmpretrain_import_error()
    if _error is None:
        # Outside any try: with mmpretrain working, a broken head module fails loudly.
        from .convnext_dcls_cls_head import ConvNeXtDCLSClsHead  # noqa: F401
        __all__.append('ConvNeXtDCLSClsHead')
    else:
        # A broken mmpretrain must not take mmdet / mmseg configs down with it; its own configs
        # fail anyway (the tools name the import error), and this says why the head is missing.
        warnings.warn(
            f'mmpretrain is installed but does not import ({type(_error).__name__}: {_error}); '
            'mmdcls.ConvNeXtDCLSClsHead is not registered. mmdet / mmseg configs are '
            'unaffected.', RuntimeWarning)
