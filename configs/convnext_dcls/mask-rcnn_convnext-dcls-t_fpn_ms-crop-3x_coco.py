# Mask R-CNN, ConvNeXt-DCLS-T, multi-scale + crop, 3x, COCO.
# Not in the release's tables (no published figure).
# The recipe it shares with its plain-ConvNeXt twin (_base_) with the release's DCLS depthwise
# layer (the backbone's default), its ImageNet checkpoint convnext_dcls_tiny_1k_224_ema.pth
# (README.md, Model zoo) and the position clamp hook.
_base_ = '../_base_/recipes/mask-rcnn_convnext-t_fpn_ms-crop-3x_coco.py'

checkpoint_file = 'checkpoints/convnext_dcls_tiny_1k_224_ema.pth'
model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
custom_hooks = [dict(type='mmdcls.DCLSClampHook')]
