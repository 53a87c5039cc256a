"""Analytic gradients of the construction against finite differences (float64)."""
import pytest
import torch

from mmdcls.ops import construct_kernel, dcls_conv2d

# every test runs through the fused C construction and the pure-torch one
pytestmark = pytest.mark.usefixtures('construction_backend')


@pytest.mark.parametrize('version', ['v0', 'v1', 'gauss', 'max'])
@pytest.mark.parametrize('sizes', [(5, ), (5, 3), (3, 5, 3)])
def test_construct_kernel_gradcheck(version, sizes):
    ndim = len(sizes)
    generator = torch.Generator().manual_seed(ndim)
    weight = torch.randn(3, 2, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    # off-grid positions: finite differences are undefined at the interpolation's kinks
    P = (torch.rand(ndim, 3, 2, 4, dtype=torch.float64, generator=generator) * 3.8 - 1.9)
    P = (P.floor() + 0.1 + 0.8 * P.frac()).requires_grad_()
    inputs = [weight, P]
    if version in ('gauss', 'max'):
        SIG = torch.rand(ndim, 3, 2, 4, dtype=torch.float64, generator=generator) * 0.8 + 0.1
        inputs.append(SIG.requires_grad_())

    def fn(*params):
        sig = params[2] if len(params) == 3 else None
        return construct_kernel(params[0], params[1], sig, sizes, version)

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


def test_dcls_conv2d_gradcheck():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 6, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(2, 1, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    P = torch.tensor(
        [[[[0.3, -1.4, 1.2]], [[1.6, 0.25, -0.7]]], [[[-0.4, 0.6, 1.3]], [[0.2, -1.2, 0.45]]]],
        dtype=torch.float64,
        requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64, generator=generator, requires_grad=True)

    def fn(x, weight, P, bias):
        return dcls_conv2d(
            x,
            weight,
            P,
            None,
            bias,
            stride=2,
            padding=2,
            dilated_kernel_size=5,
            groups=2,
            version='v0')

    assert torch.autograd.gradcheck(fn, (x, weight, P, bias), eps=1e-6, atol=1e-6)
