# Recipe of Cascade Mask R-CNN (4conv1fc, GIoU), ConvNeXt-S size, multi-scale + crop, 3x, COCO,
# shared by the DCLS config and its plain twin: the tiny recipe with the release's small drop
# path rate and layer decay over small's 12 layer ids.
_base_ = './cascade-mask-rcnn_convnext-t_fpn_giou-4conv1fc_ms-crop-3x_coco.py'

model = dict(backbone=dict(arch='small', drop_path_rate=0.6))
optim_wrapper = dict(paramwise_cfg=dict(decay_rate=0.7, num_layers=12))
