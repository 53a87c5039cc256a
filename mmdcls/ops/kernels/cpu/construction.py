"""Bindings of the fused CPU construction of 2-D DCLS kernels: ``csrc/construct_profiles_2d.c``
(``gauss``, ``max``) and ``csrc/construct_bilinear_2d.c`` (``v0``, ``v1``).

The torch construction (:mod:`mmdcls.ops.construct`) is exact but memory-bound: every
``max`` / ``gauss`` step is a pass over (rows, kernel_count, size) profile tensors, and the
bilinear scatter goes through index tensors. The C code does the same arithmetic row by row in
a work buffer that stays in cache, for float32 and float64 CPU tensors and 2-D kernels (the
ConvNeXt / ResNet case); 1-D / 3-D kernels, other devices and dtypes, JIT traces and
``torch.compile`` graphs use the torch path. Autograd:
:class:`mmdcls.ops.construct.fused_c._ConstructNative2d`, which passes the conventions of
:mod:`mmdcls.ops.construct.conventions` (width floor ``sig_floor``, normalisation ``eps``,
Gaussian ``exponent_floor``) as arguments.

The bindings take tensors of any layout (made contiguous, and held in locals while the C code
runs) and check their dtype and device: the C code reads raw pointers.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ...graph_state import records_graph
from .constants import BILINEAR_VERSIONS, PROFILE_VERSIONS, VECTOR_BYTES, lanes
from .loader import call, library, threads_for
from .prototypes import REAL_TYPES

# rows per thread below which splitting a call over threads costs more than it saves
_MIN_ROWS_PER_THREAD = 16
# exponent floors the float32 Gaussian profiles handle: their inline exp is accurate on
# [-87, 0] (2**n stays a normal float; csrc/construct_gauss_f32.c)
_EXPONENT_FLOOR_RANGE = (-87.0, 0.0)
_NEEDED_BY = 'the fused kernel construction'


def usable(weight: Tensor, sizes: Tuple[int, ...]) -> bool:
    """Whether the fused construction (:func:`dense_forward`, :func:`bilinear_forward`)
    handles these parameters: a 2-D kernel, float32 / float64 CPU tensors, eager mode (not JIT
    tracing or ``torch.compile``), library available."""
    return (len(sizes) == 2 and weight.device.type == 'cpu' and weight.dtype in REAL_TYPES
            and not records_graph() and library() is not None)


def _for_c(dtype: torch.dtype, *tensors: Optional[Tensor]):
    """The tensors as the C code reads them: contiguous CPU tensors of ``dtype`` (None stays
    None). The caller holds the returned tensors in locals for the duration of the C call:
    a temporary (``t.contiguous().data_ptr()``) could be freed before the call reads it."""
    result = []
    for tensor in tensors:
        if tensor is not None:
            if tensor.dtype != dtype or tensor.device.type != 'cpu':
                raise TypeError(f'the fused construction needs {dtype} CPU tensors, got '
                                f'{tensor.dtype} on {tensor.device}')
            tensor = tensor.contiguous()
        result.append(tensor)
    return result


def _check_shapes(weight: Tensor,
                  P: Tensor,
                  SIG: Optional[Tensor],
                  sizes: Sequence[int],
                  grad_kernel: Optional[Tensor] = None) -> None:
    """ValueError unless P / SIG are (2, *weight.shape) and grad_kernel (*rows, *sizes): the C
    code derives every extent from these."""
    expected = (2, *weight.shape)
    for name, tensor in (('P', P), ('SIG', SIG)):
        if tensor is not None and tuple(tensor.shape) != expected:
            raise ValueError(f'{name} must have shape {expected}, got {tuple(tensor.shape)}')
    if len(sizes) != 2 or any(int(s) < 1 for s in sizes):
        raise ValueError(f'sizes must be two positive ints, got {tuple(sizes)}')
    kernel_shape = (*weight.shape[:-1], *sizes)
    if grad_kernel is not None and tuple(grad_kernel.shape) != kernel_shape:
        raise ValueError(f'grad_kernel must have shape {kernel_shape}, got '
                         f'{tuple(grad_kernel.shape)}')


def _version_code(version: str, codes: Dict[str, int]) -> int:
    """The C code of ``version``; ValueError naming the versions of the entry point."""
    if version not in codes:
        raise ValueError(f'version must be one of {tuple(codes)}, got {version!r}')
    return codes[version]


def _check_constants(eps: float, exponent_floor: Optional[float] = None) -> None:
    """ValueError unless ``eps`` is positive and finite and ``exponent_floor`` (if given) is in
    the range the C exp handles."""
    if not (isinstance(eps, (int, float)) and 0 < eps < math.inf):
        raise ValueError(f'eps must be a positive finite float, got {eps!r}')
    low, high = _EXPONENT_FLOOR_RANGE
    if exponent_floor is not None and not (isinstance(exponent_floor, (int, float))
                                           and low <= exponent_floor <= high):
        raise ValueError(f'exponent_floor must be in [{low}, {high}], got {exponent_floor!r}')


def _run(entry: str, dtype: torch.dtype, rows: int, args: list) -> None:
    """Calls construction entry point ``entry`` over all rows on up to
    ``torch.get_num_threads()`` threads."""
    call(
        entry,
        dtype,
        *args,
        threads=threads_for(rows // _MIN_ROWS_PER_THREAD),
        needed_by=_NEEDED_BY)


def _layout(P: Tensor, sizes: Tuple[int, int], component_of_axis: Sequence[int]) -> list:
    """The ``_ROW_LAYOUT`` arguments of :mod:`.prototypes` for P (2, *rows, K)."""
    kernel_count = P.shape[-1]
    rows = P.numel() // (2 * kernel_count)
    comp0, comp1 = component_of_axis
    return [
        rows, kernel_count, sizes[0], sizes[1], comp0, comp1,
        float(sizes[comp0] // 2),
        float(sizes[comp1] // 2)
    ]


# Saved axis-1 profiles (see dense_forward) at most this many kernel sizes: bounds the memory
# a layer holds between forward and backward.
SAVED_PROFILES_MAX_RATIO = 1.5


def saved_profiles_size(sizes: Tuple[int, int], kernel_count: int, dtype: torch.dtype) -> int:
    """Scalars per kernel row of the axis-1 profiles dense_forward can save: padded profiles
    (whole vectors of the C code) and their sums."""
    per_vector = lanes(dtype)
    return kernel_count * (-(-sizes[1] // per_vector) * per_vector + 1)


def dense_forward(weight: Tensor,
                  P: Tensor,
                  SIG: Tensor,
                  sizes: Tuple[int, int],
                  component_of_axis: Sequence[int],
                  sig_floor: float,
                  version: str,
                  save_profiles: bool = False,
                  *,
                  eps: float,
                  exponent_floor: float) -> Tuple[Tensor, Optional[Tensor]]:
    """``max`` / ``gauss`` kernel (*rows, S0, S1) from weight (*rows, K), P and SIG
    (2, *rows, K); ``component_of_axis[a]``: the P component giving kernel axis ``a``;
    ``sig_floor``, ``eps``, ``exponent_floor``: the width floor, normalisation epsilon and
    Gaussian exponent floor. ``save_profiles``: also return the axis-1 profiles for
    :func:`dense_backward` (which then evaluates only axis 0's), else None."""
    code = _version_code(version, PROFILE_VERSIONS)
    _check_constants(eps, exponent_floor)
    _check_shapes(weight, P, SIG, sizes)
    weight, P, SIG = _for_c(weight.dtype, weight, P, SIG)
    rows = weight.numel() // weight.shape[-1]
    kernel = weight.new_empty((*weight.shape[:-1], *sizes))
    saved = None
    if save_profiles:
        saved = weight.new_empty(rows * saved_profiles_size(sizes, weight.shape[-1], weight.dtype))
        if saved.data_ptr() % VECTOR_BYTES:  # the C code reads it as whole vectors
            raise RuntimeError(f'mmdcls: profile buffer at {saved.data_ptr():#x} is not '
                               f'{VECTOR_BYTES}-byte aligned')
    _run('dense_forward', weight.dtype, rows, [
        weight.data_ptr(),
        P.data_ptr(),
        SIG.data_ptr(),
        kernel.data_ptr(), None if saved is None else saved.data_ptr(),
        *_layout(P, sizes, component_of_axis),
        float(sig_floor),
        float(eps),
        float(exponent_floor), code
    ])
    return kernel, saved


def dense_backward(weight: Tensor,
                   P: Tensor,
                   SIG: Tensor,
                   grad_kernel: Tensor,
                   sizes: Tuple[int, int],
                   component_of_axis: Sequence[int],
                   sig_floor: float,
                   version: str,
                   saved: Optional[Tensor] = None,
                   *,
                   eps: float,
                   exponent_floor: float) -> Tuple[Tensor, Tensor, Tensor]:
    """Gradients (weight, P, SIG) of :func:`dense_forward` (with the same constants) from
    d loss / d kernel; ``saved``: the profiles it returned, if any."""
    code = _version_code(version, PROFILE_VERSIONS)
    _check_constants(eps, exponent_floor)
    _check_shapes(weight, P, SIG, sizes, grad_kernel)
    weight, P, SIG, grad_kernel, saved = _for_c(weight.dtype, weight, P, SIG, grad_kernel, saved)
    grads = [torch.empty_like(t) for t in (weight, P, SIG)]
    _run('dense_backward', weight.dtype,
         weight.numel() // weight.shape[-1], [
             weight.data_ptr(),
             P.data_ptr(),
             SIG.data_ptr(),
             grad_kernel.data_ptr(), None if saved is None else saved.data_ptr(),
             *(g.data_ptr() for g in grads), *_layout(P, sizes, component_of_axis),
             float(sig_floor),
             float(eps),
             float(exponent_floor), code
         ])
    return tuple(grads)


def bilinear_forward(weight: Tensor, P: Tensor, sizes: Tuple[int, int],
                     component_of_axis: Sequence[int], version: str, *, eps: float) -> Tensor:
    """``v0`` / ``v1`` kernel (*rows, S0, S1) from weight (*rows, K) and P (2, *rows, K);
    ``eps``: the normalisation epsilon of ``v1``."""
    code = _version_code(version, BILINEAR_VERSIONS)
    _check_constants(eps)
    _check_shapes(weight, P, None, sizes)
    weight, P = _for_c(weight.dtype, weight, P)
    rows = weight.numel() // weight.shape[-1]
    kernel = weight.new_empty((*weight.shape[:-1], *sizes))
    _run('bilinear_forward', weight.dtype, rows, [
        weight.data_ptr(),
        P.data_ptr(),
        kernel.data_ptr(), *_layout(P, sizes, component_of_axis),
        float(eps), code
    ])
    return kernel


def bilinear_backward(weight: Tensor, P: Tensor, grad_kernel: Tensor, sizes: Tuple[int, int],
                      component_of_axis: Sequence[int], version: str, *,
                      eps: float) -> Tuple[Tensor, Tensor]:
    """Gradients (weight, P) of :func:`bilinear_forward` (with the same ``eps``) from
    d loss / d kernel."""
    code = _version_code(version, BILINEAR_VERSIONS)
    _check_constants(eps)
    _check_shapes(weight, P, None, sizes, grad_kernel)
    weight, P, grad_kernel = _for_c(weight.dtype, weight, P, grad_kernel)
    grads = [torch.empty_like(t) for t in (weight, P)]
    _run('bilinear_backward', weight.dtype,
         weight.numel() // weight.shape[-1], [
             weight.data_ptr(),
             P.data_ptr(),
             grad_kernel.data_ptr(), *(g.data_ptr()
                                       for g in grads), *_layout(P, sizes, component_of_axis),
             float(eps), code
         ])
    return tuple(grads)
