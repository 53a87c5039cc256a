"""Edge cases every DCLS layer must handle like ``dcls`` 0.1.1 and ``F.conv2d``: non-finite
parameters propagate (never silently dropped) through every construction and convolution
algorithm, and empty batches give empty outputs with a backward."""
import pytest
import torch
from DCLS.construct import modules as official

from mmdcls.ops import Dcls1d, Dcls2d, Dcls2dK1d, Dcls3_1d, Dcls3d
from mmdcls.ops.conv import ALGORITHMS, ConvProblem

NAN, INF = float('nan'), float('inf')


def non_finite_masks(layer, x):
    """(output channels with a non-finite value, input channels with a non-finite gradient,
    {parameter: indices of its non-finite gradient elements}) after backward of ones."""
    x = x.clone().requires_grad_()
    y = layer(x)
    y.backward(torch.ones_like(y))
    out = (~torch.isfinite(y)).transpose(0, 1).flatten(1).any(1).tolist()
    grad_x = (~torch.isfinite(x.grad)).transpose(0, 1).flatten(1).any(1).tolist()
    grads = {
        name: (~torch.isfinite(p.grad)).nonzero().tolist()
        for name, p in layer.named_parameters()
    }
    return out, grad_x, grads


# ------------------------------------------------------------------ non-finite parameters
@pytest.mark.usefixtures('construction_backend')
@pytest.mark.parametrize(
    'version,param,value',
    [(version, param, value) for version in ('v0', 'v1', 'gauss', 'max')
     for param in ('weight', 'P', 'SIG')
     for value in (NAN, INF) if not (param == 'SIG' and version in ('v0', 'v1'))])
def test_non_finite_parameters_propagate_on_every_construction(version, param, value):
    """A NaN / inf weight, position or width of one element (out 1, in 0, element 2) makes
    output channel 1, input channel 0's gradient and that element's parameter gradients
    non-finite, and nothing else: with the fused C construction (which then hands over to the
    torch one) and the torch one alike. Where dcls propagates (every NaN, inf weights, inf v0
    positions, inf max widths) the masks are exactly dcls's; where dcls's arithmetic maps an
    infinite position or width to a finite kernel, mmdcls still propagates."""
    torch.manual_seed(0)
    kwargs = dict(
        in_channels=2,
        out_channels=3,
        kernel_count=4,
        padding=(3, 2),
        dilated_kernel_size=(7, 5),
        version=version)
    ours = Dcls2d(**kwargs)
    reference = official.Dcls2d(**kwargs, use_implicit_gemm=False)
    with torch.no_grad():
        getattr(ours, param)[..., 1, 0, 2] = value
        reference.load_state_dict(ours.state_dict())
    x = torch.randn(2, 2, 8, 9)
    out, grad_x, grads = non_finite_masks(ours, x)
    assert out == [False, True, False] and grad_x == [True, False]
    assert grads['bias'] == []
    element = [[0, 1, 0, 2], [1, 1, 0, 2]]  # both components of P / SIG
    if param == 'weight':
        assert grads['P'] == element  # d kernel / d P scales with the weight
    else:
        assert grads['P'] == element
        if 'SIG' in grads:
            assert grads['SIG'] == element
    reference_masks = non_finite_masks(reference, x)
    hidden_by_dcls = value == INF and param != 'weight' and ((version, param) in (('v1', 'P'),
                                                                                  ('gauss', 'P'),
                                                                                  ('gauss', 'SIG'),
                                                                                  ('max', 'P')))
    if hidden_by_dcls:
        assert reference_masks[0] == [False, False, False]  # dcls's output stays finite
    else:
        assert (out, grad_x, grads) == reference_masks


@pytest.mark.parametrize(
    'layer', [
        lambda: Dcls1d(2, 3, 4, dilated_kernel_size=7, padding=3, version='v0'),
        lambda: Dcls3d(2, 3, 4, dilated_kernel_size=(3, 5, 3), padding=1, version='gauss'),
        lambda: Dcls3_1d(2, 3, 4, dense_kernel_size=(2, 3), dilated_kernel_size=5, version='v1'),
        lambda: Dcls2dK1d(2, 3, 4, dilated_kernel_size=5, version='v0', flat_dim=1),
    ],
    ids=['Dcls1d', 'Dcls3d', 'Dcls3_1d', 'Dcls2dK1d'])
@pytest.mark.parametrize('value', [NAN, INF])
def test_non_finite_positions_propagate_in_every_layer(layer, value):
    layer = layer()
    with torch.no_grad():
        layer.P.view(layer.P.shape[0], 3, -1)[:, 1, 0] = value
    x = torch.randn(2, 2, *[6] * len(layer.kernel_size))
    out, grad_x, grads = non_finite_masks(layer, x)
    assert out == [False, True, False] and grad_x[0]
    assert grads['P'] and grads['bias'] == []


@pytest.mark.usefixtures('construction_backend')
def test_non_finite_parameters_under_no_grad_and_after_recovery():
    """Inference (and the eval kernel cache) sees the NaN too; once the value is finite again,
    outputs are finite again (nothing sticky)."""
    layer = Dcls2d(4, 4, 5, dilated_kernel_size=9, padding=4, groups=4, version='v0').eval()
    x = torch.randn(1, 4, 10, 10)
    with torch.no_grad():
        layer.P[0, 2, 0, 1] = NAN
        y = layer(x)
        assert (~torch.isfinite(y)).transpose(
            0, 1).flatten(1).any(1).tolist() == [False, False, True, False]
        layer.P[0, 2, 0, 1] = 0.5
        assert torch.isfinite(layer(x)).all()


# ('triton' runs here only in Triton's slow interpreter; its NaN kernel taps are checked by
# tests/test_ops/test_conv/test_non_finite_inputs.py)
@pytest.mark.usefixtures('construction_backend')
@pytest.mark.parametrize('algo', [name for name in ALGORITHMS if name != 'triton'])
@pytest.mark.parametrize('version', ['v0', 'gauss'])
def test_nan_position_reaches_the_output_through_every_conv_algorithm(algo, version):
    """A depthwise ConvNeXt-like layer (the C FFT / sparse direct convs apply) with one NaN
    position: its channel is NaN in training and in inference, whatever the algorithm."""
    layer = Dcls2d(
        8, 8, 5, dilated_kernel_size=13, padding=6, groups=8, version=version, conv_algo=algo)
    with torch.no_grad():
        layer.P[1, 3, 0, 2] = NAN
    x = torch.randn(2, 8, 16, 16)
    problem = ConvProblem.describe(x, layer.construct_kernel(), layer.bias, (1, 1), (6, 6), 8)
    if not ALGORITHMS[algo].applies(problem):
        pytest.skip(f'{algo} does not apply: {ALGORITHMS[algo].why_not(problem)}')
    expected = [c == 3 for c in range(8)]
    out, grad_x, grads = non_finite_masks(layer, x)
    assert out == expected and grad_x == expected
    assert [0, 3, 0, 2] in grads['P'] and [1, 3, 0, 2] in grads['P']
    with torch.inference_mode():
        y = layer.eval()(x)
    assert (~torch.isfinite(y)).transpose(0, 1).flatten(1).any(1).tolist() == expected


@pytest.mark.usefixtures('construction_backend')
@pytest.mark.parametrize(
    'layer,spatial', [
        (lambda: Dcls1d(4, 6, 3, dilated_kernel_size=7, padding=3), (9, )),
        (lambda: Dcls2d(8, 8, 5, dilated_kernel_size=17, padding=8, groups=8, version='v0'),
         (20, 20)),
        (lambda: Dcls2d(4, 6, 5, dilated_kernel_size=7, padding=3, version='gauss'), (9, 9)),
        (lambda: Dcls3d(2, 2, 3, dilated_kernel_size=3, padding=1), (4, 4, 4)),
        (lambda: Dcls3_1d(2, 2, 3, dense_kernel_size=3, dilated_kernel_size=5, padding=(1, 1, 2)),
         (3, 3, 6)),
        (lambda: Dcls2dK1d(2, 2, 3, dilated_kernel_size=5, padding=(2, 0)), (6, 6)),
    ],
    ids=['Dcls1d', 'Dcls2d-dw-v0', 'Dcls2d-gauss', 'Dcls3d', 'Dcls3_1d', 'Dcls2dK1d'])
def test_every_layer_takes_an_empty_batch(layer, spatial):
    layer = layer()
    x = torch.randn(0, layer.in_channels, *spatial, requires_grad=True)
    y = layer(x)
    assert y.shape == (0, layer.out_channels, *spatial)
    y.sum().backward()
    for name, p in layer.named_parameters():
        assert torch.equal(p.grad, torch.zeros_like(p)), name
    with torch.inference_mode():
        assert layer.eval()(x.detach()).shape == y.shape
