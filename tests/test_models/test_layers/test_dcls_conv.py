"""DCLS conv layers through mmcv's build_conv_layer and mmdet's ResNet ``dcn`` slot."""
import pytest
import torch
from mmcv.cnn import ConvModule, build_conv_layer

import mmdcls  # noqa: F401  registers DCLS1d/2d/3d, DCLS2dK1d, DCLS3_1d
from mmdcls.models.layers import DCLSConv2d, DCLSConv2dK1d, DCLSConv3_1d
from mmdcls.ops import Dcls2d, Dcls2dK1d, Dcls3_1d


@pytest.mark.parametrize('ndim', [1, 2, 3])
def test_build_conv_layer_keeps_output_size(ndim):
    cfg = dict(type=f'DCLS{ndim}d', dilated_kernel_size=5)
    layer = build_conv_layer(
        cfg, 4, 6, kernel_size=3, stride=1, padding=1, dilation=1, groups=2, bias=False)
    assert layer.kernel_count == 3**ndim  # same number of weights as the replaced conv
    assert layer.padding == (2, ) * ndim and layer.bias is None and layer.version == 'v0'
    x = torch.randn(1, 4, *[7] * ndim)
    assert layer(x).shape == (1, 6, *[7] * ndim)


def test_config_overrides_and_dilated_replaced_conv():
    layer = build_conv_layer(
        dict(type='DCLS2d', dilated_kernel_size=(9, 7), kernel_count=5, version='gauss'),
        3,
        3,
        kernel_size=3,
        stride=2,
        padding=2,
        dilation=2)
    assert isinstance(layer, Dcls2d)
    assert layer.kernel_count == 5 and layer.version == 'gauss'
    # replaced extent 5 (3 taps, dilation 2, padding 2) -> padding 4 and 3 keep the size
    assert layer.padding == (4, 3) and layer.stride == (2, 2)
    reference = torch.nn.Conv2d(3, 3, 3, stride=2, padding=2, dilation=2)
    x = torch.randn(1, 3, 11, 10)
    assert layer(x).shape == reference(x).shape


def test_conv_module_accepts_dcls():
    module = ConvModule(
        4,
        8,
        3,
        padding=1,
        conv_cfg=dict(type='DCLS2d', dilated_kernel_size=7),
        norm_cfg=dict(type='BN'),
        act_cfg=dict(type='ReLU'))
    assert isinstance(module.conv, DCLSConv2d)
    assert module(torch.randn(2, 4, 9, 9)).shape == (2, 8, 9, 9)


@pytest.mark.parametrize('cfg,message', [
    (dict(type='DCLS2d'), 'needs dilated_kernel_size'),
    (dict(type='DCLS2d', dilated_kernel_size=6), 'cannot keep the output size'),
    (dict(type='DCLS2d', dilated_kernel_size=(7, 7, 7)), 'a tuple of 2 ints'),
    (dict(type='DCLS2d', dilated_kernel_size=7, version='sinc'), 'version must be one of'),
    (dict(type='DCLS2d', dilated_kernel_size=-3), 'dilated_kernel_size must be positive'),
])
def test_bad_configs_name_the_parameter(cfg, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build_conv_layer(cfg, 4, 4, kernel_size=3, padding=1)


def test_mmdet_resnet50_with_dcls_dcn_trains():
    from mmdet.models.backbones import ResNet
    torch.manual_seed(0)
    model = ResNet(
        depth=50,
        dcn=dict(type='DCLS2d', dilated_kernel_size=7),
        stage_with_dcn=(False, True, True, True),
        out_indices=(0, 1, 2, 3),
        zero_init_residual=False)  # else no gradient reaches conv2
    model.init_weights()
    dcls_layers = [m for m in model.modules() if isinstance(m, DCLSConv2d)]
    assert len(dcls_layers) == 4 + 6 + 3  # every bottleneck conv2 of stages 2-4
    assert all(m.kernel_count == 9 and m.padding == (3, 3) for m in dcls_layers)
    model.train()
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [256, 512, 1024, 2048]
    assert outs[-1].shape[-2:] == (2, 2)
    sum(o.mean() for o in outs).backward()
    for layer in dcls_layers:
        assert torch.isfinite(layer.P.grad).all() and layer.P.grad.abs().sum() > 0


@pytest.mark.parametrize('algo', ['direct', 'channels_last', 'fft'])
def test_output_layout_is_the_inputs_so_mmcv_roi_align_reads_it_right(algo):
    """mmcv's compiled RoIAlign indexes memory as NCHW whatever the strides: a channels-last
    answer from the conv backend would feed it scrambled features."""
    from mmcv.ops import RoIAlign
    layer = build_conv_layer(
        dict(type='DCLS2d', dilated_kernel_size=7, conv_algo=algo),
        4,
        4,
        kernel_size=3,
        padding=1,
        groups=4)
    x = torch.randn(2, 4, 12, 12, requires_grad=True)
    out = layer(x)
    assert out.is_contiguous()
    rois = torch.tensor([[0, 1.0, 2.0, 9.0, 10.0], [1, 0.5, 0.5, 7.0, 11.0]])
    roi_align = RoIAlign((3, 3), spatial_scale=1.0, sampling_ratio=2)
    expected = roi_align(
        Dcls2d.forward(layer, x).detach().clone(memory_format=torch.contiguous_format), rois)
    torch.testing.assert_close(roi_align(out, rois), expected)


# ----------------------------------------------------------------- DCLS2dK1d and DCLS3_1d
@pytest.mark.parametrize('flat_dim,padding', [(0, (3, 0)), (1, (0, 3))])
def test_build_dcls2d_k1d_keeps_output_size(flat_dim, padding):
    layer = build_conv_layer(
        dict(type='DCLS2dK1d', dilated_kernel_size=7, flat_dim=flat_dim),
        4,
        6,
        kernel_size=3,
        stride=2,
        padding=1,
        groups=2,
        bias=False)
    assert isinstance(layer, Dcls2dK1d) and isinstance(layer, DCLSConv2dK1d)
    assert layer.kernel_count == 9 and layer.version == 'v0' and layer.bias is None
    assert layer.padding == padding and layer.flat_dim == flat_dim
    assert layer.weight.shape == (6, 2, 9) and layer.P.shape == (1, 6, 2, 9)
    x = torch.randn(2, 4, 11, 10, requires_grad=True)
    reference = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    out = layer(x)
    assert out.shape == reference(x).shape
    out.square().mean().backward()
    assert torch.isfinite(layer.P.grad).all() and layer.P.grad.abs().sum() > 0


def test_build_dcls3_1d_keeps_output_size():
    layer = build_conv_layer(
        dict(type='DCLS3_1d', dilated_kernel_size=9),
        3,
        4,
        kernel_size=(3, 1, 3),
        stride=1,
        padding=(1, 0, 1))
    assert isinstance(layer, Dcls3_1d) and isinstance(layer, DCLSConv3_1d)
    # dense (D, H) taps from the replaced conv, kernel_count its last kernel size
    assert layer.dense_kernel_size == (3, 1) and layer.kernel_count == 3
    assert layer.version == 'gauss' and layer.padding == (1, 0, 4)
    assert layer.kernel_size == (3, 1, 9)
    x = torch.randn(1, 3, 5, 4, 12, requires_grad=True)
    out = layer(x)
    assert out.shape == (1, 4, 5, 4, 12)
    out.square().mean().backward()
    assert torch.isfinite(layer.SIG.grad).all() and layer.P.grad.abs().sum() > 0


def test_dcls3_1d_config_overrides():
    layer = build_conv_layer(
        dict(
            type='DCLS3_1d',
            dilated_kernel_size=5,
            dense_kernel_size=1,
            kernel_count=2,
            version='v1'),
        2,
        2,
        kernel_size=3,
        padding=1,
        groups=2)
    assert layer.dense_kernel_size == (1, 1) and layer.kernel_count == 2
    assert layer.padding == (0, 0, 2) and layer.version == 'v1'
    assert layer(torch.randn(1, 2, 4, 4, 6)).shape == (1, 2, 4, 4, 6)


def test_conv_module_accepts_dcls2d_k1d():
    module = ConvModule(
        4,
        8,
        3,
        padding=1,
        conv_cfg=dict(type='DCLS2dK1d', dilated_kernel_size=5, flat_dim=1),
        norm_cfg=dict(type='BN'),
        act_cfg=dict(type='ReLU'))
    assert isinstance(module.conv, DCLSConv2dK1d)
    assert module(torch.randn(2, 4, 9, 9)).shape == (2, 8, 9, 9)


@pytest.mark.parametrize('cfg,message', [
    (dict(type='DCLS2dK1d'), 'needs dilated_kernel_size'),
    (dict(type='DCLS2dK1d', dilated_kernel_size=(7, 7)), 'must be an int'),
    (dict(type='DCLS2dK1d', dilated_kernel_size=6), 'cannot keep the output size'),
    (dict(type='DCLS2dK1d', dilated_kernel_size=7, flat_dim=2), 'flat_dim must be 0'),
    (dict(type='DCLS3_1d'), 'needs dilated_kernel_size'),
    (dict(type='DCLS3_1d', dilated_kernel_size=7,
          version='v0'), r"version must be one of \('v1', 'gauss', 'max'\)"),
    (dict(type='DCLS3_1d', dilated_kernel_size=0), 'dilated_kernel_size must be positive'),
    (dict(type='DCLS3_1d', dilated_kernel_size=7,
          dense_kernel_size=(2, 3)), 'cannot keep the output size'),
])
def test_bad_one_axis_configs_name_the_parameter(cfg, message):
    ndim = 3 if cfg['type'] == 'DCLS3_1d' else 2
    with pytest.raises((ValueError, TypeError), match=message):
        build_conv_layer(cfg, 4, 4, kernel_size=(3, ) * ndim, padding=(1, ) * ndim)


@pytest.mark.parametrize('cfg', [
    dict(type='DCLS2dK1d', dilated_kernel_size=9, conv_algo='channels_last'),
    dict(type='DCLS3_1d', dilated_kernel_size=9, conv_algo='channels_last'),
])
def test_one_axis_layers_hand_back_contiguous_output(cfg):
    ndim = 3 if cfg['type'] == 'DCLS3_1d' else 2
    layer = build_conv_layer(cfg, 4, 4, kernel_size=3, padding=1, groups=4)
    x = torch.randn(2, 4, *[6] * ndim)
    assert layer(x).is_contiguous()
