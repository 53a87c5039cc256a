# Cascade Mask R-CNN (4conv1fc, GIoU), ConvNeXt-DCLS-S, multi-scale + crop, 3x, COCO.
# Published (release): box AP 52.8, mask AP 45.6.
# The recipe it shares with its plain-ConvNeXt twin (_base_) with the release's DCLS depthwise
# layer (the backbone's default), its ImageNet checkpoint convnext_dcls_small_1k_224_ema.pth
# (README.md, Model zoo) and the position clamp hook.
_base_ = '../_base_/recipes/cascade-mask-rcnn_convnext-s_fpn_giou-4conv1fc_ms-crop-3x_coco.py'

checkpoint_file = 'checkpoints/convnext_dcls_small_1k_224_ema.pth'
model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
custom_hooks = [dict(type='mmdcls.DCLSClampHook')]
