"""Every entry point of the C library reads non-contiguous tensors correctly (each tensor handed
to C held alive for the call) and rejects mismatched ones."""
import pytest
import torch
import torch.nn.functional as F

from mmdcls.ops.construct.conventions import GAUSS_EXPONENT_FLOOR, NORMALISATION_EPS
from mmdcls.ops.conv import conv_nd, fft_lengths
from mmdcls.ops.kernels import cpu

needs_c = pytest.mark.skipif(cpu.library() is None, reason='C library unavailable')


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
    got = conv_nd(_strided(x), _strided(kernel), _strided(bias), (1, 1), padding, 16, algo='c_fft')
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # with gradients (input, kernel, bias) from non-contiguous tensors
    xs, ks, bs = (_strided(t).requires_grad_() for t in (x, kernel, bias))
    xr, kr, br = (t.clone().requires_grad_() for t in (x, kernel, bias))
    g = torch.randn_like(expected)
    conv_nd(xs, ks, bs, (1, 1), padding, 16, algo='c_fft').backward(_strided(g))
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
    with 'same'-style padding on both axes): the input gradient crops d loss / d output
    instead of running the C conv with a negative padding."""
    torch.manual_seed(0)
    x, kernel, bias = torch.randn(2, 4, 9, 8), torch.randn(4, 1, *ksize), torch.randn(4)
    ours = [t.clone().requires_grad_() for t in (x, kernel, bias)]
    ref = [t.clone().requires_grad_() for t in (x, kernel, bias)]
    y = conv_nd(*ours, (1, 1), padding, 4, algo='sparse_direct')
    y_ref = F.conv2d(*ref, 1, padding, 1, 4)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y_ref)
    y.backward(g)
    y_ref.backward(g)
    for a, r in zip(ours, ref):
        torch.testing.assert_close(a.grad, r.grad, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match='non-negative paddings'):
        cpu.depthwise_conv2d(x, kernel, None, (-1, 0))
