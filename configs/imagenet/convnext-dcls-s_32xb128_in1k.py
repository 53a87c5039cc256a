# ConvNeXt-DCLS-S on ImageNet-1k in mmpretrain 1.2 with the release's recipe (published
# top-1 83.7 (ConvNeXt-S 83.1), EMA weights): the recipe it shares with its
# plain twin convnext-s_32xb128_in1k.py (_base_; every value, and where it differs from the
# release, is stated in ../_base_/recipes/convnext-t_32xb128_in1k.py) with the release's DCLS
# depthwise layer (Dcls2d kernel_count 40: the parameter count of ConvNeXt-S) and the
# position clamp hook.
_base_ = '../_base_/recipes/convnext-s_32xb128_in1k.py'

model = dict(backbone=dict(dilated_kernel_size=17, version='v0', share_positions=True))
# The clamp first: both hooks run at ABOVE_NORMAL, and the EMA must average clamped positions.
custom_hooks = [
    dict(type='mmdcls.DCLSClampHook'),
    dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL')
]
