"""The torch APIs the operator uses that changed between torch 2.1 and today, in one place.

mmdcls admits every torch from 2.1 (the official mmcv 2.1.0 wheels are built for torch 2.0 / 2.1)
to the newest; each helper calls the current API where it exists and its older spelling
otherwise, with the same result.
"""
import torch

__all__ = ['is_compiling', 'is_autocast_enabled', 'get_autocast_dtype']


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
