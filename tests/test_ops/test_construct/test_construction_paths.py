"""construct_kernel's paths agree: the data-independent one taken off the eager CPU path
(CUDA, torch.compile, JIT traces: no host reads) and the Triton construction it uses for
float32 CUDA parameters (run here on CPU tensors in Triton's interpreter), against the eager
torch construction; forward and every gradient."""
import pytest
import torch

import mmdcls.ops.construct as construct
from mmdcls.ops import Dcls2d, construct_kernel
from mmdcls.ops.construct.bilinear import _ConstructBilinear
from mmdcls.ops.kernels import cpu
from mmdcls.ops.kernels import triton as triton_kernels

POSITIONS = {
    'inside': lambda P: P.clamp_(-3, 3),
    'on_last_grid_point': lambda P: P.clamp_(-3, 3).index_fill_(-1, torch.tensor([0]), 3.0),
    'outside': lambda P: P.mul_(4),
}


def _grads(kernel, leaves):
    torch.manual_seed(1)
    return torch.autograd.grad(kernel, leaves, torch.randn_like(kernel))


@pytest.mark.parametrize('version', ['v0', 'v1'])
@pytest.mark.parametrize('where', list(POSITIONS))
def test_bilinear_without_host_reads_matches(version, where):
    torch.manual_seed(0)
    weight = torch.randn(6, 5, requires_grad=True)
    P = torch.randn(2, 6, 5) * 2
    POSITIONS[where](P)
    P.requires_grad_()
    sizes = (7, 5)
    with_reads = _ConstructBilinear.apply(weight, P, sizes, version, True)
    without = _ConstructBilinear.apply(weight, P, sizes, version, False)
    torch.testing.assert_close(without, with_reads)
    for a, b in zip(_grads(without, (weight, P)), _grads(with_reads, (weight, P))):
        torch.testing.assert_close(a, b)


@pytest.fixture
def triton_construction(monkeypatch):
    """construct_kernel takes the Triton construction for float32 parameters on the CPU too
    (Triton's interpreter), and the torch construction is kept off the C library."""
    usable, reason = triton_kernels.usable_on(torch.device('cpu'))
    if not usable:
        pytest.skip(f'Triton cannot run on CPU tensors here: {reason}')
    monkeypatch.setenv(cpu.ENV_VAR, '0')
    taken = []

    def on_cpu_too(weight, sizes):
        fits = weight.dtype == torch.float32 and construct.supports_sizes(sizes)
        taken.append(fits)
        return fits

    monkeypatch.setattr(construct, '_triton_constructs', on_cpu_too)
    return taken


@pytest.mark.parametrize('version', ['v0', 'v1', 'gauss', 'max'])
def test_layer_through_the_triton_construction(triton_construction, monkeypatch, version):
    torch.manual_seed(0)
    layer = Dcls2d(4, 4, 5, dilated_kernel_size=(7, 5), padding=(3, 2), groups=4, version=version)
    with torch.no_grad():
        layer.P.mul_(3)  # some positions outside the kernel
        if layer.SIG is not None:
            layer.SIG.uniform_(-0.7, 0.7)
    x = torch.randn(2, 4, 9, 8)
    y = layer(x)
    grads = torch.autograd.grad(y.square().sum(), list(layer.parameters()))
    assert triton_construction and all(triton_construction)
    monkeypatch.setattr(construct, '_triton_constructs', lambda weight, sizes: False)
    y_ref = layer(x)
    refs = torch.autograd.grad(y_ref.square().sum(), list(layer.parameters()))
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads, refs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_half_precision_parameters_through_the_triton_construction(triton_construction):
    """Half-precision parameters reach the Triton construction in float32 and the kernel comes
    back in their dtype."""
    torch.manual_seed(0)
    weight, P = torch.randn(4, 1, 5), torch.randn(2, 4, 1, 5)
    ref = construct_kernel(weight, P, None, (7, 7), 'v1')
    half = construct_kernel(weight.half(), P.half(), None, (7, 7), 'v1')
    assert half.dtype == torch.float16 and triton_construction[-1]
    torch.testing.assert_close(half.float(), ref, rtol=1e-2, atol=1e-3)
