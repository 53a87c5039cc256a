# UperNet, ConvNeXt-DCLS-T, 512x512 crops, 160k iterations, ADE20K; single-scale sliding test.
# The release's recipe (upernet_convnext_dcls_tiny_512_160k_ade20k_ss.py: AdamW lr 1e-4,
# stage-wise decay 0.9 over 6 layers, drop path 0.4) on mmseg's ConvNeXt-T config: only the
# backbone, the optimizer constructor and the clamp hook differ.
# Published (release): mIoU 47.1 (47.1 multi-scale + flip: see the _ms-test variant).
# Starts from convnext_dcls_tiny_1k_224_ema.pth (see README.md, Model zoo).
_base_ = 'mmseg::convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py'

custom_imports = dict(imports=['mmdcls'], allow_failed_imports=False)
checkpoint_file = 'checkpoints/convnext_dcls_tiny_1k_224_ema.pth'

# DCLS settings are the backbone's defaults, those of the release (dilated_kernel_size=17,
# kernel_count from arch, version='v0', positions shared per stage).
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdcls.ConvNeXtDCLS',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.4,
        layer_scale_init_value=1.0,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))

# Plain OptimWrapper so that the config also runs on CPU; tools/train.py --amp for fp16.
# num_layers: 6 for tiny, 12 for small/base, as the release.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='mmdcls.DCLSLearningRateDecayOptimizerConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise', num_layers=6, position_lr_mult=5.0))

custom_hooks = [dict(type='mmdcls.DCLSClampHook')]
