"""mmdcls.utils.profiling: what the benchmark scripts time and report (the call order,
arguments made outside the timing, the paired statistic) and the positions they time with."""
import pytest
import torch
from torch import nn

from mmdcls.ops import Dcls2d
from mmdcls.utils.profiling import paired_ratio, spread_positions, timed_rounds


def test_timed_rounds_reverses_the_order_every_other_round_after_the_warmup():
    calls = []
    fns = {name: (lambda name=name: calls.append(name) or name) for name in 'abc'}
    times, results = timed_rounds(fns, rounds=3, warmup=2)
    assert calls == list('aabbcc') + list('abc') + list('cba') + list('abc')
    assert {name: len(t) for name, t in times.items()} == {'a': 3, 'b': 3, 'c': 3}
    assert all(ms >= 0 for t in times.values() for ms in t)
    assert results == {'a': 'a', 'b': 'b', 'c': 'c'}


def test_timed_rounds_makes_fresh_arguments_for_every_call():
    made = []

    def make_args():
        made.append(object())
        return (made[-1], )

    seen = []
    timed_rounds({'a': seen.append, 'b': seen.append}, rounds=2, warmup=1, make_args=make_args)
    assert len(made) == 6 and seen == made  # 2 warm-up + 4 timed calls, one argument each


@pytest.mark.parametrize('rounds,warmup', [(0, 1), (1, -1)])
def test_timed_rounds_rejects_bad_counts(rounds, warmup):
    with pytest.raises(ValueError, match='rounds must be >= 1 and warmup >= 0'):
        timed_rounds({'a': lambda: None}, rounds=rounds, warmup=warmup)


def test_paired_ratio_compares_calls_of_the_same_round():
    # the machine slows down in round 2 for both models: per round 'a' takes twice as long
    times = {'a': [10.0, 40.0, 12.0], 'b': [5.0, 20.0, 6.0]}
    assert paired_ratio(times, 'a', 'b') == pytest.approx(2.0)
    assert paired_ratio(times, 'b', 'b') == pytest.approx(1.0)
    # a one-round spike of the baseline moves one ratio, not the median
    times = {'a': [10.0, 10.0, 10.0], 'b': [5.0, 50.0, 5.0]}
    assert paired_ratio(times, 'a', 'b') == pytest.approx(2.0)


def test_spread_positions_fills_each_axis_of_every_dcls_layer_and_nothing_else():
    torch.manual_seed(0)
    model = nn.Sequential(
        Dcls2d(4, 4, kernel_count=200, dilated_kernel_size=(7, 5), padding=(3, 2), groups=4),
        nn.Conv2d(4, 4, 3))
    conv_weight = model[1].weight.detach().clone()
    spread_positions(model)
    rows, cols = model[0].P.detach()
    # within each axis's half-size, and spread over it (as initialised: N(0, 0.5), near 0)
    assert rows.abs().max() <= 3 and rows.abs().max() > 2.9
    assert cols.abs().max() <= 2 and cols.abs().max() > 1.9
    assert torch.equal(model[1].weight, conv_weight)
