"""One non-finite semantics for every algorithm, F.conv's: a NaN / inf input makes exactly the
outputs whose window covers it non-finite; a NaN / inf kernel tap or bias its output channel;
everything else keeps F.conv's values. Which algorithm 'auto' picks never changes what a
user sees."""
import pytest
import torch
import torch.nn.functional as F

from mmdcls.ops.conv import ALGORITHMS, ConvProblem, conv_nd

NAN, INF = float('nan'), float('inf')
DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])

# (input shape, kernel shape, stride, padding, groups, where the non-finite inputs go)
CASES = {
    'depthwise': ((2, 4, 12, 12), (4, 1, 7, 7), (1, 1), (3, 3), 4, [(0, 1, 5, 1), (1, 3, 11, 6)]),
    'depthwise-large': ((1, 3, 9, 10), (3, 1, 17, 17), (1, 1), (8, 8), 3, [(0, 2, 4, 4)]),
    'strided-even': ((1, 3, 11, 9), (3, 1, 4, 6), (2, 1), (1, 3), 3, [(0, 0, 10, 0)]),
    'grouped': ((1, 4, 8, 11), (6, 2, 4, 3), (2, 1), (3, 0), 2, [(0, 1, 2, 5)]),
    '1d': ((2, 3, 13), (3, 1, 7), (1, ), (3, ), 3, [(1, 2, 6)]),
    '3d': ((1, 2, 5, 6, 4), (2, 1, 3, 5, 2), (1, 2, 1), (1, 2, 0), 2, [(0, 1, 2, 3, 1)]),
}


def non_finite(t):
    return ~torch.isfinite(t)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('value', [NAN, INF, -INF])
@pytest.mark.parametrize('case', list(CASES))
@pytest.mark.parametrize('name', list(ALGORITHMS))
def test_non_finite_inputs_reach_exactly_the_outputs_of_f_conv(name, case, value, device):
    x_shape, k_shape, stride, padding, groups, where = CASES[case]
    torch.manual_seed(0)
    x = torch.randn(x_shape, device=device)
    k = torch.randn(k_shape, device=device)
    k[..., 0] = 0  # zero taps (skipped by the sparse direct conv) must not hide a NaN either
    b = torch.randn(k_shape[0], device=device)
    for index in where:
        x[index] = value
    problem = ConvProblem.describe(x, k, b, stride, padding, groups)
    if not ALGORITHMS[name].applies(problem):
        pytest.skip(f'{name} does not apply: {ALGORITHMS[name].why_not(problem)}')
    ref = {
        1: F.conv1d,
        2: F.conv2d,
        3: F.conv3d
    }[len(x_shape) - 2](x, k, b, stride, padding, 1, groups)
    for grad in (False, True):
        xx = x.clone().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            y = conv_nd(xx, k, b, stride, padding, groups, algo=name)
        assert torch.equal(non_finite(y), non_finite(ref)), (grad, non_finite(y).sum().item(),
                                                             non_finite(ref).sum().item())
        finite = ~non_finite(ref)
        torch.testing.assert_close(y[finite], ref[finite], rtol=1e-4, atol=1e-4)
        if grad:
            y.backward(torch.ones_like(y))
            assert xx.grad is not None


@pytest.mark.parametrize('name', list(ALGORITHMS))
@pytest.mark.parametrize('where', ['kernel', 'bias'])
@pytest.mark.parametrize('value', [NAN, INF])
def test_non_finite_kernel_taps_and_biases_reach_their_channel(name, where, value):
    torch.manual_seed(0)
    x, k, b = torch.randn(2, 4, 12, 12), torch.randn(4, 1, 7, 7), torch.randn(4)
    k[1, 0, 2, 3] = 0.0
    if where == 'kernel':
        k[1, 0, 4, 1] = value
    else:
        b[1] = value
    problem = ConvProblem.describe(x, k, b, (1, 1), (3, 3), 4)
    if not ALGORITHMS[name].applies(problem):
        pytest.skip(f'{name} does not apply')
    for grad in (False, True):
        ours = [t.clone().requires_grad_(grad) for t in (x, k, b)]
        ref = [t.clone().requires_grad_(grad) for t in (x, k, b)]
        with torch.set_grad_enabled(grad):
            y = conv_nd(*ours, (1, 1), (3, 3), 4, algo=name)
            y_ref = F.conv2d(*ref, 1, 3, 1, 4)
        bad = non_finite(y).transpose(0, 1).flatten(1).any(1).tolist()
        assert bad == non_finite(y_ref).transpose(0, 1).flatten(1).any(1).tolist()
        assert bad == [False, True, False, False]
        keep = [0, 2, 3]
        torch.testing.assert_close(y[:, keep], y_ref[:, keep], rtol=1e-4, atol=1e-4)
        if grad:
            g = torch.randn_like(y_ref)
            y.backward(g)
            y_ref.backward(g)
            for what, a, r in zip(('input', 'kernel', 'bias'), ours, ref):
                assert non_finite(a.grad).any() == non_finite(r.grad).any(), what
