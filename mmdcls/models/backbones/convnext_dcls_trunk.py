"""The part of ConvNeXt-DCLS that the backbone and the ImageNet classifier share.

:class:`ConvNeXtDCLSTrunk` is the stem, the four downsample layers and the four stages of
blocks, with the positions shared per stage, the release's initialisation, the layer-id rule of
layer-wise lr decay and checked checkpoint loading. What sits on top differs and lives in the
subclasses: :class:`~mmdcls.models.ConvNeXtDCLS` adds the per-stage output norms ``norm{i}``,
``out_indices`` and ``frozen_stages`` (detection / segmentation / mmpretrain);
:class:`~mmdcls.models.ConvNeXtDCLSClassifier` adds the release's pooled ``norm`` and ``head``.
"""
import inspect
from typing import Optional, Tuple, Union

import torch
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor, nn

from mmdcls.ops import VERSIONS, Dcls2d
from mmdcls.registry import MODELS
from ..utils import (SHARED_PARAM_NAMES, build_norm, check_shared_positions, checkpoint_filter_fn,
                     extract_state_dict, load_checkpoint_file, load_state_dict_checked)
from .layer_ids import convnext_layer_depth, convnext_num_layers


class ConvNeXtDCLSBlock(nn.Module):
    """dwconv -> LayerNorm -> Linear (4x) -> GELU -> Linear -> layer scale -> drop path, residual.

    (N, C, H, W) -> (N, C, H, W). The pointwise convs are Linear layers on (N, H, W, C) as in the
    release.
    """

    def __init__(self,
                 dwconv: nn.Module,
                 channels: int,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 with_cp: bool = False) -> None:
        super().__init__()
        self.dwconv = dwconv
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.pwconv1 = nn.Linear(channels, 4 * channels)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * channels, channels)
        self.gamma = (
            nn.Parameter(layer_scale_init_value *
                         torch.ones(channels)) if layer_scale_init_value > 0 else None)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0. else nn.Identity()
        self.with_cp = with_cp

    def _inner_forward(self, x: Tensor) -> Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        if self.gamma is not None:
            y = self.gamma * y
        return x + self.drop_path(y.permute(0, 3, 1, 2))

    def forward(self, x: Tensor) -> Tensor:
        if self.with_cp and self.training and torch.is_grad_enabled():
            # Non-reentrant: handles parameters shared across checkpointed blocks (one P per
            # stage) and DistributedDataParallel, and needs no input that requires grad.
            return cp.checkpoint(self._inner_forward, x, use_reentrant=False)
        return self._inner_forward(x)


class ConvNeXtDCLSTrunk(BaseModule):
    """Stem, downsample layers and stages of ConvNeXt-DCLS; subclasses add what sits on top.

    :meth:`forward_stages` maps (N, in_channels, H, W) to the four stage maps
    (N, channels[i], H / 2 ** (i + 2), W / 2 ** (i + 2)). The arguments are those of
    :class:`~mmdcls.models.ConvNeXtDCLS` that both forms take (``arch``, ``in_channels``,
    ``dilated_kernel_size``, ``kernel_count``, ``version``, ``share_positions``,
    ``dwconv_cfg``, ``drop_path_rate``, ``layer_scale_init_value``, ``norm_cfg`` of the
    downsample layers, ``with_cp``, ``init_cfg``); see there.
    """
    arch_settings = {
        'tiny': dict(depths=[3, 3, 9, 3], channels=[96, 192, 384, 768], kernel_count=34),
        'small': dict(depths=[3, 3, 27, 3], channels=[96, 192, 384, 768], kernel_count=40),
        'base': dict(depths=[3, 3, 27, 3], channels=[128, 256, 512, 1024], kernel_count=40),
        'large': dict(depths=[3, 3, 27, 3], channels=[192, 384, 768, 1536], kernel_count=40),
        'xlarge': dict(depths=[3, 3, 27, 3], channels=[256, 512, 1024, 2048], kernel_count=40),
    }
    num_stages = 4
    #: depthwise kernel settings used only when ``dwconv_cfg`` is None (their defaults)
    _DCLS_DEFAULTS = dict(dilated_kernel_size=17, kernel_count=None, version='v0')

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 dilated_kernel_size: Union[int, Tuple[int, int]] = 17,
                 kernel_count: Optional[int] = None,
                 version: str = 'v0',
                 share_positions: bool = True,
                 dwconv_cfg: Optional[dict] = None,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 norm_cfg: dict = dict(type='LN2d', eps=1e-6),
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        arch, kernel_count = self._check_trunk_args(arch, in_channels, dilated_kernel_size,
                                                    kernel_count, version, dwconv_cfg,
                                                    drop_path_rate)
        self.depths = list(arch['depths'])
        self.channels = list(arch['channels'])
        self.dilated_kernel_size = dilated_kernel_size
        self.kernel_count = kernel_count
        self.version = version
        self.dwconv_cfg = dwconv_cfg
        self.share_positions = bool(share_positions)
        self.with_cp = with_cp

        self.downsample_layers = nn.ModuleList()
        self.downsample_layers.append(
            nn.Sequential(
                nn.Conv2d(in_channels, self.channels[0], kernel_size=4, stride=4),
                build_norm(norm_cfg, self.channels[0])))
        for i in range(1, self.num_stages):
            self.downsample_layers.append(
                nn.Sequential(
                    build_norm(norm_cfg, self.channels[i - 1]),
                    nn.Conv2d(self.channels[i - 1], self.channels[i], kernel_size=2, stride=2)))

        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, sum(self.depths))]
        self.stages = nn.ModuleList()
        cur = 0
        for depth, channels in zip(self.depths, self.channels):
            blocks = [
                ConvNeXtDCLSBlock(
                    self._build_dwconv(channels), channels, dpr[cur + j], layer_scale_init_value,
                    with_cp) for j in range(depth)
            ]
            cur += depth
            if self.share_positions:
                self._share(blocks)
            self.stages.append(nn.Sequential(*blocks))
        self.apply(self._release_init)

    # ------------------------------------------------------------------ argument checks
    @classmethod
    def check_config(cls, cfg: dict) -> None:
        """Runs the constructor's argument checks on ``cfg`` (its keyword arguments, without
        ``type``) without building anything, raising what the constructor would (and
        ``TypeError`` for a key no constructor takes). ``mmdcls.utils.config_checks`` calls it
        on a config's backbone, so a config and the class never disagree on what is valid."""
        cls._check_args(cls._constructor_arguments(cfg))

    @classmethod
    def _constructor_arguments(cls, cfg: dict) -> dict:
        """Every named constructor argument for ``cfg``, defaults filled in, following
        ``**kwargs`` up the class hierarchy to the trunk (a subclass's default wins)."""
        remaining, args = dict(cfg), {}
        for klass in cls.__mro__:
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
            if klass is ConvNeXtDCLSTrunk or all(p.kind != p.VAR_KEYWORD for p in params):
                break
        if remaining:
            raise TypeError(f'{cls.__name__} takes no argument(s) {sorted(remaining)}')
        return args

    @classmethod
    def _check_args(cls, args: dict) -> None:
        """The checks of :meth:`check_config`; subclasses add theirs."""
        cls._check_trunk_args(*(args[k] for k in ('arch', 'in_channels', 'dilated_kernel_size',
                                                  'kernel_count', 'version', 'dwconv_cfg',
                                                  'drop_path_rate')))
        cls._check_pretrained_cfg(args.get('init_cfg'))

    @classmethod
    def _check_trunk_args(cls, arch, in_channels, dilated_kernel_size, kernel_count, version,
                          dwconv_cfg, drop_path_rate) -> Tuple[dict, Optional[int]]:
        """``(arch dict, kernel_count)`` after checking the trunk's arguments."""
        arch = cls._parse_arch(arch)
        if dwconv_cfg is None:
            if version not in VERSIONS:
                raise ValueError(f'version must be one of {VERSIONS}, got {version!r}')
            if kernel_count is None:
                if 'kernel_count' not in arch:
                    raise ValueError('kernel_count is needed: give it, or put it in the arch '
                                     f'dict ({arch!r})')
                kernel_count = arch['kernel_count']
        else:
            given = dict(
                dilated_kernel_size=dilated_kernel_size, kernel_count=kernel_count, version=version)
            conflicting = [k for k, v in given.items() if v != cls._DCLS_DEFAULTS[k]]
            if conflicting:
                raise ValueError(f'{conflicting} only apply when dwconv_cfg is None; put them in '
                                 f'dwconv_cfg ({dwconv_cfg!r}) instead')
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f'in_channels must be a positive int, got {in_channels!r}')
        if drop_path_rate < 0 or drop_path_rate >= 1:
            raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate!r}')
        return arch, kernel_count

    @classmethod
    def _parse_arch(cls, arch) -> dict:
        if isinstance(arch, str):
            if arch not in cls.arch_settings:
                raise ValueError(f'arch must be one of {list(cls.arch_settings)} or a dict with '
                                 f"'depths' and 'channels', got {arch!r}")
            return dict(cls.arch_settings[arch])
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or a dict, got {type(arch).__name__}')
        unknown = set(arch) - {'depths', 'channels', 'kernel_count'}
        if unknown or not {'depths', 'channels'} <= set(arch):
            raise ValueError("an arch dict needs 'depths' and 'channels' (and optionally "
                             f"'kernel_count'), got keys {sorted(arch)}")
        for key in ('depths', 'channels'):
            value = arch[key]
            if (not isinstance(value, (list, tuple)) or len(value) != cls.num_stages
                    or not all(isinstance(v, int) and v > 0 for v in value)):
                raise ValueError(f'arch[{key!r}] must be {cls.num_stages} positive ints, '
                                 f'got {value!r}')
        return dict(arch)

    @staticmethod
    def _check_pretrained_cfg(init_cfg) -> Optional[dict]:
        """The one ``Pretrained`` entry of ``init_cfg`` (a dict or a list), checked; or None."""
        cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
        pretrained = [c for c in cfgs if isinstance(c, dict) and c.get('type') == 'Pretrained']
        if not pretrained:
            return None
        if len(pretrained) > 1:
            raise ValueError(f'init_cfg has {len(pretrained)} Pretrained entries; give one')
        cfg = pretrained[0]
        unknown = set(cfg) - {'type', 'checkpoint', 'prefix', 'map_location'}
        if unknown or 'checkpoint' not in cfg:
            raise ValueError("init_cfg Pretrained takes 'checkpoint' and optionally 'prefix', "
                             f"'map_location'; got {cfg!r}")
        return cfg

    # ------------------------------------------------------------------ construction
    def _build_dwconv(self, channels: int) -> nn.Module:
        if self.dwconv_cfg is None:
            size = self.dilated_kernel_size
            padding = tuple(s // 2 for s in size) if isinstance(size, (tuple, list)) \
                else size // 2
            return Dcls2d(
                channels,
                channels,
                self.kernel_count,
                padding=padding,
                dilated_kernel_size=size,
                groups=channels,
                bias=True,
                version=self.version)
        if not isinstance(self.dwconv_cfg, dict) or 'type' not in self.dwconv_cfg:
            raise TypeError(f"dwconv_cfg must be a dict with a 'type' key, got "
                            f'{self.dwconv_cfg!r}')
        cfg = dict(self.dwconv_cfg)
        layer_type = cfg.pop('type')
        # get + call instead of MODELS.build: the lookup must not depend on the default scope
        # of the toolkit building the backbone (mmdet / mmseg / mmpretrain).
        cls = MODELS.get(layer_type) if isinstance(layer_type, str) else layer_type
        if cls is None:
            raise ValueError(f'dwconv_cfg.type {layer_type!r} is not registered')
        for key in ('in_channels', 'out_channels', 'groups'):
            if key in cfg:
                raise ValueError(f'dwconv_cfg must not set {key!r}: the backbone sets it to the '
                                 f'stage channels (depthwise)')
        if 'padding' not in cfg:
            kernel_size = cfg.get('kernel_size')
            if kernel_size is None:
                param = inspect.signature(cls).parameters.get('kernel_size')
                kernel_size = None if param is None else param.default
            if not isinstance(kernel_size, (int, tuple, list)):
                raise ValueError(f'dwconv_cfg {self.dwconv_cfg!r}: give kernel_size or padding')
            cfg['padding'] = (
                kernel_size // 2 if isinstance(kernel_size, int) else tuple(k // 2
                                                                            for k in kernel_size))
        layer = cls(channels, channels, groups=channels, **cfg)
        self._check_same_size(layer)
        return layer

    def _check_same_size(self, layer: nn.Module) -> None:
        """The residual needs dwconv to keep (H, W): stride 1, 2 * padding == extent - 1."""
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
            raise ValueError(f'dwconv_cfg {self.dwconv_cfg!r} gives a layer that changes the '
                             f'spatial size (kernel_size {ks}, padding {pad}, stride {stride}, '
                             f'dilation {dil}); the depthwise layer must keep it')

    @staticmethod
    def _share(blocks) -> None:
        """Makes every block's dwconv use the first block's P (and SIG)."""
        first = blocks[0].dwconv
        for name in SHARED_PARAM_NAMES:
            shared = getattr(first, name, None)
            if isinstance(shared, nn.Parameter):
                for block in blocks[1:]:
                    setattr(block.dwconv, name, shared)

    @staticmethod
    def _release_init(m: nn.Module) -> None:
        # As the release's _init_weights: Conv2d, Linear and DCLS weights ~ TN(0.02), biases 0;
        # positions keep the DCLS initialisation (N(0, 0.5) clamped), norms ones / zeros.
        if isinstance(m, (nn.Conv2d, nn.Linear, Dcls2d)):
            trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)

    # ------------------------------------------------------------------ weights
    def init_weights(self) -> None:
        """Applies ``init_cfg``: mmengine's initialisers first, then a ``Pretrained`` entry
        through :meth:`load_pretrained` (checked, logged, ``weights_only``-safe) instead of
        mmengine's ``PretrainedInit`` (which would drop mismatched keys silently)."""
        cfg = self._check_pretrained_cfg(self.init_cfg)
        if cfg is None:
            super().init_weights()
            return
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        others = [c for c in cfgs if c is not cfg]
        full_cfg, self.init_cfg = self.init_cfg, (others or None)
        try:
            super().init_weights()
        finally:
            self.init_cfg = full_cfg
        self.load_pretrained(
            cfg['checkpoint'],
            prefix=cfg.get('prefix'),
            map_location=cfg.get('map_location', 'cpu'))

    def load_pretrained(self,
                        checkpoint: str,
                        prefix: Optional[str] = None,
                        map_location='cpu') -> dict:
        """Loads a released / OpenMMLab checkpoint file; see :meth:`load_state_dict_checked`.

        Returns ``{'loaded': [...], 'ignored': [...], 'new': [...]}`` (also logged).
        """
        state_dict = extract_state_dict(
            load_checkpoint_file(checkpoint, map_location), checkpoint, prefix)
        return self.load_state_dict_checked(state_dict, checkpoint)

    def load_state_dict_checked(self, state_dict, filename: str = '<state_dict>') -> dict:
        """Loads a state dict in any layout of :func:`checkpoint_filter_fn`: every key is loaded,
        ignorable for that layout (e.g. a classifier's head into a backbone) or new (e.g. output
        norms); anything else, and any shape difference, raises one ValueError."""
        filtered = checkpoint_filter_fn(state_dict, self, filename)
        if self.share_positions:
            check_shared_positions(filtered.state_dict, filename)
        return load_state_dict_checked(
            self,
            filtered.state_dict,
            filename,
            ignorable=filtered.ignored.__contains__,
            new=filtered.new.__contains__)

    @torch.no_grad()
    def clamp_parameters(self) -> None:
        """Clamps the positions of every DCLS layer into its dilated kernel (in place)."""
        for m in self.modules():
            if m is not self and callable(getattr(m, 'clamp_parameters', None)):
                m.clamp_parameters()

    # ------------------------------------------------------------------ forward / lr decay
    def forward_stages(self, x: Tensor):
        """Yields ``(i, stage-i map)`` for the four stages, in order."""
        for i in range(self.num_stages):
            x = self.stages[i](self.downsample_layers[i](x))
            yield i, x

    @property
    def num_layers(self) -> int:
        """The number of backbone layer ids of layer-wise lr decay (:func:`convnext_num_layers`)."""
        return convnext_num_layers(self.depths)

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """``(layer id, number of layer ids)`` of a parameter for layer-wise lr decay, as
        mmpretrain's ConvNeXt: :func:`convnext_layer_depth` with this arch's ``num_layers``
        (6 if ``depths[2] <= 9`` else 12). Stem 0 ... stage 3 ``num_layers``; output norms, the
        classifier's norm / head and names outside ``prefix`` ``num_layers + 1``."""
        return convnext_layer_depth(param_name, prefix, self.num_layers, 'layer_wise')

    def get_stage_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """``(stage id, number of ids)`` for stage-wise lr decay (mmdet's / mmseg's
        ``stage_wise``): downsample layers 0, stage i -> i + 1, the rest ``num_layers + 1``."""
        return convnext_layer_depth(param_name, prefix, self.num_layers, 'stage_wise')
