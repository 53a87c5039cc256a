# Recipe of Mask R-CNN, ConvNeXt-S size, multi-scale + crop, 3x, COCO (not in the release, which
# publishes Mask R-CNN for tiny only): the tiny recipe with the drop path rate of the release's
# small Cascade config and layer decay over small's 12 layer ids.
_base_ = './mask-rcnn_convnext-t_fpn_ms-crop-3x_coco.py'

model = dict(backbone=dict(arch='small', drop_path_rate=0.6))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
