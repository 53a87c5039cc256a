"""A compact copy of the ConvNeXt-dcls release, built from the official ``dcls`` package.

It reproduces the released modules (models/convnext_dcls.py for ImageNet and the mmdet/mmseg
backbone copy) with their parameter names: stem / downsample layers, blocks with a
``DCLS.construct.modules.Dcls2d`` depthwise layer whose ``P`` (and, for ``gauss``, ``SIG``) is one
tensor per stage, channels-first LayerNorm written out as in the release, output norms
``norm{i}`` (backbone form) or ``norm`` + ``head`` (classifier form). Tests compare mmdcls against
it and save its state dict as a released checkpoint.
"""
import argparse

import pytest
import torch
import torch.nn.functional as F
from torch import nn

DCLS = pytest.importorskip('DCLS.construct.modules')


class ReleaseLayerNorm(nn.Module):
    """The release's LayerNorm (channels_last or channels_first, manual formula)."""

    def __init__(self, dim, eps=1e-6, data_format='channels_last'):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps, self.data_format, self.normalized_shape = eps, data_format, (dim, )

    def forward(self, x):
        if self.data_format == 'channels_last':
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ReleaseBlock(nn.Module):

    def __init__(self, dim, P, SIG, layer_scale_init_value, kernel_size, kernel_count, version):
        super().__init__()
        self.dwconv = DCLS.Dcls2d(
            dim,
            dim,
            kernel_count=kernel_count,
            dilated_kernel_size=kernel_size,
            padding=kernel_size // 2,
            groups=dim,
            use_implicit_gemm=False,
            version=version)
        self.dwconv.P = P
        if SIG is not None:
            self.dwconv.SIG = SIG
        self.norm = ReleaseLayerNorm(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class ReleaseConvNeXtDCLS(nn.Module):
    """``classifier=True``: ImageNet model (norm + head); else the detection backbone copy."""

    def __init__(self,
                 depths,
                 dims,
                 kernel_size=17,
                 kernel_count=34,
                 version='v0',
                 classifier=False,
                 num_classes=10,
                 layer_scale_init_value=1.0):
        super().__init__()
        self.classifier = classifier
        self.downsample_layers = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(3, dims[0], kernel_size=4, stride=4),
                ReleaseLayerNorm(dims[0], data_format='channels_first'))
        ])
        for i in range(3):
            self.downsample_layers.append(
                nn.Sequential(
                    ReleaseLayerNorm(dims[i], data_format='channels_first'),
                    nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2)))
        self.stages = nn.ModuleList()
        lim = kernel_size // 2
        for i in range(4):
            P = nn.Parameter(
                torch.empty(2, dims[i], 1, kernel_count).normal_(0, 0.5 * lim).clamp_(
                    -lim, lim))  # spread wide so that interpolation matters
            SIG = (
                nn.Parameter(torch.rand(2, dims[i], 1, kernel_count) +
                             0.1) if version == 'gauss' else None)
            self.stages.append(
                nn.Sequential(*[
                    ReleaseBlock(dims[i], P, SIG, layer_scale_init_value, kernel_size, kernel_count,
                                 version) for _ in range(depths[i])
                ]))
        if classifier:
            self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
            self.head = nn.Linear(dims[-1], num_classes)
        else:
            for i in range(4):
                self.add_module(f'norm{i}', ReleaseLayerNorm(dims[i], data_format='channels_first'))
        # random (not the init's zeros / ones) so that every parameter matters in comparisons
        with torch.no_grad():
            for name, p in self.named_parameters():
                if not name.endswith(('.P', '.SIG')):
                    p.add_(torch.randn_like(p) * 0.1)

    def forward(self, x):
        outs = []
        for i in range(4):
            x = self.stages[i](self.downsample_layers[i](x))
            if not self.classifier:
                outs.append(getattr(self, f'norm{i}')(x))
        if self.classifier:
            return self.head(self.norm(x.mean([-2, -1])))
        return tuple(outs)


#: a small arch for fast tests (4 stages, 2 blocks in stage 2 to exercise sharing)
SMALL_ARCH = dict(depths=[1, 2, 2, 1], channels=[8, 16, 16, 24])


@pytest.fixture
def release_model():
    """``release_model(version='v0', classifier=False, kernel_size=7, kernel_count=5)``."""

    def build(version='v0', classifier=False, kernel_size=7, kernel_count=5, arch=SMALL_ARCH):
        return ReleaseConvNeXtDCLS(arch['depths'], arch['channels'], kernel_size, kernel_count,
                                   version, classifier)

    return build


@pytest.fixture
def small_arch():
    return dict(SMALL_ARCH)


@pytest.fixture
def save_release_checkpoint(tmp_path):
    """Saves a state dict as the release does: ``{'model': ..., 'args': Namespace, 'epoch'}``."""

    def save(state_dict, name='convnext_dcls_release.pth'):
        path = tmp_path / name
        args = argparse.Namespace(
            model='convnext_dcls_tiny',
            lr=4e-3,
            drop_path=0.1,
            input_size=224,
            model_ema=True,
            output_dir='out')
        torch.save({'model': state_dict, 'args': args, 'epoch': 299}, path)
        return str(path)

    return save
