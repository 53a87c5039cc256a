# Recipe of UperNet, ConvNeXt-S size, 512x512, 160k, ADE20K, shared by the DCLS config and its
# plain twin: the tiny recipe with the release's small drop path rate and 12 layer ids.
_base_ = './upernet_convnext-t_8xb2-160k_ade20k-512x512.py'

model = dict(backbone=dict(arch='small', drop_path_rate=0.3))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
