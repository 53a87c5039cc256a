# Cascade Mask R-CNN (4conv1fc bbox heads, GIoU), ConvNeXt-DCLS-T, multi-scale + crop, 3x, COCO.
# The ConvNeXt-dcls release's recipe (cascade_mask_rcnn_convnext_dcls_tiny_..._3x_coco_in1k.py)
# on mmdet's own ConvNeXt-T config, whose heads, pipeline and 36-epoch schedule it shares: only
# the backbone, the optimizer constructor and the clamp hook differ.
# Published (release): box AP 51.2, mask AP 44.5. Starts from convnext_dcls_tiny_1k_224_ema.pth
# (see README.md, Model zoo). Trained on 8 GPUs x 2 images; add --amp for the release's fp16.
_base_ = ('mmdet::convnext/'
          'cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py')

custom_imports = dict(imports=['mmdcls'], allow_failed_imports=False)
checkpoint_file = 'checkpoints/convnext_dcls_tiny_1k_224_ema.pth'

# DCLS settings are the backbone's defaults, those of the release: dilated_kernel_size=17,
# kernel_count from arch (34 for tiny, 40 for small/base), version='v0', one set of positions
# per stage (share_positions=True).
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdcls.ConvNeXtDCLS',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.4,
        layer_scale_init_value=1.0,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))

# Plain OptimWrapper so that the config also runs on CPU; tools/train.py --amp switches to
# AmpOptimWrapper. num_layers: 6 for tiny, 12 for small/base (the release's values, and what
# ConvNeXtDCLS.get_layer_depth defines for each arch).
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='mmdcls.DCLSLearningRateDecayOptimizerConstructor',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise', num_layers=6, position_lr_mult=5.0))

custom_hooks = [dict(type='mmdcls.DCLSClampHook')]
