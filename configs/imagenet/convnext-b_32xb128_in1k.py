# ConvNeXt-B twin of convnext-dcls-b_32xb128_in1k.py (the comparison of the paper's table;
# the published ConvNeXt-B is 83.8): the recipe they share (_base_) with the 7x7 depthwise
# conv of ConvNeXt instead of DCLS. Without positions, position_lr_mult has nothing to act on
# and there is nothing to clamp: the hooks are the recipe's (EMA).
_base_ = '../_base_/recipes/convnext-b_32xb128_in1k.py'

model = dict(backbone=dict(dwconv_cfg=dict(type='Conv2d', kernel_size=7)))
