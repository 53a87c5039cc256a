# UperNet, ConvNeXt-DCLS-B, 512x512, 160k, ADE20K. Published (release): mIoU 49.3 (ms+flip 49.6).
# Starts from convnext_dcls_base_1k_224_ema.pth.
_base_ = './upernet_convnext-dcls-t_8xb2-160k_ade20k-512x512.py'

checkpoint_file = 'checkpoints/convnext_dcls_base_1k_224_ema.pth'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
