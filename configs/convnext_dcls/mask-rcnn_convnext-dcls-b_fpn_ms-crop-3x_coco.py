# Mask R-CNN, ConvNeXt-DCLS-B, ms-crop-3x, COCO.
# Not in the release (it publishes Mask R-CNN for tiny only): the tiny recipe with the drop path
# rate of the release's base Cascade config and layer decay over base's 12 layer ids.
# Starts from convnext_dcls_base_1k_224_ema.pth.
_base_ = './mask-rcnn_convnext-dcls-t_fpn_ms-crop-3x_coco.py'

checkpoint_file = 'checkpoints/convnext_dcls_base_1k_224_ema.pth'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.7,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
