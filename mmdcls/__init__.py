"""mmdcls: Dilated Convolution with Learnable Spacings for OpenMMLab.

``mmdcls.ops`` needs only torch. When mmengine is installed, importing mmdcls also registers
its layers, backbones, hooks and optimizer constructors (``custom_imports=dict(imports=
['mmdcls'])`` in a config does exactly this import).
"""
import importlib.util

from .version import __version__, version_info

if importlib.util.find_spec('mmengine') is not None:
    # Not a try/except: with mmengine present, a broken registration must fail loudly here
    # rather than surface later as "type not found".
    from . import engine, models  # noqa: F401
    from .utils.compat import register_safe_globals

    register_safe_globals()  # torch.load(weights_only=True) of mmengine / release checkpoints

__all__ = ['__version__', 'version_info']
