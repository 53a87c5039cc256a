"""``ConvProblem``: what :func:`~mmdcls.ops.conv.conv_nd` knows about one call, built once and
handed to every algorithm (whether it applies, what it costs, how it runs)."""
import functools
import math
from dataclasses import dataclass, field
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..graph_state import needs_grad
from ..torch_compat import get_autocast_dtype, is_autocast_enabled, is_compiling
from .constant_kernel import ConstantKernel

# memory format of a channels-last input, by number of spatial dimensions (1-D has none)
CHANNELS_LAST_FORMATS = {2: torch.channels_last, 3: torch.channels_last_3d}


@dataclass(frozen=True)
class ConvProblem:
    """One zero-padded N-d cross-correlation (dilation 1): input (N, C_in, *spatial), kernel
    (C_out, C_in / groups, *kernel_size), optional bias (C_out,) -> (N, C_out, *out_size).
    Build it with :meth:`describe`."""
    input_shape: Tuple[int, ...]
    kernel_shape: Tuple[int, ...]
    stride: Tuple[int, ...]
    padding: Tuple[int, ...]
    groups: int
    has_bias: bool
    #: (N, C_out, *out_size)
    out_shape: Tuple[int, ...]
    dtype: torch.dtype
    kernel_dtype: torch.dtype
    bias_dtype: Optional[torch.dtype]
    device: torch.device
    #: the dtype ``F.conv`` computes in under autocast, None outside autocast
    autocast_dtype: Optional[torch.dtype]
    #: whether autograd will want a gradient of input, kernel or bias
    needs_grad: bool
    #: C_out == C_in == groups (one kernel plane per channel)
    depthwise: bool
    #: the input is laid out channels-last (and not also NCHW-contiguous)
    channels_last: bool
    #: under ``torch.jit.trace`` / ``torch.compile`` (no C library calls, no host reads)
    tracing: bool
    compiling: bool
    #: the kernel does not change between calls (its facts are kept in ``constant``)
    constant: Optional[ConstantKernel] = field(default=None, compare=False, repr=False)
    _kernel: Optional[Tensor] = field(default=None, compare=False, repr=False)

    @classmethod
    def describe(cls,
                 input: Tensor,
                 kernel: Tensor,
                 bias: Optional[Tensor],
                 stride: Tuple[int, ...],
                 padding: Tuple[int, ...],
                 groups: int,
                 constant: Optional[ConstantKernel] = None) -> 'ConvProblem':
        """The problem of ``conv_nd(input, kernel, bias, stride, padding, groups)`` (checked
        arguments). ``constant``: the facts of ``kernel`` if it is a constant kernel; used only
        when no gradient is needed."""
        ndim = kernel.dim() - 2
        device_type = input.device.type
        autocast = is_autocast_enabled(device_type) and input.is_floating_point()
        grad = needs_grad(input, kernel, bias)
        fmt = CHANNELS_LAST_FORMATS.get(ndim)
        channels_last = (
            fmt is not None and not input.is_contiguous()
            and input.is_contiguous(memory_format=fmt))
        n, c_in = input.shape[:2]
        c_out, c_in_per_group = kernel.shape[:2]
        out_size = tuple((s + 2 * p - k) // st + 1
                         for s, p, k, st in zip(input.shape[2:], padding, kernel.shape[2:], stride))
        return cls(
            input_shape=tuple(input.shape),
            kernel_shape=tuple(kernel.shape),
            stride=tuple(stride),
            padding=tuple(padding),
            groups=groups,
            has_bias=bias is not None,
            out_shape=(n, c_out, *out_size),
            dtype=input.dtype,
            kernel_dtype=kernel.dtype,
            bias_dtype=None if bias is None else bias.dtype,
            device=input.device,
            autocast_dtype=get_autocast_dtype(device_type) if autocast else None,
            needs_grad=grad,
            depthwise=c_in_per_group == 1 and c_out == c_in == groups,
            channels_last=channels_last,
            tracing=torch.jit.is_tracing(),
            compiling=is_compiling(),
            constant=None if grad else constant,
            _kernel=kernel)

    # ------------------------------------------------------------------ derived shapes
    @property
    def ndim(self) -> int:
        """Spatial dimensions (1, 2 or 3)."""
        return len(self.kernel_shape) - 2

    @property
    def device_type(self) -> str:
        return self.device.type

    @property
    def batch(self) -> int:
        return self.input_shape[0]

    @property
    def in_channels(self) -> int:
        return self.input_shape[1]

    @property
    def out_channels(self) -> int:
        return self.kernel_shape[0]

    @property
    def in_per_group(self) -> int:
        return self.kernel_shape[1]

    @property
    def spatial(self) -> Tuple[int, ...]:
        return self.input_shape[2:]

    @property
    def kernel_size(self) -> Tuple[int, ...]:
        return self.kernel_shape[2:]

    @property
    def out_size(self) -> Tuple[int, ...]:
        return self.out_shape[2:]

    @property
    def taps(self) -> int:
        """Entries of one kernel plane (prod(kernel_size))."""
        return math.prod(self.kernel_size)

    @property
    def empty(self) -> bool:
        """No element in the input (an empty batch or empty maps): nothing to compute."""
        return any(s == 0 for s in self.input_shape)

    @property
    def stride_one(self) -> bool:
        return all(s == 1 for s in self.stride)

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype ``F.conv`` computes (and returns) in: the autocast dtype, else the
        input's."""
        return self.autocast_dtype or self.dtype

    @property
    def same_dtypes(self) -> bool:
        """Input, kernel and bias share one dtype (required outside autocast)."""
        return self.kernel_dtype == self.dtype and self.bias_dtype in (None, self.dtype)

    @property
    def eager(self) -> bool:
        """Neither traced nor compiled: host reads and C calls are allowed."""
        return not (self.tracing or self.compiling)

    def key(self) -> tuple:
        """What the measured choice of an algorithm depends on (``'benchmark'``'s cache key)."""
        return (str(self.device), self.dtype, self.kernel_dtype, self.autocast_dtype,
                self.input_shape, self.kernel_shape, self.has_bias, self.stride, self.padding,
                self.groups, self.needs_grad, self.channels_last)

    # ------------------------------------------------------------------ kernel facts
    @functools.cached_property
    def nonzero_taps(self) -> float:
        """Mean non-zero taps per output channel of the kernel (reads its values: eager only;
        remembered for a constant kernel)."""
        if self.constant is not None:
            return self.constant.memo(('nonzero_taps', ), self._count_nonzero_taps)
        return self._count_nonzero_taps()

    def _count_nonzero_taps(self) -> float:
        return int(torch.count_nonzero(self._kernel)) / self.out_channels
