"""The argument checks of the ConvNeXt-DCLS models, shared by their constructors and
``check_config``.

The constructors of :class:`~mmdcls.models.backbones.ConvNeXtDCLSTrunk`,
:class:`~mmdcls.models.ConvNeXtDCLS` and :class:`~mmdcls.models.ConvNeXtDCLSClassifier` call
these functions on their own arguments; :func:`check_config` runs the same functions on a
config's keyword arguments without building anything (``mmdcls.utils.config_checks`` calls it,
through ``ConvNeXtDCLS.check_config``), so a config and the classes never disagree on what is
valid. Every error names the argument and what it may be.
"""
import inspect
from typing import Mapping, NamedTuple, Optional, Tuple

from torch import nn

from mmdcls.ops import as_ntuple
from mmdcls.ops.construct import check_version
from ..utils.dcls_params import DEFAULT_VERSION
from ..utils.layer_scope import CONV_EXAMPLES, NORM_EXAMPLES, layer_class

#: the release's dilated kernel size, used when ``dwconv_cfg`` and ``dilated_kernel_size`` are
#: None
DEFAULT_DILATED_KERNEL_SIZE = 17
#: the depthwise DCLS options, which apply only when ``dwconv_cfg`` is None
DCLS_OPTIONS = ('dilated_kernel_size', 'kernel_count', 'version')
#: the keys an ``arch`` dict may have
ARCH_KEYS = ('depths', 'channels', 'kernel_count')
#: the keys of an ``init_cfg`` ``Pretrained`` entry
PRETRAINED_KEYS = ('type', 'checkpoint', 'prefix', 'map_location')
#: keys of ``dwconv_cfg`` that the trunk sets itself (depthwise: the stage channels)
DWCONV_SET_BY_TRUNK = ('in_channels', 'out_channels', 'groups')


class TrunkArgs(NamedTuple):
    """The trunk's arguments, checked and resolved (:func:`check_trunk_args`)."""
    depths: Tuple[int, ...]
    channels: Tuple[int, ...]
    #: the depthwise DCLS layer's settings, when ``dwconv_cfg`` is None (else all None)
    dilated_kernel_size: Optional[Tuple[int, int]]
    kernel_count: Optional[int]
    version: Optional[str]
    #: ``dwconv_cfg`` completed with the same-size ``padding`` (None: the DCLS layer above)
    dwconv_cfg: Optional[dict]


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f'{name} must be True or False, got {value!r}')


# ---------------------------------------------------------------------- trunk
def parse_arch(arch, arch_settings: Mapping[str, dict], num_stages: int) -> dict:
    """``arch`` (a name of ``arch_settings`` or a dict of :data:`ARCH_KEYS`) as a new dict."""
    if isinstance(arch, str):
        if arch not in arch_settings:
            raise ValueError(f'arch must be one of {list(arch_settings)} or a dict with '
                             f"'depths' and 'channels', got {arch!r}")
        return dict(arch_settings[arch])
    if not isinstance(arch, dict):
        raise TypeError(f'arch must be a str or a dict, got {type(arch).__name__}')
    unknown = set(arch) - set(ARCH_KEYS)
    if unknown or not {'depths', 'channels'} <= set(arch):
        raise ValueError("an arch dict needs 'depths' and 'channels' (and optionally "
                         f"'kernel_count'), got keys {sorted(arch)}")
    for key in ('depths', 'channels'):
        value = arch[key]
        if (not isinstance(value, (list, tuple)) or len(value) != num_stages
                or not all(_positive_int(v) for v in value)):
            raise ValueError(f'arch[{key!r}] must be {num_stages} positive ints, got {value!r}')
    return dict(arch)


def check_norm_cfg(norm_cfg, key: str = 'norm_cfg') -> type:
    """The norm class of ``norm_cfg`` (built by mmcv's ``build_norm_layer``), checked."""
    norm_cls = layer_class(norm_cfg, key, NORM_EXAMPLES)
    if norm_cfg.get('requires_grad', True) is not True:
        raise ValueError(f'{key}.requires_grad must be True (freeze with frozen_stages), got '
                         f"{norm_cfg['requires_grad']!r}")
    if issubclass(norm_cls, nn.GroupNorm) and 'num_groups' not in norm_cfg:
        raise ValueError(f'{key} {norm_cfg!r}: a GroupNorm needs num_groups')
    return norm_cls


def dwconv_layer_cfg(dwconv_cfg) -> dict:
    """``dwconv_cfg`` checked and completed with the padding that keeps the spatial size
    (``kernel_size // 2``, kernel_size from the config or the layer's default) unless given;
    ``build_conv_layer(cfg, C, C, groups=C)`` then builds the depthwise layer."""
    layer_cls = layer_class(dwconv_cfg, 'dwconv_cfg', CONV_EXAMPLES)
    for key in DWCONV_SET_BY_TRUNK:
        if key in dwconv_cfg:
            raise ValueError(f'dwconv_cfg must not set {key!r}: the backbone sets it to the '
                             f'stage channels (depthwise)')
    cfg = dict(dwconv_cfg)
    if 'padding' not in cfg:
        kernel_size = cfg.get('kernel_size')
        if kernel_size is None:
            param = inspect.signature(layer_cls).parameters.get('kernel_size')
            kernel_size = None if param is None else param.default
        if not isinstance(kernel_size, (int, tuple, list)):
            raise ValueError(f'dwconv_cfg {dwconv_cfg!r}: give kernel_size or padding')
        cfg['padding'] = (
            kernel_size // 2 if isinstance(kernel_size, int) else tuple(k // 2
                                                                        for k in kernel_size))
    return cfg


def check_same_size(layer: nn.Module, dwconv_cfg: dict) -> None:
    """The residual needs the depthwise layer built from ``dwconv_cfg`` to keep (H, W): stride 1,
    ``2 * padding == dilation * (kernel_size - 1)`` (or ``padding='same'``)."""
    attrs = [getattr(layer, a, None) for a in ('kernel_size', 'padding', 'stride', 'dilation')]
    if any(a is None for a in attrs):
        return  # not conv-like; a wrong size then fails loudly at the residual add
    ks, pad, stride, dil = (
        a if isinstance(a, str) else tuple(a) if isinstance(a, (tuple, list)) else (a, a)
        for a in attrs)
    if pad == 'same' and stride == (1, 1):
        return
    if (isinstance(pad, str) or stride != (1, 1)
            or any(2 * p != d * (k - 1) for k, p, d in zip(ks, pad, dil))):
        raise ValueError(f'dwconv_cfg {dwconv_cfg!r} gives a layer that changes the '
                         f'spatial size (kernel_size {ks}, padding {pad}, stride {stride}, '
                         f'dilation {dil}); the depthwise layer must keep it')


def check_pretrained_cfg(init_cfg) -> Optional[dict]:
    """The one ``Pretrained`` entry of ``init_cfg`` (a dict or a list), checked; or None."""
    cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
    pretrained = [c for c in cfgs if isinstance(c, dict) and c.get('type') == 'Pretrained']
    if not pretrained:
        return None
    if len(pretrained) > 1:
        raise ValueError(f'init_cfg has {len(pretrained)} Pretrained entries; give one')
    cfg = pretrained[0]
    if set(cfg) - set(PRETRAINED_KEYS) or 'checkpoint' not in cfg:
        raise ValueError("init_cfg Pretrained takes 'checkpoint' and optionally 'prefix', "
                         f"'map_location'; got {cfg!r}")
    return cfg


def _dcls_options(args: Mapping, arch: dict) -> Tuple[Tuple[int, int], int, str]:
    """``(dilated_kernel_size, kernel_count, version)`` of the depthwise DCLS layer."""
    size = args['dilated_kernel_size']
    size = as_ntuple(DEFAULT_DILATED_KERNEL_SIZE if size is None else size, 2,
                     'dilated_kernel_size')
    if any(s < 1 or s % 2 == 0 for s in size):
        raise ValueError(f'dilated_kernel_size must be odd and positive (the depthwise layer '
                         f'keeps the spatial size), got {size}')
    version = DEFAULT_VERSION if args['version'] is None else args['version']
    check_version(version)
    kernel_count = args['kernel_count']
    if kernel_count is None:
        if 'kernel_count' not in arch:
            raise ValueError(f'kernel_count is needed: give it, or put it in the arch dict '
                             f'({arch!r})')
        kernel_count = arch['kernel_count']
    if not _positive_int(kernel_count):
        raise ValueError(f'kernel_count must be a positive int, got {kernel_count!r}')
    return size, kernel_count, version


def check_trunk_args(args: Mapping, arch_settings: Mapping[str, dict],
                     num_stages: int) -> TrunkArgs:
    """Checks the trunk's arguments (``arch``, ``in_channels``, the DCLS options or
    ``dwconv_cfg``, ``share_positions``, ``drop_path_rate``, ``norm_cfg``, ``with_cp``,
    ``init_cfg``) and resolves ``arch`` and the depthwise layer."""
    arch = parse_arch(args['arch'], arch_settings, num_stages)
    dwconv_cfg = args['dwconv_cfg']
    if dwconv_cfg is None:
        size, kernel_count, version = _dcls_options(args, arch)
    else:
        given = [k for k in DCLS_OPTIONS if args[k] is not None]
        if given:
            raise ValueError(f'{given} only apply when dwconv_cfg is None; put them in '
                             f'dwconv_cfg ({dwconv_cfg!r}) instead')
        size = kernel_count = version = None
        dwconv_cfg = dwconv_layer_cfg(dwconv_cfg)
    if not _positive_int(args['in_channels']):
        raise ValueError(f"in_channels must be a positive int, got {args['in_channels']!r}")
    _check_bool('share_positions', args['share_positions'])
    drop_path_rate = args['drop_path_rate']
    if not isinstance(drop_path_rate, (int, float)) or not 0 <= drop_path_rate < 1:
        raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate!r}')
    check_norm_cfg(args['norm_cfg'])
    _check_bool('with_cp', args['with_cp'])
    check_pretrained_cfg(args['init_cfg'])
    return TrunkArgs(
        tuple(arch['depths']), tuple(arch['channels']), size, kernel_count, version, dwconv_cfg)


# ---------------------------------------------------------------------- what sits on top
def parse_out_indices(out_indices, num_stages: int) -> Tuple[int, ...]:
    """``out_indices`` (an int or a sequence, negative counting from the end) as sorted
    non-negative stage indices."""
    if isinstance(out_indices, int):
        out_indices = [out_indices]
    if not isinstance(out_indices, (list, tuple)) or not out_indices:
        raise TypeError(f'out_indices must be an int or a non-empty sequence of ints, got '
                        f'{out_indices!r}')
    parsed = []
    for index in out_indices:
        if not isinstance(index, int) or not -num_stages <= index < num_stages:
            raise ValueError(f'out_indices entries must be ints in [-{num_stages}, '
                             f'{num_stages - 1}], got {out_indices!r}')
        parsed.append(index % num_stages)
    if len(set(parsed)) != len(parsed):
        raise ValueError(f'out_indices has duplicates: {out_indices!r}')
    return tuple(sorted(parsed))


def check_backbone_args(args: Mapping, num_stages: int) -> Tuple[int, ...]:
    """Checks the backbone's own arguments (``out_indices``, ``frozen_stages``,
    ``out_norms``); returns the parsed ``out_indices``."""
    out_indices = parse_out_indices(args['out_indices'], num_stages)
    frozen_stages = args['frozen_stages']
    if not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= num_stages:
        raise ValueError(f'frozen_stages must be an int in [-1, {num_stages}], '
                         f'got {frozen_stages!r}')
    _check_bool('out_norms', args['out_norms'])
    return out_indices


def check_refused(model_cls: type, keys) -> None:
    """Raises for a key the class refuses (its ``refused_arguments``: key -> why)."""
    for key, reason in getattr(model_cls, 'refused_arguments', {}).items():
        if key in keys:
            raise ValueError(f'{model_cls.__name__} does not take {key!r} ({reason})')


def check_classifier_args(args: Mapping) -> None:
    """Checks the ImageNet classifier's own arguments (``num_classes``)."""
    if not _positive_int(args['num_classes']):
        raise ValueError(f"num_classes must be a positive int, got {args['num_classes']!r}")


# ---------------------------------------------------------------------- whole configs
def constructor_arguments(model_cls: type, cfg: Mapping) -> dict:
    """Every named constructor argument of ``model_cls`` for the keyword arguments ``cfg``,
    defaults filled in, following ``**kwargs`` up the class hierarchy to the first constructor
    without them (the trunk's); a subclass's default wins. Raises ``TypeError`` for a key no
    constructor takes and ``ValueError`` for one the class refuses."""
    check_refused(model_cls, cfg)
    remaining, args = dict(cfg), {}
    for klass in model_cls.__mro__:
        init = vars(klass).get('__init__')
        if init is None:
            continue
        params = list(inspect.signature(init).parameters.values())[1:]  # without self
        for p in params:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                if p.name in remaining:
                    args.setdefault(p.name, remaining.pop(p.name))
                elif p.default is not p.empty:
                    args.setdefault(p.name, p.default)
        if all(p.kind != p.VAR_KEYWORD for p in params):
            break
    if remaining:
        raise TypeError(f'{model_cls.__name__} takes no argument(s) {sorted(remaining)}')
    return args


def check_config(model_cls: type, cfg: Mapping) -> None:
    """Runs the checks the constructors of ``model_cls`` would run on the keyword arguments
    ``cfg`` (without ``type``), in their order, without building anything: the backbone's or
    the classifier's own arguments (whichever the class takes), then the trunk's."""
    args = constructor_arguments(model_cls, cfg)
    if 'out_indices' in args:
        check_backbone_args(args, model_cls.num_stages)
    if 'num_classes' in args:
        check_classifier_args(args)
    check_trunk_args(args, model_cls.arch_settings, model_cls.num_stages)
