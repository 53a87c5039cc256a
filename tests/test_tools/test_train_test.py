"""tools/train.py + tools/test.py on the three toolkits: a few iterations on the tiny datasets,
then evaluation from the saved checkpoint (metrics printed, --out written, exit status 0)."""
import importlib.util
import pickle

import pytest
from conftest import DET_CONFIG, SEG_CONFIG, det_data_options, run_tool, seg_data_options

#: an mmpretrain ImageClassifier with the mmdcls backbone and mmpretrain's own neck and head,
#: on tiny_textures (64x64, 4 classes); DATA_ROOT is filled in by the test
CLS_CONFIG = """
_base_ = 'mmpretrain::_base_/default_runtime.py'
custom_imports = dict(imports=['mmdcls'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmdcls.ConvNeXtDCLS', arch=dict(depths=[1, 1, 2, 1],
                  channels=[8, 16, 32, 64]), dilated_kernel_size=5, kernel_count=3,
                  out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=4, in_channels=64,
              loss=dict(type='CrossEntropyLoss'), topk=(1, )))
data_preprocessor = dict(num_classes=4, mean=[128.] * 3, std=[64.] * 3, to_rgb=True)
pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(batch_size=8, num_workers=0, sampler=dict(type='DefaultSampler',
                        shuffle=True), dataset=dict(type='CustomDataset', data_root=DATA_ROOT,
                        data_prefix='train', pipeline=pipeline, indices=16))
val_dataloader = dict(batch_size=8, num_workers=0, sampler=dict(type='DefaultSampler',
                      shuffle=False), dataset=dict(type='CustomDataset', data_root=DATA_ROOT,
                      data_prefix='val', pipeline=pipeline, indices=8))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(constructor='mmdcls.DCLSLearningRateDecayOptimizerConstructor',
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
                     paramwise_cfg=dict(decay_rate=0.9))
custom_hooks = [dict(type='mmdcls.DCLSClampHook')]
default_hooks = dict(logger=dict(interval=1))
"""


def test_detection_train_then_test(tiny_data, tmp_path):
    work = tmp_path / 'det'
    run_tool([
        'tools/train.py', DET_CONFIG, '--work-dir', work, '--cfg-options',
        *det_data_options(tiny_data), 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1'
    ])
    ckpt = work / 'epoch_1.pth'
    assert ckpt.is_file()
    out = tmp_path / 'preds.pkl'
    proc = run_tool([
        'tools/test.py', DET_CONFIG, ckpt, '--work-dir', work, '--out', out, '--show-dir', 'vis',
        '--cfg-options', *det_data_options(tiny_data)
    ])
    assert 'coco/bbox_mAP:' in proc.stdout and 'coco/segm_mAP:' in proc.stdout
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 4 and 'pred_instances' in preds[0]
    assert len(list(work.glob('*/vis/*.jpg'))) == 4  # --show-dir: painted predictions


def test_segmentation_train_then_test(tiny_data, tmp_path):
    work = tmp_path / 'seg'
    run_tool([
        'tools/train.py', SEG_CONFIG, '--work-dir', work, '--cfg-options',
        *seg_data_options(tiny_data), 'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
        'default_hooks.checkpoint.interval=4', 'default_hooks.logger.interval=1'
    ])
    ckpt = work / 'iter_4.pth'
    assert ckpt.is_file()
    out = tmp_path / 'pred_maps'
    proc = run_tool([
        'tools/test.py', SEG_CONFIG, ckpt, '--work-dir', work, '--out', out, '--show-dir', 'vis',
        '--cfg-options', *seg_data_options(tiny_data)
    ])
    assert 'mIoU:' in proc.stdout
    assert len(list(out.glob('*.png'))) == 4
    assert len(list(work.glob('vis/vis_data/vis_image/*.png'))) == 4  # --show-dir


@pytest.mark.skipif(
    importlib.util.find_spec('mmpretrain') is None,
    reason='mmpretrain is not installed here (it needs a torchvision built for '
    'the installed torch; the torch 2.1 lane has it)')
def test_classification_train_then_test(tiny_data, tmp_path):
    """default_scope='mmpretrain': the tools pick mmpretrain's registries, the layer-decay
    constructor asks the backbone for its layer ids inside an ImageClassifier, --out dumps
    mmpretrain's predictions."""
    cfg = tmp_path / 'cls.py'
    cfg.write_text(f'DATA_ROOT = {tiny_data["textures"]!r}\n' + CLS_CONFIG)
    work = tmp_path / 'cls'
    proc = run_tool(['tools/train.py', cfg, '--work-dir', work])
    assert 'ConvNeXtDCLS.get_layer_depth' in proc.stdout  # the rule came from the model
    ckpt = work / 'epoch_1.pth'
    assert ckpt.is_file()
    out = tmp_path / 'preds.pkl'
    proc = run_tool(['tools/test.py', cfg, ckpt, '--work-dir', work, '--out', out, '--tta'])
    assert 'accuracy/top1:' in proc.stdout
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 8 and 'pred_label' in preds[0]
