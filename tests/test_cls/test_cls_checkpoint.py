"""mmpretrain <-> release key mapping, and mmpretrain-layout checkpoints into det / seg backbones.

Needs no mmpretrain: an mmpretrain checkpoint's weights are the classifier's state dict in the
mmpretrain layout (``backbone.*`` of ``mmdcls.ConvNeXtDCLS(out_norms=False)``, ``head.norm.*``,
``head.fc.*`` of ``mmdcls.ConvNeXtDCLSClsHead``), which the mapping produces from the release
layout; tests/test_cls/test_mmpretrain.py checks that mapping against real mmpretrain models.
"""
import os.path as osp

import pytest
import torch

from mmdcls.models import ConvNeXtDCLS, ConvNeXtDCLSClassifier
from mmdcls.models.utils.cls_checkpoint import (detect_layout, mmpretrain_to_release,
                                                release_to_mmpretrain)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SMALL = dict(
    arch=dict(depths=[1, 1, 2, 1], channels=[8, 16, 32, 64], kernel_count=4), dilated_kernel_size=5)


def randomised(model):
    """``model`` with every parameter drawn at random, so that no two keys hold equal values by
    chance (positions stay shared per stage: they are one tensor)."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return model


@pytest.fixture
def release_state_dict():
    return randomised(ConvNeXtDCLSClassifier(num_classes=5, **SMALL)).state_dict()


def test_round_trip_keeps_every_key_and_tensor(release_state_dict):
    mmpt = release_to_mmpretrain(release_state_dict)
    assert len(mmpt) == len(release_state_dict)
    assert all(
        k.startswith(('backbone.downsample_layers.', 'backbone.stages.', 'head.norm.', 'head.fc.'))
        for k in mmpt)
    assert mmpt['head.fc.weight'] is release_state_dict['head.weight']
    assert mmpt['head.norm.bias'] is release_state_dict['norm.bias']
    back = mmpretrain_to_release(mmpt)
    assert list(back) == list(release_state_dict)
    for key, value in release_state_dict.items():
        assert back[key] is value, key
    assert detect_layout(mmpt) == 'mmpretrain' and detect_layout(back) == 'release'


def test_mmpretrain_backbone_keys_are_the_no_out_norm_backbone(release_state_dict):
    """``backbone.*`` of the converted dict is exactly ConvNeXtDCLS(out_norms=False)'s keys."""
    mmpt = release_to_mmpretrain(release_state_dict)
    backbone = ConvNeXtDCLS(out_indices=(3, ), out_norms=False, **SMALL)
    keys = {k[len('backbone.'):] for k in mmpt if k.startswith('backbone.')}
    assert keys == set(backbone.state_dict())
    assert not any(k.startswith('norm') for k in backbone.state_dict())


@pytest.mark.parametrize('key', [
    'backbone.norm3.weight', 'neck.x', 'head.fc.extra', 'data_preprocessor.mean',
    'head.norm3.weight'
])
def test_a_key_outside_the_layout_stops_the_conversion(release_state_dict, key):
    mmpt = release_to_mmpretrain(release_state_dict)
    mmpt[key] = torch.zeros(1)
    with pytest.raises(ValueError, match='1 key.*fit no rule') as err:
        mmpretrain_to_release(mmpt)
    assert key in str(err.value)


def test_release_keys_outside_the_layout_are_named(release_state_dict):
    bad = dict(release_state_dict, **{'norm0.weight': torch.zeros(1), 'fc.bias': torch.zeros(1)})
    with pytest.raises(ValueError, match='2 key.*fit no rule') as err:
        release_to_mmpretrain(bad)
    assert 'norm0.weight' in str(err.value) and 'fc.bias' in str(err.value)
    with pytest.raises(ValueError, match='neither'):
        detect_layout({'encoder.weight': torch.zeros(1)})


def _report(path, prefix=None):
    model = ConvNeXtDCLS(**SMALL)
    return model, model.load_pretrained(path, prefix=prefix)


def test_mmpretrain_checkpoint_loads_into_a_backbone_like_the_release(release_state_dict, tmp_path):
    """Same loaded / new keys and the same weights as from the released file; what the release
    file adds (its classifier's ``norm`` / ``head``) is dropped by ``prefix`` here."""
    release = str(tmp_path / 'release.pth')
    torch.save(dict(model=release_state_dict), release)
    mmpt = str(tmp_path / 'epoch_1.pth')
    # what mmengine saves for an mmpretrain run: weights under state_dict, meta next to them
    torch.save(
        dict(
            state_dict=release_to_mmpretrain(release_state_dict),
            meta=dict(epoch=1, iter=10, dataset_meta=dict(classes=['a', 'b']))), mmpt)

    from_release, rep_release = _report(release)
    from_mmpt, rep_mmpt = _report(mmpt, prefix='backbone.')
    assert rep_mmpt['loaded'] == rep_release['loaded']
    assert rep_mmpt['new'] == rep_release['new'] == [
        f'norm{i}.{w}' for i in range(4) for w in ('weight', 'bias')
    ]
    assert sorted(
        rep_release['ignored']) == ['head.bias', 'head.weight', 'norm.bias', 'norm.weight']
    assert rep_mmpt['ignored'] == []
    for (name, a), (_, b) in zip(from_release.state_dict().items(), from_mmpt.state_dict().items()):
        if not name.startswith('norm'):
            assert torch.equal(a, b), name
    x = torch.randn(1, 3, 32, 32)
    for a, b in zip(from_release.eval()(x), from_mmpt.eval()(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize('toolkit,config', [
    ('mmdet', 'configs/convnext_dcls/mask-rcnn_convnext-dcls-t_fpn_1x_coco.py'),
    ('mmseg', 'configs/convnext_dcls/upernet_convnext-dcls-t_8xb2-160k_ade20k-512x512.py'),
])
def test_detection_and_segmentation_configs_take_an_mmpretrain_checkpoint(
        toolkit, config, tmp_path):
    """The backbone of the COCO / ADE20K configs, initialised from an mmpretrain-layout
    ConvNeXt-DCLS-T file through ``init_cfg`` with ``prefix='backbone.'``: every key loaded."""
    pytest.importorskip(toolkit, reason=f'{toolkit} is not installed in this environment')
    from mmengine.config import Config

    from mmdcls.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, config))
    backbone_cfg = cfg.model.backbone.copy()
    backbone_cfg.pop('drop_path_rate', None)
    release = ConvNeXtDCLSClassifier('tiny', num_classes=10).state_dict()
    path = str(tmp_path / 'in1k.pth')
    torch.save(dict(state_dict=release_to_mmpretrain(release), meta=dict()), path)
    backbone_cfg.init_cfg = dict(type='Pretrained', checkpoint=path, prefix='backbone.')
    backbone = MODELS.build(backbone_cfg)
    backbone.init_weights()
    trunk = {k: v for k, v in release.items() if not k.startswith(('norm.', 'head.'))}
    state = backbone.state_dict()
    assert set(state) - set(trunk) == {
        f'norm{i}.{w}'
        for i in backbone.out_indices
        for w in ('weight', 'bias')
    }
    for key, value in trunk.items():
        assert torch.equal(state[key], value), key
