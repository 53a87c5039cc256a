"""Running a chosen algorithm on one call: its prepared state for a constant kernel, and
``F.conv``'s non-finite semantics where the algorithm lacks them."""
from typing import Optional

from torch import Tensor

from .algorithm import ConvAlgorithm
from .non_finite import run_with_conv_semantics
from .problem import ConvProblem


def execute(algorithm: ConvAlgorithm, input: Tensor, kernel: Tensor, bias: Optional[Tensor],
            problem: ConvProblem) -> Tensor:
    """``algorithm``'s convolution of ``problem``, with its :meth:`~ConvAlgorithm.prepare` of a
    constant kernel computed once (kept in ``problem.constant``)."""
    prepared = None
    if problem.constant is not None:
        key = algorithm.prepare_key(problem)
        if key is not None:
            prepared = problem.constant.memo(('prepared', algorithm.name, key),
                                             lambda: algorithm.prepare(kernel, problem))
    if algorithm.propagates_non_finite:
        return algorithm.run(input, kernel, bias, problem, prepared)
    return run_with_conv_semantics(algorithm, input, kernel, bias, problem, prepared)
