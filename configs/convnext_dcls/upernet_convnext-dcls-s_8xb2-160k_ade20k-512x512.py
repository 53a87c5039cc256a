# UperNet, ConvNeXt-DCLS-S, 512x512, 160k, ADE20K. Published (release): mIoU 48.4 (ms+flip 49.0).
# Starts from convnext_dcls_small_1k_224_ema.pth.
_base_ = './upernet_convnext-dcls-t_8xb2-160k_ade20k-512x512.py'

checkpoint_file = 'checkpoints/convnext_dcls_small_1k_224_ema.pth'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
