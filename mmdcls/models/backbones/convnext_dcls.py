"""ConvNeXt-DCLS backbone: ConvNeXt whose depthwise 7x7 convs are DCLS layers.

One class for detection, segmentation and (through
:class:`mmdcls.models.ConvNeXtDCLSClassifier`) ImageNet classification. Parameter names are
those of the ConvNeXt-dcls release (``downsample_layers.*``, ``stages.i.j.dwconv.{weight,bias,P}``,
``.norm``, ``.pwconv1``, ``.pwconv2``, ``.gamma``, output norms ``norm{i}``), so its checkpoints
load as they are.
"""
import inspect
import re
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor, nn

from mmdcls.ops import Dcls2d, VERSIONS
from mmdcls.registry import MODELS
from ..utils import (build_norm, check_shared_positions, extract_state_dict, load_checkpoint_file,
                     load_state_dict_checked)

#: names of the shared DCLS parameters (positions and, for gauss / max, their widths)
SHARED_PARAM_NAMES = ('P', 'SIG')


class ConvNeXtDCLSBlock(nn.Module):
    """dwconv -> LayerNorm -> Linear (4x) -> GELU -> Linear -> layer scale -> drop path, residual.

    (N, C, H, W) -> (N, C, H, W). The pointwise convs are Linear layers on (N, H, W, C) as in the
    release.
    """

    def __init__(self, dwconv: nn.Module, channels: int, drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6, with_cp: bool = False) -> None:
        super().__init__()
        self.dwconv = dwconv
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.pwconv1 = nn.Linear(channels, 4 * channels)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * channels, channels)
        self.gamma = (nn.Parameter(layer_scale_init_value * torch.ones(channels))
                      if layer_scale_init_value > 0 else None)
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


@MODELS.register_module()
class ConvNeXtDCLS(BaseModule):
    """ConvNeXt-DCLS backbone. Input (N, in_channels, H, W); output a tuple with, for each
    ``i`` in ``out_indices``, the normed stage-``i`` map
    (N, channels[i], H / 2 ** (i + 2), W / 2 ** (i + 2)).

    Args:
        arch (str | dict): one of :attr:`arch_settings` or a dict with ``depths`` and
            ``channels`` (4 ints each) and optionally ``kernel_count``.
        in_channels (int): image channels. Default 3.
        dilated_kernel_size (int | tuple): DCLS dilated kernel size. Default 17 (release).
        kernel_count (int, optional): DCLS weights per kernel. Default: the arch's (34 tiny,
            40 the others), so the parameter count stays ConvNeXt's.
        version (str): DCLS interpolation, one of ``mmdcls.ops.VERSIONS``. Default ``'v0'``
            (released checkpoints).
        share_positions (bool): one ``P`` (and ``SIG``) per stage shared by all its blocks, as
            released; False gives every block its own. Applies to any depthwise layer that has
            positions; a plain conv has none.
        dwconv_cfg (dict, optional): config of the depthwise layer instead of the DCLS options
            above, e.g. ``dict(type='Conv2d', kernel_size=7)`` for plain ConvNeXt or
            ``dict(type='DCLS2d', kernel_size=7, dilated_kernel_size=17)``. The builder fills
            ``in_channels``, ``out_channels``, ``groups`` (= channels) and, unless given,
            ``padding`` (kernel_size // 2); the layer must keep the spatial size.
        drop_path_rate (float): stochastic depth, linearly increasing over blocks. Default 0.
        layer_scale_init_value (float): init of ``gamma``; <= 0 disables layer scale.
        out_indices (Sequence[int] | int): stages to output; negative counts from the end.
        frozen_stages (int): freeze downsample layer, blocks (shared positions included) and
            output norm of stages ``0 .. frozen_stages - 1``: ``requires_grad=False`` and eval
            mode even after ``train()``. -1 / 0: nothing frozen.
        norm_cfg (dict): norm of the downsample layers and outputs. Default channels-first
            LayerNorm ``dict(type='LN2d', eps=1e-6)``.
        with_cp (bool): gradient checkpointing of each block while training.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH[, prefix=...])``
            loads a released ImageNet checkpoint (``{'model': ...}``) or an OpenMMLab one;
            other mmengine init configs are applied as usual. Without it the release's init is
            used (truncated normal std 0.02 for convs / linear weights, zero biases).
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

    def __init__(self, arch: Union[str, dict] = 'tiny', in_channels: int = 3,
                 dilated_kernel_size: Union[int, Tuple[int, int]] = 17,
                 kernel_count: Optional[int] = None, version: str = 'v0',
                 share_positions: bool = True, dwconv_cfg: Optional[dict] = None,
                 drop_path_rate: float = 0., layer_scale_init_value: float = 1e-6,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3), frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='LN2d', eps=1e-6), with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        arch = self._parse_arch(arch)
        self.depths = list(arch['depths'])
        self.channels = list(arch['channels'])
        if dwconv_cfg is None:
            if version not in VERSIONS:
                raise ValueError(f'version must be one of {VERSIONS}, got {version!r}')
            if kernel_count is None:
                if 'kernel_count' not in arch:
                    raise ValueError('kernel_count is needed: give it, or put it in the arch '
                                     f'dict ({arch!r})')
                kernel_count = arch['kernel_count']
        else:
            given = dict(dilated_kernel_size=dilated_kernel_size, kernel_count=kernel_count,
                         version=version)
            conflicting = [k for k, v in given.items() if v != self._DCLS_DEFAULTS[k]]
            if conflicting:
                raise ValueError(f'{conflicting} only apply when dwconv_cfg is None; put them in '
                                 f'dwconv_cfg ({dwconv_cfg!r}) instead')
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f'in_channels must be a positive int, got {in_channels!r}')
        self.dilated_kernel_size = dilated_kernel_size
        self.kernel_count = kernel_count
        self.version = version
        self.dwconv_cfg = dwconv_cfg
        self.share_positions = bool(share_positions)
        self.with_cp = with_cp
        self.out_indices = self._parse_out_indices(out_indices)
        if not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be an int in [-1, {self.num_stages}], '
                             f'got {frozen_stages!r}')
        self.frozen_stages = frozen_stages
        if drop_path_rate < 0 or drop_path_rate >= 1:
            raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate!r}')

        self.downsample_layers = nn.ModuleList()
        self.downsample_layers.append(nn.Sequential(
            nn.Conv2d(in_channels, self.channels[0], kernel_size=4, stride=4),
            build_norm(norm_cfg, self.channels[0])))
        for i in range(1, self.num_stages):
            self.downsample_layers.append(nn.Sequential(
                build_norm(norm_cfg, self.channels[i - 1]),
                nn.Conv2d(self.channels[i - 1], self.channels[i], kernel_size=2, stride=2)))

        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, sum(self.depths))]
        self.stages = nn.ModuleList()
        cur = 0
        for i, (depth, channels) in enumerate(zip(self.depths, self.channels)):
            blocks = [
                ConvNeXtDCLSBlock(self._build_dwconv(channels), channels, dpr[cur + j],
                                  layer_scale_init_value, with_cp) for j in range(depth)
            ]
            cur += depth
            if self.share_positions:
                self._share(blocks)
            self.stages.append(nn.Sequential(*blocks))
        self._build_out_norms(norm_cfg)

        self.apply(self._release_init)
        self._freeze_stages()

    # ------------------------------------------------------------------ construction
    def _parse_arch(self, arch) -> dict:
        if isinstance(arch, str):
            if arch not in self.arch_settings:
                raise ValueError(f'arch must be one of {list(self.arch_settings)} or a dict with '
                                 f"'depths' and 'channels', got {arch!r}")
            return dict(self.arch_settings[arch])
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or a dict, got {type(arch).__name__}')
        unknown = set(arch) - {'depths', 'channels', 'kernel_count'}
        if unknown or not {'depths', 'channels'} <= set(arch):
            raise ValueError("an arch dict needs 'depths' and 'channels' (and optionally "
                             f"'kernel_count'), got keys {sorted(arch)}")
        for key in ('depths', 'channels'):
            value = arch[key]
            if (not isinstance(value, (list, tuple)) or len(value) != self.num_stages
                    or not all(isinstance(v, int) and v > 0 for v in value)):
                raise ValueError(f'arch[{key!r}] must be {self.num_stages} positive ints, '
                                 f'got {value!r}')
        return dict(arch)

    def _parse_out_indices(self, out_indices) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        if not isinstance(out_indices, (list, tuple)) or not out_indices:
            raise TypeError(f'out_indices must be an int or a non-empty sequence of ints, got '
                            f'{out_indices!r}')
        parsed = []
        for index in out_indices:
            if not isinstance(index, int) or not -self.num_stages <= index < self.num_stages:
                raise ValueError(f'out_indices entries must be ints in [-{self.num_stages}, '
                                 f'{self.num_stages - 1}], got {out_indices!r}')
            parsed.append(index % self.num_stages)
        if len(set(parsed)) != len(parsed):
            raise ValueError(f'out_indices has duplicates: {out_indices!r}')
        return tuple(sorted(parsed))

    def _build_out_norms(self, norm_cfg: dict) -> None:
        for i in self.out_indices:
            self.add_module(f'norm{i}', build_norm(norm_cfg, self.channels[i]))

    def _build_dwconv(self, channels: int) -> nn.Module:
        if self.dwconv_cfg is None:
            size = self.dilated_kernel_size
            padding = tuple(s // 2 for s in size) if isinstance(size, (tuple, list)) \
                else size // 2
            return Dcls2d(channels, channels, self.kernel_count, padding=padding,
                          dilated_kernel_size=size, groups=channels, bias=True,
                          version=self.version)
        if not isinstance(self.dwconv_cfg, dict) or 'type' not in self.dwconv_cfg:
            raise TypeError(f"dwconv_cfg must be a dict with a 'type' key, got "
                            f'{self.dwconv_cfg!r}')
        cfg = dict(self.dwconv_cfg)
        layer_type = cfg.pop('type')
        # get + call instead of MODELS.build: the lookup must not depend on the default scope
        # of the toolkit building the backbone (mmdet / mmseg).
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
            cfg['padding'] = (kernel_size // 2 if isinstance(kernel_size, int) else
                              tuple(k // 2 for k in kernel_size))
        layer = cls(channels, channels, groups=channels, **cfg)
        self._check_same_size(layer)
        return layer

    def _check_same_size(self, layer: nn.Module) -> None:
        """The residual needs dwconv to keep (H, W): stride 1, 2 * padding == extent - 1."""
        attrs = [getattr(layer, a, None) for a in ('kernel_size', 'padding', 'stride', 'dilation')]
        if any(a is None for a in attrs):
            return  # not conv-like; a wrong size then fails loudly at the residual add
        ks, pad, stride, dil = (a if isinstance(a, str) else
                                tuple(a) if isinstance(a, (tuple, list)) else (a, a)
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
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        pretrained = [c for c in cfgs if isinstance(c, dict) and c.get('type') == 'Pretrained']
        if not pretrained:
            super().init_weights()
            return
        if len(pretrained) > 1:
            raise ValueError(f'init_cfg has {len(pretrained)} Pretrained entries; give one')
        cfg = pretrained[0]
        unknown = set(cfg) - {'type', 'checkpoint', 'prefix', 'map_location'}
        if unknown or 'checkpoint' not in cfg:
            raise ValueError("init_cfg Pretrained takes 'checkpoint' and optionally 'prefix', "
                             f"'map_location'; got {cfg!r}")
        others = [c for c in cfgs if c is not cfg]
        full_cfg, self.init_cfg = self.init_cfg, (others or None)
        try:
            super().init_weights()
        finally:
            self.init_cfg = full_cfg
        self.load_pretrained(cfg['checkpoint'], prefix=cfg.get('prefix'),
                             map_location=cfg.get('map_location', 'cpu'))

    def _ignorable_key(self, key: str) -> bool:
        """Checkpoint keys this model may drop: the classifier's final ``norm`` and ``head``,
        and output norms of stages not in ``out_indices``."""
        match = re.match(r'^norm(\d+)\.', key)
        if match:
            return int(match.group(1)) not in self.out_indices
        return key.startswith(('head.', 'norm.'))

    def _new_key(self, key: str) -> bool:
        """Model keys a checkpoint may lack: the output norms (ImageNet checkpoints have none)."""
        return re.match(r'^norm\d+\.', key) is not None

    def load_pretrained(self, checkpoint: str, prefix: Optional[str] = None,
                        map_location='cpu') -> dict:
        """Loads a released / OpenMMLab checkpoint file; see :meth:`load_state_dict_checked`.

        Returns ``{'loaded': [...], 'ignored': [...], 'new': [...]}`` (also logged).
        """
        state_dict = extract_state_dict(load_checkpoint_file(checkpoint, map_location),
                                        checkpoint, prefix)
        return self.load_state_dict_checked(state_dict, checkpoint)

    def load_state_dict_checked(self, state_dict, filename: str = '<state_dict>') -> dict:
        """Loads a state dict of the released layout; any key neither loaded, ignorable (head,
        final norm) nor new (``norm{i}``) and any shape difference raises a ValueError."""
        if self.share_positions:
            check_shared_positions(state_dict, filename)
        return load_state_dict_checked(self, state_dict, filename, ignorable=self._ignorable_key,
                                       new=self._new_key)

    @torch.no_grad()
    def clamp_parameters(self) -> None:
        """Clamps the positions of every DCLS layer into its dilated kernel (in place)."""
        for m in self.modules():
            if m is not self and callable(getattr(m, 'clamp_parameters', None)):
                m.clamp_parameters()

    # ------------------------------------------------------------------ forward / training
    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        outs = []
        for i in range(self.num_stages):
            x = self.stages[i](self.downsample_layers[i](x))
            if i in self.out_indices:
                # NCHW-contiguous outputs: the conv backend may run in channels-last, and
                # mmcv's compiled ops (RoIAlign, ...) index the memory as NCHW regardless.
                outs.append(getattr(self, f'norm{i}')(x).contiguous())
        return tuple(outs)

    def _frozen_modules(self):
        for i in range(max(self.frozen_stages, 0)):
            yield self.downsample_layers[i]
            yield self.stages[i]
            norm = getattr(self, f'norm{i}', None)
            if norm is not None:
                yield norm

    def _freeze_stages(self) -> None:
        for m in self._frozen_modules():
            m.eval()
            for param in m.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """``(layer id, number of layer ids)`` of a parameter for layer-wise lr decay.

        mmpretrain's / mmdet's ConvNeXt rule with ``max_layer_id`` 12 if ``depths[2] > 9``
        else 6: stem 0, downsample 1 -> 2, downsample 2 -> 3, downsample 3 -> max; stage 0 -> 1,
        stage 1 -> 2, stage 2 block b -> 3 + b // 3, stage 3 -> max; output norms max + 1;
        names outside ``prefix`` (neck, heads) max + 1. The number of ids is max + 2.
        """
        max_layer_id = 12 if self.depths[-2] > 9 else 6
        if not param_name.startswith(prefix):
            return max_layer_id + 1, max_layer_id + 2
        parts = param_name[len(prefix):].split('.')
        if parts[0] == 'downsample_layers':
            layer_id = {0: 0, 1: 2, 2: 3}.get(int(parts[1]), max_layer_id)
        elif parts[0] == 'stages':
            stage, block = int(parts[1]), int(parts[2])
            layer_id = (stage + 1 if stage < 2 else
                        3 + block // 3 if stage == 2 else max_layer_id)
        else:
            layer_id = max_layer_id + 1
        if parts[0] == 'stages' and layer_id > max_layer_id:
            raise ValueError(f'{param_name}: stage 2 has {self.depths[2]} blocks, more than the '
                             f'layer-decay rule for {max_layer_id} layer ids covers')
        return layer_id, max_layer_id + 2
