"""Channels-first LayerNorm (the release's ``LayerNorm(..., data_format='channels_first')``)."""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from mmdcls.registry import MODELS


@MODELS.register_module('LN2d')
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an (N, C, H, W) tensor -> (N, C, H, W).

    Same parameters (``weight``, ``bias`` of shape (C,)) and ``eps`` semantics as the
    release's channels-first LayerNorm, so its checkpoints load unchanged.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6, **kwargs) -> None:
        super().__init__(num_channels, eps=eps, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f'LayerNorm2d expects (N, C, H, W) input, got shape {tuple(x.shape)}')
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def build_norm(norm_cfg: Optional[dict], num_channels: int) -> nn.Module:
    """Builds a norm layer over ``num_channels`` channels from ``norm_cfg``.

    Types are looked up in mmdcls's ``MODELS`` (``LN2d``) and its parent, mmengine's root
    registry (mmcv's ``BN``, ``GN``, ``SyncBN``, ``LN``, ...). The class is resolved with
    ``get`` rather than ``build`` so that the lookup does not depend on the default scope of the
    calling toolkit (mmdet / mmseg).
    """
    if not isinstance(norm_cfg, dict) or 'type' not in norm_cfg:
        raise TypeError(f"norm_cfg must be a dict with a 'type' key, got {norm_cfg!r}")
    cfg = dict(norm_cfg)
    norm_type = cfg.pop('type')
    if cfg.pop('requires_grad', True) is not True:
        raise ValueError('norm_cfg.requires_grad must be True (freeze with frozen_stages)')
    cls = MODELS.get(norm_type) if isinstance(norm_type, str) else norm_type
    if cls is None:
        raise ValueError(f'norm_cfg.type {norm_type!r} is not a registered norm layer')
    if isinstance(cls, type) and issubclass(cls, nn.GroupNorm):
        return cls(num_channels=num_channels, **cfg)
    return cls(num_channels, **cfg)
