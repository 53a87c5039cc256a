"""Layer-wise learning-rate decay for ConvNeXt-DCLS, with DCLS positions in their own groups.

The release's detection / segmentation recipe (mmdet 2.x / mmseg 0.x
``LearningRateDecayOptimizerConstructor``) with three changes made explicit:

* DCLS positions (``P``) and sigmas (``SIG``) get no weight decay and their own learning-rate
  multiplier (``position_lr_mult``, ``sigma_lr_mult``) on top of the layer scale;
* layer ids come from the backbone's ``get_layer_depth`` (as mmpretrain's constructors do) when
  it has one, so the depth rule lives next to the model;
* a parameter shared by several layers (one ``P`` per stage, used by every block of the stage)
  is put in exactly one group, with the layer id of the shallowest layer that uses it.
"""
import numbers
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Tuple

from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from mmdcls.registry import OPTIM_WRAPPER_CONSTRUCTORS

# Kinds of parameter groups, in the order they are listed inside one layer.
KINDS = ('decay', 'no_decay', 'position', 'sigma')
POSITION_NAME = 'P'
SIGMA_NAME = 'SIG'
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
    * ``decay_type``: ``'layer_wise'`` (default; ConvNeXt's rule: stem 0, stage 0 -> 1,
      stage 1 -> 2, stage 2 -> 3 + block // 3, stage 3 -> num_layers) or ``'stage_wise'``
      (downsample layers 0, stage i -> i + 1).
    * ``num_layers``: the number of backbone layer ids. Taken from the backbone's
      ``get_layer_depth`` when it has one (then a value given here must agree with it);
      required otherwise.
    * ``position_lr_mult`` (default 5.0, as the release's ImageNet training): lr multiplier of
      the positions ``P``, applied on top of the layer scale.
    * ``sigma_lr_mult`` (default 1.0): lr multiplier of the sigmas ``SIG`` (``gauss``/``max``).

    Positions and sigmas get weight decay 0; so do 1-D parameters (norms, layer-scale ``gamma``)
    and biases. Frozen parameters (``requires_grad=False``) are left out. The groups are logged
    once as a table.
    """

    PARAMWISE_KEYS = ('decay_rate', 'decay_type', 'num_layers', 'position_lr_mult',
                      'sigma_lr_mult')
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
        for key, default in (('position_lr_mult', 5.0), ('sigma_lr_mult', 1.0)):
            value = cfg.get(key, default)
            if not _is_number(value) or value < 0:
                raise ValueError(f'paramwise_cfg.{key} must be a number >= 0, got {value!r}')
        if not _is_number(self.base_lr) or self.base_lr <= 0:
            raise ValueError(f'optimizer.lr must be a positive number, got {self.base_lr!r}')
        if self.base_wd is not None and (not _is_number(self.base_wd) or self.base_wd < 0):
            raise ValueError(f'optimizer.weight_decay must be a number >= 0, '
                             f'got {self.base_wd!r}')

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
        """``(name -> layer id, number of layer ids, where the rule comes from)``."""
        cfg_layers = self.paramwise_cfg.get('num_layers')
        decay_type = self.paramwise_cfg.get('decay_type', 'layer_wise')
        backbone, prefix = self._backbone(model)
        backbone_name = type(backbone).__name__
        depth_fn = getattr(backbone, 'get_layer_depth', None)

        num_layers = None
        if callable(depth_fn):
            first = next((prefix + n for n, _ in backbone.named_parameters()), None)
            if first is None:
                raise ValueError(f'{backbone_name} has no parameters to decay')
            _, max_id = depth_fn(first, prefix)
            num_layers = max_id - 2
            if cfg_layers is not None and cfg_layers != num_layers:
                raise ValueError(
                    f'paramwise_cfg.num_layers={cfg_layers} disagrees with '
                    f'{backbone_name}.get_layer_depth, which defines num_layers={num_layers} '
                    f'for this arch; set num_layers={num_layers} or leave it out')
        elif cfg_layers is not None:
            num_layers = cfg_layers
        else:
            raise ValueError(f'{backbone_name} has no get_layer_depth(); set '
                             'paramwise_cfg.num_layers (6 for ConvNeXt-T, 12 for S/B/L/XL)')
        max_id = num_layers + 2

        if not (hasattr(backbone, 'downsample_layers') and hasattr(backbone, 'stages')) and (
                decay_type == 'stage_wise' or not callable(depth_fn)):
            raise ValueError(
                f'{type(self).__name__} ({decay_type}) needs a ConvNeXt-layout backbone '
                f'(downsample_layers, stages) or one with get_layer_depth(); got {backbone_name}')

        def check(name: str, layer_id) -> int:
            if not isinstance(layer_id, int) or not 0 <= layer_id < max_id:
                raise ValueError(f'layer id {layer_id!r} of {name} is outside [0, {max_id}) '
                                 f'for num_layers={num_layers} ({decay_type}); '
                                 'is num_layers right for this arch?')
            return layer_id

        if decay_type == 'layer_wise' and callable(depth_fn):
            def layer_id(name: str) -> int:
                if not name.startswith(prefix):
                    return max_id - 1  # neck and heads: full lr
                layer, max_layer = depth_fn(name, prefix)
                if max_layer != max_id:
                    raise ValueError(f'{backbone_name}.get_layer_depth({name!r}) returned max '
                                     f'depth {max_layer}, expected {max_id} as for the others')
                return check(name, layer)
            return layer_id, max_id, f'{backbone_name}.get_layer_depth'

        def by_name(name: str) -> int:
            if not name.startswith(prefix):
                return max_id - 1
            parts = name[len(prefix):].split('.')
            if parts[0] not in ('downsample_layers', 'stages'):
                return max_id - 1  # per-output norms, final norm, head
            try:
                stage = int(parts[1])
                block = int(parts[2]) if parts[0] == 'stages' else 0
            except (IndexError, ValueError):
                raise ValueError(f'cannot read the stage/block of {name}: expected '
                                 f'{prefix}downsample_layers.<stage>.* or '
                                 f'{prefix}stages.<stage>.<block>.*') from None
            if decay_type == 'stage_wise':
                return check(name, 0 if parts[0] == 'downsample_layers' else stage + 1)
            if parts[0] == 'downsample_layers':
                return check(name, {0: 0, 1: 2, 2: 3}.get(stage, num_layers))
            if stage < 2:
                return stage + 1
            return check(name, 3 + block // 3 if stage == 2 else num_layers)
        return by_name, max_id, f'ConvNeXt {decay_type} names'

    # ------------------------------------------------------------------ groups
    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   **kwargs) -> None:
        """Fill ``params`` with one group per (layer id, kind) of ``module``'s parameters."""
        if prefix:
            raise ValueError(f'{type(self).__name__}.add_params builds the groups of a whole '
                             f'model; got prefix={prefix!r}')
        cfg = self.paramwise_cfg
        decay_rate = cfg['decay_rate']
        mults = {'position': cfg.get('position_lr_mult', 5.0),
                 'sigma': cfg.get('sigma_lr_mult', 1.0)}
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
            if POSITION_NAME in local:
                kind = 'position'
            elif SIGMA_NAME in local:
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
                scale = decay_rate ** (max_id - layer_id - 1) * mults.get(kind, 1.0)
                group = dict(params=[], lr=self.base_lr * scale, lr_scale=scale,
                             group_name=f'layer_{layer_id}_{kind}', param_names_=[])
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
            f'{max_id} layer ids ({rule}), position_lr_mult='
            f"{cfg.get('position_lr_mult', 5.0)}, sigma_lr_mult={cfg.get('sigma_lr_mult', 1.0)}"
            f', {frozen} frozen parameter(s) left out\n' + '\n'.join(table),
            logger='current')
