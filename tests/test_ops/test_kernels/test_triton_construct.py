"""The Triton construction (mmdcls.ops.kernels.triton.construct) against the torch construction
(mmdcls.ops.construct with the C library off) and the official ``dcls`` 0.1.1 package: kernel
and every gradient, for every version, square and rectangular 2-D kernels and 1-D kernels,
positions inside the kernel, on grid points (the last one included) and outside it,
non-finite parameters, and ``torch.compile``. Without a GPU the kernels run on CPU tensors in
Triton's interpreter."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from DCLS.construct import modules as official

from mmdcls.ops.construct import _poison_non_finite, construct_kernel
from mmdcls.ops.construct.conventions import position_axes
from mmdcls.ops.kernels import cpu
from mmdcls.ops.kernels import triton as triton_kernels
from mmdcls.ops.kernels.triton import construct as triton_construct
from mmdcls.ops.kernels.triton.construct import construct_kernel_triton
from mmdcls.ops.torch_compat import TORCH_VERSION

# (tests/conftest.py turns Triton's interpreter on before triton is imported, where there is
# no GPU: then the kernels run on CPU tensors)
DEVICE = 'cpu' if triton_kernels.interpreter_enabled() else 'cuda'
AVAILABLE, REASON = triton_kernels.usable_on(torch.device(DEVICE))
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=f'the Triton kernels cannot run: {REASON}')

VERSIONS = ['v0', 'v1', 'gauss', 'max']
OUT, IN, COUNT = 3, 2, 8
REFERENCE = {1: official.ConstructKernel1d, 2: official.ConstructKernel2d}


@pytest.fixture(autouse=True)
def torch_construction(monkeypatch):
    """The reference construct_kernel runs the torch construction (C library off)."""
    monkeypatch.setenv(cpu.ENV_VAR, '0')


def assert_close(actual, expected, name):
    """Equal within 1e-5 of the reference's largest magnitude (as the parity tests)."""
    scale = expected.abs().max().clamp_min(1e-12)
    err = (actual - expected).abs().max() / scale
    assert err <= 1e-5, f'{name}: max error {err:.2e} of the reference scale'


def inside_range(sizes, version):
    """(low, high) per component of P: the positions that keep it on the kernel axis it
    indexes (component c is offset by sizes[c] // 2, as in dcls)."""
    axes = position_axes(version, len(sizes))
    return [(-(sizes[c] // 2), sizes[axis] - 1 - sizes[c] // 2) for c, axis in enumerate(axes)]


def positions(kind, sizes, version):
    """(ndim, OUT, IN, COUNT) positions of one kind: elements 0-5 pin its cases, 6 and 7 stay
    strictly inside (except on grid points), giving every gradient a nonzero scale."""
    P = torch.empty(len(sizes), OUT, IN, COUNT)
    last = len(sizes) - 1
    for c, (low, high) in enumerate(inside_range(sizes, version)):
        P[c].uniform_(low + 0.01, high - 0.01)
        if kind == 'grid_points':
            P[c] = torch.randint(low, high + 1, P[c].shape).float()
            P[c, ..., 0], P[c, ..., 1] = low, high  # first and last grid points
        elif kind == 'last_grid_point':
            P[c, ..., 0] = high  # on the last grid point of every axis (upper tap missing)
            if c == last:
                P[c, ..., 1] = high  # on one axis's last grid point only
            P[c, ..., 2] = high - 1  # an inner grid point
        elif kind == 'outside':
            if c == 0:
                P[c, ..., 0] = low - 0.3  # lower tap outside, upper on the first grid point
                P[c, ..., 3] = low - 1  # only the upper tap inside, with weight 0
                P[c, ..., 5] = low - sizes[c] - 0.7  # far outside on one axis
            if c == last:
                P[c, ..., 1] = high + 0.4  # upper tap outside
            P[c, ..., 2] = high + 1  # a grid point just beyond the kernel
            P[c, ..., 4] = high + sizes[c] + 0.5  # far outside on every axis
    return P


def parameters(kind, sizes, version):
    """weight, P and SIG (None for v0 / v1) on DEVICE, requiring gradients."""
    weight = torch.randn(OUT, IN, COUNT)
    P = positions(kind, sizes, version)
    SIG = None
    if version in ('gauss', 'max'):
        SIG = torch.empty_like(P).uniform_(-1.5, 1.5)
        SIG[..., 4] = 0  # d |SIG| / d SIG = 0 there
    return [None if t is None else t.to(DEVICE).requires_grad_() for t in (weight, P, SIG)]


def kernel_and_grads(build, weight, P, SIG, grad):
    kernel = build(weight, P, SIG)
    params = [t for t in (weight, P, SIG) if t is not None]
    return [kernel, *torch.autograd.grad(kernel, params, grad)]


def reference_builders(sizes, version):
    """The torch construction and dcls's, as functions of (weight, P, SIG)."""
    dcls = REFERENCE[len(sizes)](OUT, IN, 1, COUNT, sizes, version)
    return {
        'torch': lambda w, P, SIG: construct_kernel(w, P, SIG, sizes, version),
        'dcls': lambda w, P, SIG: dcls(w, P, SIG),
    }


@pytest.mark.parametrize('kind', ['inside', 'grid_points', 'last_grid_point', 'outside'])
@pytest.mark.parametrize('sizes', [(7, 7), (5, 9), (17, 17), (7, ), (6, )])
@pytest.mark.parametrize('version', VERSIONS)
def test_matches_torch_and_dcls(version, sizes, kind):
    weight, P, SIG = parameters(kind, sizes, version)
    grad = torch.randn(OUT, IN, *sizes, device=DEVICE)
    ours = kernel_and_grads(lambda w, P, SIG: construct_kernel_triton(w, P, SIG, sizes, version),
                            weight, P, SIG, grad)
    assert ours[0].shape == (OUT, IN, *sizes) and ours[0].dtype == torch.float32
    for reference, build in reference_builders(sizes, version).items():
        expected = kernel_and_grads(build, weight, P, SIG, grad)
        for name, actual, wanted in zip(('kernel', 'weight', 'P', 'SIG'), ours, expected):
            assert_close(actual, wanted, f'{name} vs {reference}')


@pytest.mark.parametrize('version', VERSIONS)
def test_one_row_per_program(version, monkeypatch):
    """Programs of one kernel row (a GPU's choice for few rows) build what programs of
    several rows do (the interpreter's choice, here with masked rows past the last)."""
    sizes = (5, 9)
    weight, P, SIG = parameters('outside', sizes, version)
    grad = torch.randn(OUT, IN, *sizes, device=DEVICE)

    def build(w, P, SIG):
        return construct_kernel_triton(w, P, SIG, sizes, version)

    results = {}
    for block_rows in (8, 1):
        monkeypatch.setattr(triton_construct, '_block_rows', lambda *args: block_rows)
        results[block_rows] = kernel_and_grads(build, weight, P, SIG, grad)
    single, several = results[1], results[8]
    for name, actual, wanted in zip(('kernel', 'weight', 'P', 'SIG'), single, several):
        assert_close(actual, wanted, f'{name}, one row per program')


@pytest.mark.filterwarnings('ignore:invalid value:RuntimeWarning')  # the interpreter's inf - inf
@pytest.mark.parametrize('version,poisoned', [(version, poisoned) for version in VERSIONS
                                              for poisoned in ('weight', 'P', 'P_inf', 'SIG')
                                              if poisoned != 'SIG' or version in ('gauss', 'max')])
def test_non_finite_parameters(version, poisoned):
    """The caller folds non-finite positions and widths into the weight
    (``_poison_non_finite``). The element's kernel slice is then NaN (everywhere, as in dcls;
    the torch construction's bilinear scatter only at its taps), and the gradients are NaN
    exactly where the torch construction's are."""
    sizes = (5, 7)
    weight, P, SIG = (None if t is None else t.detach()
                      for t in parameters('inside', sizes, version))
    target = {'weight': weight, 'P': P, 'P_inf': P, 'SIG': SIG}[poisoned]
    with torch.no_grad():
        target[(0, ) * (target.dim() - 3) + (1, 0, 2)] = (
            float('inf') if poisoned == 'P_inf' else float('nan'))
    for tensor in (weight, P, SIG):
        if tensor is not None:
            tensor.requires_grad_()
    grad = torch.randn(OUT, IN, *sizes, device=DEVICE)
    builders = reference_builders(sizes, version)
    ours = kernel_and_grads(
        lambda w, P, SIG: construct_kernel_triton(
            _poison_non_finite(w, P, SIG), P, SIG, sizes, version), weight, P, SIG, grad)
    expected = kernel_and_grads(builders['torch'], weight, P, SIG, grad)
    dcls_kernel = builders['dcls'](_poison_non_finite(weight, P, SIG), P, SIG)
    nan_slice = torch.zeros(OUT, IN, *sizes, dtype=torch.bool, device=DEVICE)
    nan_slice[1, 0] = True
    assert torch.equal(ours[0].isnan(), nan_slice)
    assert torch.equal(dcls_kernel.isnan(), nan_slice)
    assert not (expected[0].isnan() & ~nan_slice).any()
    assert_close(ours[0][~nan_slice], expected[0][~nan_slice], 'kernel')
    assert ours[2].isnan().any(), 'the poisoned element\'s position gradients are NaN'
    for name, actual, wanted in zip(('weight', 'P', 'SIG'), ours[1:], expected[1:]):
        assert torch.equal(actual.isnan(), wanted.isnan()), f'NaN of grad {name}'
        finite = ~wanted.isnan()
        assert_close(actual[finite], wanted[finite], f'grad {name}')


@pytest.mark.skipif(TORCH_VERSION < (2, 4), reason='torch.library.custom_op needs torch >= 2.4')
def test_compiled_graph_holds_one_opaque_op():
    sizes, version = (5, 9), 'gauss'
    weight, P, SIG = parameters('inside', sizes, version)
    grad = torch.randn(OUT, IN, *sizes, device=DEVICE)

    def layer(weight, P, SIG):
        return construct_kernel_triton(weight * 2, P, SIG, sizes, version)

    graphs = []

    def capture(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    torch._dynamo.reset()
    torch.compile(layer, fullgraph=True, backend=capture)(weight, P, SIG)
    targets = [str(node.target) for node in graphs[0].graph.nodes if node.op == 'call_function']
    assert targets.count('mmdcls.triton_construct.default') == 1, targets
    torch._dynamo.reset()
    compiled = kernel_and_grads(torch.compile(layer, fullgraph=True), weight, P, SIG, grad)
    eager = kernel_and_grads(layer, weight, P, SIG, grad)
    for name, actual, wanted in zip(('kernel', 'weight', 'P', 'SIG'), compiled, eager):
        assert_close(actual, wanted, f'{name}, compiled')


def test_autograd_function_without_custom_ops(monkeypatch):
    """Torch without ``torch.library.custom_op`` (< 2.4) runs the same kernels through an
    autograd Function."""
    sizes, version = (5, 9), 'max'
    weight, P, SIG = parameters('outside', sizes, version)
    grad = torch.randn(OUT, IN, *sizes, device=DEVICE)
    expected = kernel_and_grads(reference_builders(sizes, version)['torch'], weight, P, SIG, grad)
    monkeypatch.setattr(triton_construct, '_FORWARD_OP', None)
    ours = kernel_and_grads(lambda w, P, SIG: construct_kernel_triton(w, P, SIG, sizes, version),
                            weight, P, SIG, grad)
    assert ours[0].grad_fn.next_functions[0][0].name() == '_ConstructTritonBackward'
    for name, actual, wanted in zip(('kernel', 'weight', 'P', 'SIG'), ours, expected):
        assert_close(actual, wanted, f'{name}, autograd Function')


@pytest.mark.skipif(DEVICE != 'cuda', reason='host synchronisation is a GPU matter')
@pytest.mark.parametrize('version', VERSIONS)
def test_no_host_synchronisation(version):
    weight, P, SIG = parameters('outside', (17, 17), version)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        kernel = construct_kernel_triton(weight, P, SIG, (17, 17), version)
        params = [t for t in (weight, P, SIG) if t is not None]
        torch.autograd.grad(kernel, params, torch.ones_like(kernel))
    finally:
        torch.cuda.set_sync_debug_mode('default')


def test_rejects_what_it_cannot_build():
    weight, P, SIG = (t.detach() for t in parameters('inside', (5, 5), 'gauss'))
    with pytest.raises(ValueError, match='version must be one of'):
        construct_kernel_triton(weight, P, SIG, (5, 5), 'v2')
    with pytest.raises(ValueError, match='sizes must be 1 or 2 positive ints'):
        construct_kernel_triton(weight, P, SIG, (5, 5, 5), 'gauss')
    with pytest.raises(ValueError, match=f'at most {triton_construct.MAX_TILE} entries'):
        construct_kernel_triton(weight, P, SIG, (129, 128), 'gauss')
    with pytest.raises(ValueError, match='needs SIG'):
        construct_kernel_triton(weight, P, None, (5, 5), 'max')
    with pytest.raises(ValueError, match='takes no SIG'):
        construct_kernel_triton(weight, P, SIG, (5, 5), 'v1')
    with pytest.raises(ValueError, match='P must have shape'):
        construct_kernel_triton(weight, P[:1], SIG, (5, 5), 'v1')
    with pytest.raises(TypeError, match='weight must be float32'):
        construct_kernel_triton(weight.double(), P, SIG, (5, 5), 'gauss')


def test_import_leaves_triton_unloaded():
    """Importing the operators and this module defines the custom ops without importing
    triton (the kernels are imported on first use)."""
    code = ('import sys, torch, mmdcls.ops, mmdcls.ops.kernels.triton.construct; '
            'print(hasattr(torch.ops.mmdcls, "triton_construct"), "triton" in sys.modules)')
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, '-c', code],
                            cwd=root,
                            capture_output=True,
                            text=True,
                            check=True)
    registered = 'True' if TORCH_VERSION >= (2, 4) else 'False'
    assert result.stdout.split() == [registered, 'False']
