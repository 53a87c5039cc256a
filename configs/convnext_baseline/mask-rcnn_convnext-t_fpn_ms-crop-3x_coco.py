# Mask R-CNN, ConvNeXt-T, multi-scale + crop, 3x, COCO.
# Plain-ConvNeXt twin of
# ../convnext_dcls/mask-rcnn_convnext-dcls-t_fpn_ms-crop-3x_coco.py.
# Published (ConvNeXt, in the release's table): box AP 46.2, mask AP 41.7.
# The recipe it shares with the DCLS config (_base_) with ConvNeXt's 7x7 depthwise Conv2d, its
# ImageNet checkpoint convnext_tiny_1k_224.pth (README.md, Model zoo) and no clamp hook (no
# positions).
_base_ = '../_base_/recipes/mask-rcnn_convnext-t_fpn_ms-crop-3x_coco.py'

checkpoint_file = 'checkpoints/convnext_tiny_1k_224.pth'
model = dict(
    backbone=dict(
        dwconv_cfg=dict(type='Conv2d', kernel_size=7),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
custom_hooks = []
