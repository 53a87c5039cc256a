"""The released ConvNeXt(-DCLS) classifier head as an mmpretrain head: GAP -> LayerNorm -> Linear.

Used as ``head=dict(type='mmdcls.ConvNeXtDCLSClsHead', num_classes=1000, in_channels=768, ...)``
in mmpretrain's ``ImageClassifier`` behind ``backbone=dict(type='mmdcls.ConvNeXtDCLS',
out_indices=(3,), out_norms=False, ...)``. Its parameters are the release's ``norm.*`` (as
``head.norm.*``) and ``head.*`` (as ``head.fc.*``); :mod:`mmdcls.models.utils.cls_checkpoint`
converts between the two layouts. Loss, top-k accuracy and predictions are mmpretrain's
``ClsHead``'s, so batch augments (Mixup / CutMix soft labels) and ``LabelSmoothLoss`` work as for
any mmpretrain head.
"""
from typing import Sequence, Tuple

from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.heads import ClsHead
from torch import Tensor, nn

from mmdcls.registry import MODELS
from ..utils import LN_EPS


@MODELS.register_module()
class ConvNeXtDCLSClsHead(ClsHead):
    """Global average pool -> LayerNorm -> Linear over the last backbone output.

    ``feats[-1]`` (N, in_channels, H, W) -> logits (N, num_classes).

    Args:
        num_classes (int): number of classes.
        in_channels (int): channels of the last backbone output (768 for T / S, 1024 for B).
        norm_eps (float): LayerNorm epsilon. Default 1e-6 (release).
        **kwargs: ``ClsHead``'s ``loss``, ``topk``, ``cal_acc``, ``init_cfg``.

    The Linear starts as the release's (truncated normal std 0.02, zero bias), the LayerNorm at
    ones / zeros; an ``ImageClassifier`` ``init_cfg`` of ``TruncNormal`` std 0.02 on ``Linear``
    (mmpretrain's ConvNeXt configs) draws the same distribution again.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 norm_eps: float = LN_EPS,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        for name, value in (('num_classes', num_classes), ('in_channels', in_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f'{name} must be a positive int, got {value!r}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.norm = nn.LayerNorm(in_channels, eps=norm_eps)
        self.fc = nn.Linear(in_channels, num_classes)
        trunc_normal_(self.fc.weight, std=.02)
        nn.init.zeros_(self.fc.bias)

    def pre_logits(self, feats: Sequence[Tensor]) -> Tensor:
        """``feats[-1]`` (N, C, H, W) -> pooled, normalised features (N, C)."""
        x = feats[-1]
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__} expects the last backbone output as (N, '
                f'{self.in_channels}, H, W) feature maps, got shape {tuple(x.shape)}; use a '
                'backbone without output norms or pooling (mmdcls.ConvNeXtDCLS with '
                'out_norms=False, out_indices=(3,)) and in_channels = its last stage width')
        return self.norm(x.mean((-2, -1)))

    def forward(self, feats: Tuple[Tensor, ...]) -> Tensor:
        return self.fc(self.pre_logits(feats))
