"""tools/model_converters/convnext_dcls_to_mmdcls.py on checkpoints built in the old layout.

The test builds the released detection / segmentation models (Mask R-CNN, Cascade Mask R-CNN
4conv1fc with BN, UperNet + FCN auxiliary head; small ConvNeXt-DCLS backbone) with mmdet 3.x /
mmseg 1.x, whose parameter names for these models are those of mmdet 2.x / mmseg 0.x, and saves
them the way an mmcv 1.x runner did (``meta`` with ``CLASSES`` / ``PALETTE``, numpy scalars,
``optimizer``). The converted file must load strictly with mmengine's ``load_checkpoint``.
"""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_spec = importlib.util.spec_from_file_location(
    'convnext_dcls_to_mmdcls',
    osp.join(ROOT, 'tools', 'model_converters', 'convnext_dcls_to_mmdcls.py'))
converter = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(converter)

BACKBONE = """
custom_imports = dict(imports=['mmdcls'], allow_failed_imports=False)
model = dict(
    backbone=dict(_delete_=True, type='mmdcls.ConvNeXtDCLS',
                  arch=dict(depths=[1, 1, 2, 1], channels=[8, 16, 32, 64]),
                  dilated_kernel_size=5, kernel_count=3),
"""
MASK_RCNN = ("_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'\n" + BACKBONE +
             '    neck=dict(in_channels=[8, 16, 32, 64]))\n')
CASCADE = ("_base_ = 'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py'\n" + BACKBONE +
           """    neck=dict(in_channels=[8, 16, 32, 64]),
    roi_head=dict(bbox_head=[
        dict(type='ConvFCBBoxHead', num_shared_convs=4, num_shared_fcs=1, in_channels=256,
             conv_out_channels=256, fc_out_channels=1024, roi_feat_size=7, num_classes=80,
             bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                             target_stds=[s, s, 2 * s, 2 * s]),
             reg_class_agnostic=False, reg_decoded_bbox=True,
             norm_cfg=dict(type='BN', requires_grad=True),
             loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
             loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
        for s in (0.1, 0.05, 0.033)]))
""")
UPERNET = ("_base_ = 'mmseg::_base_/models/upernet_r50.py'\n" + BACKBONE + """    pretrained=None,
    decode_head=dict(in_channels=[8, 16, 32, 64], channels=16, num_classes=150),
    auxiliary_head=dict(in_channels=32, channels=8, num_classes=150))
""")


def build(cfg_text, scope, tmp_path):
    path = tmp_path / f'cfg_{abs(hash(cfg_text))}.py'
    path.write_text(cfg_text)
    cfg = Config.fromfile(str(path))
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    __import__(f'{scope}.utils', fromlist=['register_all_modules']).register_all_modules(False)
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(cfg.model)


def old_checkpoint(model, toolkit):
    state = model.state_dict()
    with torch.no_grad():
        state = {
            k: v + torch.rand_like(v) if v.is_floating_point() else v
            for k, v in state.items()
        }
    # the release shares P per stage: every block stores the same tensor
    for key in state:
        if key.endswith('.dwconv.P'):
            stage_first = key.split('.')
            stage_first[3] = '0'
            state[key] = state['.'.join(stage_first)]
    meta = {
        f'{toolkit}_version': '2.25.3' if toolkit == 'mmdet' else '0.27.0',
        'CLASSES': ('a', 'b', 'c'),
        'config': "model = dict(type='X')",
        'epoch': 36,
        'iter': 1000,
        'mmcv_version': '1.7.1',
        'env_info': 'CUDA available: True',
        'hook_msgs': {
            'best_score': np.float64(0.5),
            'last_ckpt': 'x.pth'
        }
    }
    if toolkit == 'mmseg':
        meta['PALETTE'] = [[1, 2, 3], np.array([4, 5, 6]), (7, 8, 9)]
    optimizer = {'state': {0: {'step': torch.tensor(3.)}}, 'param_groups': [{'lr': 1e-4}]}
    return {'meta': meta, 'state_dict': state, 'optimizer': optimizer}


@pytest.mark.parametrize(
    'cfg_text,toolkit', [(MASK_RCNN, 'mmdet'), (CASCADE, 'mmdet'), (UPERNET, 'mmseg')],
    ids=['mask-rcnn', 'cascade-4conv1fc', 'upernet'])
def test_converted_checkpoint_loads_strictly(tmp_path, cfg_text, toolkit, capsys):
    old = old_checkpoint(build(cfg_text, toolkit, tmp_path), toolkit)
    src, dst = tmp_path / 'old.pth', tmp_path / 'new.pth'
    torch.save(old, src)
    assert converter.main([str(src), str(dst)]) == 0
    assert f'({toolkit})' in capsys.readouterr().out

    new = torch.load(dst, weights_only=True)  # plain types only: no allow-list needed
    assert set(new) == {'meta', 'state_dict'}
    assert new['meta']['dataset_meta']['classes'] == ('a', 'b', 'c')
    assert new['meta']['converted_from']['toolkit'] == toolkit
    if toolkit == 'mmseg':
        assert new['meta']['dataset_meta']['palette'] == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
        assert 'decode_head.conv_seg.weight' in new['state_dict']
    fresh = build(cfg_text, toolkit, tmp_path)
    load_checkpoint(fresh, str(dst), map_location='cpu', strict=True)
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(value, old['state_dict'][key], msg=key)
    assert fresh.backbone.stages[2][1].dwconv.P is fresh.backbone.stages[2][0].dwconv.P


def test_unknown_keys_are_refused(tmp_path):
    model = build(MASK_RCNN, 'mmdet', tmp_path)
    old = old_checkpoint(model, 'mmdet')
    old['state_dict']['roi_head.bbox_head.ema_fc.weight'] = torch.zeros(1)
    with pytest.raises(KeyError, match=r"roi_head\.bbox_head\.ema_fc\.weight"):
        converter.convert(old)
    old = old_checkpoint(model, 'mmdet')
    old['ema_state_dict'] = {}
    with pytest.raises(KeyError, match='ema_state_dict'):
        converter.convert(old)
    old = old_checkpoint(model, 'mmdet')
    with pytest.raises(KeyError, match='fit no known mmseg layout'):
        converter.convert(old, toolkit='mmseg')


def test_toolkit_detection():
    state = {'backbone.norm0.weight': torch.zeros(1), 'decode_head.conv_seg.weight': torch.zeros(1)}
    assert converter.detect_toolkit({'state_dict': state}) == 'mmseg'
    assert converter.detect_toolkit({'meta': {'mmdet_version': '2.1'}, 'state_dict': {}}) == \
        'mmdet'
    with pytest.raises(ValueError, match='--toolkit'):
        converter.detect_toolkit({'state_dict': {'backbone.norm0.weight': torch.zeros(1)}})
    with pytest.raises(KeyError, match='no backbone'):
        converter.convert_state_dict({'decode_head.conv_seg.weight': torch.zeros(1)}, 'mmseg')
