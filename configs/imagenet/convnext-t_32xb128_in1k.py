# ConvNeXt-T twin of convnext-dcls-t_32xb128_in1k.py: the same code, recipe and head
# with the 7x7 depthwise conv of ConvNeXt instead of DCLS (the comparison of the paper's table;
# the published ConvNeXt-T is 82.1). Without positions, position_lr_mult has nothing
# to act on and there is nothing to clamp.
_base_ = './convnext-dcls-t_32xb128_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdcls.ConvNeXtDCLS',
        out_norms=False,
        arch='tiny',
        dwconv_cfg=dict(type='Conv2d', kernel_size=7),
        drop_path_rate=0.1,
        layer_scale_init_value=1e-6,
        out_indices=(3, )))
custom_hooks = [dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL')]
