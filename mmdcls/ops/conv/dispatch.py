"""``conv_nd``: the one entry point of the convolution algorithms. It checks the arguments,
describes the call once (:class:`~.problem.ConvProblem`), selects an algorithm
(:mod:`.selection`) and runs it (:mod:`.execute`)."""
from typing import Optional, Sequence

from torch import Tensor

from ..torch_compat import eager_under_old_dynamo
from .algorithms.direct import CONV_FNS
from .constant_kernel import ConstantKernel
from .execute import execute
from .problem import ConvProblem
from .selection import resolve_algo, select_algorithm


def _check_arguments(input: Tensor, kernel: Tensor, bias: Optional[Tensor], stride: tuple,
                     padding: tuple, groups: int) -> None:
    ndim = kernel.dim() - 2
    if ndim not in CONV_FNS:
        raise ValueError(f'kernel must be 3-D, 4-D or 5-D (C_out, C_in / groups, *k), got shape '
                         f'{tuple(kernel.shape)}')
    if input.dim() != ndim + 2:
        raise ValueError(f'input must be {ndim + 2}-D for a {ndim}-D kernel, got shape '
                         f'{tuple(input.shape)}')
    if len(stride) != ndim or len(padding) != ndim:
        raise ValueError(f'stride {stride} and padding {padding} must have {ndim} entries')
    if (not isinstance(groups, int) or groups < 1 or input.shape[1] != kernel.shape[1] * groups
            or kernel.shape[0] % groups):
        raise ValueError(f'input channels {input.shape[1]} / kernel {tuple(kernel.shape)} do not '
                         f'match groups={groups!r}')
    if bias is not None and tuple(bias.shape) != (kernel.shape[0], ):
        raise ValueError(f'bias must have shape ({kernel.shape[0]},), got {tuple(bias.shape)}')
    if any(s < 1 for s in stride) or any(p < 0 for p in padding):
        raise ValueError(f'stride must be positive and padding non-negative, got stride '
                         f'{stride}, padding {padding}')
    padded = tuple(s + 2 * p for s, p in zip(input.shape[2:], padding))
    if any(k > s for k, s in zip(kernel.shape[2:], padded)):
        raise ValueError(f'kernel {tuple(kernel.shape[2:])} is larger than the padded input '
                         f'{padded}')


@eager_under_old_dynamo
def conv_nd(input: Tensor,
            kernel: Tensor,
            bias: Optional[Tensor],
            stride: Sequence[int],
            padding: Sequence[int],
            groups: int,
            algo: Optional[str] = None,
            *,
            constant: Optional[ConstantKernel] = None) -> Tensor:
    """Zero-padded N-d convolution (cross-correlation, dilation 1) of ``input``
    (N, C_in, *spatial) with a dense ``kernel`` (C_out, C_in / groups, *k) and optional
    ``bias`` (C_out,) -> (N, C_out, *out), as ``F.conv{1,2,3}d`` computes it.

    ``algo``: an algorithm's name, ``'auto'`` or ``'benchmark'`` (:mod:`.selection`), or None
    (then ``$MMDCLS_CONV_ALGO``, else ``'auto'``). ``constant``: the
    :class:`~.problem.ConstantKernel` of ``kernel`` when it stays the same between calls
    (a cached or folded kernel), where the algorithms keep what they prepare from it.
    An empty input and a ``torch.jit.trace`` (FLOP counters, exporters) take ``F.conv``.
    """
    stride, padding = tuple(stride), tuple(padding)
    _check_arguments(input, kernel, bias, stride, padding, groups)
    problem = ConvProblem.describe(input, kernel, bias, stride, padding, groups, constant)
    if problem.empty or problem.tracing:
        return CONV_FNS[problem.ndim](input, kernel, bias, stride, padding, 1, groups)
    if problem.autocast_dtype is None and not problem.same_dtypes:
        raise TypeError(f'input ({input.dtype}), kernel ({kernel.dtype}) and bias '
                        f'({problem.bias_dtype}) must have the same dtype outside autocast')
    if problem.constant is not None:
        # the choice for a constant kernel is made once per problem and request
        request = resolve_algo(algo)
        algorithm = problem.constant.memo(('algorithm', problem.key(), request),
                                          lambda: select_algorithm(problem, request, kernel))
    else:
        algorithm = select_algorithm(problem, algo, kernel)
    return execute(algorithm, input, kernel, bias, problem)
