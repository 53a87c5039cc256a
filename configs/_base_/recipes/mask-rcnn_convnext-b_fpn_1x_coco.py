# Recipe of Mask R-CNN, ConvNeXt-B size, single scale, 1x, COCO (not in the release): the tiny
# 1x recipe with the drop path rate of the release's base Cascade config and layer decay over
# base's 12 layer ids.
_base_ = './mask-rcnn_convnext-t_fpn_1x_coco.py'

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.7), neck=dict(in_channels=[128, 256, 512, 1024]))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
