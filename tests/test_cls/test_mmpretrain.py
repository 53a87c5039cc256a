"""ConvNeXt-DCLS in mmpretrain 1.2: the head, released weights evaluated through
``ImageClassifier``, an ImageNet config trained a few iterations, the converter on its output.

mmpretrain imports torchvision, which loads only with a PyPI torch build: these tests run in the
lane whose environment has it (``.venv-compat``) and are skipped elsewhere.
"""
import importlib.util
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip(
    'mmpretrain',
    reason='mmpretrain (mmdcls[cls]) is not installed here; the '
    'mmpretrain tests run in the compat lane (.venv-compat, make test-compat)')

from mmengine.config import Config  # noqa: E402
from mmengine.registry import DefaultScope, init_default_scope  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402

from mmdcls.models import ConvNeXtDCLS, ConvNeXtDCLSClassifier  # noqa: E402
from mmdcls.models.heads import ConvNeXtDCLSClsHead  # noqa: E402
from mmdcls.models.utils.cls_checkpoint import release_to_mmpretrain  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ARCH = dict(depths=[1, 1, 2, 1], channels=[8, 16, 32, 64], kernel_count=4)
NUM_CLASSES = 3


def small_classifier_cfg():
    return dict(
        type='ImageClassifier',
        backbone=dict(
            type='mmdcls.ConvNeXtDCLS',
            arch=ARCH,
            dilated_kernel_size=5,
            out_indices=(3, ),
            out_norms=False),
        head=dict(type='mmdcls.ConvNeXtDCLSClsHead', num_classes=NUM_CLASSES, in_channels=64),
        data_preprocessor=dict(
            num_classes=NUM_CLASSES,
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True))


def load_converter():
    """tools/model_converters/mmpretrain_to_release.py, imported by path (tools/ is no package)."""
    path = osp.join(REPO, 'tools', 'model_converters', 'mmpretrain_to_release.py')
    spec = importlib.util.spec_from_file_location('mmdcls_tool_mmpretrain_to_release', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(cfg):
    init_default_scope('mmpretrain')
    return MODELS.build(cfg)


def write_images(root, per_class, size=48, seed=0):
    """``root/<class>/<i>.jpg``: class c is a bright square in image quadrant c (learnable)."""
    rng = np.random.default_rng(seed)
    for c in range(NUM_CLASSES):
        os.makedirs(osp.join(root, f'class{c}'), exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 80, (size, size, 3)).astype(np.uint8)
            y, x = divmod(c, 2)
            h = size // 2
            img[y * h + 4:y * h + h - 4, x * h + 4:x * h + h - 4] = 230
            cv2.imwrite(osp.join(root, f'class{c}', f'{i}.jpg'), img)


def test_head_pools_normalises_and_classifies():
    # the loss config is built in the default scope, as in any mmpretrain head: another test's
    # runner may have left a scope ('mmengine', ...) that has no CrossEntropyLoss
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        head = ConvNeXtDCLSClsHead(num_classes=5, in_channels=16)
    feat = torch.randn(2, 16, 3, 4)
    expected = head.fc(
        torch.nn.functional.layer_norm(
            feat.mean((2, 3)), (16, ), head.norm.weight, head.norm.bias, 1e-6))
    torch.testing.assert_close(head((feat, )), expected)
    assert [n for n, _ in head.named_parameters()
            ] == ['norm.weight', 'norm.bias', 'fc.weight', 'fc.bias']
    with pytest.raises(ValueError, match=r'\(N, 16, H, W\).*got shape \(2, 16\)'):
        head((feat.mean((2, 3)), ))
    with pytest.raises(ValueError, match='num_classes must be a positive int'), \
            DefaultScope.overwrite_default_scope('mmpretrain'):
        ConvNeXtDCLSClsHead(num_classes=0, in_channels=16)


def test_backbone_outputs_are_unnormalised_stage_maps():
    model = ConvNeXtDCLS(arch=ARCH, dilated_kernel_size=5, out_indices=(2, 3), out_norms=False)
    assert not any(k.startswith('norm') for k in model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    outs = model(x)
    assert [tuple(o.shape) for o in outs] == [(1, 32, 4, 4), (1, 64, 2, 2)]
    h = x
    for i in range(4):
        h = model.stages[i](model.downsample_layers[i](h))
    torch.testing.assert_close(outs[1], h, rtol=0, atol=0)


def test_released_classifier_evaluates_identically_in_image_classifier():
    """A release-layout state dict, converted, gives ImageClassifier the same logits (and
    predictions) as the released model, with every key loaded strictly."""
    release = ConvNeXtDCLSClassifier(ARCH, num_classes=NUM_CLASSES, dilated_kernel_size=5)
    with torch.no_grad():
        for p in release.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    model = build(small_classifier_cfg())
    result = model.load_state_dict(release_to_mmpretrain(release.state_dict()), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    release.eval(), model.eval()
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x, mode='tensor'), release(x), rtol=1e-5, atol=1e-6)
        preds = model.predict(x)
        assert [int(p.pred_label) for p in preds] == release(x).argmax(1).tolist()


def _imagenet_cfg(data_root, work_dir, name='convnext-dcls-t_32xb128_in1k.py'):
    """An ImageNet config with its recipe (pipeline, batch augments, optimizer constructor,
    EMA and clamp hooks) on a generated 3-class folder dataset and a narrow backbone."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'imagenet', name))
    cfg.work_dir = work_dir
    cfg.model.backbone.arch = ARCH
    cfg.model.backbone.dilated_kernel_size = 5
    cfg.model.head.num_classes = NUM_CLASSES
    cfg.model.head.in_channels = ARCH['channels'][-1]
    cfg.data_preprocessor.num_classes = NUM_CLASSES
    for split, loader in (('train', cfg.train_dataloader), ('val', cfg.val_dataloader)):
        loader.batch_size = 4
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.dataset = dict(
            type='CustomDataset',
            data_root=data_root,
            data_prefix=split,
            pipeline=loader.dataset.pipeline)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator = cfg.test_evaluator = dict(type='Accuracy', topk=(1, ))  # 3 classes
    cfg.train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=2)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=1, convert_to_iter_based=True),
        dict(
            type='CosineAnnealingLR',
            eta_min=1e-6,
            by_epoch=True,
            begin=1,
            end=2,
            convert_to_iter_based=True)
    ]
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 2
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.randomness = dict(seed=0)
    return cfg


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Trains the ConvNeXt-DCLS-T ImageNet config (narrowed) 2 epochs x 3 iterations."""
    from mmengine.runner import Runner
    root = str(tmp_path_factory.mktemp('cls'))
    write_images(osp.join(root, 'data', 'train'), per_class=3)
    write_images(osp.join(root, 'data', 'val'), per_class=2, seed=1)
    cfg = _imagenet_cfg(osp.join(root, 'data'), osp.join(root, 'work'))
    runner = Runner.from_cfg(cfg)
    runner.train()
    with open(osp.join(root, 'work', 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    return runner, checkpoint, cfg


def test_imagenet_config_trains_a_few_iterations(trained):
    runner, checkpoint, _ = trained
    assert runner.iter == 6 and osp.isfile(checkpoint)  # 2 epochs of 9 images, batch 4
    scalars = runner.message_hub.log_scalars
    assert np.isfinite(scalars['train/loss'].current())
    # the recipe's pieces are in place: positions at 5x lr without weight decay, clamped
    groups = {g.get('group_name'): g for g in runner.optim_wrapper.optimizer.param_groups}
    position_groups = [g for name, g in groups.items() if name.endswith('_position')]
    assert position_groups and all(g['weight_decay'] == 0 for g in position_groups)
    decay = [g for name, g in groups.items() if name.endswith('_decay') and 'no_' not in name]
    assert {g['lr_scale'] for g in position_groups} == {5.0}
    assert {g['lr_scale'] for g in decay} == {1.0}
    backbone = runner.model.backbone
    limit = backbone.dilated_kernel_size[0] // 2
    for i in range(4):
        assert backbone.stages[i][0].dwconv.P.abs().max() <= limit
    hooks = [type(h).__name__ for h in runner.hooks]
    assert hooks.index('DCLSClampHook') < hooks.index('EMAHook')
    assert 'val/accuracy/top1' in scalars  # the validation ran with the recipe's test pipeline


def test_trained_checkpoint_converts_and_evaluates_identically(trained, tmp_path):
    """mmpretrain checkpoint -> release file (the converter tool) -> back: the same keys and
    tensors; the release classifier and ImageClassifier give the same logits."""
    convert = load_converter().convert
    _, checkpoint, cfg = trained
    release_path, back_path = str(tmp_path / 'release.pth'), str(tmp_path / 'back.pth')
    info = convert(checkpoint, release_path)
    assert info['from'] == 'mmpretrain' and info['to'] == 'release'
    assert convert(release_path, back_path)['to'] == 'mmpretrain'
    original = torch.load(checkpoint, map_location='cpu')['state_dict']
    release_sd = torch.load(release_path, map_location='cpu')['model']
    back = torch.load(back_path, map_location='cpu')['state_dict']
    assert list(back) == list(original) and info['keys'] == len(original)
    for key in original:
        assert torch.equal(back[key], original[key]), key

    release = ConvNeXtDCLSClassifier(ARCH, num_classes=NUM_CLASSES, dilated_kernel_size=5)
    release.load_state_dict(release_sd, strict=True)
    model = build(cfg.model)
    model.load_state_dict(original, strict=True)
    release.eval(), model.eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        # the same operations; only the conv backend's algorithm choice may round differently
        torch.testing.assert_close(model(x, mode='tensor'), release(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match='already in the mmpretrain layout'):
        convert(back_path, str(tmp_path / 'x.pth'), to='mmpretrain')


def test_trained_checkpoint_initialises_a_detection_backbone(trained):
    """The file mmengine saved for the mmpretrain run, through ``init_cfg`` with
    ``prefix='backbone.'``: every backbone weight loaded, only the output norms new."""
    _, checkpoint, _ = trained
    backbone = ConvNeXtDCLS(
        arch=ARCH,
        dilated_kernel_size=5,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.'))
    report = backbone.load_pretrained(checkpoint, prefix='backbone.')
    assert report['new'] == [f'norm{i}.{w}' for i in range(4) for w in ('weight', 'bias')]
    assert report['ignored'] == []
    saved = torch.load(checkpoint, map_location='cpu')['state_dict']
    for key, value in backbone.state_dict().items():
        if not key.startswith('norm'):
            assert torch.equal(value, saved['backbone.' + key]), key


def test_released_file_evaluates_in_the_test_loop_as_the_release_classifier(trained, tmp_path):
    """A file in the release's layout ({'model': ..., 'args': ...}), converted by the tool and
    run through mmpretrain's test loop (runner.test(), the loop tools/test.py runs), scores the
    top-1 that the release classifier scores on the same preprocessed images."""
    import argparse
    import copy

    from mmengine.runner import Runner
    convert = load_converter().convert
    _, checkpoint, cfg = trained
    release = ConvNeXtDCLSClassifier(ARCH, num_classes=NUM_CLASSES, dilated_kernel_size=5)
    with torch.no_grad():
        for p in release.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    release_path, mmpt_path = str(tmp_path / 'release.pth'), str(tmp_path / 'mmpt.pth')
    torch.save(dict(model=release.state_dict(), args=argparse.Namespace(lr=4e-3)), release_path)
    convert(release_path, mmpt_path)

    test_cfg = copy.deepcopy(cfg)
    test_cfg.work_dir = str(tmp_path / 'test')
    test_cfg.load_from = mmpt_path
    test_cfg.custom_hooks = []  # no EMA swap: evaluate exactly the loaded weights
    runner = Runner.from_cfg(test_cfg)
    metrics = runner.test()

    release.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in runner.test_dataloader:
            data = runner.model.data_preprocessor(batch, False)
            labels = torch.stack([s.gt_label for s in data['data_samples']]).view(-1)
            correct += (release(data['inputs']).argmax(1) == labels).sum().item()
            total += labels.numel()
    assert total == 6
    assert metrics['accuracy/top1'] == pytest.approx(100.0 * correct / total)
