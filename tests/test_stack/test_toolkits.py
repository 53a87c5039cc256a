"""Stock mmdet / mmseg models, built from the toolkits' own config files, train on CPU.

Each model gets ResNet-18 (no pretrained weights), one tiny synthetic batch through
``model(inputs, data_samples, mode='loss')``; the losses must be finite and their backward must
give finite gradients to the backbone, neck and heads.
"""
import importlib.util
import math

import numpy as np
import pytest
import torch
from mmengine.config import Config

if importlib.util.find_spec('mmcv._ext') is None:
    pytest.skip(
        "mmdet / mmseg models need mmcv's compiled ops (mmcv._ext), not installed here "
        '(the compat lane has mmcv-lite 2.1.0, mmcv without ops)',
        allow_module_level=True)
mmdet = pytest.importorskip('mmdet')
mmseg = pytest.importorskip('mmseg')

RESNET18_CHANNELS = [64, 128, 256, 512]


def _total_loss(losses):
    """Sum mmengine-style losses (tensors or lists of tensors) whose key contains 'loss'."""
    total = 0
    for name, value in losses.items():
        if 'loss' not in name:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            assert torch.isfinite(v).all(), f'{name} is not finite: {v}'
            total = total + v.sum()
    return total


def _check_gradients(model, prefixes):
    grads = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
    for name, grad in grads.items():
        if grad is not None:
            assert torch.isfinite(grad).all(), f'non-finite gradient in {name}'
    for prefix in prefixes:
        reached = [
            n for n, g in grads.items()
            if n.startswith(prefix) and g is not None and g.abs().sum() > 0
        ]
        assert reached, f'no parameter under {prefix!r} received a non-zero gradient'


def _replace_sync_bn(cfg):
    """SyncBN -> BN everywhere in a config dict (SyncBN needs a process group)."""
    if isinstance(cfg, dict):
        if cfg.get('type') == 'SyncBN':
            cfg['type'] = 'BN'
        for value in cfg.values():
            _replace_sync_bn(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            _replace_sync_bn(value)


def _config_inheriting(tmp_path, base):
    """A config file that inherits a toolkit's own config, the way user configs do
    (``Config.fromfile`` itself does not resolve ``mmdet::`` paths in mmengine 0.10.7)."""
    path = tmp_path / 'cfg.py'
    path.write_text(f'_base_ = {base!r}\n')
    return Config.fromfile(str(path))


def test_mmdet_mask_rcnn_r18_trains_one_step(tmp_path):
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmdet.utils import register_all_modules
    from mmengine.structures import InstanceData

    register_all_modules(init_default_scope=True)
    cfg = _config_inheriting(tmp_path, 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    assert cfg.model.type == 'MaskRCNN' and cfg.model.backbone.depth == 50
    cfg.model.backbone.depth = 18
    cfg.model.backbone.init_cfg = None
    cfg.model.neck.in_channels = RESNET18_CHANNELS
    model = MODELS.build(cfg.model)
    model.train()

    size = 128
    gt = InstanceData()
    gt.bboxes = torch.tensor([[16., 24., 80., 96.]])
    gt.labels = torch.tensor([3])
    mask = np.zeros((1, size, size), dtype=np.uint8)
    mask[0, 24:96, 16:80] = 1
    gt.masks = BitmapMasks(mask, size, size)
    sample = DetDataSample(gt_instances=gt)
    sample.set_metainfo(
        dict(
            img_shape=(size, size),
            ori_shape=(size, size),
            pad_shape=(size, size),
            scale_factor=(1.0, 1.0),
            batch_input_shape=(size, size)))
    image = torch.randint(0, 256, (3, size, size), dtype=torch.uint8)
    data = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), training=True)
    assert data['inputs'].shape == (1, 3, size, size)

    losses = model(data['inputs'], data['data_samples'], mode='loss')
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask'):
        assert key in losses, f'{key} missing from {sorted(losses)}'
    total = _total_loss(losses)
    assert math.isfinite(total.item()) and total.item() > 0
    total.backward()
    _check_gradients(
        model, ['backbone.', 'neck.', 'rpn_head.', 'roi_head.bbox_head.', 'roi_head.mask_head.'])


def test_mmseg_upernet_r18_trains_one_step(tmp_path):
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    cfg = _config_inheriting(tmp_path, 'mmseg::_base_/models/upernet_r50.py')
    assert cfg.model.decode_head.type == 'UPerHead' and cfg.model.backbone.depth == 50
    _replace_sync_bn(cfg.model)
    cfg.model.pretrained = None  # the stock config points at an ImageNet download
    cfg.model.backbone.depth = 18
    cfg.model.decode_head.in_channels = RESNET18_CHANNELS
    cfg.model.auxiliary_head.in_channels = RESNET18_CHANNELS[2]
    size = 64
    # The stock full configs set the pad size per dataset (``data_preprocessor.size=crop_size``).
    cfg.model.data_preprocessor.size = (size, size)
    model = MODELS.build(cfg.model)
    model.train()

    num_classes = cfg.model.decode_head.num_classes
    samples, images = [], []
    # Two images: the pyramid-pooling branch pools to 1x1, and BN needs more than one value.
    for _ in range(2):
        label = torch.randint(0, num_classes, (1, size, size))
        sample = SegDataSample(gt_sem_seg=PixelData(data=label))
        sample.set_metainfo(
            dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size)))
        samples.append(sample)
        images.append(torch.randint(0, 256, (3, size, size), dtype=torch.uint8))
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), training=True)
    assert data['inputs'].shape == (2, 3, size, size)

    losses = model(data['inputs'], data['data_samples'], mode='loss')
    for key in ('decode.loss_ce', 'aux.loss_ce'):
        assert key in losses, f'{key} missing from {sorted(losses)}'
    total = _total_loss(losses)
    assert math.isfinite(total.item()) and total.item() > 0
    total.backward()
    _check_gradients(model, ['backbone.', 'decode_head.', 'auxiliary_head.'])
