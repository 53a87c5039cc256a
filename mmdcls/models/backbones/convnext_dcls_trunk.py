"""The part of ConvNeXt-DCLS that the backbone and the ImageNet classifier share.

:class:`ConvNeXtDCLSTrunk` is the stem, the four downsample layers and the four stages of
blocks, with the positions shared per stage, the release's initialisation and the layer ids of
layer-wise lr decay. What sits on top differs and lives in the subclasses:
:class:`~mmdcls.models.ConvNeXtDCLS` adds the per-stage output norms ``norm{i}``,
``out_indices`` and ``frozen_stages`` (detection / segmentation / mmpretrain);
:class:`~mmdcls.models.ConvNeXtDCLSClassifier` adds the release's pooled ``norm`` and ``head``.
The argument checks live in :mod:`.convnext_dcls_args`, checkpoint loading in
:mod:`.convnext_dcls_pretrained`; the methods here hand over to them.
"""
from typing import Optional, Tuple, Union

import torch
import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor, nn

from mmdcls.ops import Dcls2d, same_padding
from ..utils import LN_EPS, SHARED_PARAM_NAMES
from ..utils.layer_scope import mmdcls_scope
from . import convnext_dcls_pretrained as pretrained
from .convnext_dcls_args import check_config, check_same_size, check_trunk_args
from .layer_ids import convnext_layer_depth, convnext_num_layers


class ConvNeXtDCLSBlock(nn.Module):
    """dwconv -> LayerNorm -> Linear (4x) -> GELU -> Linear -> layer scale -> drop path, residual.

    (N, C, H, W) -> (N, C, H, W). The pointwise convs are Linear layers on (N, H, W, C) as in the
    release; ``layer_scale_init_value`` <= 0 leaves out the layer scale ``gamma``.
    """

    def __init__(self, dwconv: nn.Module, channels: int, drop_path_rate: float,
                 layer_scale_init_value: float, with_cp: bool) -> None:
        super().__init__()
        self.dwconv = dwconv
        self.norm = nn.LayerNorm(channels, eps=LN_EPS)
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
    (N, channels[i], H / 2 ** (i + 2), W / 2 ** (i + 2)). Norm and conv layers are built by
    mmcv's ``build_norm_layer`` / ``build_conv_layer`` in the ``mmdcls`` default scope
    (:func:`~mmdcls.models.utils.layer_scope.mmdcls_scope`), so the same config builds the same
    layers whichever toolkit (mmdet, mmseg, mmpretrain, none) builds the model.

    Args:
        arch (str | dict): one of :attr:`arch_settings` or a dict with ``depths`` and
            ``channels`` (4 ints each) and optionally ``kernel_count``. The only positional
            argument; the others are keywords.
        in_channels (int): image channels. Default 3.
        dilated_kernel_size (int | tuple, optional): DCLS dilated kernel size, odd. None: the
            release's 17 (``convnext_dcls_args.DEFAULT_DILATED_KERNEL_SIZE``).
        kernel_count (int, optional): DCLS weights per kernel. None: the arch's (34 tiny, 40 the
            others), so the parameter count stays ConvNeXt's.
        version (str, optional): DCLS interpolation, one of ``mmdcls.ops.VERSIONS``. None: the
            release's ``'v0'`` (``mmdcls.models.utils.DEFAULT_VERSION``).
        share_positions (bool): one ``P`` (and ``SIG``) per stage shared by all its blocks, as
            released; False gives every block its own. Applies to any depthwise layer that has
            positions; a plain conv has none.
        dwconv_cfg (dict, optional): config of the depthwise layer instead of the three DCLS
            options above (which must then stay None), e.g. ``dict(type='Conv2d',
            kernel_size=7)`` for plain ConvNeXt or ``dict(type='DCLS2d', kernel_size=7,
            dilated_kernel_size=17)``. ``build_conv_layer`` gets ``in_channels``,
            ``out_channels``, ``groups`` (= channels) and, unless given, ``padding``
            (kernel_size // 2); the layer must keep the spatial size.
        drop_path_rate (float): stochastic depth, linearly increasing over blocks. Default 0.
        layer_scale_init_value (float): init of ``gamma``; <= 0 disables layer scale.
        norm_cfg (dict): norm of the downsample layers (and of the backbone's outputs), for
            ``build_norm_layer``. Default channels-first LayerNorm ``dict(type='LN2d',
            eps=1e-6)``.
        with_cp (bool): gradient checkpointing of each block while training.
        init_cfg (dict | list, optional): ``dict(type='Pretrained', checkpoint=PATH[,
            prefix=...])`` loads a released ImageNet checkpoint (``{'model': ...}``) or an
            OpenMMLab one, key by key (:mod:`.convnext_dcls_pretrained`); other mmengine init
            configs are applied as usual. Without it the release's init is used (truncated
            normal std 0.02 for convs / linear weights, zero biases).
    """
    arch_settings = {
        'tiny': dict(depths=[3, 3, 9, 3], channels=[96, 192, 384, 768], kernel_count=34),
        'small': dict(depths=[3, 3, 27, 3], channels=[96, 192, 384, 768], kernel_count=40),
        'base': dict(depths=[3, 3, 27, 3], channels=[128, 256, 512, 1024], kernel_count=40),
        'large': dict(depths=[3, 3, 27, 3], channels=[192, 384, 768, 1536], kernel_count=40),
        'xlarge': dict(depths=[3, 3, 27, 3], channels=[256, 512, 1024, 2048], kernel_count=40),
    }
    num_stages = 4

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 *,
                 in_channels: int = 3,
                 dilated_kernel_size: Union[int, Tuple[int, int], None] = None,
                 kernel_count: Optional[int] = None,
                 version: Optional[str] = None,
                 share_positions: bool = True,
                 dwconv_cfg: Optional[dict] = None,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 norm_cfg: dict = dict(type='LN2d', eps=LN_EPS),
                 with_cp: bool = False,
                 init_cfg: Union[dict, list, None] = None) -> None:
        args = check_trunk_args(
            dict(
                arch=arch,
                in_channels=in_channels,
                dilated_kernel_size=dilated_kernel_size,
                kernel_count=kernel_count,
                version=version,
                share_positions=share_positions,
                dwconv_cfg=dwconv_cfg,
                drop_path_rate=drop_path_rate,
                norm_cfg=norm_cfg,
                with_cp=with_cp,
                init_cfg=init_cfg), self.arch_settings, self.num_stages)
        super().__init__(init_cfg=init_cfg)
        self.depths = list(args.depths)
        self.channels = list(args.channels)
        self.dilated_kernel_size = args.dilated_kernel_size
        self.kernel_count = args.kernel_count
        self.version = args.version
        self.dwconv_cfg = dwconv_cfg
        self.share_positions = share_positions
        self.norm_cfg = norm_cfg
        self.with_cp = with_cp

        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, sum(self.depths))]
        self.downsample_layers = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(in_channels, self.channels[0], kernel_size=4, stride=4),
                self.build_norm(self.channels[0]))
        ])
        for i in range(1, self.num_stages):
            self.downsample_layers.append(
                nn.Sequential(
                    self.build_norm(self.channels[i - 1]),
                    nn.Conv2d(self.channels[i - 1], self.channels[i], kernel_size=2, stride=2)))
        self.stages = nn.ModuleList()
        for i, (depth, channels) in enumerate(zip(self.depths, self.channels)):
            first = sum(self.depths[:i])
            blocks = [
                ConvNeXtDCLSBlock(
                    self._build_dwconv(channels, args.dwconv_cfg), channels, dpr[first + j],
                    layer_scale_init_value, with_cp) for j in range(depth)
            ]
            if self.share_positions:
                self._share(blocks)
            self.stages.append(nn.Sequential(*blocks))
        self.apply(self._release_init)

    @classmethod
    def check_config(cls, cfg: dict) -> None:
        """Runs the constructors' argument checks on ``cfg`` (the keyword arguments, without
        ``type``) without building anything, raising what building would (and ``TypeError`` for
        a key no constructor takes); see :func:`.convnext_dcls_args.check_config`.
        ``mmdcls.utils.config_checks`` calls it on a config's backbone."""
        check_config(cls, cfg)

    # ------------------------------------------------------------------ construction
    def build_norm(self, channels: int) -> nn.Module:
        """A norm layer of ``norm_cfg`` over ``channels``."""
        with mmdcls_scope():
            return build_norm_layer(self.norm_cfg, channels)[1]

    def _build_dwconv(self, channels: int, dwconv_cfg: Optional[dict]) -> nn.Module:
        """The depthwise layer of a block: the release's DCLS layer, or ``dwconv_cfg``
        (completed with its padding) through ``build_conv_layer``."""
        if dwconv_cfg is None:
            return Dcls2d(
                channels,
                channels,
                self.kernel_count,
                padding=same_padding(self.dilated_kernel_size),
                dilated_kernel_size=self.dilated_kernel_size,
                groups=channels,
                bias=True,
                version=self.version)
        with mmdcls_scope():
            layer = build_conv_layer(dwconv_cfg, channels, channels, groups=channels)
        check_same_size(layer, self.dwconv_cfg)
        return layer

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
        """Applies ``init_cfg``: mmengine's initialisers, then a ``Pretrained`` entry through
        :meth:`load_pretrained` (checked, logged, weights-only)."""
        pretrained.init_weights(self, super().init_weights)

    def load_pretrained(self,
                        checkpoint: str,
                        prefix: Optional[str] = None,
                        map_location='cpu') -> dict:
        """Loads a released / OpenMMLab checkpoint file; see :meth:`load_state_dict_checked`.

        Returns ``{'loaded': [...], 'ignored': [...], 'new': [...]}`` (also logged).
        """
        return pretrained.load_pretrained(self, checkpoint, prefix, map_location)

    def load_state_dict_checked(self, state_dict, filename: str = '<state_dict>') -> dict:
        """Loads a state dict in any layout of :func:`~mmdcls.models.utils.checkpoint_filter_fn`:
        every key is loaded, ignorable for that layout (e.g. a classifier's head into a
        backbone) or new (e.g. output norms); anything else, and any shape difference, raises
        one ValueError."""
        return pretrained.load_state_dict_into(self, state_dict, filename)

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
