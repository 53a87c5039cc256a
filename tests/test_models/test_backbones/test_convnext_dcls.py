"""ConvNeXtDCLS: parity with the release, options, errors, and mmdet / mmseg training steps."""
import copy
import re

import pytest
import torch
from mmengine.registry import DefaultScope
from torch import nn

from mmdcls.models import ConvNeXtDCLS, ConvNeXtDCLSClassifier
from mmdcls.models.backbones import ConvNeXtDCLSTrunk
from mmdcls.ops import Dcls2d
from mmdcls.registry import MODELS


def make(arch, **kwargs):
    cfg = dict(arch=arch, dilated_kernel_size=7, kernel_count=5, layer_scale_init_value=1.0)
    cfg.update(kwargs)
    return ConvNeXtDCLS(**cfg)


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize('version', ['v0', 'gauss'])
def test_stage_features_match_the_release(release_model, small_arch, version):
    ref = release_model(version=version).eval()
    model = make(small_arch, version=version).eval()
    model.load_state_dict_checked(ref.state_dict())
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected, got = ref(x), model(x)
    assert len(got) == 4
    for i, (e, g) in enumerate(zip(expected, got)):
        assert g.shape == e.shape == (2, small_arch['channels'][i], 16 >> i, 24 >> i)
        assert rel_err(g, e) < 1e-4, (i, rel_err(g, e))


def test_gradients_match_the_release(release_model, small_arch):
    ref = release_model(version='v0')
    model = make(small_arch)
    model.load_state_dict_checked(ref.state_dict())
    x = torch.randn(1, 3, 64, 64)
    sum(o.square().sum() for o in ref(x)).backward()
    sum(o.square().sum() for o in model(x)).backward()
    ref_grads = dict(ref.named_parameters())
    for name, p in model.named_parameters():
        assert rel_err(p.grad, ref_grads[name].grad) < 1e-4, name


def test_shared_positions_one_tensor_per_stage(small_arch):
    model = make(small_arch, version='gauss')
    for stage in model.stages:
        for block in stage:
            assert block.dwconv.P is stage[0].dwconv.P
            assert block.dwconv.SIG is stage[0].dwconv.SIG
    positions = [n for n, _ in model.named_parameters() if n.endswith(('.P', '.SIG'))]
    assert len(positions) == 8  # one P and one SIG per stage
    # ... but the state dict has them per block, like the release
    keys = model.state_dict().keys()
    assert 'stages.1.1.dwconv.P' in keys and 'stages.1.1.dwconv.SIG' in keys
    # every block's use of P contributes to its one gradient (a squared loss: the plain sum
    # of a LayerNorm-ed output has zero gradient, only rounding noise)
    model(torch.randn(1, 3, 32, 32))[1].square().sum().backward()
    assert model.stages[1][0].dwconv.P.grad.abs().sum() > 0


def test_unshared_positions_per_block(small_arch):
    model = make(small_arch, share_positions=False)
    assert model.stages[1][1].dwconv.P is not model.stages[1][0].dwconv.P
    positions = [n for n, _ in model.named_parameters() if n.endswith('.P')]
    assert len(positions) == sum(small_arch['depths'])


def test_arch_presets_and_bad_names():
    tiny = ConvNeXtDCLS('tiny')
    assert tiny.depths == [3, 3, 9, 3] and tiny.channels == [96, 192, 384, 768]
    assert tiny.stages[0][0].dwconv.weight.shape == (96, 1, 34)
    assert tiny.stages[0][0].dwconv.P.shape == (2, 96, 1, 34)
    assert tiny.stages[0][0].dwconv.dilated_kernel_size == (17, 17)
    assert tiny.stages[0][0].dwconv.version == 'v0'
    assert ConvNeXtDCLS.arch_settings['small']['kernel_count'] == 40
    assert ConvNeXtDCLS.arch_settings['base']['channels'] == [128, 256, 512, 1024]
    with pytest.raises(
            ValueError, match=r"arch must be one of \['tiny', 'small', 'base', "
            r"'large', 'xlarge'\]"):
        ConvNeXtDCLS('huge')
    with pytest.raises(ValueError, match='depths'):
        ConvNeXtDCLS(dict(channels=[8, 8, 8, 8]), kernel_count=3)
    with pytest.raises(ValueError, match='kernel_count'):
        ConvNeXtDCLS(dict(depths=[1, 1, 1, 1], channels=[8, 8, 8, 8]))
    with pytest.raises(ValueError, match='version'):
        make(dict(depths=[1, 1, 1, 1], channels=[8, 8, 8, 8]), version='v9')
    with pytest.raises(ValueError, match='out_indices'):
        make(dict(depths=[1, 1, 1, 1], channels=[8, 8, 8, 8]), out_indices=(4, ))
    with pytest.raises(ValueError, match='frozen_stages'):
        make(dict(depths=[1, 1, 1, 1], channels=[8, 8, 8, 8]), frozen_stages=5)


TINY8 = dict(depths=[1, 1, 1, 1], channels=[8, 8, 8, 8])


@pytest.mark.parametrize(
    'cfg', [
        dict(arch='huge'),
        dict(arch=dict(depths=[1, 1, 1], channels=[8, 8, 8, 8]), kernel_count=3),
        dict(arch=TINY8),
        dict(arch=TINY8, kernel_count=3, version='v9'),
        dict(arch=TINY8, kernel_count=3, out_indices=(4, )),
        dict(arch=TINY8, kernel_count=3, frozen_stages=5),
        dict(arch=TINY8, kernel_count=3, drop_path_rate=1.0),
        dict(arch=TINY8, kernel_count=5, dwconv_cfg=dict(type='Conv2d', kernel_size=7)),
        dict(arch=TINY8, kernel_count=3, init_cfg=dict(type='Pretrained', path='x.pth')),
        dict(arch=TINY8, kernel_count=3, out_norms='no'),
    ],
    ids=[
        'arch', 'depths', 'kernel_count', 'version', 'out_indices', 'frozen_stages',
        'drop_path_rate', 'dwconv_cfg', 'init_cfg', 'out_norms'
    ])
def test_check_config_raises_what_building_raises(cfg):
    """config_checks validates a config's backbone with the class's own checks: the same
    error, without building anything."""
    with pytest.raises((TypeError, ValueError)) as built:
        ConvNeXtDCLS(**copy.deepcopy(cfg)).init_weights()
    with pytest.raises(type(built.value), match=re.escape(str(built.value))):
        ConvNeXtDCLS.check_config(copy.deepcopy(cfg))


def test_out_norms_false_outputs_the_raw_stage_maps():
    """For a pooling classification head: no norm{i} parameters, outputs are the stage maps
    the normed backbone would normalise (same trunk weights, same seed)."""
    torch.manual_seed(0)
    normed = ConvNeXtDCLS(arch=TINY8, kernel_count=3, dilated_kernel_size=5, out_indices=(1, 3))
    raw = ConvNeXtDCLS(
        arch=TINY8, kernel_count=3, dilated_kernel_size=5, out_indices=(1, 3), out_norms=False)
    assert not any(k.startswith('norm') for k in raw.state_dict())
    missing, unexpected = raw.load_state_dict(normed.state_dict(), strict=False)
    assert not missing and sorted(unexpected) == [
        'norm1.bias', 'norm1.weight', 'norm3.bias', 'norm3.weight'
    ]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for i, (a, b) in zip((1, 3), zip(normed(x), raw(x))):
            torch.testing.assert_close(a, getattr(normed, f'norm{i}')(b))


def test_check_config_accepts_valid_configs_and_names_unknown_keys():
    ConvNeXtDCLS.check_config(
        dict(
            arch='xlarge',
            out_indices=(-1, ),
            frozen_stages=2,
            init_cfg=dict(type='Pretrained', checkpoint='x.pth')))
    ConvNeXtDCLS.check_config(dict(arch='tiny', dwconv_cfg=dict(type='Conv2d', kernel_size=7)))
    with pytest.raises(TypeError, match=r"ConvNeXtDCLS takes no argument\(s\) \['depth'\]"):
        ConvNeXtDCLS.check_config(dict(arch='tiny', depth=3))
    # the classifier's constructor forwards **kwargs to the trunk: followed, and still checked
    ConvNeXtDCLSClassifier.check_config(dict(arch='tiny', num_classes=10, with_cp=True))
    with pytest.raises(ValueError, match='version must be one of'):
        ConvNeXtDCLSClassifier.check_config(dict(arch='tiny', version='v9'))


def test_out_indices_negative_and_norms(small_arch):
    model = make(small_arch, out_indices=(-1, 1))
    assert model.out_indices == (1, 3)
    assert hasattr(model, 'norm1') and hasattr(model, 'norm3') and not hasattr(model, 'norm0')
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [16, 24]


def test_dwconv_cfg_plain_convnext_and_dcls_variants(small_arch):
    plain = ConvNeXtDCLS(small_arch, dwconv_cfg=dict(type='Conv2d', kernel_size=7))
    dw = plain.stages[2][1].dwconv
    assert type(dw) is nn.Conv2d and dw.weight.shape == (16, 1, 7, 7) and dw.padding == (3, 3)
    assert not [n for n, _ in plain.named_parameters() if n.endswith('.P')]
    assert [o.shape[-1] for o in plain(torch.randn(1, 3, 64, 64))] == [16, 8, 4, 2]

    other = ConvNeXtDCLS(
        small_arch,
        dwconv_cfg=dict(type='DCLS2d', kernel_size=3, dilated_kernel_size=9, version='gauss'))
    dw = other.stages[2][1].dwconv
    assert isinstance(dw, Dcls2d) and dw.kernel_count == 9 and dw.version == 'gauss'
    assert dw.P is other.stages[2][0].dwconv.P and dw.SIG is other.stages[2][0].dwconv.SIG
    assert [o.shape[-1] for o in other(torch.randn(1, 3, 64, 64))] == [16, 8, 4, 2]

    same = ConvNeXtDCLS(small_arch, dwconv_cfg=dict(type='Conv2d', kernel_size=5, padding='same'))
    assert [o.shape[-1] for o in same(torch.randn(1, 3, 64, 64))] == [16, 8, 4, 2]
    with pytest.raises(ValueError, match='spatial size'):
        ConvNeXtDCLS(small_arch, dwconv_cfg=dict(type='Conv2d', kernel_size=5, padding='valid'))
    with pytest.raises(ValueError, match='only apply when dwconv_cfg is None'):
        ConvNeXtDCLS(small_arch, kernel_count=5, dwconv_cfg=dict(type='Conv2d', kernel_size=7))
    with pytest.raises(ValueError, match='spatial size'):
        ConvNeXtDCLS(small_arch, dwconv_cfg=dict(type='Conv2d', kernel_size=7, padding=1))
    with pytest.raises(ValueError, match='groups'):
        ConvNeXtDCLS(small_arch, dwconv_cfg=dict(type='Conv2d', kernel_size=7, groups=1))
    with pytest.raises(ValueError, match='not registered'):
        ConvNeXtDCLS(small_arch, dwconv_cfg=dict(type='NoSuchConv'))


def test_frozen_stages_stay_frozen_and_in_eval(small_arch):
    model = make(small_arch, frozen_stages=2, drop_path_rate=0.1)
    model.train()
    frozen = [
        model.downsample_layers[0], model.downsample_layers[1], model.stages[0], model.stages[1],
        model.norm0, model.norm1
    ]
    for module in frozen:
        assert all(not m.training for m in module.modules())
        assert all(not p.requires_grad for p in module.parameters())
    shared = model.stages[1][0].dwconv.P
    assert shared is model.stages[1][1].dwconv.P and not shared.requires_grad
    assert model.stages[2].training and model.stages[2][0].dwconv.P.requires_grad
    assert model.downsample_layers[2][1].weight.requires_grad
    sum(o.sum() for o in model(torch.randn(1, 3, 64, 64))).backward()
    assert shared.grad is None and model.stages[0][0].pwconv1.weight.grad is None
    assert model.stages[2][0].dwconv.P.grad is not None


@pytest.mark.parametrize('share', [True, False])
def test_with_cp_gives_the_same_gradients(small_arch, share):
    torch.manual_seed(1)
    plain = make(small_arch, share_positions=share)
    cp_model = make(small_arch, share_positions=share, with_cp=True)
    cp_model.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    for model in (plain, cp_model):
        model.train()
        sum((o * torch.linspace(0, 1, o.numel()).view_as(o)).sum() for o in model(x)).backward()
    cp_grads = dict(cp_model.named_parameters())
    for name, p in plain.named_parameters():
        torch.testing.assert_close(cp_grads[name].grad, p.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_with_cp_checkpoints_only_in_training(small_arch, monkeypatch):
    import torch.utils.checkpoint as cp
    calls = []
    real = cp.checkpoint
    monkeypatch.setattr(cp, 'checkpoint', lambda *a, **k: calls.append(k) or real(*a, **k))
    model = make(small_arch, with_cp=True)
    model.train()
    model(torch.randn(1, 3, 32, 32))
    assert len(calls) == sum(small_arch['depths'])
    assert all(k == dict(use_reentrant=False) for k in calls)
    calls.clear()
    model.eval()
    model(torch.randn(1, 3, 32, 32))
    assert not calls


def test_drop_path_and_layer_scale(small_arch):
    model = make(small_arch, drop_path_rate=0.3, layer_scale_init_value=0.)
    assert model.stages[0][0].gamma is None
    rates = [
        b.drop_path.drop_prob for s in model.stages for b in s
        if not isinstance(b.drop_path, nn.Identity)
    ]
    assert rates and abs(rates[-1] - 0.3) < 1e-6
    assert 'stages.0.0.gamma' not in model.state_dict()


def test_clamp_parameters(small_arch):
    model = make(small_arch, version='gauss')
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 4 and p.shape[0] == 2:
                p.mul_(100)
    model.clamp_parameters()
    for stage in model.stages:
        assert stage[0].dwconv.P.abs().max() <= 3
        assert stage[0].dwconv.P.abs().max() == 3


def test_release_init():
    model = make(dict(depths=[1, 1, 1, 1], channels=[32, 32, 32, 32]))
    conv = model.stages[0][0]
    assert conv.dwconv.bias.abs().max() == 0 and conv.pwconv1.bias.abs().max() == 0
    assert 0.01 < conv.pwconv1.weight.std() < 0.03
    # std 0.02 (the release's trunc_normal_), not the DCLS layer's kaiming-uniform init
    assert 0.01 < conv.dwconv.weight.std() < 0.03 and conv.dwconv.weight.abs().max() < 0.1
    assert conv.dwconv.P.std() > 0.2  # positions keep N(0, 0.5)


def test_get_layer_depth():
    tiny = ConvNeXtDCLS('tiny')
    assert tiny.get_layer_depth('backbone.downsample_layers.0.0.weight', 'backbone.') == (0, 8)
    assert tiny.get_layer_depth('backbone.downsample_layers.1.1.weight', 'backbone.') == (2, 8)
    assert tiny.get_layer_depth('backbone.downsample_layers.3.1.weight', 'backbone.') == (6, 8)
    assert tiny.get_layer_depth('backbone.stages.0.2.dwconv.P', 'backbone.') == (1, 8)
    assert tiny.get_layer_depth('backbone.stages.2.8.gamma', 'backbone.') == (5, 8)
    assert tiny.get_layer_depth('backbone.stages.3.0.pwconv1.weight', 'backbone.') == (6, 8)
    assert tiny.get_layer_depth('backbone.norm2.weight', 'backbone.') == (7, 8)
    assert tiny.get_layer_depth('neck.lateral_convs.0.conv.weight', 'backbone.') == (7, 8)
    small = make(dict(depths=[1, 1, 27, 1], channels=[8, 8, 8, 8]))
    assert small.get_layer_depth('stages.2.26.norm.weight') == (11, 14)
    assert small.get_layer_depth('downsample_layers.2.0.weight') == (3, 14)
    # stage-wise (mmdet / mmseg): downsample layers 0, stage i -> i + 1, the rest the last id
    assert small.get_stage_depth('downsample_layers.3.1.weight') == (0, 14)
    assert small.get_stage_depth('stages.2.26.norm.weight') == (3, 14)
    assert small.get_stage_depth('norm3.weight') == (13, 14)
    # a stage deeper than the rule's ids covers, and unreadable names, are errors
    deep = make(dict(depths=[1, 1, 31, 1], channels=[8, 8, 8, 8]))
    with pytest.raises(ValueError, match=r'stages.2.30.gamma: layer id 13 is outside \[0, 12\]'):
        deep.get_layer_depth('stages.2.30.gamma')
    with pytest.raises(ValueError, match='cannot read the stage/block of stages.x'):
        small.get_layer_depth('stages.x')


def test_backbone_and_classifier_share_one_trunk(small_arch):
    """Both forms are the trunk plus their own top: the same stage maps from the same
    weights, the same layer ids; only the backbone has output norms and frozen stages."""
    bb = make(small_arch, out_indices=(3, ))
    clf = ConvNeXtDCLSClassifier(
        small_arch,
        num_classes=4,
        dilated_kernel_size=7,
        kernel_count=5,
        layer_scale_init_value=1.0)
    assert isinstance(bb, ConvNeXtDCLSTrunk) and isinstance(clf, ConvNeXtDCLSTrunk)
    assert not isinstance(clf, ConvNeXtDCLS)
    trunk_keys = [k for k in bb.state_dict() if not k.startswith('norm')]
    assert trunk_keys == [k for k in clf.state_dict() if not k.startswith(('norm.', 'head.'))]
    clf.load_state_dict({**clf.state_dict(), **{k: bb.state_dict()[k] for k in trunk_keys}})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps_bb = [m for _, m in bb.forward_stages(x)]
        maps_clf = [m for _, m in clf.forward_stages(x)]
    for a, b in zip(maps_bb, maps_clf):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert clf.get_layer_depth('head.weight') == (7, 8) == bb.get_layer_depth('norm3.weight')
    assert clf.get_layer_depth('stages.2.1.gamma') == bb.get_layer_depth('stages.2.1.gamma')
    with pytest.raises(ValueError, match="does not take 'frozen_stages'"):
        ConvNeXtDCLSClassifier(small_arch, frozen_stages=1)


def test_registered_and_built_from_toolkit_scopes(small_arch):
    cfg = dict(type='mmdcls.ConvNeXtDCLS', arch=small_arch, dilated_kernel_size=5, kernel_count=3)
    for scope in ('mmdet', 'mmseg'):
        registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
        with DefaultScope.overwrite_default_scope(scope):
            model = registry.build(copy.deepcopy(cfg))
        assert type(model) is ConvNeXtDCLS
    assert MODELS.get('ConvNeXtDCLS') is ConvNeXtDCLS


# ---------------------------------------------------------------------- toolkits: one train step
SWAP = """
custom_imports = dict(imports=['mmdcls'], allow_failed_imports=False)
model = dict(
    backbone=dict(_delete_=True, type='mmdcls.ConvNeXtDCLS',
                  arch=dict(depths=[1, 1, 2, 1], channels=[8, 16, 32, 64]),
                  dilated_kernel_size=5, kernel_count=3, drop_path_rate=0.1,
                  layer_scale_init_value=1.0, with_cp=True),
"""


def _train_step(cfg_text, tmp_path, scope, data):
    from mmengine.config import Config
    from mmengine.optim import OptimWrapper
    path = tmp_path / f'{scope}_cfg.py'
    path.write_text(cfg_text)
    cfg = Config.fromfile(str(path))
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(cfg.model)
        model.init_weights()
        assert type(model.backbone) is ConvNeXtDCLS
        positions = [p for n, p in model.named_parameters() if n.endswith('.P')]
        assert len(positions) == 4
        before = [p.detach().clone() for p in positions]
        wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
        model.train()
        losses = model.train_step(data, wrapper)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    assert any(not torch.equal(b, p) for b, p in zip(before, positions)), 'positions not trained'
    return losses


def test_mmdet_mask_rcnn_trains_with_the_backbone_swapped(tmp_path):
    from mmdet.testing import demo_mm_inputs
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = ("_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'\n" + SWAP +
           '    neck=dict(in_channels=[8, 16, 32, 64]))\n')
    data = demo_mm_inputs(
        batch_size=2, image_shapes=(3, 64, 64), num_items=[2, 3], num_classes=80, with_mask=True)
    losses = _train_step(cfg, tmp_path, 'mmdet', data)
    assert {'loss_rpn_cls', 'loss_cls', 'loss_mask'} <= set(losses)


def test_mmseg_upernet_trains_with_the_backbone_swapped(tmp_path):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    # pretrained=None: the base names ResNet-50 weights at model level, which mmseg hands to
    # the backbone (mmseg's own ConvNeXt configs do the same).
    cfg = (
        "_base_ = 'mmseg::_base_/models/upernet_r50.py'\n" + SWAP + "    pretrained=None,\n"
        "    data_preprocessor=dict(size=(64, 64)),\n"  # the dataset configs set crop size
        "    decode_head=dict(in_channels=[8, 16, 32, 64], channels=16, num_classes=5,\n"
        "                     norm_cfg=dict(type='BN', requires_grad=True)),\n"
        "    auxiliary_head=dict(in_channels=32, channels=8, num_classes=5,\n"
        "                        norm_cfg=dict(type='BN', requires_grad=True)))\n")
    samples = []
    for _ in range(2):
        sample = SegDataSample(
            metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 5, (1, 64, 64)))
        samples.append(sample)
    data = dict(
        inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8) for _ in range(2)],
        data_samples=samples)
    losses = _train_step(cfg, tmp_path, 'mmseg', data)
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(losses)


def test_with_cp_and_shared_positions_under_ddp(small_arch, tmp_path):
    """DistributedDataParallel (gloo, one process) with checkpointed blocks that share P: no
    'marked ready twice' error, and the same gradients as the plain model."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1)
    try:
        plain = make(small_arch)
        cp_model = make(small_arch, with_cp=True)
        cp_model.load_state_dict(plain.state_dict())
        ddp = DistributedDataParallel(cp_model)
        x = torch.randn(2, 3, 32, 32)
        for _ in range(2):  # the second iteration is where DDP's reducer complains
            ddp.zero_grad()
            sum(o.sum() for o in ddp(x)).backward()
        plain.zero_grad()
        sum(o.sum() for o in plain(x)).backward()
        for (name, p), q in zip(plain.named_parameters(), cp_model.parameters()):
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-7, msg=name)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize('algo', ['channels_last', 'fft'])
def test_outputs_are_nchw_contiguous_for_mmcv_ops(small_arch, monkeypatch, algo):
    """Mask R-CNN's RoIAlign (compiled, NCHW indexing) reads the backbone's outputs: they must
    be NCHW-contiguous even when the depthwise convs ran in channels-last."""
    from mmcv.ops import RoIAlign
    monkeypatch.setenv('MMDCLS_CONV_ALGO', algo)
    model = make(small_arch, out_indices=(0, 1)).train()
    outs = model(torch.randn(2, 3, 64, 64))
    roi_align = RoIAlign((3, 3), spatial_scale=0.25, sampling_ratio=2)
    rois = torch.tensor([[0, 4.0, 8.0, 40.0, 36.0], [1, 0.0, 0.0, 63.0, 63.0]])
    for out in outs:
        assert out.is_contiguous()
    torch.testing.assert_close(
        roi_align(outs[0], rois), roi_align(outs[0].detach().contiguous(), rois))


@pytest.mark.parametrize('version,size,count', [('v0', 17, 12), ('gauss', 23, 9)])
@pytest.mark.parametrize('algo', ['fft', 'c_fft', 'sparse_direct', 'channels_last'])
def test_every_conv_algorithm_trains_the_same_network(small_arch, monkeypatch, algo, version, size,
                                                      count):
    """A whole backbone in training (channels-last block inputs, output gradients in whatever
    layout autograd hands back) gives the direct convolution's outputs and parameter
    gradients through every algorithm; layer scale 1 so the depthwise convs count."""
    results = []
    for name in ('direct', algo):
        monkeypatch.setenv('MMDCLS_CONV_ALGO', name)
        torch.manual_seed(0)
        model = make(
            small_arch, dilated_kernel_size=size, kernel_count=count,
            version=version).double().train()
        with torch.no_grad():
            for module in model.modules():
                if isinstance(getattr(module, 'P', None), torch.nn.Parameter):
                    module.P.uniform_(-(size // 2), size // 2)
        outs = model(
            torch.randn(
                2, 3, 48, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
        sum((o**2).mean() for o in outs).backward()
        results.append((outs, {n: p.grad for n, p in model.named_parameters()}))
    (ref_outs, ref_grads), (outs, grads) = results
    for out, ref in zip(outs, ref_outs):
        assert rel_err(out, ref) < 1e-12
    for name, ref in ref_grads.items():
        assert rel_err(grads[name], ref) < 1e-9, name
