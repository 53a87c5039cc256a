# Pretraining stage of `make demo`: the demo's narrow ConvNeXt-DCLS (the backbone of the Mask
# R-CNN and UperNet demo configs) classifies the synthetic tiny_textures (checkerboards and
# horizontal / vertical / diagonal stripes of random colours and periods, 64x64;
# `python tools/misc/make_tiny_datasets.py`) in mmpretrain 1.2, on CPU in under a minute
# (85 % top-1, chance 25 %). The detection and segmentation stages then start from its
# checkpoint: init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.').
# The recipe pieces are those of configs/imagenet: the release's head (GAP -> LayerNorm ->
# Linear), positions at 5x lr without weight decay, clamped after every step; label smoothing.
_base_ = 'mmpretrain::_base_/default_runtime.py'
custom_imports = dict(imports=['mmdcls'], allow_failed_imports=False)

# the folder names, sorted: CustomDataset's label order
classes = ('checker', 'diagonal', 'horizontal', 'vertical')
channels = [32, 64, 128, 256]
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmdcls.ConvNeXtDCLS',
        out_norms=False,  # the head pools, then normalises (the release's classifier)
        # Must match the detection / segmentation demo backbones so that every key loads.
        arch=dict(depths=[1, 1, 3, 1], channels=channels, kernel_count=8),
        dilated_kernel_size=9,
        version='v0',
        share_positions=True,
        drop_path_rate=0.0,
        out_indices=(3, )),
    head=dict(
        type='mmdcls.ConvNeXtDCLSClsHead',
        num_classes=len(classes),
        in_channels=channels[-1],
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, )))
data_preprocessor = dict(
    num_classes=len(classes),
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

data_root = 'data/tiny_textures'
# Flips keep every class (a flipped diagonal is the other diagonal, also 'diagonal').
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train',
        metainfo=dict(classes=classes),
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='val',
        metainfo=dict(classes=classes),
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

max_epochs = 20
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='mmdcls.DCLSLearningRateDecayOptimizerConstructor',
    optimizer=dict(type='AdamW', lr=4e-3, betas=(0.9, 0.999), weight_decay=0.05),
    # From scratch: no layer decay; positions at 5x lr, no weight decay on them.
    paramwise_cfg=dict(decay_rate=1.0, position_lr_mult=5.0),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=1,
        end=max_epochs,
        convert_to_iter_based=True)
]
custom_hooks = [dict(type='mmdcls.DCLSClampHook')]
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
auto_scale_lr = dict(enable=False, base_batch_size=32)
randomness = dict(seed=0)
