"""Every algorithm of mmdcls.ops.conv against F.conv: outputs and gradients (the choice
between them: test_conv_selection.py)."""
import pytest
import torch
import torch.nn.functional as F

from mmdcls.ops import conv
from mmdcls.ops.kernels import cpu
from mmdcls.ops.conv import (ALGORITHMS, LargeKernelConv2d, LargeKernelDepthwiseConv2d, conv_nd,
                             fft_lengths)

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}

# (ndim, N, C_in, C_out, groups, kernel, stride, padding, spatial)
CASES = [
    (2, 2, 4, 4, 4, (5, 5), (1, 1), (2, 2), (9, 9)),  # depthwise, odd, same
    (2, 2, 4, 4, 4, (17, 17), (1, 1), (8, 8), (12, 12)),  # depthwise, kernel > map
    (2, 2, 3, 3, 3, (4, 6), (2, 1), (1, 3), (10, 9)),  # depthwise, even, rect, stride
    (2, 1, 3, 3, 3, (7, 5), (2, 3), (0, 4), (11, 13)),  # depthwise, asymmetric, stride
    (2, 2, 3, 6, 3, (5, 3), (1, 2), (2, 1), (8, 7)),  # channel multiplier 2
    (2, 2, 4, 6, 2, (4, 3), (2, 1), (3, 0), (8, 11)),  # general groups, p > k // 2
    (2, 1, 3, 5, 1, (6, 6), (1, 1), (0, 7), (7, 5)),  # dense, even, padding > k
    (1, 2, 3, 3, 3, (7, ), (3, ), (1, ), (13, )),  # 1-D depthwise, stride
    (1, 2, 4, 2, 2, (6, ), (1, ), (5, ), (9, )),  # 1-D grouped, even
    (3, 2, 2, 2, 2, (3, 5, 2), (1, 2, 1), (1, 2, 0), (5, 6, 4)),  # 3-D depthwise
    (3, 1, 2, 4, 2, (3, 4, 2), (1, 2, 1), (1, 2, 0), (5, 6, 4)),  # 3-D grouped
]


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def _run(algo, x, k, b, stride, padding, groups, grad_out):
    x, k, b = (t.detach().float().requires_grad_() for t in (x, k, b))
    y = conv_nd(x, k, b, stride, padding, groups, algo=algo)
    grads = torch.autograd.grad(y, (x, k, b), grad_out.float())
    return y, grads


@pytest.mark.parametrize('algo', ALGORITHMS + ('auto', 'benchmark'))
@pytest.mark.parametrize('case', CASES, ids=lambda c: f'{c[0]}d-g{c[4]}-k{c[5]}-s{c[6]}')
def test_matches_conv(algo, case):
    ndim, n, c_in, c_out, groups, ks, stride, padding, spatial = case
    torch.manual_seed(0)
    x = torch.randn(n, c_in, *spatial, dtype=torch.float64, requires_grad=True)
    k = torch.randn(c_out, c_in // groups, *ks, dtype=torch.float64, requires_grad=True)
    b = torch.randn(c_out, dtype=torch.float64, requires_grad=True)
    ref = _CONV[ndim](x, k, b, stride, padding, 1, groups)
    grad_out = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, (x, k, b), grad_out)
    y, grads = _run(algo, x, k, b, stride, padding, groups, grad_out)
    assert y.shape == ref.shape and y.dtype == torch.float32
    assert rel_err(y, ref) < 1e-4
    for name, g, r in zip(('input', 'kernel', 'bias'), grads, ref_grads):
        assert g.shape == r.shape
        assert rel_err(g, r) < 1e-4, name


@pytest.mark.parametrize('algo', ALGORITHMS)
def test_float64_and_no_bias(algo):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, 1, 7, 5, dtype=torch.float64, requires_grad=True)
    y = conv_nd(x, k, None, (1, 1), (3, 2), 3, algo=algo)
    ref = F.conv2d(x, k, None, 1, (3, 2), 1, 3)
    assert y.dtype == torch.float64
    assert rel_err(y, ref) < 1e-10
    g = torch.randn_like(ref)
    for a, r in zip(torch.autograd.grad(y, (x, k), g), torch.autograd.grad(ref, (x, k), g)):
        assert rel_err(a, r) < 1e-10


@pytest.mark.parametrize('algo', ALGORITHMS)
def test_gradcheck(algo):
    torch.manual_seed(2)
    x = torch.randn(2, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 1, 5, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, k, b: conv_nd(x, k, b, (2, 1), (2, 1), 2, algo=algo),
                                    (x, k, b))


@pytest.mark.parametrize('algo', ALGORITHMS)
def test_no_grad_and_partial_grads(algo):
    torch.manual_seed(3)
    x = torch.randn(1, 4, 10, 10)
    k = torch.randn(4, 1, 9, 9, requires_grad=True)
    ref = F.conv2d(x, k.detach(), None, 1, 4, 1, 4)
    with torch.no_grad():
        assert rel_err(conv_nd(x, k, None, (1, 1), (4, 4), 4, algo=algo), ref) < 1e-4
    y = conv_nd(x, k, None, (1, 1), (4, 4), 4, algo=algo)  # only the kernel needs a grad
    (gk, ) = torch.autograd.grad(y.square().sum(), (k, ))
    k2 = k.detach().requires_grad_()
    (rk, ) = torch.autograd.grad(F.conv2d(x, k2, None, 1, 4, 1, 4).square().sum(), (k2, ))
    assert rel_err(gk, rk) < 1e-4


@pytest.mark.parametrize('algo', ALGORITHMS)
def test_autocast_bfloat16(algo):
    torch.manual_seed(4)
    x = torch.randn(2, 4, 12, 12, requires_grad=True)
    k = torch.randn(4, 1, 9, 9, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ref = F.conv2d(x, k, None, 1, 4, 1, 4)
        y = conv_nd(x, k, None, (1, 1), (4, 4), 4, algo=algo)
    assert y.dtype == ref.dtype == torch.bfloat16
    assert rel_err(y, ref) < 2e-2  # bf16 rounding; FFT itself runs in float32
    y.float().sum().backward()
    assert x.grad is not None and k.grad is not None and x.grad.dtype == torch.float32


def test_fft_lengths_avoid_wraparound():
    # >= size + padding and the stride-1 output, >= kernel, 2-3-5 smooth and even
    assert fft_lengths((96, ), (17, ), (8, )) == (108, )
    assert fft_lengths((4, ), (17, ), (8, )) == (18, )
    for (length, ) in (fft_lengths((s, ), (k, ), (p, )) for s in range(1, 30) for k in (1, 4, 7)
                       for p in (0, 3, 9)):
        r = length
        for f in (2, 3, 5):
            while r % f == 0:
                r //= f
        assert r == 1


def test_shape_errors():
    with pytest.raises(ValueError, match='input must be 4-D'):
        conv_nd(torch.randn(2, 8, 8), torch.randn(2, 1, 3, 3), None, (1, 1), (0, 0), 2)
    with pytest.raises(ValueError, match='groups'):
        conv_nd(torch.randn(1, 3, 8, 8), torch.randn(2, 1, 3, 3), None, (1, 1), (0, 0), 2)
    with pytest.raises(ValueError, match='larger than the padded input'):
        conv_nd(
            torch.randn(1, 2, 4, 4), torch.randn(2, 1, 9, 9), None, (1, 1), (0, 0), 2, algo='fft')


@pytest.mark.parametrize('algo', ALGORITHMS + (None, ))
@pytest.mark.parametrize('padding_mode', ['zeros', 'reflect', 'circular'])
def test_large_kernel_conv_matches_nn_conv(algo, padding_mode):
    torch.manual_seed(5)
    conv = torch.nn.Conv2d(4, 4, (9, 7), padding=(4, 3), groups=4, padding_mode=padding_mode)
    lk = LargeKernelConv2d(
        4, 4, (9, 7), padding=(4, 3), groups=4, padding_mode=padding_mode, conv_algo=algo)
    lk.load_state_dict(conv.state_dict())
    x = torch.randn(2, 4, 11, 10, requires_grad=True)
    y, ref = lk(x), conv(x)
    assert rel_err(y, ref) < 1e-4
    g = torch.randn_like(ref)
    for a, r in zip(
            torch.autograd.grad(y, (x, lk.weight, lk.bias), g),
            torch.autograd.grad(ref, (x, conv.weight, conv.bias), g)):
        assert rel_err(a, r) < 1e-4


def test_large_kernel_same_padding_and_depthwise_helper():
    torch.manual_seed(6)
    conv = torch.nn.Conv2d(3, 3, (6, 5), padding='same', groups=3)
    lk = LargeKernelConv2d(3, 3, (6, 5), padding='same', groups=3, conv_algo='fft')
    lk.load_state_dict(conv.state_dict())
    x = torch.randn(1, 3, 9, 9)
    assert rel_err(lk(x), conv(x)) < 1e-4
    dw = LargeKernelDepthwiseConv2d(5, 17, conv_algo='fft')
    assert isinstance(dw, torch.nn.Conv2d) and dw.groups == 5 and dw.padding == (8, 8)
    x = torch.randn(1, 5, 20, 20)
    assert rel_err(dw(x), F.conv2d(x, dw.weight, dw.bias, 1, 8, 1, 5)) < 1e-4
    with pytest.raises(ValueError, match='odd'):
        LargeKernelDepthwiseConv2d(5, 16)
    with pytest.raises(ValueError, match='dilation'):
        LargeKernelConv2d(2, 2, 3, dilation=2)


@pytest.mark.parametrize('case', CASES, ids=lambda c: f'{c[0]}d-g{c[4]}-k{c[5]}-s{c[6]}')
def test_fft_without_grad_matches_conv(case):
    """Inference applies the product and the bias in place on the spectrum (bias on the
    zero-frequency bin); with a precomputed kernel spectrum too."""
    ndim, n, c_in, c_out, groups, ksize, stride, padding, spatial = case
    torch.manual_seed(5)
    x = torch.randn(n, c_in, *spatial)
    k = torch.randn(c_out, c_in // groups, *ksize)
    b = torch.randn(c_out)
    ref = _CONV[ndim](x, k, b, stride, padding, 1, groups)
    native_form = conv.native_fft_applies(x, k, b, stride, groups)
    spectrum = conv.kernel_spectrum_for(k, fft_lengths(spatial, ksize, padding), native_form)
    with torch.inference_mode():
        assert rel_err(conv.conv_fft(x, k, b, stride, padding, groups), ref) < 1e-4
        out = conv.conv_fft(x, k, b, stride, padding, groups, kernel_spectrum=spectrum)
        assert rel_err(out, ref) < 1e-4


def test_large_kernel_conv_caches_its_spectrum_while_the_weight_is_unchanged():
    torch.manual_seed(6)
    conv = LargeKernelDepthwiseConv2d(8, 17, conv_algo='fft').eval()
    x, x_small = torch.randn(1, 8, 20, 20), torch.randn(1, 8, 12, 12)
    with torch.inference_mode():
        y = conv(x)
        spectrum = conv._spectrum_cache[1]
        assert rel_err(y, F.conv2d(x, conv.weight, conv.bias, 1, 8, 1, 8)) < 1e-4
        conv(x)
        assert conv._spectrum_cache[1] is spectrum  # reused
    with torch.no_grad():
        conv.weight.mul_(2)  # in place: a new version
    with torch.inference_mode():
        y = conv(x)
        assert conv._spectrum_cache[1] is not spectrum
        assert rel_err(y, F.conv2d(x, conv.weight, conv.bias, 1, 8, 1, 8)) < 1e-4
        y_small = conv(x_small)  # other transform lengths
        assert rel_err(y_small, F.conv2d(x_small, conv.weight, conv.bias, 1, 8, 1, 8)) < 1e-4
    assert '_spectrum_cache' not in ''.join(conv.state_dict())
    # training: gradients reach the weight (no cache involved)
    conv.train()
    conv(x).sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('native_lib', [True, False], ids=['native', 'torch'])
@pytest.mark.parametrize('needs', [(True, True, True), (True, False, False), (False, True, False),
                                   (False, False, True)])
def test_depthwise_fft_backward(monkeypatch, needs, native_lib):
    """Depthwise stride-1 FFT convs (every DCLS layer of ConvNeXt) use a hand-written
    backward, through the C library's transforms or torch.fft (without the library):
    gradients as F.conv2d's for any subset of inputs, gradcheck in float64."""
    if native_lib:
        if cpu.library() is None:
            pytest.skip(f'native library unavailable: {cpu.failure_reason()}')
    else:
        monkeypatch.setenv(cpu.ENV_VAR, '0')
    torch.manual_seed(7)
    node = '_NativeDepthwiseFFTBackward' if native_lib else '_DepthwiseFFTBackward'
    check_depthwise_backward('fft', node, needs, sparse=False, padding=(3, 2), tol=1e-10)


def check_depthwise_backward(algo, node, needs, sparse, padding, tol):
    """``conv_nd(algo=)`` of a (2, 3, 11, 9) x (3, 1, 7, 5) depthwise float64 conv runs
    through ``node`` and gives F.conv2d's gradients for the inputs marked in ``needs``
    (input, kernel, bias), and passes gradcheck."""
    x = torch.randn(2, 3, 11, 9, dtype=torch.float64, requires_grad=needs[0])
    k = torch.randn(3, 1, 7, 5, dtype=torch.float64)
    if sparse:
        k[k.abs() < 0.5] = 0
    k.requires_grad_(needs[1])
    b = torch.randn(3, dtype=torch.float64, requires_grad=needs[2])
    y = conv_nd(x, k, b, (1, 1), padding, 3, algo=algo)
    assert y.grad_fn.name() == node
    inputs = [t for t in (x, k, b) if t.requires_grad]
    grad = torch.randn_like(y)
    ours = torch.autograd.grad(y, inputs, grad)
    refs = torch.autograd.grad(F.conv2d(x, k, b, 1, padding, 1, 3), inputs, grad)
    for a, r in zip(ours, refs):
        assert rel_err(a, r) < tol

    def conv(*leaves):
        it = iter(leaves)
        args = [next(it) if t.requires_grad else t for t in (x, k, b)]
        return conv_nd(*args, (1, 1), padding, 3, algo=algo)

    assert torch.autograd.gradcheck(conv, inputs)


SPARSE_DIRECT_CASES = [  # (N, C, H, W, kernel, padding)
    (2, 5, 9, 13, (17, 17), (8, 8)),  # kernel larger than the map
    (1, 3, 20, 7, (5, 3), (2, 1)),  # rectangular
    (2, 4, 6, 6, (7, 9), (1, 4)),  # asymmetric padding, output != input size
    (1, 2, 30, 33, (23, 23), (11, 11)),  # rows longer than one register block
]


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('case', SPARSE_DIRECT_CASES, ids=str)
def test_sparse_direct_matches_conv(case, dtype):
    if cpu.library() is None:
        pytest.skip(f'native library unavailable: {cpu.failure_reason()}')
    n, c, h, w, ksize, padding = case
    torch.manual_seed(8)
    x = torch.randn(n, c, h, w, dtype=dtype)
    k = torch.randn(c, 1, *ksize, dtype=dtype)
    k[k.abs() < 0.7] = 0  # sparse, like a folded v0 kernel
    k[0] = 0  # a channel without taps: bias only
    b = torch.randn(c, dtype=dtype)
    ref = F.conv2d(x, k, b, 1, padding, 1, c)
    with torch.inference_mode():
        assert cpu.depthwise_usable(x, k, b, (1, 1), c)
        out = conv_nd(x, k, b, (1, 1), padding, c, algo='sparse_direct')
        assert rel_err(out, ref) < (1e-5 if dtype == torch.float32 else 1e-12)
        assert rel_err(
            conv_nd(x, k, None, (1, 1), padding, c, algo='sparse_direct'),
            F.conv2d(x, k, None, 1, padding, 1, c)) < 1e-5


def test_sparse_direct_applies_only_to_depthwise_stride_one():
    """Elsewhere 'sparse_direct' runs channels-last (test_matches_conv covers the values)."""
    x, k = torch.randn(1, 4, 8, 8), torch.randn(4, 1, 5, 5)
    assert not cpu.depthwise_usable(x, k, None, (2, 2), 4)  # stride
    assert not cpu.depthwise_usable(x, torch.randn(4, 2, 5, 5), None, (1, 1), 2)
    assert not cpu.depthwise_usable(x.half(), k.half(), None, (1, 1), 4)
    assert not cpu.depthwise_usable(x, k.double(), None, (1, 1), 4)  # mixed dtypes
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = conv_nd(x, k, None, (1, 1), (2, 2), 4, algo='sparse_direct')
    assert y.dtype == torch.bfloat16  # autocast: channels-last in bf16, as F.conv2d


@pytest.mark.parametrize('needs', [(True, True, True), (True, False, False), (False, True, False),
                                   (False, False, True)])
def test_sparse_direct_backward(needs):
    """Training through 'sparse_direct': input gradient by the rotated kernel, kernel gradient by
    the C correlation; as F.conv2d's for any subset of inputs, gradcheck in float64."""
    if cpu.library() is None:
        pytest.skip(f'native library unavailable: {cpu.failure_reason()}')
    torch.manual_seed(9)
    check_depthwise_backward(
        'sparse_direct',
        '_SparseDirectDepthwiseBackward',
        needs,
        sparse=True,
        padding=(3, 1),
        tol=1e-12)
