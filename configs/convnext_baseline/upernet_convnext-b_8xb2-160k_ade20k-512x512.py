# UperNet, ConvNeXt-B, 512x512, 160k, ADE20K.
# Plain-ConvNeXt twin of
# ../convnext_dcls/upernet_convnext-dcls-b_8xb2-160k_ade20k-512x512.py.
# Published (ConvNeXt, in the release's table): mIoU 49.1 (ms+flip 49.9).
# The recipe it shares with the DCLS config (_base_) with ConvNeXt's 7x7 depthwise Conv2d, its
# ImageNet checkpoint convnext_base_1k_224.pth (README.md, Model zoo) and no clamp hook (no
# positions).
_base_ = '../_base_/recipes/upernet_convnext-b_8xb2-160k_ade20k-512x512.py'

checkpoint_file = 'checkpoints/convnext_base_1k_224.pth'
model = dict(
    backbone=dict(
        dwconv_cfg=dict(type='Conv2d', kernel_size=7),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
custom_hooks = []
