"""mmdcls registries, children of mmengine's root registries.

Configs refer to mmdcls modules with the ``mmdcls.`` scope prefix (``type='mmdcls.ConvNeXtDCLS'``)
after ``custom_imports=dict(imports=['mmdcls'], allow_failed_imports=False)``. ``locations`` lets
mmengine import the modules that register into each registry on first lookup, so a lookup never
depends on which mmdcls submodule happened to be imported before.

Conv layers (``DCLS1d/2d/3d``, ``DCLS2dK1d``, ``DCLS3_1d``) are registered in mmengine's *root*
``MODELS`` as well, because mmcv's ``build_conv_layer`` (used by every mmdet/mmseg ``conv_cfg``
slot and ResNet's ``dcn``) looks unscoped types up there.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmdcls', locations=['mmdcls.models'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmdcls', locations=['mmdcls.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='mmdcls',
    locations=['mmdcls.engine'])
OPTIM_WRAPPERS = Registry(
    'optim wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='mmdcls', locations=['mmdcls.engine'])
