# Recipe of Cascade Mask R-CNN (4conv1fc bbox heads, GIoU), ConvNeXt-T size, multi-scale + crop,
# 3x, COCO, shared by convnext_dcls/cascade-mask-rcnn_convnext-dcls-t_... and its plain twin
# convnext_baseline/cascade-mask-rcnn_convnext-t_...: the ConvNeXt-dcls release's recipe
# (cascade_mask_rcnn_convnext_dcls_tiny_..._3x_coco_in1k.py) on mmdet's own ConvNeXt-T config,
# whose heads, pipeline and 36-epoch schedule it shares. Only the backbone and the optimizer
# constructor differ from mmdet's config; the configs add the depthwise layer, the ImageNet
# checkpoint and the hooks. Trained on 8 GPUs x 2 images; add --amp for the release's fp16.
_base_ = ('mmdet::convnext/'
          'cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py')

custom_imports = dict(imports=['mmdcls'], allow_failed_imports=False)

# The depthwise layer is the backbone's default, the release's DCLS (dilated_kernel_size=17,
# kernel_count from arch: 34 for tiny, 40 for small/base, version='v0', one set of positions
# per stage), unless a config sets dwconv_cfg.
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdcls.ConvNeXtDCLS',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.4,
        layer_scale_init_value=1.0))

# Plain OptimWrapper so that the config also runs on CPU; tools/train.py --amp switches to
# AmpOptimWrapper. num_layers: 6 for tiny, 12 for small/base (the release's values, and what
# ConvNeXtDCLS.get_layer_depth defines for each arch).
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='mmdcls.DCLSLearningRateDecayOptimizerConstructor',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise', num_layers=6, position_lr_mult=5.0))
