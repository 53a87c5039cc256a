# Mask R-CNN with a narrow ConvNeXt-DCLS on the synthetic tiny_coco (circles, squares,
# triangles at 128x128; `python tools/misc/make_tiny_datasets.py`), trained from scratch on CPU
# in minutes by `make demo`. The recipe pieces are those of the COCO configs: the mmdcls
# layer-decay constructor (positions at 5x lr, no weight decay) and the clamp hook.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmdcls'], allow_failed_imports=False)

classes = ('circle', 'square', 'triangle')
metainfo = dict(classes=classes, palette=[(220, 20, 60), (0, 130, 230), (20, 180, 60)])
num_classes = len(classes)
channels = [32, 64, 128, 256]
neck_channels = 64

model = dict(
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
    neck=dict(in_channels=channels, out_channels=neck_channels),
    rpn_head=dict(in_channels=neck_channels, feat_channels=neck_channels),
    roi_head=dict(
        # Fixed 2x2 sampling and 64 RoIs per image: mmcv's CPU RoIAlign backward dominates
        # the step time otherwise.
        bbox_roi_extractor=dict(roi_layer=dict(sampling_ratio=2), out_channels=neck_channels),
        bbox_head=dict(in_channels=neck_channels, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(roi_layer=dict(sampling_ratio=2), out_channels=neck_channels),
        mask_head=dict(
            num_convs=2,
            in_channels=neck_channels,
            conv_out_channels=neck_channels,
            num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=64), mask_size=28)),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))

data_root = 'data/tiny_coco/'
image_scale = (128, 128)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    ann_file=data_root + 'annotations/instances_val2017.json', metric=['bbox', 'segm'])
test_evaluator = val_evaluator

max_epochs = 24
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='mmdcls.DCLSLearningRateDecayOptimizerConstructor',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.05),
    # From scratch: no layer decay; positions at 5x lr, no weight decay on them.
    paramwise_cfg=dict(decay_rate=1.0, decay_type='layer_wise', position_lr_mult=5.0),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True)
]
custom_hooks = [dict(type='mmdcls.DCLSClampHook')]
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
auto_scale_lr = dict(enable=False, base_batch_size=4)
randomness = dict(seed=0)
