"""When the C library's depthwise convolutions (``'c_fft'``, ``'sparse_direct'``) apply: the
one rule both algorithms share."""
from typing import Optional

from ...kernels import cpu
from ...kernels.cpu.prototypes import REAL_TYPES
from ..problem import ConvProblem


def why_c_depthwise_not(problem: ConvProblem) -> Optional[str]:
    """None when the C library computes ``problem`` (2-D depthwise, stride 1, float32 /
    float64 CPU tensors of one dtype, outside autocast, eager, library built), else why not.
    The device is checked by the algorithm (``devices = ('cpu',)``)."""
    if problem.ndim != 2 or not problem.depthwise:
        return 'it computes 2-D depthwise convolutions only (C_out == C_in == groups)'
    if not problem.stride_one:
        return f'it computes stride 1 only, got stride {problem.stride}'
    if problem.autocast_dtype is not None:
        return 'it does not run under autocast (F.conv would compute in the autocast dtype)'
    if problem.dtype not in REAL_TYPES or not problem.same_dtypes:
        return (f'it takes float32 / float64 tensors of one dtype, got input {problem.dtype}, '
                f'kernel {problem.kernel_dtype}, bias {problem.bias_dtype}')
    if not problem.eager:
        return 'C calls cannot be traced (torch.jit.trace / torch.compile)'
    if cpu.library() is None:
        reason = (f'disabled ({cpu.ENV_VAR}=0)' if cpu.mode() == '0' else cpu.failure_reason())
        return f'the C library is unavailable: {reason}'
    return None
