"""Layer-wise learning-rate decay for ConvNeXt-DCLS, with DCLS positions in their own groups.

The release's detection / segmentation recipe (mmdet 2.x / mmseg 0.x
``LearningRateDecayOptimizerConstructor``) with three changes made explicit:

* DCLS positions (``P``) and sigmas (``SIG``) get no weight decay and their own learning-rate
  multiplier (``position_lr_mult``, ``sigma_lr_mult``) on top of the layer scale;
* layer ids come from the model: the backbone's ``get_layer_depth`` (as mmpretrain's
  constructors ask) or ``get_stage_depth``; the constructor parses no names itself, except in
  the documented fallback for a ConvNeXt-layout backbone without those methods, which applies
  the same function the mmdcls backbone uses (``convnext_layer_depth``);
* a parameter shared by several layers (one ``P`` per stage, used by every block of the stage)
  is put in exactly one group, with the layer id of the shallowest layer that uses it.
"""
import numbers
from collections import OrderedDict
from typing import Callable, Dict, List, Tuple

from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from mmdcls.models.backbones import convnext_layer_depth
from mmdcls.models.utils import (DEFAULT_POSITION_LR_MULT, DEFAULT_SIGMA_LR_MULT, POSITION_PARAM,
                                 SIGMA_PARAM)
from mmdcls.registry import OPTIM_WRAPPER_CONSTRUCTORS

# Kinds of parameter groups, in the order they are listed inside one layer.
KINDS = ('decay', 'no_decay', 'position', 'sigma')
# Names that never get weight decay, whatever their shape (as mmdet's constructor).
NO_DECAY_NAMES = ('pos_embed', 'cls_token', 'mask_token')


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DCLSLearningRateDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Optimizer-wrapper constructor with layer-/stage-wise lr decay and DCLS position groups.

    Use it as ``optim_wrapper=dict(constructor='mmdcls.DCLSLearningRateDecayOptimizerConstructor',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.05), paramwise_cfg=dict(...))``.

    ``paramwise_cfg`` keys:

    * ``decay_rate`` (required, 0 < r <= 1): the lr of a parameter at layer ``i`` out of
      ``num_layers + 2`` layer ids is ``lr * decay_rate ** (num_layers + 1 - i)``; neck and heads
      get ``lr``.
    * ``decay_type``: ``'layer_wise'`` (default; the ids of ``backbone.get_layer_depth(name,
      prefix)``, for ConvNeXt: stem 0, stage 0 -> 1, stage 1 -> 2, stage 2 -> 3 + block // 3,
      stage 3 -> num_layers) or ``'stage_wise'`` (those of ``backbone.get_stage_depth``, for
      ConvNeXt: downsample layers 0, stage i -> i + 1).
    * ``num_layers``: the number of backbone layer ids. Taken from the backbone's
      ``get_layer_depth`` when it has one (then a value given here must agree with it);
      required otherwise. A backbone without ``get_layer_depth`` / ``get_stage_depth`` but
      with the ConvNeXt layout (``downsample_layers``, ``stages``) gets the ConvNeXt rule by
      name (:func:`mmdcls.models.backbones.convnext_layer_depth`); any other is refused.
    * ``position_lr_mult`` (default :data:`~mmdcls.models.utils.DEFAULT_POSITION_LR_MULT`, 5.0
      as the release's ImageNet training): lr multiplier of the positions ``P``, applied on top
      of the layer scale.
    * ``sigma_lr_mult`` (default :data:`~mmdcls.models.utils.DEFAULT_SIGMA_LR_MULT`, 1.0): lr
      multiplier of the sigmas ``SIG`` (``gauss`` / ``max``).

    Positions and sigmas get weight decay 0; so do 1-D parameters (norms, layer-scale ``gamma``)
    and biases. Frozen parameters (``requires_grad=False``) are left out. The groups are logged
    once as a table.
    """

    PARAMWISE_KEYS = ('decay_rate', 'decay_type', 'num_layers', 'position_lr_mult', 'sigma_lr_mult')
    DECAY_TYPES = ('layer_wise', 'stage_wise')

    def _validate_cfg(self) -> None:
        cfg = self.paramwise_cfg
        if not isinstance(cfg, dict):
            raise TypeError(f'paramwise_cfg must be a dict, got {type(cfg).__name__}')
        unknown = sorted(set(cfg) - set(self.PARAMWISE_KEYS))
        if unknown:
            raise ValueError(f'{type(self).__name__}: unknown paramwise_cfg key(s) {unknown}; '
                             f'allowed keys are {list(self.PARAMWISE_KEYS)}')
        if 'decay_rate' not in cfg:
            raise ValueError(f'{type(self).__name__}: paramwise_cfg.decay_rate is required '
                             '(0 < decay_rate <= 1; 1.0 means no layer decay)')
        rate = cfg['decay_rate']
        if not _is_number(rate) or not 0 < rate <= 1:
            raise ValueError(f'paramwise_cfg.decay_rate must be a number in (0, 1], got {rate!r}')
        decay_type = cfg.get('decay_type', 'layer_wise')
        if decay_type not in self.DECAY_TYPES:
            raise ValueError(f'paramwise_cfg.decay_type must be one of {self.DECAY_TYPES}, '
                             f'got {decay_type!r}')
        num_layers = cfg.get('num_layers')
        if num_layers is not None and (not isinstance(num_layers, int)
                                       or isinstance(num_layers, bool) or num_layers < 1):
            raise ValueError(f'paramwise_cfg.num_layers must be a positive int, '
                             f'got {num_layers!r}')
        for key, value in self._lr_mults().items():
            if not _is_number(value) or value < 0:
                raise ValueError(f'paramwise_cfg.{key} must be a number >= 0, got {value!r}')
        if not _is_number(self.base_lr) or self.base_lr <= 0:
            raise ValueError(f'optimizer.lr must be a positive number, got {self.base_lr!r}')
        if self.base_wd is not None and (not _is_number(self.base_wd) or self.base_wd < 0):
            raise ValueError(f'optimizer.weight_decay must be a number >= 0, '
                             f'got {self.base_wd!r}')

    def _lr_mults(self) -> Dict[str, float]:
        """``{'position_lr_mult': ..., 'sigma_lr_mult': ...}`` from ``paramwise_cfg`` or the
        defaults of :mod:`mmdcls.models.utils.dcls_params`."""
        return dict(
            position_lr_mult=self.paramwise_cfg.get('position_lr_mult', DEFAULT_POSITION_LR_MULT),
            sigma_lr_mult=self.paramwise_cfg.get('sigma_lr_mult', DEFAULT_SIGMA_LR_MULT))

    def __call__(self, model: nn.Module):
        # The parent skips add_params when paramwise_cfg is empty; ours never is (decay_rate is
        # required), so its __call__ always goes through add_params below.
        if is_model_wrapper(model):
            model = model.module
        return super().__call__(model)

    # ------------------------------------------------------------------ layer ids
    def _backbone(self, model: nn.Module) -> Tuple[nn.Module, str]:
        """The module whose parameters are decayed and its name prefix in ``model``."""
        backbone = getattr(model, 'backbone', None)
        if isinstance(backbone, nn.Module):
            return backbone, 'backbone.'
        # ImageNet form: the classifier is the backbone plus a head, with the released layout.
        return model, ''

    def _layer_id_fn(self, model: nn.Module) -> Tuple[Callable[[str], int], int, str]:
        """``(name -> layer id, number of layer ids, where the rule comes from)``.

        The model defines its layer ids: ``backbone.get_layer_depth(name, prefix)`` for
        ``layer_wise`` (mmpretrain's protocol), ``backbone.get_stage_depth(name, prefix)`` for
        ``stage_wise``. The fallback, for a ConvNeXt-layout backbone without that method, is the
        same rule applied by name (:func:`mmdcls.models.backbones.convnext_layer_depth`) with
        ``paramwise_cfg.num_layers``, or with the ``num_layers`` of the backbone's
        ``get_layer_depth`` when only ``get_stage_depth`` is missing.
        """
        cfg_layers = self.paramwise_cfg.get('num_layers')
        decay_type = self.paramwise_cfg.get('decay_type', 'layer_wise')
        backbone, prefix = self._backbone(model)
        backbone_name = type(backbone).__name__
        layer_depth = getattr(backbone, 'get_layer_depth', None)

        if callable(layer_depth):
            first = next((prefix + n for n, _ in backbone.named_parameters()), None)
            if first is None:
                raise ValueError(f'{backbone_name} has no parameters to decay')
            num_layers = layer_depth(first, prefix)[1] - 2
            if cfg_layers is not None and cfg_layers != num_layers:
                raise ValueError(
                    f'paramwise_cfg.num_layers={cfg_layers} disagrees with '
                    f'{backbone_name}.get_layer_depth, which defines num_layers={num_layers} '
                    f'for this arch; set num_layers={num_layers} or leave it out')
        elif cfg_layers is not None:
            num_layers = cfg_layers
        else:
            raise ValueError(f'{backbone_name} has no get_layer_depth(); set '
                             'paramwise_cfg.num_layers (6 for ConvNeXt-T, 12 for S/B/L/XL) to '
                             "apply mmdcls's ConvNeXt rule by parameter name")
        max_id = num_layers + 2

        method_name = 'get_layer_depth' if decay_type == 'layer_wise' else 'get_stage_depth'
        method = getattr(backbone, method_name, None)
        if callable(method):
            depth_of = method
            rule = f'{backbone_name}.{method_name}'
        elif hasattr(backbone, 'downsample_layers') and hasattr(backbone, 'stages'):

            def depth_of(name: str, prefix: str) -> Tuple[int, int]:
                return convnext_layer_depth(name, prefix, num_layers, decay_type)

            rule = f'ConvNeXt {decay_type} rule by name ({backbone_name} has no {method_name})'
        else:
            raise ValueError(
                f'{type(self).__name__} ({decay_type}) needs a ConvNeXt-layout backbone '
                f'(downsample_layers, stages) or one with {method_name}(); got {backbone_name}')

        def layer_id(name: str) -> int:
            layer, n_ids = depth_of(name, prefix)
            if n_ids != max_id:
                raise ValueError(f'{rule}({name!r}) returned {n_ids} layer ids, expected '
                                 f'{max_id} as for the others')
            if not isinstance(layer, int) or not 0 <= layer < max_id:
                raise ValueError(f'layer id {layer!r} of {name} is outside [0, {max_id}) for '
                                 f'num_layers={num_layers} ({decay_type}); is num_layers right '
                                 'for this arch?')
            return layer

        return layer_id, max_id, rule

    # ------------------------------------------------------------------ groups
    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '', **kwargs) -> None:
        """Fill ``params`` with one group per (layer id, kind) of ``module``'s parameters."""
        if prefix:
            raise ValueError(f'{type(self).__name__}.add_params builds the groups of a whole '
                             f'model; got prefix={prefix!r}')
        cfg = self.paramwise_cfg
        decay_rate = cfg['decay_rate']
        mults = self._lr_mults()
        layer_id_of, max_id, rule = self._layer_id_fn(module)

        # Every name under which each parameter is registered: a shared one has several.
        names: Dict[int, List[str]] = OrderedDict()
        param_of: Dict[int, nn.Parameter] = {}
        for name, param in module.named_parameters(remove_duplicate=False):
            names.setdefault(id(param), []).append(name)
            param_of[id(param)] = param

        groups: Dict[Tuple[int, str], dict] = {}
        frozen = 0
        for pid, param_names in names.items():
            param = param_of[pid]
            if not param.requires_grad:
                frozen += 1
                continue
            local = {n.rsplit('.', 1)[-1] for n in param_names}
            if POSITION_PARAM in local:
                kind = 'position'
            elif SIGMA_PARAM in local:
                kind = 'sigma'
            elif (param.ndim == 1 or any(n.endswith('.bias') for n in param_names)
                  or local & set(NO_DECAY_NAMES)):
                kind = 'no_decay'
            else:
                kind = 'decay'
            # A shared parameter learns at the rate of the shallowest layer that uses it.
            layer_id = min(layer_id_of(n) for n in param_names)
            group = groups.get((layer_id, kind))
            if group is None:
                scale = decay_rate**(max_id - layer_id - 1) * mults.get(f'{kind}_lr_mult', 1.0)
                group = dict(
                    params=[],
                    lr=self.base_lr * scale,
                    lr_scale=scale,
                    group_name=f'layer_{layer_id}_{kind}',
                    param_names_=[])
                if kind != 'decay':
                    group['weight_decay'] = 0.0
                elif self.base_wd is not None:
                    group['weight_decay'] = self.base_wd
                groups[(layer_id, kind)] = group
            group['params'].append(param)
            group['param_names_'].append(param_names[0])

        # Deepest layers first: the first group is the head's, whose lr is the base lr that
        # mmengine's logger reports.
        ordered = [groups[k] for k in sorted(groups, key=lambda k: (-k[0], KINDS.index(k[1])))]
        seen = set()
        for group in ordered:
            for param in group['params']:
                if id(param) in seen:  # guarded by construction; a duplicate breaks torch
                    raise RuntimeError(f'parameter in more than one group: {group}')
                seen.add(id(param))
        self._log_groups(ordered, rule, max_id, frozen)
        for group in ordered:
            del group['param_names_']
        params.extend(ordered)

    def _log_groups(self, groups: List[dict], rule: str, max_id: int, frozen: int) -> None:
        cfg = self.paramwise_cfg
        mults = self._lr_mults()
        header = ('group', 'lr_scale', 'lr', 'weight_decay', 'tensors', 'elements', 'e.g.')
        rows = []
        for g in groups:
            example = g['param_names_'][0] + (', ...' if len(g['param_names_']) > 1 else '')
            rows.append((g['group_name'], f"{g['lr_scale']:.4g}", f"{g['lr']:.4g}",
                         f"{g.get('weight_decay', 'default')}", str(len(g['params'])),
                         str(sum(p.numel() for p in g['params'])), example))
        widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
        line = '  '.join('{:<%d}' % w for w in widths)
        table = [line.format(*header)] + [line.format(*r) for r in rows]
        print_log(
            f'{type(self).__name__}: {len(groups)} parameter groups, decay_type='
            f"{cfg.get('decay_type', 'layer_wise')}, decay_rate={cfg['decay_rate']}, "
            f'{max_id} layer ids ({rule}), position_lr_mult={mults["position_lr_mult"]}, '
            f'sigma_lr_mult={mults["sigma_lr_mult"]}, {frozen} frozen parameter(s) left out\n' +
            '\n'.join(table),
            logger='current')
