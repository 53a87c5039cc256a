# Plain ConvNeXt-B twin of
# ../convnext_dcls/mask-rcnn_convnext-dcls-b_fpn_ms-crop-3x_coco.py:
# the same ConvNeXtDCLS class with a 7x7 depthwise Conv2d instead of DCLS (no positions, so no
# clamp hook); data, heads, schedule and optimizer recipe are identical.
# Starts from ConvNeXt's convnext_base_1k_224.pth (see README.md, Model zoo).
_base_ = '../convnext_dcls/mask-rcnn_convnext-dcls-b_fpn_ms-crop-3x_coco.py'

checkpoint_file = 'checkpoints/convnext_base_1k_224.pth'
model = dict(
    backbone=dict(
        dwconv_cfg=dict(type='Conv2d', kernel_size=7),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
custom_hooks = []
