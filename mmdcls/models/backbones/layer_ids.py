"""The layer ids of layer-wise / stage-wise learning-rate decay for ConvNeXt-layout models.

One rule, one place: :class:`~mmdcls.models.backbones.ConvNeXtDCLSTrunk`'s ``get_layer_depth``
and ``get_stage_depth`` (which the optimizer constructor asks, as mmpretrain's constructors ask
``get_layer_depth``) apply :func:`convnext_layer_depth` with their arch's ``num_layers``; the
constructor's fallback for a ConvNeXt-layout backbone without those methods applies the same
function by name.
"""
from typing import Tuple

DECAY_TYPES = ('layer_wise', 'stage_wise')


def convnext_num_layers(depths) -> int:
    """The number of layer ids a ConvNeXt gets (mmpretrain's rule): 12 if stage 2 has more than
    9 blocks (S / B / L / XL), else 6 (T)."""
    return 12 if depths[-2] > 9 else 6


def convnext_layer_depth(param_name: str,
                         prefix: str = '',
                         num_layers: int = 6,
                         decay_type: str = 'layer_wise') -> Tuple[int, int]:
    """``(layer id, number of layer ids)`` of a parameter of a ConvNeXt-layout model.

    The one layer-id rule of mmdcls: :meth:`ConvNeXtDCLSTrunk.get_layer_depth` /
    ``get_stage_depth`` apply it with their arch's ``num_layers``, and the layer-decay optimizer
    constructor applies it by name (with ``paramwise_cfg.num_layers``) to a ConvNeXt-layout
    backbone that has no ``get_layer_depth`` of its own. ``num_layers + 2`` ids in all:

    * ``'layer_wise'`` (mmpretrain's / mmdet's ConvNeXt rule): stem 0, downsample 1 -> 2,
      downsample 2 -> 3, downsample 3 -> ``num_layers``; stage 0 -> 1, stage 1 -> 2, stage 2
      block b -> 3 + b // 3, stage 3 -> ``num_layers``;
    * ``'stage_wise'`` (mmdet's / mmseg's): downsample layers 0, stage i -> i + 1;
    * anything else (output norms, the classifier's norm and head) and names outside
      ``prefix`` (neck, heads): ``num_layers + 1``, the full learning rate.

    Raises:
        ValueError: an unreadable stage / block index, or a stage deeper than ``num_layers``
            covers (the wrong ``num_layers`` for the arch).
    """
    if decay_type not in DECAY_TYPES:
        raise ValueError(f'decay_type must be one of {DECAY_TYPES}, got {decay_type!r}')
    last = num_layers + 1
    if not param_name.startswith(prefix):
        return last, num_layers + 2
    parts = param_name[len(prefix):].split('.')
    if parts[0] not in ('downsample_layers', 'stages'):
        return last, num_layers + 2
    try:
        stage = int(parts[1])
        block = int(parts[2]) if parts[0] == 'stages' else 0
    except (IndexError, ValueError):
        raise ValueError(f'cannot read the stage/block of {param_name}: expected '
                         f'{prefix}downsample_layers.<stage>.* or '
                         f'{prefix}stages.<stage>.<block>.*') from None
    if decay_type == 'stage_wise':
        layer_id = 0 if parts[0] == 'downsample_layers' else stage + 1
    elif parts[0] == 'downsample_layers':
        layer_id = {0: 0, 1: 2, 2: 3}.get(stage, num_layers)
    else:
        layer_id = (stage + 1 if stage < 2 else 3 + block // 3 if stage == 2 else num_layers)
    if layer_id > num_layers:
        raise ValueError(f'{param_name}: layer id {layer_id} is outside [0, {num_layers}], the '
                         f'backbone ids for num_layers={num_layers} ({decay_type}); is '
                         'num_layers right for this arch?')
    return layer_id, num_layers + 2
