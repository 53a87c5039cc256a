# Plain ConvNeXt-S twin of
# ../convnext_dcls/upernet_convnext-dcls-s_8xb2-160k_ade20k-512x512.py:
# the same ConvNeXtDCLS class with a 7x7 depthwise Conv2d instead of DCLS (no positions, so no
# clamp hook); data, heads, schedule and optimizer recipe are identical.
# Published (ConvNeXt, in the release's table): mIoU 48.7 (ms+flip 49.6).
# Starts from ConvNeXt's convnext_small_1k_224.pth (see README.md, Model zoo).
_base_ = '../convnext_dcls/upernet_convnext-dcls-s_8xb2-160k_ade20k-512x512.py'

checkpoint_file = 'checkpoints/convnext_small_1k_224.pth'
model = dict(
    backbone=dict(
        dwconv_cfg=dict(type='Conv2d', kernel_size=7),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
custom_hooks = []
