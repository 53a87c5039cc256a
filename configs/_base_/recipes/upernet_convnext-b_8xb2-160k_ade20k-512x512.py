# Recipe of UperNet, ConvNeXt-B size, 512x512, 160k, ADE20K, shared by the DCLS config and its
# plain twin: the tiny recipe with the release's base drop path rate and 12 layer ids.
_base_ = './upernet_convnext-t_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.4),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
