# Cascade Mask R-CNN (4conv1fc, GIoU), ConvNeXt-T, multi-scale + crop, 3x, COCO.
# Plain-ConvNeXt twin of
# ../convnext_dcls/cascade-mask-rcnn_convnext-dcls-t_fpn_giou-4conv1fc_ms-crop-3x_coco.py.
# Published (ConvNeXt, in the release's table): box AP 50.4, mask AP 43.7.
# The recipe it shares with the DCLS config (_base_) with ConvNeXt's 7x7 depthwise Conv2d, its
# ImageNet checkpoint convnext_tiny_1k_224.pth (README.md, Model zoo) and no clamp hook (no
# positions).
_base_ = '../_base_/recipes/cascade-mask-rcnn_convnext-t_fpn_giou-4conv1fc_ms-crop-3x_coco.py'

checkpoint_file = 'checkpoints/convnext_tiny_1k_224.pth'
model = dict(
    backbone=dict(
        dwconv_cfg=dict(type='Conv2d', kernel_size=7),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
custom_hooks = []
