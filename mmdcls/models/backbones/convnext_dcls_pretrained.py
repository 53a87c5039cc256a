"""Checkpoints into the ConvNeXt-DCLS models: ``init_cfg=dict(type='Pretrained', ...)`` and the
models' ``load_pretrained`` / ``load_state_dict_checked``.

The file is read by :func:`~mmdcls.models.utils.load_checkpoint_file` (weights-only, the
release's pickled ``args`` allowed), its layout (ImageNet classifier, backbone, whole detector /
segmentor / classifier) mapped onto the model key by key by
:func:`~mmdcls.models.utils.checkpoint_filter_fn`, and loaded strictly on that account by
:func:`~mmdcls.models.utils.load_state_dict_checked`: every key is loaded, ignorable for the
layout or new, and anything else raises one error listing the keys.
"""
from typing import Callable, Optional

from torch import nn

from ..utils import (check_shared_positions, checkpoint_filter_fn, extract_state_dict,
                     load_checkpoint_file, load_state_dict_checked)
from .convnext_dcls_args import check_pretrained_cfg


def load_state_dict_into(model: nn.Module, state_dict, filename: str = '<state_dict>') -> dict:
    """Loads a ConvNeXt(-DCLS) state dict of any layout into ``model`` (a trunk subclass);
    positions shared per stage (``model.share_positions``) must be equal in every block of
    the checkpoint's stage. Returns ``{'loaded': [...], 'ignored': [...], 'new': [...]}``."""
    filtered = checkpoint_filter_fn(state_dict, model, filename)
    if model.share_positions:
        check_shared_positions(filtered.state_dict, filename)
    return load_state_dict_checked(
        model,
        filtered.state_dict,
        filename,
        ignorable=filtered.ignored.__contains__,
        new=filtered.new.__contains__)


def load_pretrained(model: nn.Module,
                    checkpoint: str,
                    prefix: Optional[str] = None,
                    map_location='cpu') -> dict:
    """Loads a released / OpenMMLab checkpoint file (``{'model': ...}``, ``{'state_dict':
    ...}`` or a bare state dict; only the keys under ``prefix`` if given) into ``model``
    through :func:`load_state_dict_into`; returns its account (also logged)."""
    state_dict = extract_state_dict(
        load_checkpoint_file(checkpoint, map_location), checkpoint, prefix)
    return load_state_dict_into(model, state_dict, checkpoint)


def init_weights(model: nn.Module, base_init_weights: Callable[[], None]) -> None:
    """``model.init_weights()`` for a trunk subclass: mmengine's initialisers of
    ``model.init_cfg`` (``base_init_weights``, i.e. ``BaseModule.init_weights``) first, then its
    ``Pretrained`` entry through :func:`load_pretrained` instead of mmengine's
    ``PretrainedInit`` (which would drop mismatched keys silently)."""
    pretrained = check_pretrained_cfg(model.init_cfg)
    if pretrained is None:
        base_init_weights()
        return
    full_cfg = model.init_cfg
    others = [
        c for c in (full_cfg if isinstance(full_cfg, list) else [full_cfg]) if c is not pretrained
    ]
    model.init_cfg = others or None
    try:
        base_init_weights()
    finally:
        model.init_cfg = full_cfg
    load_pretrained(
        model,
        pretrained['checkpoint'],
        prefix=pretrained.get('prefix'),
        map_location=pretrained.get('map_location', 'cpu'))
