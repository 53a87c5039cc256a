"""mmcv's build_norm_layer / build_conv_layer under mmdcls_scope resolve plain and scoped type
names the same way whatever default scope the caller has set (mmdet, mmseg, mmpretrain, none)."""
import importlib.util
from collections import OrderedDict
from contextlib import contextmanager

import pytest
import torch
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.registry import DefaultScope
from torch import nn

from mmdcls.models import ConvNeXtDCLS
from mmdcls.models.layers import DCLSConv2d
from mmdcls.models.utils import LayerNorm2d, layer_class, mmdcls_scope

#: the default scopes a caller may have set (None: no DefaultScope at all)
CALLER_SCOPES = [None, 'mmdet', 'mmseg', 'mmpretrain']


@contextmanager
def caller_scope(scope, monkeypatch):
    """The default scope a toolkit (or nobody) has set when it builds an mmdcls model."""
    if scope is not None and importlib.util.find_spec(scope) is None:
        pytest.skip(f'{scope} is not installed')
    if scope is None:
        monkeypatch.setattr(DefaultScope, '_instance_dict', OrderedDict())
        assert DefaultScope.get_current_instance() is None
        yield
        return
    __import__(f'{scope}.registry')
    with DefaultScope.overwrite_default_scope(scope):
        yield


NORMS = [
    (dict(type='LN2d', eps=1e-6), LayerNorm2d),
    (dict(type='mmdcls.LN2d', eps=1e-6), LayerNorm2d),
    (dict(type='LN'), nn.LayerNorm),
    (dict(type='BN'), nn.BatchNorm2d),
    (dict(type='GN', num_groups=2), nn.GroupNorm),
]
CONVS = [
    (dict(type='DCLS2d', dilated_kernel_size=5), DCLSConv2d),
    (dict(type='mmdcls.DCLS2d', dilated_kernel_size=5), DCLSConv2d),
    (dict(type='Conv2d'), nn.Conv2d),
]


@pytest.mark.parametrize('scope', CALLER_SCOPES, ids=str)
@pytest.mark.parametrize('cfg,expected', NORMS, ids=[c['type'] for c, _ in NORMS])
def test_build_norm_layer_in_mmdcls_scope(scope, cfg, expected, monkeypatch):
    with caller_scope(scope, monkeypatch):
        with mmdcls_scope():
            assert DefaultScope.get_current_instance().scope_name == 'mmdcls'
            _, layer = build_norm_layer(cfg, 4)
        current = DefaultScope.get_current_instance()
        assert (current and current.scope_name) == scope  # the caller's scope is back
        assert layer_class(cfg, 'norm_cfg', ()) is expected
    assert type(layer) is expected
    if expected is LayerNorm2d:
        assert layer.eps == 1e-6
        x = torch.randn(2, 4, 3, 5)
        torch.testing.assert_close(
            layer(x),
            nn.functional.layer_norm(x.permute(0, 2, 3, 1), (4, ), eps=1e-6).permute(0, 3, 1, 2))


@pytest.mark.parametrize('scope', CALLER_SCOPES, ids=str)
@pytest.mark.parametrize('cfg,expected', CONVS, ids=[c['type'] for c, _ in CONVS])
def test_build_conv_layer_in_mmdcls_scope(scope, cfg, expected, monkeypatch):
    with caller_scope(scope, monkeypatch):
        with mmdcls_scope():
            layer = build_conv_layer(cfg, 4, 4, kernel_size=3, padding=1, groups=4)
        assert layer_class(cfg, 'dwconv_cfg', ()) is expected
    assert type(layer) is expected
    assert layer(torch.randn(1, 4, 9, 9)).shape == (1, 4, 9, 9)


@pytest.mark.parametrize('scope', CALLER_SCOPES, ids=str)
def test_backbone_builds_the_same_layers_under_every_caller_scope(scope, monkeypatch):
    arch = dict(depths=[1, 1, 2, 1], channels=[8, 8, 8, 8], kernel_count=3)
    variants = [
        dict(dilated_kernel_size=5),
        dict(norm_cfg=dict(type='mmdcls.LN2d', eps=1e-6), dilated_kernel_size=5),
        dict(norm_cfg=dict(type='GN', num_groups=2), dilated_kernel_size=5),
        dict(dwconv_cfg=dict(type='mmdcls.DCLS2d', kernel_size=3, dilated_kernel_size=5)),
        dict(dwconv_cfg=dict(type='DCLS2d', kernel_size=3, dilated_kernel_size=5)),
        dict(dwconv_cfg=dict(type='Conv2d', kernel_size=3)),
    ]
    expected = [(LayerNorm2d, 'Dcls2d'), (LayerNorm2d, 'Dcls2d'), (nn.GroupNorm, 'Dcls2d'),
                (LayerNorm2d, 'DCLSConv2d'), (LayerNorm2d, 'DCLSConv2d'), (LayerNorm2d, 'Conv2d')]
    with caller_scope(scope, monkeypatch):
        models = [ConvNeXtDCLS(arch, out_indices=(3, ), **kwargs) for kwargs in variants]
    for model, (norm, dwconv) in zip(models, expected):
        assert type(model.downsample_layers[1][0]) is norm and type(model.norm3) is norm
        assert type(model.stages[2][1].dwconv).__name__ == dwconv
        assert model(torch.randn(1, 3, 32, 32))[0].shape == (1, 8, 1, 1)


def test_unknown_and_malformed_types_name_the_key():
    with pytest.raises(ValueError, match=r"norm_cfg.type 'LN3x' is not registered.*'LN2d'"):
        layer_class(dict(type='LN3x'), 'norm_cfg', ('LN2d', ))
    with pytest.raises(ValueError, match=r"dwconv_cfg.type 'nosuchscope.Conv2d' is not"):
        layer_class(dict(type='nosuchscope.Conv2d'), 'dwconv_cfg', ())
    with pytest.raises(TypeError, match="norm_cfg must be a dict with a 'type' key"):
        layer_class(dict(eps=1e-6), 'norm_cfg', ())
    with pytest.raises(TypeError, match='norm_cfg.type must be a registered name or a class'):
        layer_class(dict(type=3), 'norm_cfg', ())
    assert layer_class(dict(type=nn.Conv2d), 'dwconv_cfg', ()) is nn.Conv2d
