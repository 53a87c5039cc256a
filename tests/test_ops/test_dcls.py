"""Dcls modules: construction checks, clamping, state dicts, dtypes (half-precision modules
included), autocast, torch.compile (one graph) and JIT traces."""
import copy

import pytest
import torch

from mmdcls.ops import (Dcls1d, Dcls2d, Dcls2dK1d, Dcls3_1d, Dcls3d, LargeKernelDepthwiseConv2d,
                        construct_kernel, dcls_conv2d)
from mmdcls.ops.torch_compat import DYNAMO_TRACES_OPS


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


LAYER_FACTORIES = {
    'Dcls1d': (lambda: Dcls1d(4, 4, 3, dilated_kernel_size=7, padding=3, version='v1'), (11, )),
    'Dcls2d-v0':
    (lambda: Dcls2d(8, 8, 5, dilated_kernel_size=9, padding=4, groups=8, version='v0'), (12, 12)),
    'Dcls2d-gauss':
    (lambda: Dcls2d(4, 6, 5, dilated_kernel_size=(7, 5), padding=(3, 2), version='gauss'), (9, 8)),
    'Dcls3d': (lambda: Dcls3d(2, 2, 3, dilated_kernel_size=3, padding=1, version='max'), (4, 5, 4)),
    'Dcls3_1d':
    (lambda: Dcls3_1d(2, 4, 3, dense_kernel_size=(3, 1), dilated_kernel_size=5, padding=(1, 0, 2)),
     (4, 3, 7)),
    'Dcls2dK1d':
    (lambda: Dcls2dK1d(4, 4, 3, dilated_kernel_size=7, padding=(3, 0), groups=4, version='v0'),
     (9, 6)),
    'LargeKernelConv2d': (lambda: LargeKernelDepthwiseConv2d(4, 9), (12, 11)),
}


@pytest.fixture
def fresh_dynamo():
    """Each compile test starts from no compiled code (dynamo's per-function recompile limit
    would otherwise be reached across the parametrised layers)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _outputs_and_grads(module, x, train):
    """The output and, in train mode, the gradients of every parameter and of x."""
    module.zero_grad()
    x = x.clone().requires_grad_(train)
    with torch.set_grad_enabled(train):
        y = module(x)
    if not train:
        return [y]
    y.square().sum().backward()
    return [y, x.grad] + [p.grad.clone() for p in module.parameters()]


@pytest.mark.usefixtures('fresh_dynamo')
@pytest.mark.parametrize('name', list(LAYER_FACTORIES))
@pytest.mark.parametrize('mode', ['train', 'eval'])
@pytest.mark.parametrize('order', ['compiled_first', 'eager_first'])
def test_torch_compile_fullgraph_matches_eager(name, mode, order):
    """One graph (no break: no host reads, no C calls) for every DCLS layer and the large-kernel
    conv, in train and eval mode, before and after an eager call (which fills the kernel
    cache and the measured choices), with the eager outputs and gradients."""
    if not DYNAMO_TRACES_OPS:
        pytest.skip('torch.compile traces the DCLS layers from torch 2.4')
    factory, spatial = LAYER_FACTORIES[name]
    torch.manual_seed(0)
    layer = factory()
    layer.train(mode == 'train')
    x = torch.randn(2, layer.in_channels, *spatial)
    compiled = torch.compile(layer, fullgraph=True, backend='aot_eager')
    if order == 'eager_first':
        eager = _outputs_and_grads(layer, x, mode == 'train')
        ours = _outputs_and_grads(compiled, x, mode == 'train')
    else:
        ours = _outputs_and_grads(compiled, x, mode == 'train')
        eager = _outputs_and_grads(layer, x, mode == 'train')
    for a, b in zip(ours, eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures('fresh_dynamo')
def test_torch_compile_inductor_matches_eager():
    if not DYNAMO_TRACES_OPS:
        pytest.skip('torch.compile traces the DCLS layers from torch 2.4')
    torch.manual_seed(0)
    layer = small_layer('v0', in_channels=8, out_channels=8, groups=8)
    x = torch.randn(2, 8, 12, 12)
    ours = _outputs_and_grads(torch.compile(layer, fullgraph=True), x, True)
    for a, b in zip(ours, _outputs_and_grads(layer, x, True)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', list(LAYER_FACTORIES))
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_modules(name, dtype):
    """A module in float16 / bfloat16 (``model.half()``, mmengine's fp16 conversion) runs in that
    dtype, forward and backward, within the dtype's rounding of the float32 module."""
    factory, spatial = LAYER_FACTORIES[name]
    torch.manual_seed(0)
    layer = factory()
    x = torch.randn(2, layer.in_channels, *spatial)
    reference = _outputs_and_grads(layer, x, True)
    half = copy.deepcopy(layer).to(dtype)
    ours = _outputs_and_grads(half, x.to(dtype), True)
    tolerance = 2e-2 if dtype == torch.float16 else 6e-2
    for what, a, b in zip(['output', 'input grad'] + [n for n, _ in layer.named_parameters()], ours,
                          reference):
        assert a.dtype == dtype, what
        scale = b.abs().max().clamp_min(1e-6)
        assert (a.float() - b).abs().max() <= tolerance * scale, what
    half.eval()
    with torch.no_grad():
        assert half(x.to(dtype)).dtype == dtype


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
