"""Which algorithm :func:`~mmdcls.ops.conv.conv_nd` runs.

The request is the call's ``algo`` (a layer's ``conv_algo``), else ``$MMDCLS_CONV_ALGO``, else
``'auto'``:

* an algorithm's name (:data:`~mmdcls.ops.conv.algorithms.ALGORITHMS`): that algorithm, which
  must apply to the call (otherwise ValueError saying why; nothing else is substituted);
* ``'auto'``: the cheapest applicable algorithm by the costs fitted for the device; where an
  applicable algorithm has no fitted cost for the device (CUDA), the fastest by measurement,
  as ``'benchmark'``;
* ``'benchmark'``: the applicable algorithms timed once per problem key (device, dtypes,
  autocast, shapes, stride, padding, groups, gradients, layout) and the fastest kept for the
  process (as ``torch.backends.cudnn.benchmark``). Under ``torch.compile`` the timing runs
  while the graph is traced, on random tensors of the call's shapes.
"""
import math
import os
import time
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..torch_compat import constant_under_compile
from .algorithm import ConvAlgorithm
from .algorithms import ALGORITHMS
from .execute import execute
from .problem import CHANNELS_LAST_FORMATS, ConvProblem

ENV_VAR = 'MMDCLS_CONV_ALGO'
AUTO, BENCHMARK = 'auto', 'benchmark'


def algo_choices() -> Tuple[str, ...]:
    """Every value ``algo`` / ``conv_algo`` / ``$MMDCLS_CONV_ALGO`` accepts."""
    return (AUTO, BENCHMARK) + tuple(ALGORITHMS)


def check_algo(algo: Optional[str], name: str = 'algo') -> None:
    """Raises ValueError unless ``algo`` is None or one of :func:`algo_choices`."""
    if algo is not None and algo not in algo_choices():
        raise ValueError(f'{name} must be one of {algo_choices()} (or None), got {algo!r}')


def resolve_algo(algo: Optional[str] = None) -> str:
    """The requested name: ``algo``, else ``$MMDCLS_CONV_ALGO``, else ``'auto'``."""
    check_algo(algo)
    if algo is not None:
        return algo
    env = os.environ.get(ENV_VAR) or AUTO
    check_algo(env, f'environment variable {ENV_VAR}')
    return env


def select_algorithm(problem: ConvProblem,
                     algo: Optional[str] = None,
                     kernel: Optional[Tensor] = None) -> ConvAlgorithm:
    """The algorithm that computes ``problem`` for the request ``algo`` (see the module
    docstring). ``kernel``: the call's kernel, timed as it is by a measured choice (zero taps
    matter to some algorithms); random values of its shape otherwise."""
    name = resolve_algo(algo)
    if name not in (AUTO, BENCHMARK):
        algorithm = ALGORITHMS[name]
        reason = algorithm.why_not(problem)
        if reason is not None:
            raise ValueError(f'conv algorithm {name!r} cannot compute this convolution '
                             f'({_summary(problem)}): {reason}')
        return algorithm
    candidates = [a for a in ALGORITHMS.values() if a.applies(problem)]
    if name == AUTO:
        costs = [a.cost(problem) for a in candidates]
        if all(c is not None for c in costs):
            return candidates[costs.index(min(costs))]
    return ALGORITHMS[_measured_choice(problem, [a.name for a in candidates], kernel)]


def _summary(problem: ConvProblem) -> str:
    return (f'input {problem.input_shape} {problem.dtype} on {problem.device_type}, kernel '
            f'{problem.kernel_shape} {problem.kernel_dtype}, stride {problem.stride}, groups '
            f'{problem.groups}' +
            (f', autocast {problem.autocast_dtype}' if problem.autocast_dtype is not None else ''))


# (problem key, candidate names) -> fastest name, for the process
_MEASURED: Dict[tuple, str] = {}


def clear_benchmark_cache() -> None:
    """Forgets every measured choice."""
    _MEASURED.clear()


def _measured_choice(problem: ConvProblem, names: List[str], kernel: Optional[Tensor]) -> str:
    key = (problem.key(), tuple(names))
    name = _MEASURED.get(key)
    if name is None:
        if len(names) == 1:
            name = names[0]
        elif problem.compiling:
            name = _fastest_while_compiling(*key)
        else:
            name = _fastest(problem.key(), names, kernel)
        _MEASURED[key] = name
    return name


@constant_under_compile
def _fastest_while_compiling(problem_key: tuple, names: Tuple[str, ...]) -> str:
    return _fastest(problem_key, names, None)


def _fastest(problem_key: tuple, names: Sequence[str], kernel: Optional[Tensor]) -> str:
    """The name of the fastest of ``names`` on tensors of ``problem_key``'s shapes (forward,
    plus backward when it needs gradients), best of a few calls after one warm-up."""
    (device, dtype, kernel_dtype, autocast_dtype, input_shape, kernel_shape, has_bias, stride,
     padding, groups, needs_grad, channels_last) = problem_key
    device = torch.device(device)
    x = torch.randn(input_shape, dtype=dtype, device=device)
    if channels_last:
        x = x.contiguous(memory_format=CHANNELS_LAST_FORMATS[len(input_shape) - 2])
    if kernel is None:
        k = torch.randn(kernel_shape, dtype=kernel_dtype, device=device)
    else:
        k = kernel.detach().clone()
    b = torch.randn(kernel_shape[0], dtype=kernel_dtype, device=device) if has_bias else None
    for t in (x, k, b):
        if t is not None:
            t.requires_grad_(needs_grad)
    autocast = (
        torch.autocast(device.type, dtype=autocast_dtype)
        if autocast_dtype is not None else nullcontext())
    times = {}
    with torch.enable_grad() if needs_grad else torch.no_grad(), autocast:
        problem = ConvProblem.describe(x, k, b, stride, padding, groups)
        for name in names:
            times[name] = _time(ALGORITHMS[name], x, k, b, problem)
    return min(times, key=times.get)


def _time(algorithm: ConvAlgorithm,
          x: Tensor,
          k: Tensor,
          b: Optional[Tensor],
          problem: ConvProblem,
          repeats: int = 2) -> float:
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    best = math.inf
    for _ in range(repeats + 1):  # the first call warms up
        sync()
        start = time.perf_counter()
        y = execute(algorithm, x, k, b, problem)
        if problem.needs_grad:
            y.backward(torch.ones_like(y))
        sync()
        best = min(best, time.perf_counter() - start)
    return best
