"""mmdcls.ops against the official ``dcls`` 0.1.1 package (the reference implementation)."""
import itertools

import pytest
import torch
from DCLS.construct import modules as official

from construction_backends import construction_backend  # noqa: F401 (fixture)
from mmdcls.ops import Dcls1d, Dcls2d, Dcls3d, construct_kernel

OURS = {1: Dcls1d, 2: Dcls2d, 3: Dcls3d}
REFERENCE = {1: official.Dcls1d, 2: official.Dcls2d, 3: official.Dcls3d}
# square and rectangular odd sizes (rectangular ones expose swapped P components)
SIZES = {1: [(7,)], 2: [(5, 5), (7, 3)], 3: [(3, 5, 7)]}
SPATIAL = {1: (11,), 2: (9, 8), 3: (7, 6, 5)}
VERSIONS = ['v0', 'v1', 'gauss', 'max']
# every test runs through the fused C construction and the pure-torch one
pytestmark = pytest.mark.usefixtures('construction_backend')


def assert_close(actual, expected, name):
    """Equal within 1e-5 of the reference's largest magnitude (elementwise-relative checks are
    meaningless where contributions cancel)."""
    scale = expected.abs().max().clamp_min(1e-12)
    err = (actual - expected).abs().max() / scale
    assert err <= 1e-5, f'{name}: max error {err:.2e} of the reference scale'


def build_pair(ndim, version, sizes, groups, channels=(4, 6), stride=2, padding_mode='zeros',
               bias=True):
    in_channels, out_channels = channels if groups == 1 else (groups, groups)
    kwargs = dict(in_channels=in_channels, out_channels=out_channels, kernel_count=5,
                  stride=stride, padding=tuple(s // 2 for s in sizes), dilated_kernel_size=sizes,
                  groups=groups, bias=bias, padding_mode=padding_mode, version=version)
    torch.manual_seed(0)
    ours = OURS[ndim](**kwargs)
    torch.manual_seed(0)
    extra = {'use_implicit_gemm': False} if ndim == 2 else {}
    reference = REFERENCE[ndim](**kwargs, **extra)
    # same seed, same initialisation order -> identical parameters
    for (name, a), (_, b) in zip(ours.named_parameters(), reference.named_parameters()):
        assert torch.equal(a, b), f'initialisation of {name} differs from dcls'
    with torch.no_grad():
        lims = torch.tensor([s // 2 for s in sizes], dtype=torch.float)
        lims = lims.view(-1, *[1] * (ours.P.dim() - 1))
        ours.P[..., 0] = 1.0  # exactly on a grid point
        ours.P[..., 1] = lims.squeeze(-1)  # upper clamp limit
        ours.P[..., 2] = -lims.squeeze(-1)  # lower clamp limit
        if ours.SIG is not None:
            ours.SIG.uniform_(-0.7, 0.7)
        reference.load_state_dict(ours.state_dict())
    return ours, reference


def check_forward_backward(ours, reference, ndim, batch=2):
    x = torch.randn(batch, ours.in_channels, *SPATIAL[ndim], requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = ours(x), reference(x_ref)
    assert_close(y, y_ref, 'output')
    grad = torch.randn_like(y_ref)
    y.backward(grad)
    y_ref.backward(grad)
    assert_close(x.grad, x_ref.grad, 'grad input')
    for (name, p), (_, p_ref) in zip(ours.named_parameters(), reference.named_parameters()):
        assert_close(p.grad, p_ref.grad, f'grad {name}')


@pytest.mark.parametrize('ndim,version,groups', [
    (ndim, version, groups)
    for ndim, version, groups in itertools.product((1, 2, 3), VERSIONS, (1, 4))
])
def test_matches_official(ndim, version, groups):
    for sizes in SIZES[ndim]:
        ours, reference = build_pair(ndim, version, sizes, groups)
        check_forward_backward(ours, reference, ndim)


@pytest.mark.parametrize('padding_mode', ['reflect', 'replicate', 'circular'])
@pytest.mark.parametrize('version', ['v0', 'gauss'])
def test_padding_modes_match_official(padding_mode, version):
    ours, reference = build_pair(2, version, (5, 3), groups=1, stride=1,
                                 padding_mode=padding_mode, bias=False)
    check_forward_backward(ours, reference, 2)


@pytest.mark.parametrize('version', VERSIONS)
def test_unclamped_positions_match_official(version):
    """Positions beyond the kernel (before clamping) drop their out-of-kernel taps alike."""
    ours, reference = build_pair(2, version, (7, 5), groups=4)
    with torch.no_grad():
        ours.P.normal_(0, 6)
        reference.load_state_dict(ours.state_dict())
    check_forward_backward(ours, reference, 2)


@pytest.mark.parametrize('version', VERSIONS)
def test_depthwise_convnext_stage_shape_matches_official(version):
    """A ConvNeXt-like depthwise layer with more channels than one construction chunk."""
    channels, size, count = 96, 17, 34
    torch.manual_seed(1)
    ours = Dcls2d(channels, channels, count, padding=8, dilated_kernel_size=size,
                  groups=channels, version=version)
    kernel = construct_kernel(ours.weight, ours.P, ours.SIG, (size, size), version)
    dck = official.ConstructKernel2d(channels, channels, channels, count, (size, size), version)
    kernel_ref = dck(ours.weight, ours.P, ours.SIG)
    assert_close(kernel, kernel_ref, 'kernel')
    grad = torch.randn_like(kernel)
    params = [p for p in (ours.weight, ours.P, ours.SIG) if p is not None]
    grads = torch.autograd.grad(kernel, params, grad)
    grads_ref = torch.autograd.grad(kernel_ref, params, grad)
    for name, g, g_ref in zip(('weight', 'P', 'SIG'), grads, grads_ref):
        assert_close(g, g_ref, f'grad {name}')


@pytest.mark.parametrize('version', ['v0', 'v1'])
@pytest.mark.parametrize('where', ['strictly_inside', 'on_last_grid_point', 'outside'])
def test_every_bilinear_path_matches_official_over_chunks(version, where):
    """v0 / v1 take an unmasked path when every position is inside the kernel (always after
    clamping; d loss / d kernel zero-padded when a position sits on a last grid point, whose
    upper tap is missing) and a masked one otherwise; each over several row chunks."""
    from mmdcls.ops.construct.bilinear import _InsideBilinear, _inside_chunk_rows
    channels, size, count = 24, 5, 20
    assert _inside_chunk_rows(channels, count, (size, size)) < channels  # several chunks
    torch.manual_seed(2)
    ours = Dcls2d(channels, channels, count, padding=2, dilated_kernel_size=size,
                  groups=channels, version=version)
    with torch.no_grad():
        ours.P.uniform_(-3.5, 3.5)
        if where != 'outside':
            ours.P.clamp_(-1.99, 1.99)
        if where == 'on_last_grid_point':
            ours.P[:, :, :, 0] = size // 2
        ours.P[0, :, :, 1] = 1.0  # on an inner grid point
    inside, strictly, _ = _InsideBilinear.inside(ours.P.reshape(2, channels, count),
                                                 (size, size), version)
    assert (inside, strictly) == {'strictly_inside': (True, True),
                                  'on_last_grid_point': (True, False),
                                  'outside': (False, False)}[where]
    kernel = construct_kernel(ours.weight, ours.P, None, (size, size), version)
    dck = official.ConstructKernel2d(channels, channels, channels, count, (size, size), version)
    kernel_ref = dck(ours.weight, ours.P, None)
    assert_close(kernel, kernel_ref, 'kernel')
    grad = torch.randn_like(kernel)
    grads = torch.autograd.grad(kernel, (ours.weight, ours.P), grad)
    grads_ref = torch.autograd.grad(kernel_ref, (ours.weight, ours.P), grad)
    for name, g, g_ref in zip(('weight', 'P'), grads, grads_ref):
        assert_close(g, g_ref, f'grad {name}')


def test_official_state_dict_loads_unchanged():
    torch.manual_seed(3)
    reference = official.Dcls2d(8, 8, 10, padding=3, dilated_kernel_size=7, groups=8,
                                version='gauss', use_implicit_gemm=False)
    ours = Dcls2d(8, 8, 10, padding=3, dilated_kernel_size=7, groups=8, version='gauss')
    state = reference.state_dict()
    assert set(state) == set(ours.state_dict()) == {'weight', 'P', 'SIG', 'bias'}
    ours.load_state_dict(state, strict=True)
    x = torch.randn(1, 8, 12, 12)
    assert_close(ours(x), reference(x), 'output after loading')
    # and back: our state dict loads into the official module
    reference.load_state_dict(ours.state_dict(), strict=True)
