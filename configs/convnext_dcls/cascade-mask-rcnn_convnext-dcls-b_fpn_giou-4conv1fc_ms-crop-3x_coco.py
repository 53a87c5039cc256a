# Cascade Mask R-CNN (4conv1fc, GIoU), ConvNeXt-DCLS-B, multi-scale + crop, 3x, COCO.
# Published (release): box AP 53.0, mask AP 46.0. Starts from convnext_dcls_base_1k_224_ema.pth.
_base_ = './cascade-mask-rcnn_convnext-dcls-t_fpn_giou-4conv1fc_ms-crop-3x_coco.py'

checkpoint_file = 'checkpoints/convnext_dcls_base_1k_224_ema.pth'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.7,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
optim_wrapper = dict(paramwise_cfg=dict(decay_rate=0.8, num_layers=12))
