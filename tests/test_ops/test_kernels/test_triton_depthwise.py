"""The Triton depthwise convolution (mmdcls.ops.kernels.triton) against F.conv2d in float64:
forward, input / kernel / bias gradients, layouts, dtypes, non-finite inputs, the zero-tap skip,
argument errors, torch.compile. Without a GPU the kernels run in triton's interpreter on CPU
tensors (tests/conftest.py turns it on), so the shapes are tiny."""
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from mmdcls.ops.kernels import triton as triton_kernels
from mmdcls.ops.torch_compat import TORCH_VERSION

AVAILABLE, REASON = triton_kernels.availability()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=f'the Triton kernels cannot run: {REASON}')
DEVICE = 'cpu' if triton_kernels.interpreter_enabled() else 'cuda'
LAYOUTS = {'nchw': torch.contiguous_format, 'channels_last': torch.channels_last}
# (N, C, H, W), (kh, kw), (ph, pw): odd and even, square and rectangular kernels; padding from
# 0 to beyond k - 1; outputs of one row or column; several tiles and channel blocks (the
# interpreter's tile is 4 channels x 4 x 8 pixels)
CASES = [
    ((1, 1, 1, 1), (1, 1), (0, 0)),
    ((2, 3, 7, 9), (3, 3), (1, 1)),
    ((1, 5, 6, 5), (4, 6), (2, 6)),
    ((1, 2, 6, 7), (7, 7), (3, 3)),
    ((1, 4, 9, 3), (9, 5), (0, 2)),
    ((1, 3, 2, 4), (3, 3), (4, 5)),
    ((2, 5, 1, 9), (1, 1), (0, 1)),
]

# float16 / bfloat16 outputs are float32 sums rounded once: within a few units of their last
# place of the float64 result on the same rounded values
TOLERANCES = {
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.float16: dict(rtol=2e-3, atol=1e-4),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1e-3),
}


def make_inputs(shape, kernel_size, dtype, layout=torch.contiguous_format, bias=True):
    """(input, kernel, bias) in ``dtype`` on DEVICE, requiring grad."""
    n, c = shape[:2]
    x = torch.randn(shape).to(dtype).to(DEVICE, memory_format=layout)
    k = torch.randn(c, 1, *kernel_size).to(dtype).to(DEVICE)
    b = torch.randn(c).to(dtype).to(DEVICE) if bias else None
    return [t if t is None else t.requires_grad_() for t in (x, k, b)]


def reference(x, k, b, padding, grad_output):
    """F.conv2d in float64 on CPU of the same values: output and (d x, d k, d b)."""
    x64, k64 = (t.detach().cpu().double().requires_grad_() for t in (x, k))
    b64 = None if b is None else b.detach().cpu().double().requires_grad_()
    y = F.conv2d(x64, k64, b64, 1, padding, 1, x.shape[1])
    y.backward(grad_output.detach().cpu().double())
    return y, (x64.grad, k64.grad, None if b64 is None else b64.grad)


def check_against_reference(x, k, b, padding, layout, **kwargs):
    """Output and gradients of the operator against :func:`reference`, and their layouts and
    dtypes (the gradients as the backward returns them, before accumulation)."""
    y = triton_kernels.depthwise_conv2d(x, k, b, padding, **kwargs)
    grad_output = torch.randn(y.shape).to(x.dtype).to(DEVICE)
    tensors = [t for t in (x, k, b) if t is not None]
    grads = torch.autograd.grad(y, tensors, grad_output)
    expected, expected_grads = reference(x, k, b, padding, grad_output)
    assert y.dtype == x.dtype and y.shape == expected.shape
    assert y.is_contiguous(memory_format=layout)
    assert grads[0].is_contiguous(memory_format=layout)
    tolerance = TOLERANCES[x.dtype]
    torch.testing.assert_close(y.cpu().double(), expected, **tolerance)
    for tensor, grad, expected_grad in zip(tensors, grads, expected_grads):
        assert grad.dtype == tensor.dtype and grad.shape == tensor.shape
        torch.testing.assert_close(grad.cpu().double(), expected_grad, **tolerance)


@pytest.mark.parametrize('layout', LAYOUTS)
@pytest.mark.parametrize('shape,kernel_size,padding', CASES)
def test_float32_matches_conv2d(shape, kernel_size, padding, layout):
    x, k, b = make_inputs(shape, kernel_size, torch.float32, LAYOUTS[layout])
    check_against_reference(x, k, b, padding, LAYOUTS[layout])


def test_large_kernels_match_conv2d():
    """DCLS v0's 17 x 17 with its gradients, and a forward at 31 x 30; one output tile each
    (the interpreter runs one tap at a time)."""
    x, k, b = make_inputs((1, 2, 4, 3), (17, 17), torch.float32)
    check_against_reference(x, k, b, (8, 8), torch.contiguous_format)
    x, k, b = make_inputs((1, 2, 1, 2), (31, 30), torch.float32)
    expected, _ = reference(x, k, b, (15, 15), torch.ones(1, 2, 1, 3))
    torch.testing.assert_close(
        triton_kernels.depthwise_conv2d(x, k, b, (15, 15)).detach().cpu().double(), expected,
        **TOLERANCES[torch.float32])


@pytest.mark.parametrize('layout', LAYOUTS)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_matches_conv2d(dtype, layout):
    x, k, b = make_inputs((1, 5, 5, 6), (3, 4), dtype, LAYOUTS[layout])
    check_against_reference(x, k, b, (1, 3), LAYOUTS[layout])


@pytest.mark.parametrize('layout', LAYOUTS)
def test_without_bias(layout):
    x, k, _ = make_inputs((2, 3, 6, 7), (5, 3), torch.float32, LAYOUTS[layout], bias=False)
    check_against_reference(x, k, None, (2, 0), LAYOUTS[layout])


@pytest.mark.parametrize('layout', ['nchw', 'channels_last'])
def test_other_strides_take_the_nearer_layout(layout):
    """A strided view is copied into NCHW when its columns are closer in memory than its
    channels, else into channels-last; the output follows."""
    if layout == 'nchw':
        base = torch.randn(1, 3, 6, 10)
    else:
        base = torch.randn(1, 6, 10, 3).permute(0, 3, 1, 2)
    x = base[:, :, :, ::2].to(DEVICE).requires_grad_()
    k = torch.randn(3, 1, 3, 3, device=DEVICE, requires_grad=True)
    assert not x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)
    check_against_reference(x, k, None, (1, 1), LAYOUTS[layout])


def test_kernel_gradient_work_split(monkeypatch):
    """Several regions per image and several of them per program group, the last group part
    empty: the kernel gradient is the same sum."""
    from mmdcls.ops.kernels.triton import depthwise_grad
    monkeypatch.setattr(depthwise_grad, 'TARGET_PROGRAMS', 1)
    if triton_kernels.interpreter_enabled():  # a multiple of the interpreter's one tile
        monkeypatch.setattr(depthwise_grad, 'REGION', (8, 8))
    regions = depthwise_grad.REGION
    shape = (2, 1, regions[0] + 1, 2 * regions[1] + 1)
    units = shape[0] * 2 * 3
    per_group, groups = depthwise_grad._work_split(units, shape[1], 3)
    assert groups == 1 and per_group > units
    x, k, b = make_inputs(shape, (3, 3), torch.float32)
    check_against_reference(x, k, b, (1, 1), torch.contiguous_format)


def test_empty_batch():
    x, k, b = make_inputs((0, 3, 5, 5), (3, 3), torch.float32)
    y = triton_kernels.depthwise_conv2d(x, k, b, (1, 1))
    assert y.shape == (0, 3, 5, 5)
    y.sum().backward()
    assert k.grad.abs().sum() == 0 and b.grad.abs().sum() == 0


def non_finite_inputs(layout=torch.contiguous_format):
    """Input with NaN and +-inf entries, and a kernel whose taps are mostly zero in every
    channel (zero weights must still propagate them, as in F.conv2d)."""
    x = torch.randn(2, 3, 7, 8)
    x[0, 1, 3, 4] = float('nan')
    x[1, 0, 0, 7] = float('inf')
    x[1, 2, 6, 0] = -float('inf')
    k = torch.randn(3, 1, 3, 5)
    k[:, :, 0] = 0
    k[:, :, :, 1:3] = 0
    return x.to(DEVICE, memory_format=layout), k.to(DEVICE)


@pytest.mark.filterwarnings('ignore:invalid value encountered:RuntimeWarning')  # interpreter
@pytest.mark.parametrize('layout', LAYOUTS)
def test_non_finite_inputs_propagate_as_in_conv2d(layout):
    x, k = non_finite_inputs(LAYOUTS[layout])
    x.requires_grad_(False)
    k.requires_grad_()
    y = triton_kernels.depthwise_conv2d(x, k, None, (1, 2))
    expected = F.conv2d(x.cpu().double(), k.detach().cpu().double(), None, 1, (1, 2), 1, 3)
    covered = F.conv2d((~torch.isfinite(x.cpu())).double(),
                       torch.ones(3, 1, 3, 5).double(), None, 1, (1, 2), 1, 3) > 0
    assert torch.equal(~torch.isfinite(expected), covered)  # F.conv2d's own semantics
    assert torch.equal(torch.isfinite(y.cpu()), torch.isfinite(expected))
    finite = torch.isfinite(expected)
    torch.testing.assert_close(y.cpu().double()[finite], expected[finite], rtol=1e-5, atol=1e-5)
    y.backward(torch.ones_like(y))
    x64, k64 = x.cpu().double(), k.detach().cpu().double().requires_grad_()
    F.conv2d(x64, k64, None, 1, (1, 2), 1, 3).backward(torch.ones_like(expected))
    assert torch.equal(torch.isfinite(k.grad.cpu()), torch.isfinite(k64.grad))


@pytest.mark.parametrize('layout', LAYOUTS)
def test_skip_zero_taps_same_values_for_finite_input(layout):
    x, k = non_finite_inputs(LAYOUTS[layout])
    x = torch.nan_to_num(x, nan=0.5, posinf=2.0, neginf=-2.0).requires_grad_()
    k.requires_grad_()
    b = torch.randn(3, device=DEVICE, requires_grad=True)
    check_against_reference(x, k, b, (1, 2), LAYOUTS[layout], skip_zero_taps=True)


@pytest.mark.filterwarnings('ignore:invalid value encountered:RuntimeWarning')  # interpreter
def test_skip_zero_taps_drops_non_finite_inputs_under_zero_taps():
    """The documented price of the option: a NaN seen only by zero taps stays out."""
    x = torch.randn(1, 2, 5, 5)
    x[0, 0, 0, 0] = float('nan')  # seen by output (0, 0) alone, through tap (0, 0)
    k = torch.randn(2, 1, 3, 3)
    k[:, :, 0, 0] = 0  # zero in both channels
    x, k = x.to(DEVICE), k.to(DEVICE)
    skipped = triton_kernels.depthwise_conv2d(x, k, None, (0, 0), skip_zero_taps=True)
    dense = triton_kernels.depthwise_conv2d(x, k, None, (0, 0))
    assert torch.isnan(dense[0, 0, 0, 0]) and torch.isfinite(skipped).all()
    torch.testing.assert_close(skipped[0, 1], dense[0, 1])


def test_skip_zero_taps_default_and_type():
    x, k, _ = make_inputs((1, 2, 4, 4), (3, 3), torch.float32)
    with pytest.raises(TypeError, match='skip_zero_taps must be a bool'):
        triton_kernels.depthwise_conv2d(x, k, None, (1, 1), skip_zero_taps=1)


# (input shape, input dtype, kernel shape, kernel dtype, bias shape, padding), error, message
BAD_ARGUMENTS = [
    (((1, 2, 5, 5), None, (2, 1, 3, 3), None, None, (-1, 0)), ValueError, 'two ints >= 0'),
    (((1, 2, 5, 5), None, (2, 1, 3, 3), None, None, 1), ValueError, 'two ints >= 0'),
    (((1, 2, 5, 5), None, (2, 1, 3, 3), None, None, (1, 1, 1)), ValueError, 'two ints >= 0'),
    (((1, 2, 5, 5), None, (2, 1, 3, 3), None, None, (1.0, 1)), ValueError, 'two ints >= 0'),
    (((1, 2, 5, 5), None, (2, 1, 3, 3), torch.float16, None, (1, 1)), TypeError, 'one dtype among'),
    (((1, 2, 5, 5), torch.float64, (2, 1, 3, 3), torch.float64, None, (1, 1)), TypeError,
     'one dtype among'),
    (((1, 2, 5, 5), None, (3, 1, 3, 3), None, None, (1, 1)), ValueError, r'kernel \(C, 1, kh'),
    (((1, 2, 5, 5), None, (2, 2, 3, 3), None, None, (1, 1)), ValueError, r'kernel \(C, 1, kh'),
    (((1, 2, 5, 5), None, (2, 1, 3, 3), None, (3, ), (1, 1)), ValueError, r'bias \(C,\)'),
    (((2, 5, 5), None, (2, 1, 3, 3), None, None, (1, 1)), ValueError, r'input \(N, C, H, W\)'),
    (((1, 2, 5, 5), None, (2, 1, 9, 3), None, None, (1, 1)), ValueError, 'larger than the padded'),
    (((1, 2, 0, 5), None, (2, 1, 1, 1), None, None, (1, 1)), ValueError, 'kh and kw >= 1'),
]


@pytest.mark.parametrize('args,error,message', BAD_ARGUMENTS)
def test_bad_arguments_raise(args, error, message):
    input_shape, input_dtype, kernel_shape, kernel_dtype, bias_shape, padding = args
    x = torch.randn(input_shape, dtype=input_dtype or torch.float32, device=DEVICE)
    k = torch.randn(kernel_shape, dtype=kernel_dtype or torch.float32, device=DEVICE)
    b = None if bias_shape is None else torch.randn(bias_shape, device=DEVICE)
    with pytest.raises(error, match=message):
        triton_kernels.depthwise_conv2d(x, k, b, padding)


def test_non_tensor_kernel_raises():
    with pytest.raises(TypeError, match='kernel must be a tensor'):
        triton_kernels.depthwise_conv2d(
            torch.randn(1, 2, 5, 5, device=DEVICE), 'kernel', None, (1, 1))


def test_tensors_on_two_devices_raise():
    x = torch.randn(1, 2, 5, 5, device='meta')
    with pytest.raises(ValueError, match='on one device'):
        triton_kernels.depthwise_conv2d(x, torch.randn(2, 1, 3, 3), None, (1, 1))


def test_unusable_device_raises(monkeypatch):
    """CPU tensors need the interpreter."""
    from mmdcls.ops.kernels.triton import depthwise_conv
    monkeypatch.setattr(depthwise_conv, 'INTERPRETED', False)
    x, k, _ = make_inputs((1, 2, 4, 4), (3, 3), torch.float32)
    usable, reason = triton_kernels.usable_on(torch.device('cpu'))
    assert not usable and reason
    with pytest.raises(RuntimeError, match='cannot run on cpu'):
        triton_kernels.depthwise_conv2d(x.cpu(), k.cpu(), None, (1, 1))


def test_availability_reasons(monkeypatch):
    import triton
    check = triton_kernels._triton_support.__wrapped__
    monkeypatch.setattr(triton, '__version__', '2.1.0')
    supported, reason = check()
    assert not supported and 'triton 2.1.0' in reason and '>= 3.0' in reason
    monkeypatch.setitem(sys.modules, 'triton', None)  # an import of it fails
    supported, reason = check()
    assert not supported and 'not installed' in reason


def test_importing_mmdcls_does_not_import_triton():
    code = ('import sys, mmdcls, mmdcls.ops, mmdcls.ops.kernels.triton; '
            'assert "triton" not in sys.modules, "triton imported"')
    subprocess.run([sys.executable, '-c', code], check=True)


def test_operators_registered():
    x, k, b = make_inputs((1, 2, 4, 4), (3, 3), torch.float32)
    triton_kernels.depthwise_conv2d(x, k, b, (1, 1))
    from mmdcls.ops.kernels.triton import ops
    if ops.HAS_CUSTOM_OP:
        for name in (triton_kernels.FORWARD_OP, triton_kernels.GRAD_INPUT_OP,
                     triton_kernels.GRAD_KERNEL_OP):
            namespace, op = name.split('::')
            assert hasattr(getattr(torch.ops, namespace), op)


def test_autograd_function_without_custom_ops(monkeypatch):
    """The path of torch without ``torch.library.custom_op``: an autograd Function."""
    from mmdcls.ops.kernels.triton import ops
    monkeypatch.setattr(ops, 'HAS_CUSTOM_OP', False)
    x, k, b = make_inputs((1, 3, 5, 4), (3, 2), torch.float32, torch.channels_last)
    check_against_reference(x, k, b, (1, 2), torch.channels_last)


@pytest.mark.skipif(TORCH_VERSION < (2, 4), reason='torch < 2.4 has no torch.library.custom_op')
def test_torch_compile_fullgraph_matches_eager():
    x, k, b = make_inputs((1, 3, 5, 6), (3, 4), torch.float32)

    def layer(x, k, b):
        return triton_kernels.depthwise_conv2d(x, k, b, (1, 2)).square()

    y = torch.compile(layer, fullgraph=True)(x, k, b)
    y.sum().backward()
    grads = [t.grad.clone() for t in (x, k, b)]
    for t in (x, k, b):
        t.grad = None
    y_eager = layer(x, k, b)
    y_eager.sum().backward()
    torch.testing.assert_close(y, y_eager)
    for grad, t in zip(grads, (x, k, b)):
        torch.testing.assert_close(grad, t.grad)
