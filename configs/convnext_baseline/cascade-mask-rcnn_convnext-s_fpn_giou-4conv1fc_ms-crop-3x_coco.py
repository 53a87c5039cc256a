# Plain ConvNeXt-S twin of
# ../convnext_dcls/cascade-mask-rcnn_convnext-dcls-s_fpn_giou-4conv1fc_ms-crop-3x_coco.py:
# the same ConvNeXtDCLS class with a 7x7 depthwise Conv2d instead of DCLS (no positions, so no
# clamp hook); data, heads, schedule and optimizer recipe are identical.
# Published (ConvNeXt, in the release's table): box AP 51.9, mask AP 45.0.
# Starts from ConvNeXt's convnext_small_1k_224.pth (see README.md, Model zoo).
_base_ = '../convnext_dcls/cascade-mask-rcnn_convnext-dcls-s_fpn_giou-4conv1fc_ms-crop-3x_coco.py'

checkpoint_file = 'checkpoints/convnext_small_1k_224.pth'
model = dict(
    backbone=dict(
        dwconv_cfg=dict(type='Conv2d', kernel_size=7),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
custom_hooks = []
