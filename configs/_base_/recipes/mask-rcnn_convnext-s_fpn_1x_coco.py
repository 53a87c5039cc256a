# Recipe of Mask R-CNN, ConvNeXt-S size, single scale, 1x, COCO (not in the release): the tiny
# 1x recipe with the drop path rate of the release's small Cascade config and layer decay over
# small's 12 layer ids.
_base_ = './mask-rcnn_convnext-t_fpn_1x_coco.py'

model = dict(backbone=dict(arch='small', drop_path_rate=0.6))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
