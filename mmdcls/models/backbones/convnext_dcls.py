"""ConvNeXt-DCLS backbone: ConvNeXt whose depthwise 7x7 convs are DCLS layers.

One class for detection, segmentation and mmpretrain classification (as the backbone of an
``ImageClassifier``); :class:`mmdcls.models.ConvNeXtDCLSClassifier` is the release's ImageNet
model on the same trunk (:class:`ConvNeXtDCLSTrunk`). Parameter names are those of the
ConvNeXt-dcls release (``downsample_layers.*``, ``stages.i.j.dwconv.{weight,bias,P}``,
``.norm``, ``.pwconv1``, ``.pwconv2``, ``.gamma``, output norms ``norm{i}``), so its checkpoints
load as they are.
"""
from typing import Sequence, Tuple, Union

from torch import Tensor, nn

from mmdcls.registry import MODELS
from .convnext_dcls_args import check_backbone_args
from .convnext_dcls_trunk import ConvNeXtDCLSBlock, ConvNeXtDCLSTrunk

__all__ = ['ConvNeXtDCLS', 'ConvNeXtDCLSBlock']


@MODELS.register_module()
class ConvNeXtDCLS(ConvNeXtDCLSTrunk):
    """ConvNeXt-DCLS backbone. Input (N, in_channels, H, W); output a tuple with, for each
    ``i`` in ``out_indices``, the normed (``out_norms=False``: raw) stage-``i`` map
    (N, channels[i], H / 2 ** (i + 2), W / 2 ** (i + 2)).

    Args:
        *args, **kwargs: the trunk's arguments (:class:`ConvNeXtDCLSTrunk`): ``arch`` (may be
            positional), ``in_channels``, the DCLS options ``dilated_kernel_size``,
            ``kernel_count``, ``version`` (None: the release's), ``share_positions``,
            ``dwconv_cfg``, ``drop_path_rate``, ``layer_scale_init_value``, ``norm_cfg`` (also
            that of the output norms), ``with_cp``, ``init_cfg``. The file of a
            ``Pretrained`` ``init_cfg`` may be an ImageNet classifier, a backbone or a whole
            detector / segmentor / classifier: its layout is recognised and accounted for key
            by key by :func:`mmdcls.models.utils.checkpoint_filter_fn`.
        out_indices (Sequence[int] | int): stages to output; negative counts from the end.
        frozen_stages (int): freeze downsample layer, blocks (shared positions included) and
            output norm of stages ``0 .. frozen_stages - 1``: ``requires_grad=False`` and eval
            mode even after ``train()``. -1 / 0: nothing frozen.
        out_norms (bool): a ``norm{i}`` per output (True, for detection / segmentation
            necks). False outputs the raw stage maps, for a classification head that pools
            first and then normalises, as the released ImageNet classifier does
            (:class:`mmdcls.models.heads.ConvNeXtDCLSClsHead`): a per-pixel LayerNorm followed
            by pooling is not pooling followed by a LayerNorm. Without them the state dict is
            the released classifier's minus ``norm.*`` / ``head.*``.
    """

    def __init__(self,
                 *args,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 out_norms: bool = True,
                 **kwargs) -> None:
        out_indices = check_backbone_args(
            dict(out_indices=out_indices, frozen_stages=frozen_stages, out_norms=out_norms),
            self.num_stages)
        super().__init__(*args, **kwargs)
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.out_norms = out_norms
        for i in self.out_indices:
            self.add_module(f'norm{i}',
                            self.build_norm(self.channels[i]) if out_norms else nn.Identity())
        self._freeze_stages()

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
