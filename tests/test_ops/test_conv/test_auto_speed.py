"""Wall-clock check of 'auto' on the CPU (marked ``benchmark``: deselected by default, run by
``make bench``): on ConvNeXt-DCLS-like depthwise layers its choice is exact and at most
AUTO_SLOWDOWN_FACTOR times the fastest applicable algorithm, each timed as 'benchmark' times
them. A choice off by more is a cost model (docs/cost_model.md) that no longer fits the code or
the machine."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmdcls.ops.conv import ALGORITHMS, ConvProblem, conv_nd, select_algorithm, selection

pytestmark = pytest.mark.benchmark

# (N, C, H, W, kernel size, training, non-zero taps per channel or None for dense)
AUTO_CASES = [(1, 16, 32, 32, 17, True, None), (1, 32, 48, 48, 17, False, 14),
              (1, 64, 16, 16, 23, False, None), (1, 32, 32, 32, 7, True, None)]
#: generous on purpose: the constants were fitted on an idle machine
AUTO_SLOWDOWN_FACTOR = 3.0
AUTO_TIMING_ROUNDS = 10


def _case(n, c, h, w, size, training, taps):
    torch.manual_seed(10)
    x = torch.randn(n, c, h, w, requires_grad=training)
    k = torch.randn(c, 1, size, size)
    if taps is not None:  # a folded v0 kernel as initialised: taps clustered at the centre
        centre = size // 2
        mask = torch.zeros(size, size, dtype=torch.bool)
        mask[centre - 2:centre + 2, centre - 2:centre + 2] = True
        mask.view(-1)[mask.view(-1).nonzero()[taps:]] = False
        k = k * mask
    k.requires_grad_(training)
    b = torch.randn(c, requires_grad=training)
    return x, k, b, (1, 1), (size // 2, size // 2), c


@pytest.mark.parametrize(
    'case',
    AUTO_CASES,
    ids=lambda c: f'{c[1]}x{c[2]}-k{c[4]}-'
    f'{"train" if c[5] else "infer"}{"-sparse" if c[6] else ""}')
def test_auto_choice_is_exact_and_close_to_the_fastest(case):
    x, k, b, stride, padding, groups = _case(*case)
    training = case[5]
    with torch.set_grad_enabled(training):
        problem = ConvProblem.describe(x, k, b, stride, padding, groups)
        chosen = select_algorithm(problem, 'auto')
        y = conv_nd(x, k, b, stride, padding, groups, algo='auto')
        ref = F.conv2d(x, k, b, stride, padding, 1, groups)
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4)
    candidates = [a for a in ALGORITHMS.values() if a.applies(problem)]
    times = dict.fromkeys((a.name for a in candidates), math.inf)
    with torch.set_grad_enabled(training):
        timed = ConvProblem.describe(x.detach().requires_grad_(training),
                                     k.detach().requires_grad_(training),
                                     b.detach().requires_grad_(training), stride, padding, groups)
        for _ in range(AUTO_TIMING_ROUNDS):
            for algorithm in candidates:
                times[algorithm.name] = min(
                    times[algorithm.name],
                    selection._time(
                        algorithm,
                        x.detach().requires_grad_(training),
                        k.detach().requires_grad_(training),
                        b.detach().requires_grad_(training),
                        timed,
                        repeats=1))
            if times[chosen.name] <= AUTO_SLOWDOWN_FACTOR * min(times.values()):
                break
    report = ', '.join(f'{a} {t * 1e3:.2f} ms' for a, t in times.items())
    assert times[chosen.name] <= AUTO_SLOWDOWN_FACTOR * min(times.values()), (
        f"'auto' chose {chosen.name}; best times: {report}")
