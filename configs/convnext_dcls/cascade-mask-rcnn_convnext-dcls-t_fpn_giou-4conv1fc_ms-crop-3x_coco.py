# Cascade Mask R-CNN (4conv1fc, GIoU), ConvNeXt-DCLS-T, multi-scale + crop, 3x, COCO.
# Published (release): box AP 51.2, mask AP 44.5.
# The recipe it shares with its plain-ConvNeXt twin (_base_) with the release's DCLS depthwise
# layer (the backbone's default), its ImageNet checkpoint convnext_dcls_tiny_1k_224_ema.pth
# (README.md, Model zoo) and the position clamp hook.
_base_ = '../_base_/recipes/cascade-mask-rcnn_convnext-t_fpn_giou-4conv1fc_ms-crop-3x_coco.py'

checkpoint_file = 'checkpoints/convnext_dcls_tiny_1k_224_ema.pth'
model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
custom_hooks = [dict(type='mmdcls.DCLSClampHook')]
