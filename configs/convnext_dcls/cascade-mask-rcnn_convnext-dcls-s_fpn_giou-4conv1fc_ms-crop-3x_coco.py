# Cascade Mask R-CNN (4conv1fc, GIoU), ConvNeXt-DCLS-S, multi-scale + crop, 3x, COCO.
# Published (release): box AP 52.8, mask AP 45.6. Starts from convnext_dcls_small_1k_224_ema.pth.
_base_ = './cascade-mask-rcnn_convnext-dcls-t_fpn_giou-4conv1fc_ms-crop-3x_coco.py'

checkpoint_file = 'checkpoints/convnext_dcls_small_1k_224_ema.pth'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.6,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
optim_wrapper = dict(paramwise_cfg=dict(decay_rate=0.7, num_layers=12))
