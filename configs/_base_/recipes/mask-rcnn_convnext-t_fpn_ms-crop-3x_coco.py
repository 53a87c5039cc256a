# Recipe of Mask R-CNN, ConvNeXt-T size, multi-scale + crop, 3x, COCO, shared by
# convnext_dcls/mask-rcnn_convnext-dcls-t_fpn_ms-crop-3x_coco.py and its plain twin: the
# release's recipe (mask_rcnn_convnext_dcls_tiny_..._3x_coco_in1k.py: AdamW lr 1e-4, layer-wise
# decay 0.95 over 6 layers, drop path 0.4) on mmdet's ConvNeXt-T Mask R-CNN config. The configs
# add the depthwise layer, the ImageNet checkpoint and the hooks.
_base_ = 'mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py'

custom_imports = dict(imports=['mmdcls'], allow_failed_imports=False)

# The depthwise layer is the backbone's default, the release's DCLS (dilated_kernel_size=17,
# kernel_count 34, version='v0', positions shared per stage), unless a config sets dwconv_cfg.
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdcls.ConvNeXtDCLS',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.4,
        layer_scale_init_value=1.0))

# Plain OptimWrapper so that the config also runs on CPU; tools/train.py --amp for fp16.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='mmdcls.DCLSLearningRateDecayOptimizerConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        decay_rate=0.95, decay_type='layer_wise', num_layers=6, position_lr_mult=5.0))
