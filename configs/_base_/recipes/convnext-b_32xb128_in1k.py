# Recipe of ConvNeXt-B-size ImageNet-1k classification, shared by the DCLS config and its plain
# twin: the tiny recipe (every value, and where it differs from the release, is stated there)
# with the base arch and its drop path rate 0.5 (the release's --drop_path for ConvNeXt-B).
# mmpretrain's ConvNeXt-B config differs from its ConvNeXt-T config in the model alone, which
# the tiny recipe replaces whole.
_base_ = './convnext-t_32xb128_in1k.py'

model = dict(backbone=dict(arch='base', drop_path_rate=0.5), head=dict(in_channels=1024))
