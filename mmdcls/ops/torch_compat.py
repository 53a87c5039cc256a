"""The torch APIs the operator uses that changed between torch 2.1 and today, in one place.

mmdcls admits every torch from 2.1 (the official mmcv 2.1.0 wheels are built for torch 2.0 / 2.1)
to the newest; each helper calls the current API where it exists and its older spelling
otherwise, with the same result. ``torch.compile`` support steps aside on torch whose dynamo
cannot trace the operators (:func:`eager_under_old_dynamo`). The compat test lane
(``make test-compat``) runs the operator tests on torch 2.1.2.
"""
import re
from typing import Callable, TypeVar

import torch

__all__ = [
    'is_compiling', 'is_autocast_enabled', 'get_autocast_dtype', 'TORCH_VERSION',
    'DYNAMO_TRACES_OPS', 'eager_under_old_dynamo', 'DYNAMO_CONSTANT_MARK', 'constant_under_compile',
    'cpu_conv_computes', 'profiler_event_start_ns'
]

_F = TypeVar('_F', bound=Callable)


def _parse_version(version: str) -> tuple:
    """(major, minor) of a torch version string: '2.1.2+cu121' -> (2, 1)."""
    match = re.match(r'(\d+)\.(\d+)', version)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


#: (major, minor) of the running torch
TORCH_VERSION = _parse_version(torch.__version__)


def is_compiling() -> bool:
    """Whether ``torch.compile`` (dynamo) is tracing the caller.

    ``torch.compiler.is_compiling`` exists from torch 2.3; before it, ``torch._dynamo`` holds the
    same flag."""
    compiler = getattr(torch, 'compiler', None)
    if compiler is not None and hasattr(compiler, 'is_compiling'):
        return compiler.is_compiling()
    dynamo = getattr(torch, '_dynamo', None)
    if dynamo is not None and hasattr(dynamo, 'is_compiling'):
        return dynamo.is_compiling()
    return False


def is_autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` ('cpu', 'cuda', ...).

    ``torch.is_autocast_enabled(device_type)`` takes the device from torch 2.4; before it,
    ``torch.is_autocast_enabled()`` answers for CUDA and ``torch.is_autocast_cpu_enabled()`` for
    the CPU."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device argument
        pass
    if device_type == 'cpu':
        return torch.is_autocast_cpu_enabled()
    if device_type == 'cuda':
        return torch.is_autocast_enabled()
    return False  # older torch has no autocast state for other devices that we can read


def get_autocast_dtype(device_type: str) -> torch.dtype:
    """The dtype autocast computes in on ``device_type`` (meaningful while it is enabled).

    ``torch.get_autocast_dtype`` exists from torch 2.4; before it, one getter per device."""
    getter = getattr(torch, 'get_autocast_dtype', None)
    if getter is not None:
        return getter(device_type)
    if device_type == 'cpu':
        return torch.get_autocast_cpu_dtype()
    return torch.get_autocast_gpu_dtype()


#: Whether ``torch.compile`` (dynamo) traces mmdcls's operators: from torch 2.4 (2.4.1 and 2.13
#: checked; 2.3 unchecked). The dynamo of torch 2.1 and 2.2 fails with internal errors on
#: ``os.environ.get`` (the algorithm override) and on guards over the C library's ctypes
#: functions, and cannot trace autograd Functions taking tuples.
DYNAMO_TRACES_OPS = TORCH_VERSION >= (2, 4)


def eager_under_old_dynamo(fn: _F) -> _F:
    """``fn`` itself where dynamo traces mmdcls's operators (:data:`DYNAMO_TRACES_OPS`); before
    that, ``fn`` behind ``torch._dynamo.disable``: a compiled model graph-breaks around it and
    runs it eagerly (the same result; the C library is used as in eager mode).

    Decorates the two dispatchers every DCLS / large-kernel layer goes through,
    ``construct_kernel`` and ``conv_nd``: what old dynamo cannot trace (the environment
    overrides, the C library) happens inside them, and the layers around them trace."""
    if DYNAMO_TRACES_OPS:
        return fn
    import torch._dynamo  # not imported by ``import torch`` on every version
    return torch._dynamo.disable(fn)


#: the mark ``torch.compiler.assume_constant_result`` sets (tests/test_ops/test_torch_compat.py
#: checks it against the running torch)
DYNAMO_CONSTANT_MARK = '_dynamo_marked_constant'


def constant_under_compile(fn: _F) -> _F:
    """``fn`` run for real while ``torch.compile`` traces its caller, its result baked into the
    graph as a constant (what ``torch.compiler.assume_constant_result`` marks); its arguments
    must be plain Python values. Eager calls are unaffected. The mark is set directly: calling
    ``assume_constant_result`` at import would import dynamo, and with it triton (a second at
    every ``import mmdcls``)."""
    setattr(fn, DYNAMO_CONSTANT_MARK, True)
    return fn


@constant_under_compile
def _cpu_conv_computes(dtype_name: str) -> bool:
    try:
        weight = torch.zeros(1, 1, 1, 1, dtype=getattr(torch, dtype_name))
        torch.nn.functional.conv2d(torch.zeros(1, 1, 2, 2, dtype=weight.dtype), weight)
    except RuntimeError:
        return False
    return True


_CPU_CONV_DTYPES = {}


def cpu_conv_computes(dtype: torch.dtype) -> bool:
    """Whether ``F.conv`` computes ``dtype`` on the CPU: float16 has no CPU convolution before
    torch 2.2 ("slow_conv2d_cpu" not implemented for 'Half'). Asked of torch once per dtype."""
    if dtype not in (torch.float16, torch.bfloat16):
        return True
    name = str(dtype).split('.')[-1]
    if name not in _CPU_CONV_DTYPES:
        _CPU_CONV_DTYPES[name] = _cpu_conv_computes(name)
    return _CPU_CONV_DTYPES[name]


def profiler_event_start_ns(event) -> int:
    """Start time in ns of a ``torch.profiler`` kineto event (``kineto_results.events()``).

    Newer torch has ``start_ns()``; torch 2.1 only ``start_us()`` (microseconds: a stable sort
    by it keeps the profiler's own order for events that start within the same microsecond)."""
    if hasattr(event, 'start_ns'):
        return event.start_ns()
    return event.start_us() * 1000
