"""When the C library's depthwise convolutions (``'c_fft'``, ``'sparse_direct'``) apply: the
one rule both algorithms share."""
from typing import Optional

from ...kernels import cpu
from ...kernels.cpu.prototypes import REAL_TYPES
from ..algorithm import why_not_depthwise_2d_stride_one
from ..problem import ConvProblem


def why_c_depthwise_not(problem: ConvProblem) -> Optional[str]:
    """None when the C library computes ``problem`` (2-D depthwise, stride 1, float32 /
    float64 CPU tensors of one dtype, outside autocast, eager, library built), else why not.
    The device is checked by the algorithm (``devices = ('cpu',)``)."""
    reason = why_not_depthwise_2d_stride_one(problem)
    if reason is not None:
        return reason
    if problem.autocast_dtype is not None:
        return 'it does not run under autocast (F.conv would compute in the autocast dtype)'
    if problem.dtype not in REAL_TYPES or not problem.same_dtypes:
        return (f'it takes float32 / float64 tensors of one dtype, got input {problem.dtype}, '
                f'kernel {problem.kernel_dtype}, bias {problem.bias_dtype}')
    if not problem.eager:
        return 'C calls cannot be traced (torch.jit.trace / torch.compile)'
    if cpu.library() is None:
        return f'the C library is unavailable: {cpu.unavailable_reason()}'
    return None
