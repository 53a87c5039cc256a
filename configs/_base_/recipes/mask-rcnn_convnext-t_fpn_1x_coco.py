# Recipe of Mask R-CNN, ConvNeXt-T size, single scale (1333x800), 1x (12 epochs), COCO (not in
# the release): its 3x recipe (optimizer, layer decay, drop path) over mmdet's standard
# single-scale pipeline and 1x schedule, for quicker comparisons of DCLS with the plain twin.
_base_ = './mask-rcnn_convnext-t_fpn_ms-crop-3x_coco.py'

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11], gamma=0.1)
]
