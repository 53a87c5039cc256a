# ConvNeXt-DCLS-B on ImageNet-1k in mmpretrain 1.2 with the release's recipe (published
# top-1 84.1 (ConvNeXt-B 83.8), EMA weights): the recipe of convnext-dcls-t_32xb128_in1k.py
# (every value, and where it differs from the release, is stated there) with the base arch
# and its drop path rate 0.5 (the release's --drop_path for ConvNeXt-B). mmpretrain's
# ConvNeXt-B config differs from its ConvNeXt-T config in the model alone, which the T config
# replaces whole.
_base_ = './convnext-dcls-t_32xb128_in1k.py'

model = dict(
    backbone=dict(
        arch='base',  # Dcls2d kernel_count 40: the parameter count of ConvNeXt-B
        drop_path_rate=0.5),
    head=dict(in_channels=1024))
