# UperNet, ConvNeXt-T, 512x512, 160k, ADE20K.
# Plain-ConvNeXt twin of
# ../convnext_dcls/upernet_convnext-dcls-t_8xb2-160k_ade20k-512x512.py.
# Published (ConvNeXt, in the release's table): mIoU 46.0 (ms+flip 46.7).
# The recipe it shares with the DCLS config (_base_) with ConvNeXt's 7x7 depthwise Conv2d, its
# ImageNet checkpoint convnext_tiny_1k_224.pth (README.md, Model zoo) and no clamp hook (no
# positions).
_base_ = '../_base_/recipes/upernet_convnext-t_8xb2-160k_ade20k-512x512.py'

checkpoint_file = 'checkpoints/convnext_tiny_1k_224.pth'
model = dict(
    backbone=dict(
        dwconv_cfg=dict(type='Conv2d', kernel_size=7),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
custom_hooks = []
