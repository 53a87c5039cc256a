"""The conformance suite of the convolution algorithms: every algorithm of
``mmdcls.ops.conv.ALGORITHMS`` on every device present, against ``F.conv``: outputs and
gradients where it applies (and that algorithm, nothing else, ran), a ValueError naming why
where it does not. A new algorithm is covered by registering it."""
import pytest
import torch
import torch.nn.functional as F

from mmdcls.ops.conv import ALGORITHMS, ConvProblem, conv_nd

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
NAMES = list(ALGORITHMS)

# (ndim, N, C_in, C_out, groups, kernel, stride, padding, spatial)
CASES = [
    (2, 2, 4, 4, 4, (5, 5), (1, 1), (2, 2), (9, 9)),  # depthwise, odd, same
    (2, 2, 4, 4, 4, (17, 17), (1, 1), (8, 8), (12, 12)),  # depthwise, kernel > map
    (2, 1, 3, 3, 3, (6, 4), (1, 1), (4, 0), (7, 9)),  # depthwise, even, padding > k - 1
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


def case_id(case):
    return f'{case[0]}d-g{case[4]}-k{"x".join(map(str, case[5]))}-s{"x".join(map(str, case[6]))}'


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


@pytest.fixture
def ran(monkeypatch):
    """The names of the algorithms whose ``run`` was called, in order."""
    calls = []
    for name, algorithm in ALGORITHMS.items():

        def spy(*args, _run=algorithm.run, _name=name, **kwargs):
            calls.append(_name)
            return _run(*args, **kwargs)

        monkeypatch.setattr(algorithm, 'run', spy)
    return calls


def make(case, device, dtype=torch.float64, requires_grad=True):
    ndim, n, c_in, c_out, groups, ks, stride, padding, spatial = case
    torch.manual_seed(0)
    x = torch.randn(n, c_in, *spatial, dtype=dtype, device=device)
    k = torch.randn(c_out, c_in // groups, *ks, dtype=dtype, device=device)
    b = torch.randn(c_out, dtype=dtype, device=device)
    return [t.requires_grad_(requires_grad) for t in (x, k, b)], stride, padding, groups


def why_not(name, x, k, b, stride, padding, groups):
    with torch.enable_grad():
        problem = ConvProblem.describe(x, k, b, stride, padding, groups)
    return ALGORITHMS[name].why_not(problem)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('case', CASES, ids=case_id)
def test_matches_conv_or_says_why_not(ran, name, case, device):
    """Float32 outputs and every gradient within 1e-4 of F.conv in float64, through exactly
    the requested algorithm; or, where it does not apply, a ValueError with its reason."""
    (x, k, b), stride, padding, groups = make(case, device)
    ref = _CONV[case[0]](x, k, b, stride, padding, 1, groups)
    grad_out = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, (x, k, b), grad_out)
    x32, k32, b32 = (t.detach().float().requires_grad_() for t in (x, k, b))
    reason = why_not(name, x32, k32, b32, stride, padding, groups)
    if reason is not None:
        with pytest.raises(ValueError, match=f'{name!r} cannot compute') as info:
            conv_nd(x32, k32, b32, stride, padding, groups, algo=name)
        assert reason in str(info.value)
        assert ran == []
        return
    y = conv_nd(x32, k32, b32, stride, padding, groups, algo=name)
    assert ran == [name]
    assert y.shape == ref.shape and y.dtype == torch.float32
    assert rel_err(y, ref) < 1e-4
    grads = torch.autograd.grad(y, (x32, k32, b32), grad_out.float())
    for what, g, r in zip(('input', 'kernel', 'bias'), grads, ref_grads):
        assert g.shape == r.shape
        assert rel_err(g, r) < 1e-4, what
    with torch.no_grad():  # inference paths (in-place products, no saved tensors)
        assert rel_err(conv_nd(x32, k32, b32, stride, padding, groups, algo=name), ref) < 1e-4


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('name', NAMES)
def test_float64_no_bias_and_gradcheck(ran, name, device):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, device=device, requires_grad=True)
    k = torch.randn(3, 1, 7, 5, dtype=torch.float64, device=device, requires_grad=True)
    if why_not(name, x, k, None, (1, 1), (3, 2), 3) is not None:
        pytest.skip(f'{name} does not apply: {why_not(name, x, k, None, (1, 1), (3, 2), 3)}')
    y = conv_nd(x, k, None, (1, 1), (3, 2), 3, algo=name)
    ref = F.conv2d(x, k, None, 1, (3, 2), 1, 3)
    assert y.dtype == torch.float64 and rel_err(y, ref) < 1e-10
    assert torch.autograd.gradcheck(lambda x, k: conv_nd(x, k, None, (1, 1), (3, 2), 3, algo=name),
                                    (x[:1, :, :6, :5], k[:, :, :4, :3]))
    assert set(ran) == {name}


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize(
    'needs', [(True, False, False), (False, True, False), (False, False, True)],
    ids=['input', 'kernel', 'bias'])
def test_partial_gradients(name, device, needs):
    """Only the tensors that require a gradient get one, equal to F.conv's."""
    torch.manual_seed(3)
    x = torch.randn(1, 4, 10, 10, device=device, requires_grad=needs[0])
    k = torch.randn(4, 1, 9, 9, device=device, requires_grad=needs[1])
    b = torch.randn(4, device=device, requires_grad=needs[2])
    if why_not(name, x, k, b, (1, 1), (4, 4), 4) is not None:
        pytest.skip(f'{name} does not apply')
    inputs = [t for t in (x, k, b) if t.requires_grad]
    ours = torch.autograd.grad(
        conv_nd(x, k, b, (1, 1), (4, 4), 4, algo=name).square().sum(), inputs)
    refs = torch.autograd.grad(F.conv2d(x, k, b, 1, 4, 1, 4).square().sum(), inputs)
    for a, r in zip(ours, refs):
        assert rel_err(a, r) < 1e-4


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('layout', ['nchw', 'channels_last'])
def test_autocast(ran, name, device, layout):
    """Under autocast the output has F.conv's dtype (the autocast dtype) and is within that
    dtype's rounding of F.conv's; gradients reach float32 leaves."""
    dtype = torch.bfloat16 if device == 'cpu' else torch.float16
    torch.manual_seed(4)
    x = torch.randn(2, 4, 12, 12, device=device)
    if layout == 'channels_last':
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    k = torch.randn(4, 1, 9, 9, device=device, requires_grad=True)
    with torch.autocast(device, dtype=dtype):
        reason = why_not(name, x, k, None, (1, 1), (4, 4), 4)
        if reason is not None:
            with pytest.raises(ValueError, match=reason[:20]):
                conv_nd(x, k, None, (1, 1), (4, 4), 4, algo=name)
            return
        ref = F.conv2d(x, k, None, 1, 4, 1, 4)
        y = conv_nd(x, k, None, (1, 1), (4, 4), 4, algo=name)
    assert ran == [name]
    assert y.dtype == ref.dtype == dtype
    assert rel_err(y, ref) < 2e-2
    y.float().sum().backward()
    assert x.grad.dtype == k.grad.dtype == torch.float32


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('name', NAMES)
def test_half_precision_tensors(name, device):
    """float16 / bfloat16 tensors outside autocast: the output in their dtype, within its
    rounding of F.conv in float32."""
    torch.manual_seed(5)
    for dtype in (torch.float16, torch.bfloat16):
        x = torch.randn(1, 4, 10, 10, device=device).to(dtype)
        k = (torch.randn(4, 1, 7, 7, device=device) / 7).to(dtype)
        b = torch.randn(4, device=device).to(dtype)
        reason = why_not(name, x, k, b, (1, 1), (3, 3), 4)
        if reason is not None:
            continue
        y = conv_nd(x, k, b, (1, 1), (3, 3), 4, algo=name)
        ref = F.conv2d(x.float(), k.float(), b.float(), 1, 3, 1, 4)
        assert y.dtype == dtype
        assert rel_err(y, ref) < 2e-2, dtype


@pytest.mark.parametrize('name', NAMES)
def test_channels_last_input(name):
    x = torch.randn(1, 4, 10, 10).contiguous(memory_format=torch.channels_last)
    k = torch.randn(4, 1, 7, 7)
    if why_not(name, x, k, None, (1, 1), (3, 3), 4) is not None:
        pytest.skip(f'{name} does not apply')
    with torch.no_grad():
        y = conv_nd(x, k, None, (1, 1), (3, 3), 4, algo=name)
    torch.testing.assert_close(y, F.conv2d(x, k, None, 1, 3, 1, 4), rtol=1e-4, atol=1e-4)


def test_argument_errors():
    with pytest.raises(ValueError, match='input must be 4-D'):
        conv_nd(torch.randn(2, 8, 8), torch.randn(2, 1, 3, 3), None, (1, 1), (0, 0), 2)
    with pytest.raises(ValueError, match='groups'):
        conv_nd(torch.randn(1, 3, 8, 8), torch.randn(2, 1, 3, 3), None, (1, 1), (0, 0), 2)
    with pytest.raises(ValueError, match='larger than the padded input'):
        conv_nd(torch.randn(1, 2, 4, 4), torch.randn(2, 1, 9, 9), None, (1, 1), (0, 0), 2)
    with pytest.raises(ValueError, match='bias must have shape'):
        conv_nd(torch.randn(1, 2, 4, 4), torch.randn(2, 1, 3, 3), torch.randn(3), (1, 1), (1, 1), 2)
    with pytest.raises(TypeError, match='same dtype outside autocast'):
        conv_nd(torch.randn(1, 2, 4, 4), torch.randn(2, 1, 3, 3).double(), None, (1, 1), (1, 1), 2)
