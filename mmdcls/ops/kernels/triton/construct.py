"""DCLS kernel construction in Triton for 1-D and 2-D kernels: one launch for the forward
pass, one for the backward pass, no host synchronisation (launch parameters come from shapes
alone), any position (taps outside the kernel are masked, as in the torch construction and
``dcls`` 0.1.1). 3-D kernels stay on the torch construction.

:func:`construct_kernel_triton` is the entry point. It runs the custom ops
``mmdcls::triton_construct`` (forward) and ``mmdcls::triton_construct_backward`` (its
registered autograd formula) where ``torch.library.custom_op`` exists (torch >= 2.4), so
that ``torch.compile(fullgraph=True)`` sees one opaque op; an autograd Function on older
torch. Kernels: :mod:`.construct_kernels` (imported on first launch: importing this module
does not import triton). CUDA tensors run compiled; CPU tensors only under Triton's
interpreter (``TRITON_INTERPRET=1`` set before the kernels are first used), for tests.

The caller passes float32 contiguous parameters whose non-finite values are already folded
into the weight (:func:`mmdcls.ops.construct._poison_non_finite`): a NaN weight makes its
whole (out, in / groups) kernel slice NaN, as in ``dcls``.
"""
import contextlib
import functools
import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ...construct.conventions import (GAUSS_EXPONENT_FLOOR, NORMALISATION_EPS, SIGMA_FLOOR,
                                      VERSIONS, VERSIONS_WITH_SIGMA, check_version, position_axes)

__all__ = ['construct_kernel_triton', 'supports_sizes', 'MAX_TILE', 'FORWARD_OP', 'BACKWARD_OP']

#: largest product of the kernel sizes padded to powers of two (one row tile in registers)
MAX_TILE = 128 * 128
#: names of the custom ops (torch >= 2.4)
FORWARD_OP = 'mmdcls::triton_construct'
BACKWARD_OP = 'mmdcls::triton_construct_backward'
# tile entries per program (rows x padded kernel) and per thread, and programs to aim for
_ENTRIES_PER_PROGRAM = 2048
_ENTRIES_PER_THREAD = 16
_MIN_PROGRAMS = 256


def _next_power_of_two(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


@functools.lru_cache(maxsize=1)
def _kernels():
    """The module of Triton kernels, imported on first use."""
    try:
        from . import construct_kernels
    except ImportError as error:
        raise RuntimeError(f'the Triton construction needs triton: {error}') from error
    return construct_kernels


def _interpreted(weight: Tensor) -> bool:
    """Whether the kernels run in Triton's interpreter (serially, program by program);
    RuntimeError naming why unless Triton can run on ``weight``'s device."""
    from . import interpreter_enabled, usable_on
    usable, reason = usable_on(weight.device)
    if not usable:
        raise RuntimeError(f'the Triton construction cannot run on {weight.device}: {reason}')
    _kernels()
    return interpreter_enabled()


def _block_rows(rows: int, tile: int, interpreted: bool) -> int:
    """Kernel rows per program (a power of two): as many as fill the program's tile budget,
    but on a GPU few enough for at least ``_MIN_PROGRAMS`` programs where there are rows for
    them (the interpreter runs programs one after another: there, fewer is faster)."""
    wanted = 1 if interpreted else _MIN_PROGRAMS
    return max(1, min(_ENTRIES_PER_PROGRAM // tile, _next_power_of_two(math.ceil(rows / wanted))))


def _launch_args(weight: Tensor, sizes: Sequence[int], version: str):
    """(grid, the kernels' shared arguments after the tensors, launch options)."""
    rows, count = weight.shape
    ndim = len(sizes)
    components = position_axes(version, ndim)
    comp = [components.index(axis) for axis in range(ndim)] + [0] * (2 - ndim)
    half = [sizes[c] // 2 for c in comp[:ndim]] + [0] * (2 - ndim)
    shape = (*sizes, 1) if ndim == 1 else tuple(sizes)
    padded = [_next_power_of_two(s) for s in shape]
    tile = padded[0] * padded[1]
    block_rows = _block_rows(rows, tile, _interpreted(weight))
    num_warps = min(16, max(1, block_rows * tile // (32 * _ENTRIES_PER_THREAD)))
    meta = dict(
        K=count,
        S0=shape[0],
        S1=shape[1],
        BS0=padded[0],
        BS1=padded[1],
        COMP0=comp[0],
        COMP1=comp[1],
        HALF0=half[0],
        HALF1=half[1],
        NDIM=ndim,
        VERSION=VERSIONS.index(version),
        SIGMA_FLOOR=SIGMA_FLOOR.get(version, 0.0),
        EPS=NORMALISATION_EPS,
        EXP_FLOOR=GAUSS_EXPONENT_FLOOR,
        BLOCK_R=block_rows,
        num_warps=num_warps)
    return (math.ceil(rows / block_rows), ), (rows, rows * count), meta


def _on_device(tensor: Tensor):
    """Context making ``tensor``'s GPU the current one: Triton launches on the current GPU."""
    if tensor.device.type == 'cuda':
        return torch.cuda.device(tensor.device)
    return contextlib.nullcontext()


def _forward(weight: Tensor, P: Tensor, SIG: Optional[Tensor], sizes: Sequence[int],
             version: str) -> Tensor:
    """(R, *sizes) kernel from weight (R, K), P / SIG (ndim, R, K): one launch."""
    weight, P = weight.contiguous(), P.contiguous()
    SIG = P if SIG is None else SIG.contiguous()  # v0 / v1 never read it
    kernel = weight.new_empty((weight.shape[0], *sizes))
    if kernel.numel() == 0:
        return kernel.zero_()
    grid, scalars, meta = _launch_args(weight, sizes, version)
    with _on_device(weight):
        _kernels().construct_forward_kernel[grid](weight, P, SIG, kernel, *scalars, **meta)
    return kernel


def _backward(grad_kernel: Tensor, weight: Tensor, P: Tensor, SIG: Optional[Tensor],
              sizes: Sequence[int], version: str) -> Tuple[Tensor, Tensor, Tensor]:
    """(d weight, d P, d SIG) from d loss / d kernel (R, *sizes): one launch. d SIG is an
    empty tensor for versions without SIG."""
    grad_kernel, weight, P = grad_kernel.contiguous(), weight.contiguous(), P.contiguous()
    has_sigma = SIG is not None
    SIG = SIG.contiguous() if has_sigma else P
    grad_weight, grad_P = torch.empty_like(weight), torch.empty_like(P)
    grad_SIG = torch.empty_like(SIG) if has_sigma else weight.new_empty(0)
    if weight.numel() == 0:
        return grad_weight, grad_P, grad_SIG
    grid, scalars, meta = _launch_args(weight, sizes, version)
    with _on_device(weight):
        _kernels().construct_backward_kernel[grid](weight, P, SIG, grad_kernel, grad_weight, grad_P,
                                                   grad_SIG if has_sigma else grad_P, *scalars,
                                                   **meta)
    return grad_weight, grad_P, grad_SIG


def _register_ops():
    """The forward custom op with its fake and autograd registrations (torch >= 2.4), or None
    where ``torch.library.custom_op`` does not exist. Runs once, at import."""
    library = torch.library
    if not all(hasattr(library, name) for name in ('custom_op', 'register_fake')):
        return None

    @library.custom_op(FORWARD_OP, mutates_args=())
    def forward_op(weight: Tensor, P: Tensor, SIG: Optional[Tensor], sizes: List[int],
                   version: str) -> Tensor:
        return _forward(weight, P, SIG, sizes, version)

    @forward_op.register_fake
    def _(weight, P, SIG, sizes, version):
        return weight.new_empty((weight.shape[0], *sizes))

    @library.custom_op(BACKWARD_OP, mutates_args=())
    def backward_op(grad_kernel: Tensor, weight: Tensor, P: Tensor, SIG: Optional[Tensor],
                    sizes: List[int], version: str) -> Tuple[Tensor, Tensor, Tensor]:
        return _backward(grad_kernel, weight, P, SIG, sizes, version)

    @backward_op.register_fake
    def _(grad_kernel, weight, P, SIG, sizes, version):
        grad_SIG = weight.new_empty(0) if SIG is None else torch.empty_like(SIG)
        return torch.empty_like(weight), torch.empty_like(P), grad_SIG

    def setup_context(ctx, inputs, output):
        weight, P, SIG, sizes, version = inputs
        ctx.save_for_backward(weight, P, SIG)
        ctx.sizes, ctx.version = sizes, version

    def backward(ctx, grad_kernel):
        weight, P, SIG = ctx.saved_tensors
        grad_weight, grad_P, grad_SIG = backward_op(grad_kernel, weight, P, SIG, ctx.sizes,
                                                    ctx.version)
        return grad_weight, grad_P, grad_SIG if SIG is not None else None, None, None

    forward_op.register_autograd(backward, setup_context=setup_context)
    return forward_op


class _ConstructTriton(torch.autograd.Function):
    """The custom ops' autograd on torch without ``torch.library.custom_op``."""

    @staticmethod
    def forward(ctx, weight, P, SIG, sizes, version):
        ctx.save_for_backward(weight, P, SIG)
        ctx.sizes, ctx.version = sizes, version
        return _forward(weight, P, SIG, sizes, version)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_kernel):
        weight, P, SIG = ctx.saved_tensors
        grad_weight, grad_P, grad_SIG = _backward(grad_kernel, weight, P, SIG, ctx.sizes,
                                                  ctx.version)
        return grad_weight, grad_P, grad_SIG if SIG is not None else None, None, None


_FORWARD_OP = _register_ops()


def supports_sizes(sizes: Sequence[int]) -> bool:
    """Whether kernels of ``sizes`` fit the construction: 1-D or 2-D, each size at least 1 and
    their powers of two at most :data:`MAX_TILE` entries (one row tile in registers)."""
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        return False
    return math.prod([_next_power_of_two(s) for s in sizes]) <= MAX_TILE


def _check_arguments(weight: Tensor, P: Tensor, SIG: Optional[Tensor], sizes: Tuple[int, ...],
                     version: str) -> None:
    """ValueError / TypeError naming the argument unless the construction takes them
    (shapes, dtypes and devices only: no value is read)."""
    check_version(version)
    if not supports_sizes(sizes):
        raise ValueError(f'sizes must be 1 or 2 positive ints whose powers of two hold at most '
                         f'{MAX_TILE} entries (a Triton row tile; 3-D kernels: the torch '
                         f'construction), got {sizes}')
    if weight.dim() != 3:
        raise ValueError(f'weight must have shape (out, in / groups, kernel_count), got '
                         f'{tuple(weight.shape)}')
    expected = (len(sizes), *weight.shape)
    if tuple(P.shape) != expected:
        raise ValueError(f'P must have shape {expected}, got {tuple(P.shape)}')
    if version in VERSIONS_WITH_SIGMA:
        if SIG is None or tuple(SIG.shape) != expected:
            got = None if SIG is None else tuple(SIG.shape)
            raise ValueError(f'version {version!r} needs SIG of shape {expected}, got {got}')
    elif SIG is not None:
        raise ValueError(f'version {version!r} takes no SIG (only {VERSIONS_WITH_SIGMA} do)')
    for name, tensor in (('weight', weight), ('P', P), ('SIG', SIG)):
        if tensor is None:
            continue
        if tensor.dtype != torch.float32:
            raise TypeError(f'{name} must be float32 for the Triton construction, got '
                            f'{tensor.dtype}')
        if tensor.device != weight.device:
            raise ValueError(f'{name} is on {tensor.device}, weight on {weight.device}')


def construct_kernel_triton(weight: Tensor, P: Tensor, SIG: Optional[Tensor], sizes: Sequence[int],
                            version: str) -> Tensor:
    """Builds the dense DCLS kernel with the Triton kernels (differentiable).

    Args:
        weight: (out, in / groups, K) float32 element weights, non-finite positions and
            widths already folded in as NaN.
        P: (ndim, out, in / groups, K) float32 positions, 0 = kernel centre, ndim 1 or 2.
        SIG: like ``P`` for ``gauss`` / ``max`` (widths), else None.
        sizes: ndim sizes of the dense kernel (padded to powers of two, their product at
            most :data:`MAX_TILE`).
        version: one of ``VERSIONS``.
    Returns:
        (out, in / groups, *sizes) float32 kernel.
    """
    sizes = tuple(int(s) for s in sizes)
    _check_arguments(weight, P, SIG, sizes, version)
    out_channels, in_per_group, count = weight.shape
    rows = out_channels * in_per_group
    flat_weight = weight.reshape(rows, count)
    flat_P = P.reshape(len(sizes), rows, count)
    flat_SIG = None if SIG is None else SIG.reshape(len(sizes), rows, count)
    if _FORWARD_OP is not None:
        kernel = _FORWARD_OP(flat_weight, flat_P, flat_SIG, list(sizes), version)
    else:
        kernel = _ConstructTriton.apply(flat_weight, flat_P, flat_SIG, sizes, version)
    return kernel.view(out_channels, in_per_group, *sizes)
