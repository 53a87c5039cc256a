# Recipe of ConvNeXt-T-size ImageNet-1k classification in mmpretrain 1.2, shared by
# imagenet/convnext-dcls-t_32xb128_in1k.py and its plain twin imagenet/convnext-t_32xb128_in1k.py:
# the ConvNeXt-dcls release's recipe (its classifier head, EMA weights). Batch 32 x 128 = 4096,
# the release's total batch; on another number of GPUs pass --auto-scale-lr so the lr follows
# base_batch_size. The configs add the depthwise layer and, for DCLS, the clamp hook.
#
# Inherited from mmpretrain's ConvNeXt-T config and checked against the release's main.py /
# engine.py / optim_factory.py: AdamW lr 4e-3 at batch 4096, weight decay 0.05 (none on norms,
# biases, layer scales: 1-D parameters), 300 epochs, 20 warm-up epochs then cosine, drop path
# 0.1, layer scale 1e-6, EMA 0.9999 (EMAHook momentum 1e-4), RandAugment rand-m9-mstd0.5-inc1
# (timm_increasing, magnitude 9, std 0.5), Mixup 0.8 / CutMix 1.0 (switch 0.5), label
# smoothing 0.1, random erasing 0.25 (per-pixel random fill), bicubic 224 crops, test resize
# 256 / centre crop 224 (crop_pct 0.875), no gradient clipping.
#
# Where this recipe differs from the release:
# * cosine down to 1e-6 per iteration (the release's min_lr; mmpretrain's config ends at 1e-5
#   and steps per epoch). eta_min is absolute, so the positions also end at 1e-6 where the
#   release, scaling its schedule by 5, ends them at 5e-6;
# * warm-up starts at 1e-3 x lr (mmengine's LinearLR needs a factor > 0); the release starts
#   at 0;
# * one version of the release's engine.py adds a repulsion loss between the positions of a
#   kernel after epoch 20 (utils.get_dcls_loss_rep); the paper does not use it and it is not
#   reproduced;
# * the release clamps the positions after every iteration, also while accumulating
#   gradients; DCLSClampHook clamps after each optimizer step (the only time they change).
_base_ = 'mmpretrain::convnext/convnext-tiny_32xb128_in1k.py'
custom_imports = dict(imports=['mmdcls'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdcls.ConvNeXtDCLS',
        # no output norms: the head pools first, then normalises, as the released
        # classifier does (see ConvNeXtDCLS's out_norms)
        out_norms=False,
        arch='tiny',
        drop_path_rate=0.1,
        layer_scale_init_value=1e-6,
        out_indices=(3, )),
    head=dict(
        _delete_=True,
        # global average pool -> LayerNorm -> Linear: the release's norm.* / head.*
        type='mmdcls.ConvNeXtDCLSClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=None))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    # No layer decay while pretraining (decay_rate 1.0, the release's --layer_decay 1.0); the
    # positions P get 5x the lr and no weight decay, as in the release's engine.py (a plain
    # conv has no positions: position_lr_mult then has nothing to act on).
    constructor='mmdcls.DCLSLearningRateDecayOptimizerConstructor',
    optimizer=dict(type='AdamW', lr=4e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(decay_rate=1.0, position_lr_mult=5.0),
    clip_grad=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=20, convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=20, convert_to_iter_based=True)
]
# EMA of the weights (0.9999); a DCLS config puts the clamp hook first.
custom_hooks = [dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL')]
