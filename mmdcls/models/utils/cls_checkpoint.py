"""Key mapping between mmpretrain ImageNet checkpoints and the ConvNeXt(-DCLS) release layout.

Pure functions on state dicts (no file I/O, no model): every key of the input must fall in one
of the rules below, otherwise a ``ValueError`` lists the keys that fit none, so nothing is
dropped or invented silently.

=====================================================  =====================================
mmpretrain ``ImageClassifier`` (``state_dict``)         release (``{'model': ...}``)
=====================================================  =====================================
``backbone.downsample_layers.*``, ``backbone.stages.*``  ``downsample_layers.*``, ``stages.*``
``head.norm.{weight,bias}`` (final LayerNorm)          ``norm.{weight,bias}``
``head.fc.{weight,bias}``                              ``head.{weight,bias}``
``data_preprocessor.*`` (none in mmpretrain 1.2)       refused: the release has no such keys
=====================================================  =====================================

The backbone is ``mmdcls.ConvNeXtDCLS`` with ``out_norms=False`` (no ``backbone.norm{i}``) and
the head ``mmdcls.ConvNeXtDCLSClsHead``. mmengine's ``EMAHook`` saves the EMA weights as
``state_dict`` (the raw ones under ``ema_state_dict``), so converting ``state_dict`` gives what
the release calls ``*_ema.pth``.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Tuple

import torch

_TRUNK = re.compile(r'^(downsample_layers|stages)\.')
#: (mmpretrain prefix, release prefix) of the head's two layers, in both directions
_HEAD_PREFIXES: Tuple[Tuple[str, str], ...] = (('head.norm.', 'norm.'), ('head.fc.', 'head.'))
_HEAD_SUFFIXES = ('weight', 'bias')
BACKBONE_PREFIX = 'backbone.'


def _convert(state_dict: Dict[str, torch.Tensor], rules,
             what: str) -> 'OrderedDict[str, torch.Tensor]':
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    unmatched: List[str] = []
    for key, value in state_dict.items():
        for rule in rules:
            new_key = rule(key)
            if new_key is not None:
                break
        else:
            unmatched.append(key)
            continue
        if new_key in out:  # two rules can never map to one key; guard the mapping itself
            raise ValueError(f'{what}: two keys map to {new_key!r}')
        out[new_key] = value
    if unmatched:
        shown = unmatched[:20] + ([f'... ({len(unmatched) - 20} more)']
                                  if len(unmatched) > 20 else [])
        raise ValueError(f'{what}: {len(unmatched)} key(s) fit no rule of the mapping (another '
                         'model, an output norm norm{i}, an EMA copy?):\n    ' +
                         '\n    '.join(shown))
    return out


def _head_rule(src_index: int):
    """Maps a head key from one layout (0 = mmpretrain, 1 = release) to the other."""

    def rule(key: str):
        for pair in _HEAD_PREFIXES:
            src, dst = pair[src_index], pair[1 - src_index]
            if key.startswith(src) and key[len(src):] in _HEAD_SUFFIXES:
                return dst + key[len(src):]
        return None

    return rule


def _from_backbone(key: str):
    if key.startswith(BACKBONE_PREFIX) and _TRUNK.match(key[len(BACKBONE_PREFIX):]):
        return key[len(BACKBONE_PREFIX):]
    return None


def _to_backbone(key: str):
    return BACKBONE_PREFIX + key if _TRUNK.match(key) else None


def mmpretrain_to_release(state_dict: Dict[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """An mmpretrain ``ImageClassifier`` state dict -> the released classifier's state dict.

    Tensors are shared, not copied. Raises ``ValueError`` naming every key outside the layout.
    """
    return _convert(state_dict, (_from_backbone, _head_rule(0)), 'mmpretrain -> release')


def release_to_mmpretrain(state_dict: Dict[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """The released classifier's state dict (``checkpoint['model']``) -> mmpretrain's layout.

    Tensors are shared, not copied. Raises ``ValueError`` naming every key outside the layout.
    """
    return _convert(state_dict, (_to_backbone, _head_rule(1)), 'release -> mmpretrain')


def detect_layout(state_dict: Dict[str, torch.Tensor]) -> str:
    """``'mmpretrain'`` or ``'release'``, from the keys; ``ValueError`` if neither fits."""
    keys = list(state_dict)
    if keys and all(k.startswith((BACKBONE_PREFIX, 'head.'))
                    for k in keys) and any(k.startswith(BACKBONE_PREFIX) for k in keys):
        return 'mmpretrain'
    if keys and any(_TRUNK.match(k) for k in keys):
        return 'release'
    raise ValueError(f'neither the mmpretrain nor the release classifier layout; first keys: '
                     f'{keys[:5]}')
