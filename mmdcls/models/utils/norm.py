"""Channels-first LayerNorm (the release's ``LayerNorm(..., data_format='channels_first')``) and
the release's LayerNorm epsilon."""
import torch.nn.functional as F
from torch import Tensor, nn

from mmdcls.registry import MODELS

#: epsilon of every LayerNorm of the ConvNeXt(-DCLS) release (channels-first and -last)
LN_EPS = 1e-6


@MODELS.register_module('LN2d')
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an (N, C, H, W) tensor -> (N, C, H, W).

    Same parameters (``weight``, ``bias`` of shape (C,)) and ``eps`` semantics as the
    release's channels-first LayerNorm, so its checkpoints load unchanged. Built by mmcv's
    ``build_norm_layer`` as ``dict(type='LN2d', eps=...)`` (or ``'mmdcls.LN2d'``), which gives
    ``eps`` mmcv's default 1e-5 when the config has none.
    """

    def __init__(self, num_channels: int, eps: float = LN_EPS, **kwargs) -> None:
        super().__init__(num_channels, eps=eps, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f'LayerNorm2d expects (N, C, H, W) input, got shape {tuple(x.shape)}')
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
