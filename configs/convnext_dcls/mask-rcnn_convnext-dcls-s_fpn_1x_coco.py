# Mask R-CNN, ConvNeXt-DCLS-S, 1x, COCO.
# Not in the release (it publishes Mask R-CNN for tiny only): the tiny recipe with the drop path
# rate of the release's small Cascade config and layer decay over small's 12 layer ids.
# Starts from convnext_dcls_small_1k_224_ema.pth.
_base_ = './mask-rcnn_convnext-dcls-t_fpn_1x_coco.py'

checkpoint_file = 'checkpoints/convnext_dcls_small_1k_224_ema.pth'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.6,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
