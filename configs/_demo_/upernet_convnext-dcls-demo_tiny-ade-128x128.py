# UperNet with a narrow ConvNeXt-DCLS on the synthetic tiny_ade (ADE20K folder layout, label 0 =
# "other" ignored with reduce_zero_label; `python tools/misc/make_tiny_datasets.py`), trained
# from scratch on CPU in minutes by `make demo`. Same recipe pieces as the ADE20K configs: the
# mmdcls layer-decay constructor (positions at 5x lr, no weight decay) and the clamp hook.
_base_ = [
    'mmseg::_base_/models/upernet_convnext.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
]
custom_imports = dict(imports=['mmdcls'], allow_failed_imports=False)

classes = ('sky', 'ground', 'circle', 'square', 'triangle')
metainfo = dict(
    classes=classes,
    palette=[(135, 206, 235), (140, 100, 60), (220, 20, 60), (0, 130, 230), (20, 180, 60)])
num_classes = len(classes)
channels = [32, 64, 128, 256]
crop_size = (128, 128)
# BN instead of the base's SyncBN: runs on CPU without a process group.
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,
        type='mmdcls.ConvNeXtDCLS',
        # Small enough for CPU: 6 blocks, DCLS 9x9 dilated kernels with 8 weights each.
        arch=dict(depths=[1, 1, 3, 1], channels=channels, kernel_count=8),
        dilated_kernel_size=9,
        version='v0',
        share_positions=True,
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3)),
    decode_head=dict(in_channels=channels, channels=64, num_classes=num_classes, norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=channels[2], channels=32, num_classes=num_classes, norm_cfg=norm_cfg),
    test_cfg=dict(mode='whole'))

dataset_type = 'BaseSegDataset'
data_root = 'data/tiny_ade'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
dataset_common = dict(
    type=dataset_type,
    data_root=data_root,
    metainfo=metainfo,
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=True)
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        **dataset_common,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        **dataset_common,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

max_iters = 300
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='mmdcls.DCLSLearningRateDecayOptimizerConstructor',
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=0.05),
    # From scratch: no stage decay; positions at 5x lr, no weight decay on them.
    paramwise_cfg=dict(decay_rate=1.0, decay_type='stage_wise', position_lr_mult=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='PolyLR', eta_min=1e-5, power=1.0, begin=30, end=max_iters, by_epoch=False)
]
custom_hooks = [dict(type='mmdcls.DCLSClampHook')]
default_hooks = dict(
    logger=dict(interval=20), checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
