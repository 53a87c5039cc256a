"""The hand-written depthwise gradients of the algorithms (torch FFT, C FFT, sparse direct),
for any subset of inputs and in float64 gradcheck; the FFT transform lengths; the sparse direct
conv's own shapes (kernels larger than the map, zero channels, long rows)."""
import pytest
import torch
import torch.nn.functional as F

from mmdcls.ops.conv import ALGORITHMS, ConvProblem, conv_nd, fft_lengths
from mmdcls.ops.kernels import cpu

needs_c = pytest.mark.skipif(cpu.library() is None, reason='C library unavailable')
NEEDS = [(True, True, True), (True, False, False), (False, True, False), (False, False, True)]


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


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


@pytest.mark.parametrize('needs', NEEDS)
def test_torch_fft_depthwise_backward(needs):
    torch.manual_seed(7)
    check_depthwise_backward('fft', '_DepthwiseFFTBackward', needs, False, (3, 2), 1e-10)


@needs_c
@pytest.mark.parametrize('needs', NEEDS)
def test_c_fft_depthwise_backward(needs):
    torch.manual_seed(7)
    check_depthwise_backward('c_fft', '_CDepthwiseFFTBackward', needs, False, (3, 2), 1e-10)


@needs_c
@pytest.mark.parametrize('needs', NEEDS)
def test_sparse_direct_backward(needs):
    """Input gradient by the rotated kernel, kernel gradient by the C correlation."""
    torch.manual_seed(9)
    check_depthwise_backward('sparse_direct', '_SparseDirectDepthwiseBackward', needs, True, (3, 1),
                             1e-10)


SPARSE_DIRECT_CASES = [  # (N, C, H, W, kernel, padding)
    (2, 5, 9, 13, (17, 17), (8, 8)),  # kernel larger than the map
    (1, 3, 20, 7, (5, 3), (2, 1)),  # rectangular
    (2, 4, 6, 6, (7, 9), (1, 4)),  # asymmetric padding, output != input size
    (1, 2, 30, 33, (23, 23), (11, 11)),  # rows longer than one register block
]


@needs_c
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('case', SPARSE_DIRECT_CASES, ids=str)
def test_sparse_direct_matches_conv(case, dtype):
    n, c, h, w, ksize, padding = case
    torch.manual_seed(8)
    x = torch.randn(n, c, h, w, dtype=dtype)
    k = torch.randn(c, 1, *ksize, dtype=dtype)
    k[k.abs() < 0.7] = 0  # sparse, like a folded v0 kernel
    k[0] = 0  # a channel without taps: bias only
    b = torch.randn(c, dtype=dtype)
    ref = F.conv2d(x, k, b, 1, padding, 1, c)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    with torch.inference_mode():
        assert ALGORITHMS['sparse_direct'].applies(
            ConvProblem.describe(x, k, b, (1, 1), padding, c))
        assert rel_err(conv_nd(x, k, b, (1, 1), padding, c, algo='sparse_direct'), ref) < tol
        assert rel_err(
            conv_nd(x, k, None, (1, 1), padding, c, algo='sparse_direct'),
            F.conv2d(x, k, None, 1, padding, 1, c)) < tol


def test_c_algorithms_apply_to_2d_depthwise_stride_one_float_cpu_only():
    x, k = torch.randn(1, 4, 8, 8), torch.randn(4, 1, 5, 5)
    cases = {
        'stride': (x, k, (2, 2), 4),
        'grouped': (x, torch.randn(4, 2, 5, 5), (1, 1), 2),
        'half': (x.half(), k.half(), (1, 1), 4),
    }
    for name in ('sparse_direct', 'c_fft'):
        for what, (xx, kk, stride, groups) in cases.items():
            problem = ConvProblem.describe(xx, kk, None, stride, (2, 2), groups)
            assert not ALGORITHMS[name].applies(problem), (name, what)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            problem = ConvProblem.describe(x, k, None, (1, 1), (2, 2), 4)
        assert 'autocast' in ALGORITHMS[name].why_not(problem)
