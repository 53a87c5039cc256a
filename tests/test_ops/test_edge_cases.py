"""Edge cases every backend must handle like ``dcls`` 0.1.1 and ``F.conv2d``: non-finite
parameters propagate (never silently dropped), empty batches give empty outputs with a
backward, and every C entry point reads non-contiguous tensors correctly (each tensor handed to
C held alive for the call)."""
import pytest
import torch
import torch.nn.functional as F
from construction_backends import construction_backend  # noqa: F401 (fixture)
from DCLS.construct import modules as official

from mmdcls.ops import Dcls1d, Dcls2d, Dcls2dK1d, Dcls3_1d, Dcls3d
from mmdcls.ops.construct.conventions import GAUSS_EXPONENT_FLOOR, NORMALISATION_EPS
from mmdcls.ops.conv import ALGORITHM_FNS, ALGORITHMS, conv_fft, fft_lengths, heuristic_algo
from mmdcls.ops.kernels import cpu

NAN, INF = float('nan'), float('inf')
needs_c = pytest.mark.skipif(cpu.library() is None, reason='C library unavailable')


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


@pytest.mark.usefixtures('construction_backend')
@pytest.mark.parametrize('algo', ALGORITHMS)
@pytest.mark.parametrize('version', ['v0', 'gauss'])
def test_nan_position_reaches_the_output_through_every_conv_algorithm(algo, version):
    """A depthwise ConvNeXt-like layer (the C FFT / sparse direct convs apply) with one NaN
    position: its channel is NaN in training and in inference, whatever the algorithm."""
    layer = Dcls2d(
        8, 8, 5, dilated_kernel_size=13, padding=6, groups=8, version=version, conv_algo=algo)
    with torch.no_grad():
        layer.P[1, 3, 0, 2] = NAN
    x = torch.randn(2, 8, 16, 16)
    expected = [c == 3 for c in range(8)]
    out, grad_x, grads = non_finite_masks(layer, x)
    assert out == expected and grad_x == expected
    assert [0, 3, 0, 2] in grads['P'] and [1, 3, 0, 2] in grads['P']
    with torch.inference_mode():
        y = layer.eval()(x)
    assert (~torch.isfinite(y)).transpose(0, 1).flatten(1).any(1).tolist() == expected


def _conv_case(where, value):
    """Depthwise input (2, 4, 12, 12), kernel (4, 1, 7, 7), bias (4,); ``value`` in channel 1
    of the kernel, the bias or the input; kernel channel 1 also has a zero tap (the sparse
    direct conv skips zero taps)."""
    torch.manual_seed(0)
    x, kernel, bias = torch.randn(2, 4, 12, 12), torch.randn(4, 1, 7, 7), torch.randn(4)
    kernel[1, 0, 2, 3] = 0.0
    if where == 'kernel':
        kernel[1, 0, 4, 1] = value
    elif where == 'input':
        x[0, 1, 5, 1] = value
    else:
        bias[1] = value
    return x, kernel, bias


@pytest.mark.parametrize('algo', ALGORITHMS)
@pytest.mark.parametrize('where', ['kernel', 'bias', 'input'])
@pytest.mark.parametrize('value', [NAN, INF])
@pytest.mark.parametrize('grad', [True, False])
def test_every_conv_algorithm_propagates_non_finite_values(algo, where, value, grad):
    """The channel a NaN / inf kernel tap, bias or input value belongs to is non-finite in
    the output (and its gradients), the others finite and equal to F.conv2d's, for every
    algorithm (the sparse direct C conv used to drop NaN taps: under -ffast-math a float
    comparison may read NaN as zero)."""
    x, kernel, bias = _conv_case(where, value)
    ours = [t.clone().requires_grad_(grad) for t in (x, kernel, bias)]
    ref = [t.clone().requires_grad_(grad) for t in (x, kernel, bias)]
    with torch.set_grad_enabled(grad):
        y = ALGORITHM_FNS[algo](*ours, (1, 1), (3, 3), 4)
        y_ref = F.conv2d(*ref, 1, 3, 1, 4)
    bad = (~torch.isfinite(y)).transpose(0, 1).flatten(1).any(1)
    assert bad.tolist() == (~torch.isfinite(y_ref)).transpose(0, 1).flatten(1).any(1).tolist()
    assert bad.tolist() == [False, True, False, False]
    keep = [0, 2, 3]
    torch.testing.assert_close(y[:, keep], y_ref[:, keep], rtol=1e-4, atol=1e-4)
    if grad:
        g = torch.randn_like(y_ref)
        y.backward(g)
        y_ref.backward(g)
        for name, a, r in zip(('input', 'kernel', 'bias'), ours, ref):
            assert (~torch.isfinite(a.grad)).any() == (~torch.isfinite(r.grad)).any(), name


# --------------------------------------------------------------------------- empty batch
@pytest.mark.parametrize('algo', ALGORITHMS + ('auto', 'benchmark'))
@pytest.mark.parametrize('depthwise', [True, False])
def test_every_algorithm_takes_an_empty_batch(algo, depthwise):
    """F.conv2d's empty output, and a backward giving zero kernel / bias gradients."""
    from mmdcls.ops import conv_nd
    groups = 4 if depthwise else 1
    x = torch.randn(0, 4, 20, 20, requires_grad=True)
    kernel = torch.randn(4, 4 // groups, 17, 17, requires_grad=True)
    bias = torch.randn(4, requires_grad=True)
    y = conv_nd(x, kernel, bias, (1, 1), (8, 8), groups, algo=algo)
    assert y.shape == F.conv2d(x, kernel, bias, 1, 8, 1, groups).shape == (0, 4, 20, 20)
    y.sum().backward()
    assert x.grad.shape == x.shape
    assert torch.equal(kernel.grad, torch.zeros_like(kernel))
    assert torch.equal(bias.grad, torch.zeros_like(bias))
    with torch.no_grad():
        assert conv_nd(x, kernel, bias, (1, 1), (8, 8), groups, algo=algo).shape == y.shape
    # and each algorithm's function called directly
    y = ALGORITHM_FNS[algo if algo in ALGORITHMS else 'direct'](x, kernel, bias, (1, 1), (8, 8),
                                                                groups)
    y.sum().backward()
    assert y.shape == (0, 4, 20, 20)


def test_cost_model_takes_an_empty_batch():
    assert heuristic_algo((0, 96, 56, 56), (96, 1, 17, 17), (1, 1), (8, 8), 96) in ALGORITHMS


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


# ------------------------------------------------------------ non-contiguous C arguments
def _strided(t: torch.Tensor) -> torch.Tensor:
    """The same values in a non-contiguous view (every other element of a larger tensor)."""
    big = torch.empty(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
    view = big[..., ::2]
    view.copy_(t)
    assert not view.is_contiguous()
    return view


@needs_c
@pytest.mark.parametrize('version', ['v0', 'v1', 'gauss', 'max'])
def test_construction_bindings_read_non_contiguous_tensors(version):
    sizes, layout = (7, 5), [0, 1]
    torch.manual_seed(0)
    weight, P = torch.randn(6, 1, 4), torch.rand(2, 6, 1, 4) * 4 - 2
    SIG = torch.rand(2, 6, 1, 4) if version in ('gauss', 'max') else None
    grad_kernel = torch.randn(6, 1, *sizes)
    floor = {'gauss': 0.27, 'max': 1.0}.get(version)
    eps = dict(eps=NORMALISATION_EPS)
    constants = dict(eps=NORMALISATION_EPS, exponent_floor=GAUSS_EXPONENT_FLOOR)
    if SIG is None:
        expected = cpu.bilinear_forward(weight, P, sizes, layout, version, **eps)
        got = cpu.bilinear_forward(_strided(weight), _strided(P), sizes, layout, version, **eps)
        grads = cpu.bilinear_backward(weight, P, grad_kernel, sizes, layout, version, **eps)
        got_grads = cpu.bilinear_backward(
            _strided(weight), _strided(P), _strided(grad_kernel), sizes, layout, version, **eps)
    else:
        expected, _ = cpu.dense_forward(weight, P, SIG, sizes, layout, floor, version, **constants)
        got, _ = cpu.dense_forward(
            _strided(weight), _strided(P), _strided(SIG), sizes, layout, floor, version,
            **constants)
        grads = cpu.dense_backward(weight, P, SIG, grad_kernel, sizes, layout, floor, version,
                                   **constants)
        got_grads = cpu.dense_backward(
            _strided(weight), _strided(P), _strided(SIG), _strided(grad_kernel), sizes, layout,
            floor, version, **constants)
    assert torch.equal(got, expected)
    for g, e in zip(got_grads, grads):
        assert torch.equal(g, e)


@needs_c
def test_construction_bindings_reject_mismatched_tensors():
    weight, P = torch.randn(6, 1, 4), torch.randn(2, 6, 1, 4)
    eps = NORMALISATION_EPS
    with pytest.raises(TypeError, match='float32 CPU tensors'):
        cpu.bilinear_forward(weight, P.double(), (5, 5), [0, 1], 'v0', eps=eps)
    with pytest.raises(ValueError, match=r'P must have shape \(2, 6, 1, 4\)'):
        cpu.bilinear_forward(weight, P[:, :3], (5, 5), [0, 1], 'v0', eps=eps)
    with pytest.raises(ValueError, match='grad_kernel must have shape'):
        cpu.bilinear_backward(weight, P, torch.randn(6, 1, 5, 4), (5, 5), [0, 1], 'v0', eps=eps)


@needs_c
def test_sparse_direct_bindings_read_non_contiguous_tensors():
    torch.manual_seed(0)
    x, kernel, bias = torch.randn(2, 6, 11, 12), torch.randn(6, 1, 7, 5), torch.randn(6)
    kernel[kernel.abs() < 0.8] = 0  # sparse, as folded DCLS kernels are
    expected = F.conv2d(x, kernel, bias, 1, (3, 2), 1, 6)
    got = cpu.depthwise_conv2d(_strided(x), _strided(kernel), _strided(bias), (3, 2))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(expected)
    x_ = x.clone().requires_grad_()
    k_ = kernel.clone().requires_grad_()
    F.conv2d(x_, k_, None, 1, (3, 2), 1, 6).backward(grad)
    got = cpu.depthwise_grad_kernel(_strided(x), _strided(grad), (7, 5), (3, 2))
    torch.testing.assert_close(got, k_.grad, rtol=1e-4, atol=1e-4)
    with pytest.raises(TypeError, match='one dtype'):
        cpu.depthwise_conv2d(x, kernel.double(), None, (3, 2))
    with pytest.raises(ValueError, match=r'kernel \(C, 1, kh, kw\)'):
        cpu.depthwise_conv2d(x, kernel[:3], None, (3, 2))
    with pytest.raises(ValueError, match='grad_output must be'):
        cpu.depthwise_grad_kernel(x, grad[:, :, :-1], (7, 5), (3, 2))


@needs_c
def test_fft_bindings_read_non_contiguous_tensors():
    torch.manual_seed(0)
    x, kernel, bias = torch.randn(2, 16, 13, 12), torch.randn(16, 1, 9, 7), torch.randn(16)
    padding = (4, 3)
    lengths = fft_lengths(x.shape[2:], kernel.shape[2:], padding)
    spectra = cpu.depthwise_fft_spectra(kernel, lengths)
    assert torch.equal(cpu.depthwise_fft_spectra(_strided(kernel), lengths), spectra)
    expected = F.conv2d(x, kernel, bias, 1, padding, 1, 16)
    got = conv_fft(_strided(x), _strided(kernel), _strided(bias), (1, 1), padding, 16)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # with gradients (input, kernel, bias) from non-contiguous tensors
    xs, ks, bs = (_strided(t).requires_grad_() for t in (x, kernel, bias))
    xr, kr, br = (t.clone().requires_grad_() for t in (x, kernel, bias))
    g = torch.randn_like(expected)
    conv_fft(xs, ks, bs, (1, 1), padding, 16).backward(_strided(g))
    F.conv2d(xr, kr, br, 1, padding, 1, 16).backward(g)
    for a, r in ((xs, xr), (ks, kr), (bs, br)):
        torch.testing.assert_close(a.grad, r.grad, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match='grad must be'):
        cpu.depthwise_fft_grad_kernel(x, g.double(), padding, (9, 7), lengths)


@needs_c
@pytest.mark.parametrize('ksize,padding', [((5, 1), (2, 2)), ((1, 5), (3, 2)), ((3, 3), (4, 0)),
                                           ((3, 3), (1, 1))])
def test_sparse_direct_padding_beyond_the_kernel(ksize, padding):
    """Padding larger than kernel - 1 (legal for F.conv2d; a one-axis DCLS kernel of width 1
    with 'same'-style padding on both axes): the input gradient used to run the C conv with a
    negative padding, which wrote outside its plane."""
    from mmdcls.ops.conv import conv_sparse_direct
    torch.manual_seed(0)
    x, kernel, bias = torch.randn(2, 4, 9, 8), torch.randn(4, 1, *ksize), torch.randn(4)
    ours = [t.clone().requires_grad_() for t in (x, kernel, bias)]
    ref = [t.clone().requires_grad_() for t in (x, kernel, bias)]
    y = conv_sparse_direct(*ours, (1, 1), padding, 4)
    y_ref = F.conv2d(*ref, 1, padding, 1, 4)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y_ref)
    y.backward(g)
    y_ref.backward(g)
    for a, r in zip(ours, ref):
        torch.testing.assert_close(a.grad, r.grad, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match='non-negative paddings'):
        cpu.depthwise_conv2d(x, kernel, None, (-1, 0))
