"""configs/imagenet: every config builds its model in mmpretrain and carries the release recipe.

The values are those of the ConvNeXt-dcls release (main.py defaults and the paper's drop path
rates); a change here should be a deliberate change of recipe, stated in the config.
"""
import glob
import os.path as osp

import pytest

pytest.importorskip(
    'mmpretrain',
    reason='mmpretrain (mmdcls[cls]) is not installed here; the '
    'ImageNet configs are checked in the compat lane (.venv-compat)')

from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'imagenet', '*.py')))
#: arch, drop path rate, head width, parameter count in millions (the release's table: 28.6 for T)
SIZES = {
    't': ('tiny', 0.1, 768, 28.6),
    's': ('small', 0.4, 768, 50.2),
    'b': ('base', 0.5, 1024, 88.6)
}


def test_three_sizes_with_plain_twins():
    names = [osp.basename(c) for c in CONFIGS]
    assert names == sorted(f'convnext{d}-{s}_32xb128_in1k.py' for s in SIZES for d in ('', '-dcls'))


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds_with_the_release_recipe(path):
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(path)
    size = osp.basename(path).split('_')[0][-1]
    arch, drop_path, width, params = SIZES[size]
    dcls = '-dcls-' in osp.basename(path)

    assert cfg.default_scope == 'mmpretrain'
    assert cfg.custom_imports == dict(imports=['mmdcls'], allow_failed_imports=False)
    backbone, head = cfg.model.backbone, cfg.model.head
    assert backbone.type == 'mmdcls.ConvNeXtDCLS' and backbone.arch == arch
    assert backbone.out_norms is False
    assert backbone.drop_path_rate == drop_path and backbone.layer_scale_init_value == 1e-6
    assert backbone.out_indices == (3, )
    if dcls:
        assert (backbone.dilated_kernel_size, backbone.version) == (17, 'v0')
        assert backbone.share_positions is True
    else:
        assert backbone.dwconv_cfg == dict(type='Conv2d', kernel_size=7)
    assert head.type == 'mmdcls.ConvNeXtDCLSClsHead' and head.in_channels == width
    assert head.num_classes == 1000
    assert head.loss == dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')
    assert [a.type for a in cfg.model.train_cfg.augments] == ['Mixup', 'CutMix']
    assert [a.alpha for a in cfg.model.train_cfg.augments] == [0.8, 1.0]

    optim = cfg.optim_wrapper
    assert optim.constructor == 'mmdcls.DCLSLearningRateDecayOptimizerConstructor'
    assert optim.optimizer.type == 'AdamW' and optim.optimizer.lr == 4e-3
    assert optim.optimizer.weight_decay == 0.05 and optim.clip_grad is None
    assert optim.paramwise_cfg == dict(decay_rate=1.0, position_lr_mult=5.0)
    assert cfg.auto_scale_lr.base_batch_size == 4096
    assert cfg.train_dataloader.batch_size == 128  # x 32 GPUs
    assert cfg.train_cfg.max_epochs == 300
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.end, cosine.type, cosine.begin) == ('LinearLR', 20,
                                                                    'CosineAnnealingLR', 20)
    assert cosine.eta_min == 1e-6
    hooks = [h.type for h in cfg.custom_hooks]
    assert hooks == (['mmdcls.DCLSClampHook', 'EMAHook'] if dcls else ['EMAHook'])
    assert cfg.custom_hooks[-1].momentum == 1e-4

    train = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
    assert train['RandAugment'].policies == 'timm_increasing'
    assert (train['RandAugment'].magnitude_level, train['RandAugment'].magnitude_std) == (9, 0.5)
    assert train['RandomErasing'].erase_prob == 0.25
    assert train['RandomResizedCrop'].interpolation == 'bicubic'
    test = {t.type: t for t in cfg.val_dataloader.dataset.pipeline}
    assert test['ResizeEdge'].scale == 256 and test['CenterCrop'].crop_size == 224

    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    count = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(count - params) < 0.1, count
