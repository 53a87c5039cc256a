"""Which checkpoint layout a ConvNeXt(-DCLS) state dict has, and how it maps onto an mmdcls model.

timm's ``checkpoint_filter_fn`` pattern: one pure function, beside the loader, that recognises a
layout by sentinel keys and maps it onto the model, so that the models hold no checkpoint
policy. :func:`checkpoint_filter_fn` renames nothing the released files need renamed (their
trunk keys are mmdcls's), but it decides for every key whether it is loaded, may be dropped
(and why) or may be missing (and why); :func:`~mmdcls.models.utils.load_state_dict_checked`
then loads strictly on that account, so no key is dropped silently.

The layouts (``LAYOUTS``), by sentinel key:

* ``'classifier'``: the release's ImageNet files (``{'model': ...}``) and
  :class:`~mmdcls.models.ConvNeXtDCLSClassifier`: the trunk (``downsample_layers.*``,
  ``stages.*``) plus ``norm.*`` (LayerNorm after global pooling) and ``head.*``. Sentinel:
  ``head.weight``.
* ``'backbone'``: :class:`~mmdcls.models.ConvNeXtDCLS` and the release's mmdet 2.x / mmseg 0.x
  backbone (same names): the trunk plus output norms ``norm{i}.*``. Sentinel: the stem conv
  ``downsample_layers.0.0.weight`` without ``head.weight``.
* ``'model'``: a whole detector / segmentor / classifier (the release's mmdet 2.x / mmseg 0.x
  checkpoints, mmdet 3.x / mmseg 1.x / mmpretrain ones): ``backbone.*`` in the ``'backbone'``
  layout plus necks and heads. Sentinel: ``backbone.downsample_layers.0.0.weight``. Loading
  one without ``prefix='backbone.'`` takes its backbone and reports the rest as ignored.
"""
import re
from collections import OrderedDict
from typing import Dict, Mapping, NamedTuple

from torch import Tensor, nn

__all__ = [
    'LAYOUTS', 'STEM_KEY', 'BACKBONE_PREFIX', 'OUT_NORM_KEY', 'FilteredCheckpoint', 'detect_layout',
    'checkpoint_filter_fn'
]

#: the stem conv, present in every ConvNeXt(-DCLS) layout
STEM_KEY = 'downsample_layers.0.0.weight'
#: where whole-model checkpoints keep the backbone
BACKBONE_PREFIX = 'backbone.'
#: a backbone's output norm of stage i: ``norm{i}.weight`` / ``.bias``
OUT_NORM_KEY = re.compile(r'^norm(\d+)\.')
#: layout name -> what it is (see the module docstring)
LAYOUTS = {
    'classifier': 'ImageNet classifier (release / ConvNeXtDCLSClassifier): trunk + norm + head',
    'backbone': 'backbone (ConvNeXtDCLS / release mmdet 2.x, mmseg 0.x backbone): trunk + '
    'norm{i}',
    'model': 'whole detector / segmentor / classifier: backbone.* + neck / heads',
}
_CLASSIFIER_KEYS = ('norm.', 'head.')


class FilteredCheckpoint(NamedTuple):
    """The account of one checkpoint against one model (:func:`checkpoint_filter_fn`)."""
    #: the detected layout, a key of :data:`LAYOUTS`
    layout: str
    #: every checkpoint key, under the model's names where it has one (a whole model's
    #: ``backbone.`` prefix removed); the keys of ``ignored`` included
    state_dict: 'OrderedDict[str, Tensor]'
    #: checkpoint key -> why the model may drop it
    ignored: Dict[str, str]
    #: model key -> why the checkpoint may lack it (it keeps its initialisation)
    new: Dict[str, str]


def detect_layout(state_dict: Mapping[str, Tensor], filename: str = '<checkpoint>') -> str:
    """The layout (a key of :data:`LAYOUTS`) of a state dict, from its sentinel keys.

    Raises:
        ValueError: no stem conv at the top level or under ``backbone.``: not a ConvNeXt(-DCLS)
            checkpoint (or a ``prefix`` that points elsewhere).
    """
    if BACKBONE_PREFIX + STEM_KEY in state_dict:
        return 'model'
    if STEM_KEY in state_dict:
        return 'classifier' if 'head.weight' in state_dict else 'backbone'
    raise ValueError(f'{filename}: not a ConvNeXt(-DCLS) checkpoint: neither {STEM_KEY!r} nor '
                     f'{BACKBONE_PREFIX + STEM_KEY!r} is a key (layouts known: '
                     f'{list(LAYOUTS)}); first keys: {list(state_dict)[:5]}')


def checkpoint_filter_fn(state_dict: Mapping[str, Tensor],
                         model: nn.Module,
                         filename: str = '<checkpoint>') -> FilteredCheckpoint:
    """Maps a ConvNeXt(-DCLS) state dict onto ``model``; pure (reads the model's keys only).

    ``model`` is in the backbone form (output norms ``norm{i}``, e.g. :class:`ConvNeXtDCLS`) or
    the classifier form (``norm`` + ``head``, :class:`ConvNeXtDCLSClassifier`), told apart by
    its ``head.weight``. What each layout may leave out or carry extra:

    ==============  ==============================  ========================================
    layout          into a backbone                 into a classifier
    ==============  ==============================  ========================================
    classifier      drops ``norm.*`` / ``head.*``;  exact
                    ``norm{i}`` new
    backbone        drops ``norm{i}`` of stages     no allowance: refused (it has no head)
                    not in ``out_indices``;
                    ``norm{i}`` it lacks are new
    model           its ``backbone.*`` as           its ``backbone.*`` as ``backbone``;
                    ``backbone``; drops the rest    drops the rest
    ==============  ==============================  ========================================

    Every other difference (another arch, kernel setting, a plain conv's checkpoint) is left
    for the strict loader to report. Reuse: ``result.state_dict`` with ``result.ignored``
    removed is exactly what the model loads; a converter can print ``ignored`` as its account.

    Returns:
        FilteredCheckpoint: ``(layout, state_dict, ignored, new)``.
    """
    layout = detect_layout(state_dict, filename)
    model_key_list = list(model.state_dict())
    model_keys = set(model_key_list)
    is_classifier = 'head.weight' in model_keys
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    ignored: Dict[str, str] = {}
    if layout == 'model':
        outside = [k for k in state_dict if not k.startswith(BACKBONE_PREFIX)]
        clash = [k for k in outside if k in model_keys or BACKBONE_PREFIX + k in state_dict]
        if clash:
            raise ValueError(f'{filename}: whole-model checkpoint whose keys outside '
                             f'{BACKBONE_PREFIX!r} collide with backbone names {clash[:5]}; '
                             f"load it with prefix='backbone.'")
        for key, value in state_dict.items():
            if key.startswith(BACKBONE_PREFIX):
                out[key[len(BACKBONE_PREFIX):]] = value
            else:
                out[key] = value
                ignored[key] = 'outside backbone.: the neck / heads of a whole model'
        trunk_layout = 'backbone'
    else:
        out.update(state_dict)
        trunk_layout = layout

    new: Dict[str, str] = {}
    if not is_classifier:
        for key in out:
            if key in ignored:
                continue
            match = OUT_NORM_KEY.match(key)
            if trunk_layout == 'classifier' and key.startswith(_CLASSIFIER_KEYS):
                ignored[key] = "the ImageNet classifier's final norm / head (a backbone has none)"
            elif trunk_layout == 'backbone' and match and key not in model_keys:
                ignored[key] = (f'output norm of stage {match.group(1)}, which the model does '
                                'not have (stage not in out_indices, or un-normed outputs)')
        for key in model_key_list:
            if key not in out and OUT_NORM_KEY.match(key):
                new[key] = ('output norm: ' +
                            ('an ImageNet classifier has none' if trunk_layout == 'classifier' else
                             'the checkpoint\'s backbone did not output this '
                             'stage') + '; keeps its initialisation')
    return FilteredCheckpoint(layout, out, ignored, new)
