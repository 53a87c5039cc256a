# Recipe of ConvNeXt-S-size ImageNet-1k classification, shared by the DCLS config and its plain
# twin: the tiny recipe (every value, and where it differs from the release, is stated there)
# with the small arch and its drop path rate 0.4 (the release's --drop_path for ConvNeXt-S).
# mmpretrain's ConvNeXt-S config differs from its ConvNeXt-T config in the model alone, which
# the tiny recipe replaces whole.
_base_ = './convnext-t_32xb128_in1k.py'

model = dict(backbone=dict(arch='small', drop_path_rate=0.4), head=dict(in_channels=768))
