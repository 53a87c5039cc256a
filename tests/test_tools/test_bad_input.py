"""Bad input stops early with a message naming the key / file (mmdcls.utils.config_checks,
mmdcls.utils.tool_setup and the backbone's checkpoint loading)."""
import json

import pytest
import torch
from conftest import DET_CONFIG, SEG_CONFIG, det_data_options, run_tool, seg_data_options
from mmengine.config import Config

import mmdcls  # noqa: F401
from mmdcls.utils.config_checks import ConfigCheckError, check_config
from mmdcls.utils.tool_setup import select_toolkit


def _cfg(path, options):
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(dict(o.split('=', 1) for o in options))
    return cfg


@pytest.fixture
def det_cfg(tiny_data):
    return _cfg(DET_CONFIG, det_data_options(tiny_data))


@pytest.fixture
def seg_cfg(tiny_data):
    return _cfg(SEG_CONFIG, seg_data_options(tiny_data))


def test_good_configs_pass(det_cfg, seg_cfg):
    check_config(det_cfg)
    check_config(seg_cfg)


def test_unknown_scope(det_cfg):
    det_cfg.default_scope = 'mmocr'
    with pytest.raises(
            ConfigCheckError,
            match=r"default_scope must be one of \('mmdet', 'mmseg', 'mmpretrain'\).*"
            "'mmocr'"):
        select_toolkit(det_cfg)


@pytest.mark.parametrize('key,value,match', [
    ('arch', 'tiniest', r"model.backbone \(ConvNeXtDCLS\): arch must be one of \['tiny'.*"
     "'tiniest'"),
    ('version', 'v9', r"model.backbone \(ConvNeXtDCLS\): version must be one of .*'v9'"),
    ('out_indices', (4, ), r'model.backbone \(ConvNeXtDCLS\): out_indices entries must be'),
    ('depth', 3, r"model.backbone \(ConvNeXtDCLS\): ConvNeXtDCLS takes no argument\(s\) "
     r"\['depth'\]"),
    ('kernel_count', -3, r'model.backbone \(ConvNeXtDCLS\): kernel_count must be a positive int, '
     'got -3'),
    ('dilated_kernel_size', 0, r'model.backbone \(ConvNeXtDCLS\): dilated_kernel_size must be '
     r'odd and positive'),
    ('dilated_kernel_size', (9, 9, 9), r'dilated_kernel_size must be an int or a tuple of 2 ints'),
    ('arch', dict(depths=[1, 1, 3, 1], channels=[32, 64, 128, 256],
                  kernel_count=0), 'kernel_count must be a positive int, got 0'),
])
def test_backbone_arguments_checked_by_the_class(seg_cfg, key, value, match):
    seg_cfg.model.backbone[key] = value
    with pytest.raises(ConfigCheckError, match=match):
        check_config(seg_cfg)


def test_missing_dataset_path(det_cfg, tmp_path):
    det_cfg.train_dataloader.dataset.data_root = str(tmp_path / 'nowhere') + '/'
    with pytest.raises(FileNotFoundError, match=r'train_dataloader.dataset.data_root.*nowhere'):
        check_config(det_cfg)


def test_missing_ade_annotation(seg_cfg, tmp_path):
    import shutil
    root = tmp_path / 'ade'
    shutil.copytree(seg_cfg.train_dataloader.dataset.data_root, root)
    (root / 'annotations' / 'training' / 'ADE_training_00000007.png').unlink()
    seg_cfg.train_dataloader.dataset.data_root = str(root)
    with pytest.raises(ConfigCheckError, match=r'ADE_training_00000007.png'):
        check_config(seg_cfg)


@pytest.mark.parametrize('content,match', [
    ('{"images": [', 'not valid JSON'),
    (json.dumps({
        'images': [],
        'annotations': []
    }), "key 'categories' must be a list"),
    (json.dumps({
        'images': [{
            'id': 1,
            'file_name': 'a.jpg',
            'height': 4,
            'width': 4
        }],
        'annotations': [{
            'id': 1,
            'image_id': 1,
            'category_id': 1,
            'bbox': [0, 0, 1]
        }],
        'categories': [{
            'id': 1,
            'name': 'circle'
        }]
    }), r'annotations\[0\].bbox'),
    (json.dumps({
        'images': [],
        'annotations': [],
        'categories': [{
            'id': 1,
            'name': 'disc'
        }]
    }), r"metainfo.classes \['circle', 'square', 'triangle'\] are not categories"),
])
def test_malformed_annotation_file(det_cfg, tmp_path, content, match):
    ann = tmp_path / 'instances_bad.json'
    ann.write_text(content)
    det_cfg.train_dataloader.dataset.ann_file = str(ann)
    with pytest.raises(ConfigCheckError, match=match) as info:
        check_config(det_cfg)
    assert str(ann) in str(info.value)


def test_num_classes_mismatch(det_cfg):
    det_cfg.model.roi_head.bbox_head.num_classes = 80
    with pytest.raises(ConfigCheckError, match=r'model.roi_head.bbox_head.num_classes = 80'):
        check_config(det_cfg)


def test_mmpretrain_num_classes_and_string_data_prefix(tmp_path):
    """mmpretrain configs: the image folder as a plain data_prefix string, and the head's /
    data preprocessor's num_classes against metainfo.classes (no mmpretrain needed to check)."""
    (tmp_path / 'data' / 'train' / 'a').mkdir(parents=True)
    path = tmp_path / 'cls.py'
    path.write_text(
        "model = dict(type='ImageClassifier', head=dict(num_classes=3),\n"
        "             data_preprocessor=dict(num_classes=3))\n"
        f"train_dataloader = dict(dataset=dict(type='CustomDataset', data_root={str(tmp_path / 'data')!r},\n"  # noqa: E501
        "    data_prefix='train', metainfo=dict(classes=['a', 'b', 'c'])))\n")
    cfg = Config.fromfile(str(path))
    check_config(cfg, phases=('train', ))
    cfg.model.head.num_classes = 4
    with pytest.raises(ConfigCheckError, match=r'model.head.num_classes = 4 but .* 3 classes'):
        check_config(cfg, phases=('train', ))
    cfg.model.head.num_classes = 3
    cfg.train_dataloader.dataset.data_prefix = 'val'
    with pytest.raises(FileNotFoundError, match=r"train_dataloader.dataset.data_prefix = .*val'"):
        check_config(cfg, phases=('train', ))


def test_missing_pretrained_checkpoint(seg_cfg, tmp_path):
    seg_cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(tmp_path / 'x.pth'))
    with pytest.raises(FileNotFoundError, match=r'model.backbone.init_cfg.checkpoint.*x.pth'):
        check_config(seg_cfg)


def test_wrong_size_imagenet_checkpoint(seg_cfg, tmp_path):
    """A release-layout checkpoint ({'model': ...}) of another width: the backbone stops at
    init (before the first iteration) naming the file."""
    from mmdcls.models import ConvNeXtDCLS
    other = ConvNeXtDCLS(
        arch=dict(depths=[1, 1, 3, 1], channels=[16, 32, 64, 128], kernel_count=8),
        dilated_kernel_size=9)
    ckpt = tmp_path / 'convnext_dcls_other_1k_224_ema.pth'
    torch.save({'model': other.state_dict()}, ckpt)
    cfg = dict(seg_cfg.model.backbone)
    cfg.pop('type')
    cfg['init_cfg'] = dict(type='Pretrained', checkpoint=str(ckpt))
    backbone = ConvNeXtDCLS(**cfg)
    with pytest.raises(ValueError, match='convnext_dcls_other_1k_224_ema.pth'):
        backbone.init_weights()


def test_train_tool_stops_before_building(tiny_data, tmp_path):
    options = det_data_options(tiny_data)
    options[0] = f'train_dataloader.dataset.data_root={tmp_path}/missing/'
    proc = run_tool(
        ['tools/train.py', DET_CONFIG, '--work-dir', tmp_path / 'w', '--cfg-options', *options],
        check=False,
        timeout=120)
    assert proc.returncode != 0
    assert 'train_dataloader.dataset.data_root' in proc.stdout and 'missing' in proc.stdout
    assert not (tmp_path / 'w').exists() or not list((tmp_path / 'w').glob('*.pth'))
