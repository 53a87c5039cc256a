# Mask R-CNN, ConvNeXt-DCLS-T, multi-scale + crop, 3x, COCO.
# The release's recipe (mask_rcnn_convnext_dcls_tiny_..._3x_coco_in1k.py: AdamW lr 1e-4,
# layer-wise decay 0.95 over 6 layers, drop path 0.4) on mmdet's ConvNeXt-T Mask R-CNN config.
# The release publishes no number for this model (ConvNeXt-T: box AP 46.2, mask AP 41.7).
_base_ = 'mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py'

custom_imports = dict(imports=['mmdcls'], allow_failed_imports=False)
checkpoint_file = 'checkpoints/convnext_dcls_tiny_1k_224_ema.pth'

# DCLS settings are the backbone's defaults, those of the release (dilated_kernel_size=17,
# kernel_count 34, version='v0', positions shared per stage).
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
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='mmdcls.DCLSLearningRateDecayOptimizerConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        decay_rate=0.95, decay_type='layer_wise', num_layers=6, position_lr_mult=5.0))

custom_hooks = [dict(type='mmdcls.DCLSClampHook')]
