"""Which algorithm conv_nd runs (mmdcls.ops.conv.selection): names, MMDCLS_CONV_ALGO, an
explicit request that does not apply, 'auto' (the cheapest by the fitted costs, measured where
a device has none) and 'benchmark' (timed once per problem key)."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from mmdcls.ops.conv import (ALGORITHMS, ENV_VAR, ConvAlgorithm, ConvProblem, LargeKernelConv2d,
                             algo_choices, clear_benchmark_cache, conv_nd, resolve_algo,
                             select_algorithm, selection)
from mmdcls.ops.conv.algorithms.direct import SMALL_KERNEL_TAPS
from mmdcls.ops.torch_compat import DYNAMO_TRACES_OPS


def describe(x, k, b=None, stride=(1, 1), padding=(1, 1), groups=None, grad=False, **kwargs):
    with torch.set_grad_enabled(grad):
        return ConvProblem.describe(x, k, b, stride, padding, groups or x.shape[1], **kwargs)


def test_request_precedence(monkeypatch):
    x, k = torch.randn(1, 2, 8, 8), torch.randn(2, 1, 3, 3)
    problem = describe(x, k)
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_algo() == 'auto'
    monkeypatch.setenv(ENV_VAR, 'fft')
    assert resolve_algo() == 'fft'
    assert select_algorithm(problem).name == 'fft'
    assert select_algorithm(problem, 'direct').name == 'direct'  # the call wins


@pytest.mark.parametrize('bad', ['FFT', 'cudnn', ' fft', 'native'])
def test_bad_values_list_the_choices(monkeypatch, bad):
    x, k = torch.randn(1, 2, 8, 8), torch.randn(2, 1, 3, 3)
    monkeypatch.setenv(ENV_VAR, bad)
    with pytest.raises(ValueError, match=ENV_VAR) as info:
        conv_nd(x, k, None, (1, 1), (1, 1), 2)
    for name in algo_choices():
        assert name in str(info.value)
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(ValueError, match='algo must be one of'):
        conv_nd(x, k, None, (1, 1), (1, 1), 2, algo=bad)
    with pytest.raises(ValueError, match='conv_algo'):
        LargeKernelConv2d(2, 2, 3, conv_algo=bad)


def test_a_request_that_does_not_apply_is_refused_with_its_reason(monkeypatch):
    """No silent substitute: the environment variable as well as the argument."""
    x, k = torch.randn(1, 4, 9, 9), torch.randn(4, 1, 5, 5)
    with pytest.raises(ValueError, match="'sparse_direct' cannot compute .*stride 1 only"):
        conv_nd(x, k, None, (2, 2), (2, 2), 4, algo='sparse_direct')
    monkeypatch.setenv(ENV_VAR, 'channels_last')
    with pytest.raises(ValueError, match='1-D tensors have no channels-last layout'):
        conv_nd(torch.randn(1, 2, 9), torch.randn(2, 1, 5), None, (1, ), (2, ), 2)


class _Fixed(ConvAlgorithm):
    """An algorithm of constant cost that runs F.conv (for the table tests)."""
    devices = ('cpu', )

    def __init__(self, name, cost):
        self.name, self._cost = name, cost

    def cost(self, problem):
        return self._cost

    def run(self, input, kernel, bias, problem, prepared=None):
        return F.conv2d(input, kernel, bias, problem.stride, problem.padding, 1, problem.groups)


def test_adding_an_algorithm_is_one_table_entry(monkeypatch):
    """A registered algorithm is a valid request, a candidate of 'auto' (chosen when cheapest)
    and of 'benchmark'."""
    monkeypatch.setitem(ALGORITHMS, 'free', _Fixed('free', 0.0))
    assert 'free' in algo_choices()
    x, k = torch.randn(1, 4, 20, 20), torch.randn(4, 1, 17, 17)
    assert select_algorithm(describe(x, k, padding=(8, 8)), 'auto').name == 'free'
    y = conv_nd(x, k, None, (1, 1), (8, 8), 4, algo='free')
    torch.testing.assert_close(y, F.conv2d(x, k, None, 1, 8, 1, 4))


def test_auto_measures_where_a_cost_is_unknown(monkeypatch):
    """Where an applicable algorithm has no fitted cost for the device, 'auto' times the
    candidates (as 'benchmark') instead of guessing, once per problem key."""
    monkeypatch.setitem(ALGORITHMS, 'unfitted', _Fixed('unfitted', None))
    timed = []
    monkeypatch.setattr(selection, '_fastest',
                        lambda key, names, kernel: timed.append(names) or 'unfitted')
    clear_benchmark_cache()
    x, k = torch.randn(1, 4, 20, 20), torch.randn(4, 1, 17, 17)
    problem = describe(x, k, padding=(8, 8))
    assert select_algorithm(problem, 'auto').name == 'unfitted'
    assert select_algorithm(problem, 'auto').name == 'unfitted'
    assert len(timed) == 1 and 'unfitted' in timed[0] and 'direct' in timed[0]
    clear_benchmark_cache()


def test_benchmark_times_the_applicable_algorithms_once_per_key():
    clear_benchmark_cache()
    x, k = torch.randn(1, 3, 16, 16), torch.randn(3, 1, 11, 11)
    first = select_algorithm(describe(x, k, padding=(5, 5)), 'benchmark')
    assert first.name in ALGORITHMS and len(selection._MEASURED) == 1
    assert select_algorithm(describe(x, k, padding=(5, 5)), 'benchmark') is first
    assert len(selection._MEASURED) == 1
    select_algorithm(describe(x[:, :, :12], k, padding=(5, 5)), 'benchmark')
    (key, names), = [k for k in selection._MEASURED if k[0][4][2] == 12]
    assert set(names) == {
        a.name
        for a in ALGORITHMS.values() if a.applies(describe(x[:, :, :12], k, padding=(5, 5)))
    }
    clear_benchmark_cache()


def test_the_measured_choice_works_while_compiling():
    """Under torch.compile the candidates are timed while tracing (on random tensors of the
    call's shapes): one graph, the same values."""
    if not DYNAMO_TRACES_OPS:
        pytest.skip('torch.compile traces conv_nd from torch 2.4')
    clear_benchmark_cache()
    x, k = torch.randn(1, 3, 16, 16), torch.randn(3, 1, 11, 11)
    fn = torch.compile(
        lambda x, k: conv_nd(x, k, None, (1, 1), (5, 5), 3, algo='benchmark'), fullgraph=True)
    torch.testing.assert_close(fn(x, k), F.conv2d(x, k, None, 1, 5, 1, 3), rtol=1e-4, atol=1e-4)
    assert len(selection._MEASURED) == 1
    clear_benchmark_cache()


# ------------------------------------------------------------------ 'auto' on the CPU
SHAPES = [((2, 8, 40), (8, 1, 31), (1, ), (15, ), 8), ((1, 6, 33), (3, 2, 7), (2, ), (3, ), 3),
          ((1, 16, 12, 12), (16, 1, 5, 5), (1, 1), (2, 2), 16),
          ((2, 96, 48, 48), (96, 1, 17, 17), (1, 1), (8, 8), 96),
          ((1, 64, 12, 12), (64, 1, 23, 23), (1, 1), (11, 11), 64),
          ((1, 4, 30, 20), (8, 2, 9, 7), (2, 1), (4, 3), 2),
          ((1, 4, 6, 8, 7), (4, 1, 5, 5, 3), (1, 1, 1), (2, 2, 1), 4)]


def test_auto_is_the_cheapest_applicable_algorithm():
    """On the CPU every algorithm has fitted costs: 'auto' is the applicable one of least cost
    (ties to the first in the table), a dense algorithm for small kernels, never one that does
    not apply, for every shape, gradient mode, layout and sparsity."""
    for (xs, ks, stride, padding,
         groups), grad, layout, sparse in itertools.product(SHAPES, (True, False),
                                                            ('nchw', 'channels_last'),
                                                            (False, True)):
        x, k = torch.randn(xs), torch.randn(ks)
        if sparse:
            k[k.abs() < 1.5] = 0
        if layout == 'channels_last' and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_(grad)
        problem = describe(x, k, None, stride, padding, groups, grad=grad)
        chosen = select_algorithm(problem, 'auto')
        candidates = [a for a in ALGORITHMS.values() if a.applies(problem)]
        assert chosen in candidates
        costs = [a.cost(problem) for a in candidates]
        assert chosen.cost(problem) == min(costs)
        assert chosen is candidates[costs.index(min(costs))]
        if math.prod(ks[2:]) <= SMALL_KERNEL_TAPS:
            assert chosen.name in ('direct', 'channels_last')


def test_fitted_constants_decide(monkeypatch):
    """The constants are data: transforms that cost (almost) nothing make the FFTs win, very
    dear ones a direct algorithm, for the same layer."""
    from mmdcls.ops.conv.algorithms import c_fft, fft
    x, k = torch.randn(1, 96, 48, 48), torch.randn(96, 1, 17, 17)
    problem = describe(x, k, padding=(8, 8))
    for module in (fft, c_fft):
        monkeypatch.setattr(module, '_CPU_PER_POINT', {True: 1e-6, False: 1e-6})
    assert select_algorithm(problem, 'auto').name in ('fft', 'c_fft')
    for module in (fft, c_fft):
        monkeypatch.setattr(module, '_CPU_PER_POINT', {True: 1e6, False: 1e6})
    assert select_algorithm(problem, 'auto').name in ('channels_last', 'sparse_direct')


def test_a_constant_kernel_keeps_its_choice_per_request(monkeypatch):
    """In inference a constant kernel remembers the algorithm chosen for a problem and a
    request; another request (the environment variable changed) is chosen afresh."""
    layer = LargeKernelConv2d(2, 2, 9, padding=4, groups=2).eval()
    x = torch.randn(1, 2, 12, 12)
    chosen = []
    original = selection.select_algorithm

    def counting(problem, algo=None, kernel=None):
        algorithm = original(problem, algo, kernel)
        chosen.append(algorithm.name)
        return algorithm

    monkeypatch.setattr('mmdcls.ops.conv.dispatch.select_algorithm', counting)
    with torch.no_grad():
        monkeypatch.setenv(ENV_VAR, 'fft')
        layer(x), layer(x)
        monkeypatch.setenv(ENV_VAR, 'direct')
        y = layer(x)
    assert chosen == ['fft', 'direct']
    torch.testing.assert_close(y, F.conv2d(x, layer.weight, layer.bias, 1, 4, 1, 2))
