# UperNet, ConvNeXt-DCLS-S, 512x512, 160k, ADE20K.
# Published (release): mIoU 48.4 (ms+flip 49.0).
# The recipe it shares with its plain-ConvNeXt twin (_base_) with the release's DCLS depthwise
# layer (the backbone's default), its ImageNet checkpoint convnext_dcls_small_1k_224_ema.pth
# (README.md, Model zoo) and the position clamp hook.
_base_ = '../_base_/recipes/upernet_convnext-s_8xb2-160k_ade20k-512x512.py'

checkpoint_file = 'checkpoints/convnext_dcls_small_1k_224_ema.pth'
model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
custom_hooks = [dict(type='mmdcls.DCLSClampHook')]
