"""ConvNeXt-DCLS backbone: ConvNeXt whose depthwise 7x7 convs are DCLS layers.

One class for detection, segmentation and mmpretrain classification (as the backbone of an
``ImageClassifier``); :class:`mmdcls.models.ConvNeXtDCLSClassifier` is the release's ImageNet
model on the same trunk (:class:`ConvNeXtDCLSTrunk`). Parameter names are those of the
ConvNeXt-dcls release (``downsample_layers.*``, ``stages.i.j.dwconv.{weight,bias,P}``,
``.norm``, ``.pwconv1``, ``.pwconv2``, ``.gamma``, output norms ``norm{i}``), so its checkpoints
load as they are.
"""
from typing import Optional, Sequence, Tuple, Union

from torch import Tensor, nn

from mmdcls.registry import MODELS
from ..utils import build_norm
from .convnext_dcls_trunk import ConvNeXtDCLSBlock, ConvNeXtDCLSTrunk

__all__ = ['ConvNeXtDCLS', 'ConvNeXtDCLSBlock']


@MODELS.register_module()
class ConvNeXtDCLS(ConvNeXtDCLSTrunk):
    """ConvNeXt-DCLS backbone. Input (N, in_channels, H, W); output a tuple with, for each
    ``i`` in ``out_indices``, the normed (``out_norms=False``: raw) stage-``i`` map
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
        out_norms (bool): a ``norm{i}`` per output (True, for detection / segmentation
            necks). False outputs the raw stage maps, for a classification head that pools
            first and then normalises, as the released ImageNet classifier does
            (:class:`mmdcls.models.heads.ConvNeXtDCLSClsHead`): a per-pixel LayerNorm followed
            by pooling is not pooling followed by a LayerNorm. Without them the state dict is
            the released classifier's minus ``norm.*`` / ``head.*``.
        with_cp (bool): gradient checkpointing of each block while training.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH[, prefix=...])``
            loads a released ImageNet checkpoint (``{'model': ...}``) or an OpenMMLab one;
            other mmengine init configs are applied as usual. Without it the release's init is
            used (truncated normal std 0.02 for convs / linear weights, zero biases). The
            file's layout (ImageNet classifier, backbone, whole detector / segmentor /
            classifier) is recognised and accounted for key by key by
            :func:`mmdcls.models.utils.checkpoint_filter_fn`.
    """

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
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='LN2d', eps=1e-6),
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None,
                 out_norms: bool = True) -> None:
        out_indices = self._parse_out_indices(out_indices)
        self._check_frozen_stages(frozen_stages)
        self._check_out_norms(out_norms)
        super().__init__(arch, in_channels, dilated_kernel_size, kernel_count, version,
                         share_positions, dwconv_cfg, drop_path_rate, layer_scale_init_value,
                         norm_cfg, with_cp, init_cfg)
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.out_norms = out_norms
        for i in self.out_indices:
            self.add_module(f'norm{i}',
                            build_norm(norm_cfg, self.channels[i]) if out_norms else nn.Identity())
        self._freeze_stages()

    @classmethod
    def _check_args(cls, args: dict) -> None:
        cls._parse_out_indices(args['out_indices'])
        cls._check_frozen_stages(args['frozen_stages'])
        cls._check_out_norms(args['out_norms'])
        super()._check_args(args)

    @classmethod
    def _parse_out_indices(cls, out_indices) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        if not isinstance(out_indices, (list, tuple)) or not out_indices:
            raise TypeError(f'out_indices must be an int or a non-empty sequence of ints, got '
                            f'{out_indices!r}')
        parsed = []
        for index in out_indices:
            if not isinstance(index, int) or not -cls.num_stages <= index < cls.num_stages:
                raise ValueError(f'out_indices entries must be ints in [-{cls.num_stages}, '
                                 f'{cls.num_stages - 1}], got {out_indices!r}')
            parsed.append(index % cls.num_stages)
        if len(set(parsed)) != len(parsed):
            raise ValueError(f'out_indices has duplicates: {out_indices!r}')
        return tuple(sorted(parsed))

    @classmethod
    def _check_frozen_stages(cls, frozen_stages) -> None:
        if not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= cls.num_stages:
            raise ValueError(f'frozen_stages must be an int in [-1, {cls.num_stages}], '
                             f'got {frozen_stages!r}')

    @staticmethod
    def _check_out_norms(out_norms) -> None:
        if not isinstance(out_norms, bool):
            raise TypeError(f'out_norms must be True or False, got {out_norms!r}')

    # ------------------------------------------------------------------ forward / training
    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        outs = []
        for i, x in self.forward_stages(x):
            if i in self.out_indices:
                # NCHW-contiguous outputs: the conv backend may run in channels-last, and
                # mmcv's compiled ops (RoIAlign, ...) index the memory as NCHW regardless.
                outs.append(getattr(self, f'norm{i}')(x).contiguous())
        return tuple(outs)

    def _freeze_stages(self) -> None:
        """Downsample layer, blocks and (if it exists) output norm of the frozen stages:
        ``requires_grad=False`` and eval mode."""
        for i in range(max(self.frozen_stages, 0)):
            modules = [self.downsample_layers[i], self.stages[i]]
            if hasattr(self, f'norm{i}'):
                modules.append(getattr(self, f'norm{i}'))
            for m in modules:
                m.eval()
                for param in m.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self
