"""The operator on CUDA: ``Dcls2d`` against the official ``dcls`` 0.1.1 (forward and every
gradient), and every convolution algorithm of :mod:`mmdcls.ops.conv` against ``F.conv2d`` in
fp32 and under bf16 / fp16 autocast."""
import pytest
import torch
import torch.nn.functional as F
from cuda_helpers import full_fp32  # noqa: F401 (fixture)
from cuda_helpers import DEVICE, assert_close, requires_cuda

from mmdcls.ops import Dcls2d, conv
from mmdcls.ops.conv import conv_nd

pytestmark = requires_cuda

# ------------------------------------------------------------------ parity with dcls 0.1.1
# name -> (in, out, groups, kernel_count, dilated size, stride, input (N, H, W))
PARITY_CASES = {
    'dense-rect-stride2': (4, 6, 1, 5, (7, 3), 2, (2, 9, 8)),
    'depthwise': (8, 8, 8, 5, (5, 5), 1, (2, 12, 11)),
    'convnext-stage': (96, 96, 96, 34, (17, 17), 1, (2, 20, 20)),
}


def build_parity_pair(version, case):
    """(ours, official) on the GPU with the same parameters: positions spread over the kernel,
    three of them on a grid point and on both clamp limits, widths drawn for gauss / max."""
    from DCLS.construct import modules as official
    c_in, c_out, groups, count, sizes, stride, _ = PARITY_CASES[case]
    kwargs = dict(
        in_channels=c_in,
        out_channels=c_out,
        kernel_count=count,
        stride=stride,
        padding=tuple(s // 2 for s in sizes),
        dilated_kernel_size=sizes,
        groups=groups,
        version=version)
    torch.manual_seed(0)
    ours = Dcls2d(**kwargs)
    reference = official.Dcls2d(**kwargs, use_implicit_gemm=False)
    with torch.no_grad():
        for axis, size in enumerate(sizes):
            ours.P[axis].uniform_(-(size // 2), size // 2)
            ours.P[axis, ..., 0] = 1.0
            ours.P[axis, ..., 1] = size // 2
            ours.P[axis, ..., 2] = -(size // 2)
        if ours.SIG is not None:
            ours.SIG.uniform_(-0.7, 0.7)
    reference.load_state_dict(ours.state_dict())
    return ours.to(DEVICE), reference.to(DEVICE)


@pytest.mark.usefixtures('full_fp32')
@pytest.mark.parametrize('case', PARITY_CASES)
@pytest.mark.parametrize('version', ['v0', 'v1', 'gauss', 'max'])
def test_dcls2d_matches_official_on_cuda(version, case):
    ours, reference = build_parity_pair(version, case)
    n, h, w = PARITY_CASES[case][-1]
    x = torch.randn(n, ours.in_channels, h, w, device=DEVICE, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = ours(x), reference(x_ref)
    assert_close(y, y_ref, 'output', 1e-5)
    grad = torch.randn_like(y_ref)
    y.backward(grad)
    y_ref.backward(grad)
    assert_close(x.grad, x_ref.grad, 'grad input', 1e-5)
    params = dict(reference.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, params[name].grad, f'grad {name}', 1e-5)


# ------------------------------------------------------------------ convolution algorithms
CANDIDATES = ('direct', 'channels_last', 'fft', 'triton', 'auto', 'benchmark')
ALGOS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            name not in conv.algo_choices(), reason=f'mmdcls.ops.conv has no algorithm {name!r}'))
    for name in CANDIDATES
]
# name -> (N, C_in, C_out, groups, kernel, stride, padding, (H, W), channels-last input)
CONV_CASES = {
    'dw17': (2, 16, 16, 16, (17, 17), (1, 1), (8, 8), (20, 23), False),
    'dw17-channels-last': (2, 16, 16, 16, (17, 17), (1, 1), (8, 8), (20, 23), True),
    'dw7': (2, 32, 32, 32, (7, 7), (1, 1), (3, 3), (14, 14), False),
    'dw-even-rect-stride2': (2, 8, 8, 8, (4, 6), (2, 1), (1, 3), (10, 9), False),
    'grouped': (2, 6, 4, 2, (5, 3), (1, 1), (2, 1), (9, 8), False),
}
AUTOCAST_CASES = ('dw17', 'dw17-channels-last', 'dw7')
#: scale-relative tolerances: fp32 (TF32 off), and autocast against F.conv2d under the same
#: autocast (both round inputs and output to the dtype: 8 / 11 significant bits)
TOLERANCES = {torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 4e-3}


def conv_inputs(case):
    n, c_in, c_out, groups, ks, stride, padding, (h, w), channels_last = CONV_CASES[case]
    torch.manual_seed(0)
    x = torch.randn(n, c_in, h, w, device=DEVICE)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    k = torch.randn(c_out, c_in // groups, *ks, device=DEVICE)
    b = torch.randn(c_out, device=DEVICE)
    return (x, k, b), (stride, padding, groups)


def forward_backward(fn, tensors, autocast_dtype=None):
    """``fn(*leaves)`` on fresh leaves made from ``tensors``, under autocast to
    ``autocast_dtype`` if given; (output, the leaves' gradients for a fixed random output
    gradient, backward outside autocast as in training)."""
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    with torch.autocast(
            DEVICE, dtype=autocast_dtype or torch.float16, enabled=autocast_dtype is not None):
        y = fn(*leaves)
    torch.manual_seed(1)
    # drawn in the logical (NCHW) order: randn_like would follow a channels-last output's memory
    y.backward(torch.randn(y.shape, dtype=y.dtype, device=y.device))
    return y, [leaf.grad for leaf in leaves]


def check_against_conv2d(algo, case, autocast_dtype=None):
    tensors, (stride, padding, groups) = conv_inputs(case)

    def ours(x, k, b):
        return conv_nd(x, k, b, stride, padding, groups, algo=algo)

    def reference(x, k, b):
        return F.conv2d(x, k, b, stride, padding, 1, groups)

    y, grads = forward_backward(ours, tensors, autocast_dtype)
    y_ref, grads_ref = forward_backward(reference, tensors, autocast_dtype)
    assert y.dtype == y_ref.dtype
    tol = TOLERANCES[autocast_dtype or torch.float32]
    assert_close(y, y_ref, f'{algo} output', tol)
    for name, g, g_ref in zip(('input', 'kernel', 'bias'), grads, grads_ref):
        assert g.dtype == g_ref.dtype
        assert_close(g, g_ref, f'{algo} grad {name}', tol)


@pytest.mark.usefixtures('full_fp32')
@pytest.mark.parametrize('case', CONV_CASES)
@pytest.mark.parametrize('algo', ALGOS)
def test_algorithm_matches_conv2d_fp32(algo, case):
    check_against_conv2d(algo, case)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16], ids=['bf16', 'fp16'])
@pytest.mark.parametrize('case', AUTOCAST_CASES)
@pytest.mark.parametrize('algo', ALGOS)
def test_algorithm_matches_conv2d_under_autocast(algo, case, dtype):
    check_against_conv2d(algo, case, dtype)
