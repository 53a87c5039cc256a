# Recipe of UperNet, ConvNeXt-T size, 512x512 crops, 160k iterations, ADE20K, single-scale
# sliding test, shared by convnext_dcls/upernet_convnext-dcls-t_... and its plain twin: the
# release's recipe (upernet_convnext_dcls_tiny_512_160k_ade20k_ss.py: AdamW lr 1e-4, stage-wise
# decay 0.9 over 6 layers, drop path 0.4) on mmseg's ConvNeXt-T config. Only the backbone and
# the optimizer constructor differ from mmseg's config; the configs add the depthwise layer, the
# ImageNet checkpoint and the hooks.
_base_ = 'mmseg::convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py'

custom_imports = dict(imports=['mmdcls'], allow_failed_imports=False)

# The depthwise layer is the backbone's default, the release's DCLS (dilated_kernel_size=17,
# kernel_count from arch, version='v0', positions shared per stage), unless a config sets
# dwconv_cfg.
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdcls.ConvNeXtDCLS',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.4,
        layer_scale_init_value=1.0))

# Plain OptimWrapper so that the config also runs on CPU; tools/train.py --amp for fp16.
# num_layers: 6 for tiny, 12 for small/base, as the release.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='mmdcls.DCLSLearningRateDecayOptimizerConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise', num_layers=6, position_lr_mult=5.0))
