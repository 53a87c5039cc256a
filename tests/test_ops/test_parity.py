"""mmdcls.ops against the official ``dcls`` 0.1.1 package (the reference implementation): all five
of its layer classes, ``Dcls1d`` / ``Dcls2d`` / ``Dcls3d`` and the learned-along-one-axis
``Dcls3_1d`` / ``Dcls2dK1d``."""
import itertools

import pytest
import torch
from DCLS.construct import modules as official

from mmdcls.ops import Dcls1d, Dcls2d, Dcls2dK1d, Dcls3_1d, Dcls3d, construct_kernel

OURS = {1: Dcls1d, 2: Dcls2d, 3: Dcls3d}
REFERENCE = {1: official.Dcls1d, 2: official.Dcls2d, 3: official.Dcls3d}
# square and rectangular odd sizes (rectangular ones expose swapped P components)
SIZES = {1: [(7, )], 2: [(5, 5), (7, 3)], 3: [(3, 5, 7)]}
SPATIAL = {1: (11, ), 2: (9, 8), 3: (7, 6, 5)}
VERSIONS = ['v0', 'v1', 'gauss', 'max']
# the Dcls{1,2,3}d tests run through the fused C construction and the pure-torch one (the
# one-axis layers build 1-D kernels, which only the torch construction handles)
both_backends = pytest.mark.usefixtures('construction_backend')


def assert_close(actual, expected, name):
    """Equal within 1e-5 of the reference's largest magnitude (elementwise-relative checks are
    meaningless where contributions cancel)."""
    scale = expected.abs().max().clamp_min(1e-12)
    err = (actual - expected).abs().max() / scale
    assert err <= 1e-5, f'{name}: max error {err:.2e} of the reference scale'


def build_pair(ndim,
               version,
               sizes,
               groups,
               channels=(4, 6),
               stride=2,
               padding_mode='zeros',
               bias=True):
    in_channels, out_channels = channels if groups == 1 else (groups, groups)
    kwargs = dict(
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_count=5,
        stride=stride,
        padding=tuple(s // 2 for s in sizes),
        dilated_kernel_size=sizes,
        groups=groups,
        bias=bias,
        padding_mode=padding_mode,
        version=version)
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


@both_backends
@pytest.mark.parametrize(
    'ndim,version,groups',
    [(ndim, version, groups)
     for ndim, version, groups in itertools.product((1, 2, 3), VERSIONS, (1, 4))])
def test_matches_official(ndim, version, groups):
    for sizes in SIZES[ndim]:
        ours, reference = build_pair(ndim, version, sizes, groups)
        check_forward_backward(ours, reference, ndim)


@both_backends
@pytest.mark.parametrize('padding_mode', ['reflect', 'replicate', 'circular'])
@pytest.mark.parametrize('version', ['v0', 'gauss'])
def test_padding_modes_match_official(padding_mode, version):
    ours, reference = build_pair(
        2, version, (5, 3), groups=1, stride=1, padding_mode=padding_mode, bias=False)
    check_forward_backward(ours, reference, 2)


@both_backends
@pytest.mark.parametrize('version', VERSIONS)
def test_unclamped_positions_match_official(version):
    """Positions beyond the kernel (before clamping) drop their out-of-kernel taps alike."""
    ours, reference = build_pair(2, version, (7, 5), groups=4)
    with torch.no_grad():
        ours.P.normal_(0, 6)
        reference.load_state_dict(ours.state_dict())
    check_forward_backward(ours, reference, 2)


@both_backends
@pytest.mark.parametrize('version', VERSIONS)
def test_depthwise_convnext_stage_shape_matches_official(version):
    """A ConvNeXt-like depthwise layer with more channels than one construction chunk."""
    channels, size, count = 96, 17, 34
    torch.manual_seed(1)
    ours = Dcls2d(
        channels,
        channels,
        count,
        padding=8,
        dilated_kernel_size=size,
        groups=channels,
        version=version)
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


@both_backends
@pytest.mark.parametrize('version', ['v0', 'v1'])
@pytest.mark.parametrize('where', ['strictly_inside', 'on_last_grid_point', 'outside'])
def test_every_bilinear_path_matches_official_over_chunks(version, where):
    """v0 / v1 take an unmasked path when every position is inside the kernel (always after
    clamping; d loss / d kernel zero-padded when a position sits on a last grid point, whose
    upper tap is missing) and a masked one otherwise; each over several row chunks."""
    from mmdcls.ops.construct.bilinear import _inside_chunk_rows, _InsideBilinear
    channels, size, count = 24, 5, 20
    assert _inside_chunk_rows(channels, count, (size, size)) < channels  # several chunks
    torch.manual_seed(2)
    ours = Dcls2d(
        channels,
        channels,
        count,
        padding=2,
        dilated_kernel_size=size,
        groups=channels,
        version=version)
    with torch.no_grad():
        ours.P.uniform_(-3.5, 3.5)
        if where != 'outside':
            ours.P.clamp_(-1.99, 1.99)
        if where == 'on_last_grid_point':
            ours.P[:, :, :, 0] = size // 2
        ours.P[0, :, :, 1] = 1.0  # on an inner grid point
    inside, strictly, _ = _InsideBilinear.inside(
        ours.P.reshape(2, channels, count), (size, size), version)
    assert (inside, strictly) == {
        'strictly_inside': (True, True),
        'on_last_grid_point': (True, False),
        'outside': (False, False)
    }[where]
    kernel = construct_kernel(ours.weight, ours.P, None, (size, size), version)
    dck = official.ConstructKernel2d(channels, channels, channels, count, (size, size), version)
    kernel_ref = dck(ours.weight, ours.P, None)
    assert_close(kernel, kernel_ref, 'kernel')
    grad = torch.randn_like(kernel)
    grads = torch.autograd.grad(kernel, (ours.weight, ours.P), grad)
    grads_ref = torch.autograd.grad(kernel_ref, (ours.weight, ours.P), grad)
    for name, g, g_ref in zip(('weight', 'P'), grads, grads_ref):
        assert_close(g, g_ref, f'grad {name}')


@both_backends
def test_official_state_dict_loads_unchanged():
    torch.manual_seed(3)
    reference = official.Dcls2d(
        8,
        8,
        10,
        padding=3,
        dilated_kernel_size=7,
        groups=8,
        version='gauss',
        use_implicit_gemm=False)
    ours = Dcls2d(8, 8, 10, padding=3, dilated_kernel_size=7, groups=8, version='gauss')
    state = reference.state_dict()
    assert set(state) == set(ours.state_dict()) == {'weight', 'P', 'SIG', 'bias'}
    ours.load_state_dict(state, strict=True)
    x = torch.randn(1, 8, 12, 12)
    assert_close(ours(x), reference(x), 'output after loading')
    # and back: our state dict loads into the official module
    reference.load_state_dict(ours.state_dict(), strict=True)


# --------------------------------------------------------------- Dcls3_1d and Dcls2dK1d
# Constructor arguments shared by mmdcls and dcls, per case: rectangular kernels and inputs,
# distinct stride and padding on every axis (a swapped axis or padding order shows), groups,
# depthwise, every padding mode.
ONE_AXIS_CASES = {
    'Dcls3_1d':
    dict(
        rectangular=dict(
            in_channels=3,
            out_channels=5,
            kernel_count=3,
            stride=1,
            padding=(1, 0, 3),
            dense_kernel_size=(3, 2),
            dilated_kernel_size=7),
        strided_grouped=dict(
            in_channels=4,
            out_channels=6,
            kernel_count=4,
            stride=(2, 1, 3),
            padding=(0, 1, 2),
            dense_kernel_size=(1, 3),
            dilated_kernel_size=5,
            groups=2,
            bias=False),
        depthwise=dict(
            in_channels=4,
            out_channels=4,
            kernel_count=2,
            stride=1,
            padding='same',
            dense_kernel_size=3,
            dilated_kernel_size=5,
            groups=4),
        reflect=dict(
            in_channels=2,
            out_channels=3,
            kernel_count=3,
            padding=(1, 1, 2),
            dense_kernel_size=(3, 1),
            dilated_kernel_size=5,
            padding_mode='reflect'),
        replicate=dict(
            in_channels=2,
            out_channels=3,
            kernel_count=3,
            padding=(0, 1, 3),
            dense_kernel_size=(2, 3),
            dilated_kernel_size=7,
            padding_mode='replicate'),
        circular=dict(
            in_channels=2,
            out_channels=2,
            kernel_count=2,
            stride=(1, 2, 1),
            padding=(2, 0, 1),
            dense_kernel_size=(3, 2),
            dilated_kernel_size=3,
            padding_mode='circular',
            groups=2),
    ),
    'Dcls2dK1d':
    dict(
        rectangular=dict(
            in_channels=3,
            out_channels=5,
            kernel_count=3,
            stride=1,
            padding=(3, 1),
            dilated_kernel_size=7),
        strided_grouped=dict(
            in_channels=4,
            out_channels=6,
            kernel_count=4,
            stride=(2, 3),
            padding=(1, 2),
            dilated_kernel_size=5,
            groups=2,
            bias=False),
        depthwise=dict(
            in_channels=4,
            out_channels=4,
            kernel_count=2,
            padding=(2, 2),
            dilated_kernel_size=5,
            groups=4),
        reflect=dict(
            in_channels=2,
            out_channels=3,
            kernel_count=3,
            padding=(2, 1),
            dilated_kernel_size=5,
            padding_mode='reflect'),
        replicate=dict(
            in_channels=2,
            out_channels=3,
            kernel_count=3,
            padding=(0, 3),
            dilated_kernel_size=7,
            padding_mode='replicate'),
        circular=dict(
            in_channels=2,
            out_channels=2,
            kernel_count=2,
            stride=(2, 1),
            padding=(1, 2),
            dilated_kernel_size=3,
            padding_mode='circular',
            groups=2),
    ),
}
ONE_AXIS_INPUT = {'Dcls3_1d': (5, 6, 9), 'Dcls2dK1d': (9, 8)}
ONE_AXIS_OURS = {'Dcls3_1d': Dcls3_1d, 'Dcls2dK1d': Dcls2dK1d}
ONE_AXIS_VERSIONS = {'Dcls3_1d': ['v1', 'gauss', 'max'], 'Dcls2dK1d': VERSIONS}
ONE_AXIS_PARAMS = [(name, version, flat_dim, case) for name, cases in ONE_AXIS_CASES.items()
                   for version in ONE_AXIS_VERSIONS[name]
                   for flat_dim in ((0, 1) if name == 'Dcls2dK1d' else (None, )) for case in cases]


def build_one_axis_pair(name, version, flat_dim, case, **overrides):
    """The same layer from mmdcls and dcls, same seed: identical initialisation is asserted;
    then some positions are moved onto a grid point and the clamp limits, and SIG spread over
    both signs (its initial constant would hide a wrong sign or floor), in both."""
    kwargs = dict(ONE_AXIS_CASES[name][case], version=version, **overrides)
    if flat_dim is not None:
        kwargs['flat_dim'] = flat_dim
    ref_kwargs = {k: v for k, v in kwargs.items() if k != 'conv_algo'}  # mmdcls's only
    if ref_kwargs.get('padding') == 'same':  # dcls has no padding='same'
        ref_kwargs['padding'] = tuple(k // 2 for k in (*_as_pair(kwargs['dense_kernel_size']),
                                                       kwargs['dilated_kernel_size']))
    torch.manual_seed(0)
    ours = ONE_AXIS_OURS[name](**kwargs)
    torch.manual_seed(0)
    reference = getattr(official, name)(**ref_kwargs)
    ours_params, ref_params = dict(ours.named_parameters()), dict(reference.named_parameters())
    assert list(ours_params) == list(ref_params)
    for key, param in ours_params.items():
        assert param.shape == ref_params[key].shape, key
        assert torch.equal(param, ref_params[key]), f'initialisation of {key} differs from dcls'
    lim = ours.dilated_kernel_size[0] // 2
    with torch.no_grad():
        ours.P[..., 0] = 1.0 if lim >= 1 else 0.0  # exactly on a grid point
        if ours.kernel_count > 2:
            ours.P[..., 1] = lim
            ours.P[..., 2] = -lim
        if ours.SIG is not None:
            ours.SIG.uniform_(-0.7, 0.7)
        reference.load_state_dict(ours.state_dict())
    return ours, reference


def _as_pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def check_one_axis(ours, reference, name, batch=2):
    x = torch.randn(batch, ours.in_channels, *ONE_AXIS_INPUT[name], requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = ours(x), reference(x_ref)
    assert y.shape == y_ref.shape
    assert_close(y, y_ref, 'output')
    grad = torch.randn_like(y_ref)
    y.backward(grad)
    y_ref.backward(grad)
    assert_close(x.grad, x_ref.grad, 'grad input')
    for (key, p), (_, p_ref) in zip(ours.named_parameters(), reference.named_parameters()):
        assert_close(p.grad, p_ref.grad, f'grad {key}')


@pytest.mark.parametrize('name,version,flat_dim,case', ONE_AXIS_PARAMS)
def test_one_axis_layers_match_official(name, version, flat_dim, case):
    ours, reference = build_one_axis_pair(name, version, flat_dim, case)
    check_one_axis(ours, reference, name)


@pytest.mark.parametrize('name,flat_dim', [('Dcls3_1d', None), ('Dcls2dK1d', 0), ('Dcls2dK1d', 1)])
@pytest.mark.parametrize('version', ['v0', 'v1', 'gauss', 'max'])
def test_one_axis_unclamped_positions_and_clamp_match_official(name, flat_dim, version):
    """Positions beyond the kernel drop their out-of-kernel taps as in dcls; after
    ``clamp_parameters`` both hold the same clamped positions."""
    if version not in ONE_AXIS_VERSIONS[name]:
        pytest.skip(f'dcls 0.1.1 has no {version} for {name}')
    ours, reference = build_one_axis_pair(name, version, flat_dim, 'strided_grouped')
    with torch.no_grad():
        ours.P.normal_(0, 4)
        reference.load_state_dict(ours.state_dict())
    check_one_axis(ours, reference, name)
    ours.clamp_parameters()
    reference.clamp_parameters()
    assert torch.equal(ours.P, reference.P)
    assert ours.P.abs().max() == ours.dilated_kernel_size[0] // 2


@pytest.mark.parametrize('algo', ['direct', 'channels_last', 'fft'])
@pytest.mark.parametrize('name,flat_dim', [('Dcls3_1d', None), ('Dcls2dK1d', 0), ('Dcls2dK1d', 1)])
def test_one_axis_layers_match_official_with_every_conv_algo(name, flat_dim, algo):
    """Depthwise layers through each convolution algorithm (the FFT one differs most)."""
    version = 'gauss'
    ours, reference = build_one_axis_pair(name, version, flat_dim, 'depthwise', conv_algo=algo)
    check_one_axis(ours, reference, name)


@pytest.mark.parametrize('name,flat_dim', [('Dcls3_1d', None), ('Dcls2dK1d', 0), ('Dcls2dK1d', 1)])
def test_one_axis_sparse_direct_matches_official(name, flat_dim):
    """'sparse_direct' (the C library's 2-D depthwise direct conv over non-zero taps, training
    and inference) with gradients, and under no_grad (the eval kernel cache); a 3-D layer
    asking for it is told why it cannot."""
    ours, reference = build_one_axis_pair(
        name,
        'v0' if name == 'Dcls2dK1d' else 'v1',
        flat_dim,
        'depthwise',
        conv_algo='sparse_direct')
    if name == 'Dcls3_1d':
        with pytest.raises(ValueError, match='2-D depthwise convolutions only'):
            ours(torch.randn(2, ours.in_channels, *ONE_AXIS_INPUT[name]))
        return
    check_one_axis(ours, reference, name)
    x = torch.randn(2, ours.in_channels, *ONE_AXIS_INPUT[name])
    with torch.no_grad():
        assert_close(ours.eval()(x), reference(x), 'output')


@pytest.mark.parametrize('name,flat_dim', [('Dcls3_1d', None), ('Dcls2dK1d', 0), ('Dcls2dK1d', 1)])
def test_one_axis_state_dicts_load_both_ways(name, flat_dim):
    version = 'gauss'
    torch.manual_seed(4)
    kwargs = dict(ONE_AXIS_CASES[name]['strided_grouped'], version=version)
    if flat_dim is not None:
        kwargs['flat_dim'] = flat_dim
    reference = getattr(official, name)(**kwargs)
    ours = ONE_AXIS_OURS[name](**kwargs)
    state = reference.state_dict()
    assert {
        k: v.shape
        for k, v in state.items()
    } == {
        k: v.shape
        for k, v in ours.state_dict().items()
    }
    assert set(state) == {'weight', 'P', 'SIG'}  # bias=False in this case
    ours.load_state_dict(state, strict=True)
    x = torch.randn(1, ours.in_channels, *ONE_AXIS_INPUT[name])
    assert_close(ours(x), reference(x), 'output after loading')
    reference.load_state_dict(ours.state_dict(), strict=True)


def test_one_axis_parameter_shapes_follow_dcls():
    """Dcls3_1d: P (1, out, in / groups, *dense, kernel_count) -> kernel (out, in / groups,
    *dense, dilated) with positions along the LAST axis; Dcls2dK1d: kernel (L, 1) for
    flat_dim=0 (positions along H) and (1, L) for flat_dim=1."""
    layer = Dcls3_1d(4, 6, 5, dense_kernel_size=(3, 2), dilated_kernel_size=9, groups=2)
    assert layer.weight.shape == (6, 2, 3, 2, 5)
    assert layer.P.shape == layer.SIG.shape == (1, 6, 2, 3, 2, 5)
    assert layer.construct_kernel().shape == (6, 2, 3, 2, 9) == (6, 2, *layer.kernel_size)
    for flat_dim, kernel_shape in ((0, (7, 1)), (1, (1, 7))):
        layer = Dcls2dK1d(4, 6, 5, dilated_kernel_size=7, flat_dim=flat_dim)
        assert layer.weight.shape == (6, 4, 5) and layer.P.shape == (1, 6, 4, 5)
        assert layer.SIG is None and layer.version == 'v1'  # dcls's default
        assert layer.construct_kernel().shape == (6, 4, *kernel_shape)
        assert layer.kernel_size == kernel_shape
        assert layer(torch.randn(1, 4, 9,
                                 9)).shape == (1, 6, 10 - kernel_shape[0], 10 - kernel_shape[1])


@pytest.mark.parametrize('make,message', [
    (lambda: Dcls3_1d(2, 2, 3, dilated_kernel_size=5, version='v0'),
     r"Dcls3_1d: version must be one of \('v1', 'gauss', 'max'\)"),
    (lambda: Dcls2dK1d(2, 2, 3, dilated_kernel_size=5, version='sinc'), 'version must be one of'),
    (lambda: Dcls2dK1d(2, 2, 3, dilated_kernel_size=5, flat_dim=2), 'flat_dim must be 0'),
    (lambda: Dcls2dK1d(2, 2, 3, dilated_kernel_size=(5, 5)), 'a tuple of 1 ints'),
    (lambda: Dcls3_1d(2, 2, 3, dense_kernel_size=(3, 3, 3)), 'dense_kernel_size must be'),
    (lambda: Dcls3_1d(2, 2, 3, dense_kernel_size=0), 'dense_kernel_size must be positive'),
    (lambda: Dcls3_1d(2, 3, 3, groups=2), 'divisible by groups'),
    (lambda: Dcls2dK1d(2, 2, 3, padding_mode='mirror'), 'padding_mode must be one of'),
    (lambda: Dcls2dK1d(2, 2, 3, stride=(1, 1, 1)), 'stride must be an int or a tuple of 2'),
    (lambda: Dcls3_1d(2, 2, 3, dilated_kernel_size=4, padding='same'), 'needs an odd'),
])
def test_one_axis_bad_arguments_name_the_parameter(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_one_axis_checkpoint_shape_mismatch_is_explained():
    layer = Dcls2dK1d(4, 4, 3, dilated_kernel_size=5)
    state = Dcls2dK1d(4, 4, 2, dilated_kernel_size=5).state_dict()
    with pytest.raises(
            ValueError, match=r'weight: checkpoint shape \(4, 4, 2\) does not match \(4, 4, 3\)'):
        layer.load_state_dict(state)


@pytest.mark.parametrize('name,flat_dim', [('Dcls3_1d', None), ('Dcls2dK1d', 0), ('Dcls2dK1d', 1)])
@pytest.mark.parametrize('version', ['v0', 'v1', 'gauss', 'max'])
def test_one_axis_gradcheck(name, flat_dim, version):
    """Input, weight, P, SIG and bias gradients of the whole layer against finite differences
    (float64, off-grid positions: the interpolations have kinks on the grid)."""
    if version not in ONE_AXIS_VERSIONS[name]:
        pytest.skip(f'dcls 0.1.1 has no {version} for {name}')
    torch.manual_seed(5)
    if name == 'Dcls3_1d':
        layer = Dcls3_1d(
            2,
            2,
            2,
            stride=(1, 2, 1),
            padding=(1, 0, 2),
            dense_kernel_size=(2, 1),
            dilated_kernel_size=5,
            groups=2,
            version=version)
        spatial = (3, 2, 5)
    else:
        layer = Dcls2dK1d(
            2,
            2,
            3,
            stride=(2, 1),
            padding=(2, 1),
            dilated_kernel_size=5,
            version=version,
            flat_dim=flat_dim)
        spatial = (5, 4)
    layer = layer.double()
    with torch.no_grad():
        P = torch.rand_like(layer.P) * 3.8 - 1.9
        layer.P.copy_(P.floor() + 0.1 + 0.8 * P.frac())
        if layer.SIG is not None:
            layer.SIG.uniform_(0.1, 0.9)
    names = [key for key, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    x = torch.randn(1, 2, *spatial, dtype=torch.float64, requires_grad=True)

    def fn(x, *values):
        return torch.func.functional_call(layer, dict(zip(names, values)), (x, ))

    # fast_mode: a random projection of each Jacobian (all inputs, several ms per call)
    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6, fast_mode=True)
