"""Small models for the engine tests (imported by the tests and conftest.py).

``ToyConvNeXtDCLS`` has the released parameter layout (``downsample_layers``,
``stages.i.j.dwconv.P`` shared per stage, ``gamma``, ``norm{i}``) and mmpretrain's ConvNeXt
``get_layer_depth`` rule, in a few thousand parameters; the tests that need the real
``mmdcls.ConvNeXtDCLS`` build it with a small ``arch`` dict (``real_backbone``).
"""
import torch
from torch import nn

from mmdcls.ops import Dcls2d


class ToyBlock(nn.Module):

    def __init__(self, dim, P=None, dilated_kernel_size=5, kernel_count=3):
        super().__init__()
        self.dwconv = Dcls2d(
            dim,
            dim,
            kernel_count=kernel_count,
            padding=dilated_kernel_size // 2,
            dilated_kernel_size=dilated_kernel_size,
            groups=dim,
            version='v0')
        if P is not None:
            self.dwconv.P = P  # one position tensor per stage, as released
        self.norm = nn.LayerNorm(dim)
        self.pwconv1 = nn.Linear(dim, 2 * dim)
        self.pwconv2 = nn.Linear(2 * dim, dim)
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(torch.relu(self.pwconv1(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class ToyConvNeXtDCLS(nn.Module):
    """ConvNeXt-DCLS layout; ``depths[2] > 9`` gives 12 layer ids as mmpretrain, else 6."""

    def __init__(self, depths=(1, 1, 4, 1), dims=(4, 8, 8, 8), dilated_kernel_size=5):
        super().__init__()
        self.depths = list(depths)
        self.dilated_kernel_size = dilated_kernel_size
        self.downsample_layers = nn.ModuleList()
        self.stages = nn.ModuleList()
        in_dim = 3
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            stride = 4 if i == 0 else 2
            self.downsample_layers.append(
                nn.Sequential(nn.GroupNorm(1, in_dim), nn.Conv2d(in_dim, dim, stride, stride)))
            first = ToyBlock(dim, dilated_kernel_size=dilated_kernel_size)
            blocks = [first] + [
                ToyBlock(dim, first.dwconv.P, dilated_kernel_size) for _ in range(depth - 1)
            ]
            self.stages.append(nn.Sequential(*blocks))
            self.add_module(f'norm{i}', nn.GroupNorm(1, dim))
            in_dim = dim

    def forward(self, x):
        outs = []
        for i, (down, stage) in enumerate(zip(self.downsample_layers, self.stages)):
            x = stage(down(x))
            outs.append(getattr(self, f'norm{i}')(x))
        return tuple(outs)

    def clamp_parameters(self):
        for stage in self.stages:
            for block in stage:
                block.dwconv.clamp_parameters()

    def get_layer_depth(self, param_name, prefix=''):
        """mmpretrain's ConvNeXt rule: ``(layer id, number of layer ids)``."""
        max_layer_id = 12 if self.depths[-2] > 9 else 6
        if not param_name.startswith(prefix):
            return max_layer_id + 1, max_layer_id + 2
        parts = param_name[len(prefix):].split('.')
        if parts[0] == 'downsample_layers':
            stage = int(parts[1])
            layer_id = {0: 0, 1: 2, 2: 3}.get(stage, max_layer_id)
        elif parts[0] == 'stages':
            stage, block = int(parts[1]), int(parts[2])
            layer_id = (stage + 1 if stage < 2 else 3 + block // 3 if stage == 2 else max_layer_id)
        else:
            layer_id = max_layer_id + 1
        return layer_id, max_layer_id + 2


class NoDepthConvNeXt(ToyConvNeXtDCLS):
    """The same layout without ``get_layer_depth`` (name-based rule, needs num_layers)."""
    get_layer_depth = None


class ToyDetector(nn.Module):
    """backbone + a head, as mmdet / mmseg models are laid out."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.backbone(x)[-1].mean((2, 3)))


def has_backbone():
    """Whether ``mmdcls.ConvNeXtDCLS`` is registered."""
    from mmdcls.registry import MODELS
    return MODELS.get('ConvNeXtDCLS') is not None


def real_backbone(**kwargs):
    """A small real ``ConvNeXtDCLS`` (released layout, shared positions)."""
    from mmdcls.registry import MODELS
    cfg = dict(
        type='mmdcls.ConvNeXtDCLS',
        arch=dict(depths=[1, 1, 4, 1], channels=[8, 8, 8, 8]),
        dilated_kernel_size=5,
        kernel_count=3)
    cfg.update(kwargs)
    return MODELS.build(cfg)
