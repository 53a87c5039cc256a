"""Dcls modules: construction checks, clamping, state dicts, dtypes, autocast, torch.compile."""
import pytest
import torch

from mmdcls.ops import Dcls1d, Dcls2d, Dcls3d, construct_kernel, dcls_conv2d


def small_layer(version='v0', **overrides):
    kwargs = dict(
        in_channels=4,
        out_channels=4,
        kernel_count=6,
        padding=3,
        dilated_kernel_size=7,
        groups=4,
        version=version)
    kwargs.update(overrides)
    return Dcls2d(**kwargs)


@pytest.mark.parametrize('cls,ndim', [(Dcls1d, 1), (Dcls2d, 2), (Dcls3d, 3)])
@pytest.mark.parametrize('version', ['v0', 'v1', 'gauss', 'max'])
def test_parameter_shapes_and_output_size(cls, ndim, version):
    layer = cls(6, 4, 5, stride=1, padding='same', dilated_kernel_size=5, groups=2, version=version)
    assert layer.weight.shape == (4, 3, 5)
    assert layer.P.shape == (ndim, 4, 3, 5)
    assert (layer.SIG is not None) == (version in ('gauss', 'max'))
    if layer.SIG is not None:
        assert layer.SIG.shape == layer.P.shape
    assert layer.kernel_size == (5, ) * ndim and layer.dilation == (1, ) * ndim
    x = torch.randn(2, 6, *[9] * ndim)
    assert layer(x).shape == (2, 4, *[9] * ndim)
    assert layer.construct_kernel().shape == (4, 3, *[5] * ndim)


def test_initialisation_and_clamp():
    torch.manual_seed(0)
    layer = Dcls2d(4, 4, 50, dilated_kernel_size=(7, 5), groups=4, version='gauss')
    assert layer.P[0].abs().max() <= 3 and layer.P[1].abs().max() <= 2
    assert torch.all(layer.SIG == 0.23)
    assert torch.all(Dcls2d(2, 2, 3, dilated_kernel_size=5, version='max').SIG == 0)
    with torch.no_grad():
        layer.P.mul_(10)
    layer.clamp_parameters()
    assert layer.P[0].abs().max() == 3 and layer.P[1].abs().max() == 2


def test_float64_and_dtype_follow_parameters():
    layer = small_layer('gauss').double()
    x = torch.randn(1, 4, 10, 10, dtype=torch.float64)
    assert layer(x).dtype == torch.float64
    assert layer.construct_kernel().dtype == torch.float64


@pytest.mark.parametrize('version', ['v0', 'gauss'])
def test_autocast_bfloat16_keeps_construction_float32(version):
    layer = small_layer(version)
    x = torch.randn(2, 4, 10, 10)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        kernel = layer.construct_kernel()
        y = layer(x)
    assert kernel.dtype == torch.float32
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert layer.P.grad.dtype == torch.float32 and torch.isfinite(layer.P.grad).all()
    reference = layer(x)
    assert (y.float() - reference).abs().max() <= 0.05 * reference.abs().max()


def test_torch_compile_matches_eager():
    torch.manual_seed(0)
    layer = small_layer('v0', in_channels=8, out_channels=8, groups=8)
    x = torch.randn(2, 8, 12, 12)
    compiled = torch.compile(layer)
    y = compiled(x)
    y.square().sum().backward()
    grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    y_eager = layer(x)
    y_eager.square().sum().backward()
    torch.testing.assert_close(y, y_eager, rtol=1e-5, atol=1e-5)
    for g, p in zip(grads, layer.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('version', ['v0', 'v1', 'max', 'gauss'])
def test_jit_trace_matches_eager(version):
    """FLOP counters and exporters trace the layer: construction must not read values."""
    torch.manual_seed(0)
    layer = small_layer(version, in_channels=8, out_channels=8, groups=8)
    x = torch.randn(2, 8, 12, 12)
    traced = torch.jit.trace(layer, x, check_trace=False)
    torch.testing.assert_close(traced(x), layer(x), rtol=1e-5, atol=1e-5)


def test_state_dict_round_trip():
    torch.manual_seed(0)
    source = small_layer('max')
    target = small_layer('max')
    target.load_state_dict(source.state_dict())
    x = torch.randn(1, 4, 9, 9)
    torch.testing.assert_close(target(x), source(x))


@pytest.mark.parametrize('kwargs,message', [
    (dict(kernel_count=0), 'kernel_count must be a positive int'),
    (dict(in_channels=6, groups=4), 'divisible by groups'),
    (dict(version='bilinear'), "version must be one of ('v0', 'v1', 'gauss', 'max')"),
    (dict(dilated_kernel_size=0), 'dilated_kernel_size must be positive'),
    (dict(dilated_kernel_size=(7, 7, 7)), 'dilated_kernel_size must be an int or a tuple of 2'),
    (dict(dilated_kernel_size=6, padding='same'), 'padding="same" needs an odd'),
    (dict(padding_mode='mirror'), "padding_mode must be one of ('zeros', 'reflect'"),
    (dict(stride=0), 'stride must be positive'),
])
def test_bad_arguments_name_the_parameter(kwargs, message):
    with pytest.raises((ValueError, TypeError)) as info:
        small_layer(**kwargs)
    assert message in str(info.value)


def test_bad_input_rank_and_channels():
    layer = small_layer()
    with pytest.raises(ValueError, match=r'expects input of shape \(N, C, H, W\)'):
        layer(torch.randn(4, 10, 10))
    with pytest.raises(ValueError, match='expects input with 4 channels'):
        layer(torch.randn(1, 3, 10, 10))


def test_bilinear_kernel_too_large_for_int32_indices_is_refused():
    rows = 2**31 // (18 * 18) + 1  # expanded views: nothing of this size is allocated
    weight = torch.zeros(1, 1, 1).expand(rows, 1, 1)
    P = torch.zeros(2, 1, 1, 1).expand(2, rows, 1, 1)
    with pytest.raises(ValueError, match='too large for the bilinear construction'):
        construct_kernel(weight, P, None, (17, 17), 'v0')


def test_mismatched_state_dict_shapes_are_named():
    layer = small_layer('gauss')
    state = small_layer('gauss', kernel_count=8).state_dict()
    state['weight'] = layer.weight.detach().clone()  # so that P is the first mismatch
    with pytest.raises(ValueError, match=r'P: checkpoint shape \(2, 4, 1, 8\) does not match'):
        layer.load_state_dict(state)
    with pytest.raises(RuntimeError, match='SIG'):  # a v0 checkpoint lacks the gauss widths
        layer.load_state_dict(small_layer('v0').state_dict())


def test_functional_checks_shapes():
    weight, P = torch.randn(4, 1, 6), torch.randn(2, 4, 1, 6)
    x = torch.randn(1, 4, 8, 8)
    y = dcls_conv2d(x, weight, P, dilated_kernel_size=5, padding='same', groups=4)
    assert y.shape == (1, 4, 8, 8)
    with pytest.raises(ValueError, match='P must have shape'):
        construct_kernel(weight, P[:, :2], None, (5, 5), 'v0')
    with pytest.raises(ValueError, match="version 'gauss' needs SIG"):
        construct_kernel(weight, P, None, (5, 5), 'gauss')
    with pytest.raises(ValueError, match="version 'v1' takes no SIG"):
        construct_kernel(weight, P, P, (5, 5), 'v1')
