"""The registry scope the ConvNeXt-DCLS models build their layers in, and the checked lookup of a
layer config's ``type``.

mmcv's ``build_norm_layer`` / ``build_conv_layer`` look a type up in the registry of the current
default scope: mmdet's, mmseg's or mmpretrain's when one of them builds the model, mmengine's
root registry when none is set. Under :func:`mmdcls_scope` the lookup is the same whoever builds
the model: a plain name in mmdcls's ``MODELS`` and then mmengine's root (mmdcls's ``LN2d`` and
``DCLS2d``; mmcv's ``LN``, ``BN``, ``GN``, ``SyncBN``, ``Conv2d``), a scoped name
(``'mmdcls.LN2d'``, ``'mmdcls.DCLS2d'``, ``'mmdet.<name>'``) in the registry of its scope.
"""
import inspect
from contextlib import contextmanager
from typing import Iterator, Sequence

from mmengine.registry import Registry

from mmdcls.registry import MODELS

#: the default scope the models build their layers in
SCOPE = 'mmdcls'
#: type names to suggest when a norm / conv config names an unknown type
NORM_EXAMPLES = ('LN2d', 'mmdcls.LN2d', 'LN', 'BN', 'GN', 'SyncBN')
CONV_EXAMPLES = ('DCLS2d', 'mmdcls.DCLS2d', 'Conv2d')


@contextmanager
def mmdcls_scope() -> Iterator[Registry]:
    """Default scope ``'mmdcls'`` while the block runs (the caller's afterwards); yields
    mmdcls's ``MODELS``, the registry mmcv's builders then look types up in."""
    with MODELS.switch_scope_and_registry(SCOPE) as registry:
        yield registry


def layer_class(cfg, key: str, examples: Sequence[str]) -> type:
    """The class that the ``type`` of the layer config ``cfg`` (a registered name or a class)
    stands for under :func:`mmdcls_scope`, i.e. what mmcv's builders will build there.

    Raises:
        TypeError: ``cfg`` is not a dict with a ``type``, or the type is neither a str nor a
            class (the message names ``key``).
        ValueError: no registry knows the name (the message names ``key`` and ``examples``).
    """
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f"{key} must be a dict with a 'type' key, got {cfg!r}")
    layer_type = cfg['type']
    if inspect.isclass(layer_type):
        return layer_type
    if not isinstance(layer_type, str):
        raise TypeError(f'{key}.type must be a registered name or a class, got {layer_type!r}')
    with mmdcls_scope() as registry:
        found = registry.get(layer_type)
    if found is None:
        raise ValueError(f"{key}.type {layer_type!r} is not registered in mmdcls's or mmengine's "
                         f"MODELS; e.g. {', '.join(map(repr, examples))}")
    return found
