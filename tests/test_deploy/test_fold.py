"""fold_dcls: DCLS layers baked into standard convs; identical outputs; ONNX export."""
import importlib.util
import os.path as osp

import pytest
import torch
from torch import nn

from mmdcls.deploy import fold_dcls, fold_dcls_layer, is_dcls_layer
from mmdcls.ops import Dcls1d, Dcls2d, Dcls2dK1d, Dcls3_1d, Dcls3d, LargeKernelConv2d

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEG_CONFIG = osp.join(REPO, 'configs/_demo_/upernet_convnext-dcls-demo_tiny-ade-128x128.py')
HAS_ONNX = importlib.util.find_spec('onnx') is not None
HAS_ORT = importlib.util.find_spec('onnxruntime') is not None
NO_ONNX = 'onnx is not installed (add onnx and onnxruntime to requirements/tests.txt)'


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def tiny_backbone(version='v0', size=7):
    from mmdcls.models import ConvNeXtDCLS
    extra = dict(kernel_count=5) if version != 'v0' else {}
    return ConvNeXtDCLS(
        arch=dict(depths=[1, 2, 1, 1], channels=[8, 16, 16, 24], kernel_count=6),
        dilated_kernel_size=size,
        version=version,
        **extra).eval()


def randomise_positions(model):
    with torch.no_grad():
        for m in model.modules():
            if is_dcls_layer(m):
                m.P.uniform_(-3, 3)
                if m.SIG is not None:
                    m.SIG.uniform_(0.1, 1.0)
                if m.bias is not None:
                    m.bias.normal_()
                m.clamp_parameters()


def assert_standard(model):
    """No DCLS layer, no positions; every conv an exact nn.Conv{1,2,3}d."""
    for name, m in model.named_modules():
        assert not is_dcls_layer(m), name
        assert not hasattr(m, 'construct_kernel'), name
        if isinstance(m, nn.modules.conv._ConvNd):
            assert type(m) in (nn.Conv1d, nn.Conv2d, nn.Conv3d), (name, type(m))
    for name, _ in model.named_parameters():
        assert not name.endswith(('.P', '.SIG')), name


@pytest.mark.parametrize('version', ['v0', 'v1', 'gauss', 'max'])
def test_fold_backbone_identical(version):
    model = tiny_backbone(version)
    randomise_positions(model)
    x = torch.randn(2, 3, 64, 64)
    folded = fold_dcls(model)
    assert folded is not model and any(is_dcls_layer(m) for m in model.modules())
    assert_standard(folded)
    with torch.no_grad():
        ref, out = model(x), folded(x)
    for a, b in zip(out, ref):
        assert rel_err(a, b) < 1e-5
    assert folded.stages[0][0].dwconv.weight.shape == (8, 1, 7, 7)


@pytest.mark.parametrize('cls,shape', [(Dcls1d, (2, 4, 19)), (Dcls2d, (2, 4, 13, 11)),
                                       (Dcls3d, (1, 4, 7, 8, 6))])
@pytest.mark.parametrize('padding_mode', ['zeros', 'reflect', 'circular'])
@pytest.mark.parametrize('bias,groups,stride', [(True, 4, 1), (False, 2, 2)])
def test_fold_layer(cls, shape, padding_mode, bias, groups, stride):
    ndim = len(shape) - 2
    size = (5, 3, 5)[:ndim]
    layer = cls(
        4,
        6 if groups == 2 else 4,
        3,
        stride=stride,
        padding=tuple(s // 2 for s in size),
        dilated_kernel_size=size,
        groups=groups,
        bias=bias,
        padding_mode=padding_mode,
        version='v1')
    randomise_positions(layer)
    layer.train()
    conv = fold_dcls(layer)
    assert type(conv) is (nn.Conv1d, nn.Conv2d, nn.Conv3d)[ndim - 1]
    assert conv.training and conv.padding_mode == padding_mode and conv.groups == groups
    assert (conv.bias is None) == (not bias)
    x = torch.randn(*shape)
    with torch.no_grad():
        assert rel_err(conv(x), layer(x)) < 1e-5


@pytest.mark.parametrize('make,shape', [
    (lambda: Dcls2dK1d(
        4, 4, 3, padding=(3, 0), dilated_kernel_size=7, groups=4, version='gauss', flat_dim=0),
     (2, 4, 11, 9)),
    (lambda: Dcls2dK1d(
        4,
        6,
        3,
        stride=2,
        padding=(0, 2),
        dilated_kernel_size=5,
        groups=2,
        version='v0',
        flat_dim=1,
        padding_mode='reflect'), (2, 4, 8, 10)),
    (lambda: Dcls3_1d(
        4, 4, 3, padding=(1, 0, 3), dense_kernel_size=(3, 1), dilated_kernel_size=7, version='max'),
     (1, 4, 5, 6, 12)),
])
def test_fold_learned_axis_layers(make, shape):
    """Dcls2dK1d / Dcls3_1d kernels are (L, 1), (1, L) or (d0, d1, L): the folded conv takes
    the constructed kernel's shape, not dilated_kernel_size in every axis."""
    layer = make()
    with torch.no_grad():
        layer.P.normal_(0, 1.5)
    layer.clamp_parameters()
    layer.eval()
    assert is_dcls_layer(layer)
    for large_kernel in (False, True):
        conv = fold_dcls(layer, large_kernel=large_kernel)
        assert conv.weight.shape == layer.construct_kernel().shape
        x = torch.randn(*shape)
        with torch.no_grad():
            assert rel_err(conv(x), layer(x)) < 1e-5


def test_fold_large_kernel_and_inplace():
    model = nn.Sequential(tiny_backbone('gauss', 9))
    randomise_positions(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
    plain = fold_dcls(model)
    large = fold_dcls(model, large_kernel=True, conv_algo='fft')
    dw = large[0].stages[1][1].dwconv
    assert isinstance(dw, LargeKernelConv2d) and dw.conv_algo == 'fft'
    assert list(large.state_dict()) == list(plain.state_dict())
    with torch.no_grad():
        for a, b in zip(large(x), ref):
            assert rel_err(a, b) < 1e-4
    same = fold_dcls(model, inplace=True)
    assert same is model
    assert_standard(model)
    with pytest.raises(ValueError, match='large_kernel'):
        fold_dcls(model, conv_algo='fft')
    with pytest.raises(ValueError, match='conv_algo'):
        fold_dcls(model, large_kernel=True, conv_algo='winograd')
    with pytest.raises(TypeError, match='DCLS layer'):
        fold_dcls_layer(nn.Conv2d(2, 2, 3))


def _export(module, x, path):
    torch.onnx.export(module, (x, ), str(path), opset_version=17, dynamo=False)
    import onnx
    onnx.checker.check_model(onnx.load(str(path)))
    if HAS_ORT:
        import onnxruntime as ort
        session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
        return session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return None


@pytest.mark.skipif(not HAS_ONNX, reason=NO_ONNX)
@pytest.mark.parametrize('large_kernel', [False, True])
def test_onnx_export_backbone(tmp_path, large_kernel):
    model = tiny_backbone('v0', 9)
    randomise_positions(model)
    folded = fold_dcls(model, large_kernel=large_kernel).eval()
    x = torch.randn(1, 3, 64, 64)
    outs = _export(folded, x, tmp_path / 'backbone.onnx')
    import onnx
    ops = {node.op_type for node in onnx.load(str(tmp_path / 'backbone.onnx')).graph.node}
    assert 'Conv' in ops
    if outs is not None:
        with torch.no_grad():
            ref = model(x)
        for a, b in zip(outs, ref):
            assert rel_err(torch.from_numpy(a), b) < 1e-4


def _fold_tool():
    """tools/deploy/fold.py as a module (loaded by path: no sys.path changes)."""
    spec = importlib.util.spec_from_file_location('mmdcls_tools_deploy_fold',
                                                  osp.join(REPO, 'tools', 'deploy', 'fold.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build_segmentor():
    return _fold_tool().build_model(SEG_CONFIG)


@pytest.mark.skipif(not HAS_ONNX, reason=NO_ONNX)
def test_onnx_export_segmentor(tmp_path):
    TensorMode = _fold_tool().TensorMode
    model = _build_segmentor()
    randomise_positions(model)
    folded = fold_dcls(model).eval()
    assert_standard(folded)
    # 192: the PPM's pool scales (1, 2, 3, 6) must divide the 6x6 last-stage map for ONNX
    x = torch.randn(1, 3, 192, 192)
    outs = _export(TensorMode(folded), x, tmp_path / 'segmentor.onnx')
    with torch.no_grad():
        ref = model(x, mode='tensor')
    if outs is not None:
        assert rel_err(torch.from_numpy(outs[0]), ref) < 1e-4


def test_fold_tool(tmp_path):
    fold_tool = _fold_tool()
    model = _build_segmentor()
    randomise_positions(model)
    ckpt = tmp_path / 'dcls.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    out, whole = tmp_path / 'folded.pth', tmp_path / 'folded_model.pt'
    argv = [
        SEG_CONFIG,
        str(ckpt),
        str(out), '--save-model',
        str(whole), '--shape', '1', '3', '192', '192'
    ]
    if HAS_ONNX:
        argv += ['--onnx', str(tmp_path / 'folded.onnx')]
    assert fold_tool.main(argv) == 0
    state = torch.load(out)['state_dict']
    assert not any(k.endswith(('.P', '.SIG')) for k in state)
    assert state['backbone.stages.0.0.dwconv.weight'].shape == (32, 1, 9, 9)
    folded = torch.load(whole, weights_only=False).eval()
    assert_standard(folded)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert rel_err(folded(x, mode='tensor'), model.eval()(x, mode='tensor')) < 1e-5
    # a checkpoint that does not fit the config is refused (strict loading)
    torch.save(
        {'state_dict': {
            k: v
            for k, v in model.state_dict().items() if not k.endswith('gamma')
        }}, ckpt)
    with pytest.raises(RuntimeError, match='gamma'):
        fold_tool.main([SEG_CONFIG, str(ckpt), str(out)])
