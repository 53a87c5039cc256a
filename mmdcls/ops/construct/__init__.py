"""Kernel construction for DCLS: sparse weights at real-valued positions -> dense kernel.

Every interpolation of the official ``dcls`` 0.1.1 package factorises per axis: an element's
contribution to the dense kernel is an outer product of 1-D profiles, one per kernel axis,
normalised (except for ``v0``) by the product of the profiles' sums. The official code instead
materialises a ``kernel_count x kH x kW`` tensor per channel. Here:

* ``v0`` / ``v1`` (bilinear): each element has two taps per axis; its 2**ndim taps are
  scattered into the kernel (O(R * K * 2**ndim), R = out * in / groups rows), without masks
  when every position is inside the kernel (always after clamping);
* ``max`` (triangle) and ``gauss``: full per-axis profiles contracted with ``bmm``:
  ``kernel[r, a, b] = sum_k scale[r, k] * A[r, k, a] * B[r, k, b]``.

The forward pass runs in row chunks that keep its temporaries within 1.5x the kernel's size;
the backward pass recomputes a chunk's interpolation and applies the analytic gradient
instead of storing autograd graphs.

2-D kernels of float32 / float64 CPU tensors (ConvNeXt, ResNet) go instead through the fused C
construction of :mod:`mmdcls.ops.native` (same arithmetic row by row in cache, no
temporaries; compiled on first use, ``MMDCLS_NATIVE=0`` disables it) when it is available;
the torch path here serves everything else and machines without a C compiler, and both are
tested against ``dcls``.

Conventions copied exactly from ``dcls`` 0.1.1 (see ``position_axes``):

* component ``i`` of ``P`` is offset by ``dilated_kernel_size[i] // 2`` and clamped to
  ``+- dilated_kernel_size[i] // 2``;
* ``v0`` maps ``P[0]`` to kernel rows in 2-D (and 3-D components to axes (0, 2, 1)); ``v1``,
  ``gauss`` and ``max`` map the components in reverse (``P[0]`` to the last kernel axis).
  Square kernels hide the difference, rectangular ones do not;
* ``gauss`` uses sigma = |SIG| + 0.27, ``max`` half-width |SIG| + 1, and both, like ``v1``,
  divide by (sum of the interpolation weights + 1e-7);
* gradients at the kinks are autograd's through ``dcls``: ``abs'(0) = relu'(0) = 0``, but
  ``v0`` differentiates ``P - floor(P)`` (slope 1 also on grid points).

Modules: :mod:`.conventions` (the above as code), :mod:`.bilinear` (``v0`` / ``v1`` in torch),
:mod:`.profiles` (``max`` / ``gauss`` in torch), :mod:`.fused_c` (the autograd Function around
the C construction of :mod:`mmdcls.ops.kernels.cpu.construction`); here :func:`construct_kernel`
checks the arguments and picks one of them.
"""
import math
from typing import Optional, Sequence

import torch
from torch import Tensor

from ..graph_state import needs_grad, records_graph
from ..kernels import cpu
from ..kernels import triton as triton_kernels
from ..kernels.triton.construct import construct_kernel_triton, supports_sizes
from ..torch_compat import eager_under_old_dynamo, is_autocast_enabled
from .bilinear import _ConstructBilinear
from .conventions import VERSIONS, VERSIONS_WITH_SIGMA, check_version, position_axes
from .fused_c import _ConstructNative2d
from .profiles import _ConstructKernel

__all__ = ['construct_kernel', 'VERSIONS', 'VERSIONS_WITH_SIGMA', 'position_axes', 'check_version']


def _all_finite(*tensors: Optional[Tensor]) -> bool:
    """Whether every element of the tensors is finite: one sum each (NaN or inf anywhere makes
    it non-finite). A finite sum that overflows reads as non-finite too, which only sends the
    call to the torch construction (exact as well); summing in the tensors' own dtype is ~5x
    cheaper than in float64 at ConvNeXt sizes."""
    return math.isfinite(sum(float(t.detach().sum()) for t in tensors if t is not None))


def _poison_non_finite(weight: Tensor, P: Tensor, SIG: Optional[Tensor]) -> Tensor:
    """``weight`` made NaN at every element whose position or width is NaN or infinite
    (``x * 0`` is NaN exactly for those), differentiably. ``dcls`` propagates most such values
    by its arithmetic, but maps some to a finite kernel (an infinitely far ``v1`` / ``gauss`` /
    ``max`` position contributes 0, an infinite ``gauss`` width a flat profile), which would
    hide a diverging run: here they all make the element's kernel, output channel and
    gradients NaN."""
    poison = (P * 0).sum(0)
    if SIG is not None:
        poison = poison + (SIG * 0).sum(0)
    return weight + poison


def _triton_constructs(weight: Tensor, sizes: Sequence[int]) -> bool:
    """Whether the Triton construction (:mod:`mmdcls.ops.kernels.triton.construct`: one launch
    forward, one backward) builds this kernel: float32 CUDA parameters, 1-D / 2-D kernels of a
    supported size, triton usable. Elsewhere the torch construction runs."""
    if weight.device.type != 'cuda' or weight.dtype != torch.float32:
        return False
    return supports_sizes(sizes) and triton_kernels.usable_on(weight.device)[0]


@eager_under_old_dynamo
def construct_kernel(weight: Tensor, P: Tensor, SIG: Optional[Tensor],
                     dilated_kernel_size: Sequence[int], version: str) -> Tensor:
    """Builds the dense DCLS kernel.

    Args:
        weight: (out, in / groups, K) element weights.
        P: (ndim, out, in / groups, K) positions, 0 = kernel centre.
        SIG: like ``P`` for ``gauss`` / ``max`` (widths), else None.
        dilated_kernel_size: ndim sizes of the dense kernel.
        version: one of ``VERSIONS``.
    Returns:
        (out, in / groups, *dilated_kernel_size) kernel in the dtype of the parameters.
        Half-precision parameters are built in float32 and the kernel cast to their dtype;
        under autocast the kernel stays float32 (the convolution casts it).

    Non-finite parameters (eager mode) are never dropped: a NaN or infinite weight, position
    or width makes its element's kernel entries, and so its output channel and the gradients
    that depend on it, non-finite, as in ``dcls`` (and NaN also where ``dcls``'s arithmetic
    would map an infinite position or width to a finite kernel: :func:`_poison_non_finite`).
    On CPU, parameters with a non-finite value take the torch construction (whose arithmetic
    is ``dcls``'s operation by operation) rather than the C one, which is built for finite
    values: one reduction per parameter checks that. Other devices, JIT traces and
    ``torch.compile`` never read values back to the host (no synchronisation, one graph):
    there the NaN marking runs unconditionally.
    """
    check_version(version)
    sizes = tuple(int(s) for s in dilated_kernel_size)
    ndim = len(sizes)
    if ndim not in (1, 2, 3):
        raise ValueError(f'dilated_kernel_size must have 1, 2 or 3 entries, got {sizes}')
    if weight.dim() != 3:
        raise ValueError(f'weight must have shape (out, in / groups, kernel_count), '
                         f'got {tuple(weight.shape)}')
    expected = (ndim, *weight.shape)
    if tuple(P.shape) != expected:
        raise ValueError(f'P must have shape {expected} (ndim, out, in / groups, kernel_count), '
                         f'got {tuple(P.shape)}')
    if version in VERSIONS_WITH_SIGMA:
        if SIG is None or tuple(SIG.shape) != expected:
            got = None if SIG is None else tuple(SIG.shape)
            raise ValueError(f'version {version!r} needs SIG of shape {expected}, got {got}')
    elif SIG is not None:
        raise ValueError(f'version {version!r} takes no SIG (only {VERSIONS_WITH_SIGMA} do)')
    out_channels, in_per_group, kernel_count = weight.shape
    rows = out_channels * in_per_group
    padded_entries = rows
    for s in sizes:
        padded_entries = padded_entries * (s + 1)
    if version in ('v0', 'v1') and padded_entries >= 2**31:
        # the bilinear paths index the (padded) flat kernel with int32
        raise ValueError(f'kernel of {rows} x {sizes} entries is too large for the bilinear '
                         f'construction (out * in / groups * prod(dilated_kernel_size + 1) '
                         f'must be < 2**31)')
    # host reads (a finiteness check, the bilinear path's inside test) only in eager CPU calls:
    # elsewhere they would synchronise the device or break a traced graph
    host_reads = weight.device.type == 'cpu' and not records_graph()
    finite = _all_finite(weight, P, SIG) if host_reads else False
    if (finite and P.dtype == weight.dtype and (SIG is None or SIG.dtype == weight.dtype)
            and cpu.usable(weight, sizes)):
        # C code: autocast does not apply; float32 / float64 parameters as they are
        grad_needed = needs_grad(weight, P, SIG)
        return _ConstructNative2d.apply(weight, P, SIG, sizes, version, grad_needed)
    if not finite:
        weight = _poison_non_finite(weight, P, SIG)
    device_type = weight.device.type
    with torch.autocast(device_type=device_type, enabled=False):
        dtype = torch.promote_types(weight.dtype, torch.float32)
        flat_weight = weight.to(dtype).reshape(rows, kernel_count)
        flat_P = P.to(dtype).reshape(ndim, rows, kernel_count)
        flat_SIG = None if SIG is None else SIG.to(dtype).reshape(ndim, rows, kernel_count)
        if _triton_constructs(flat_weight, sizes):
            kernel = construct_kernel_triton(
                flat_weight.view(weight.shape), flat_P.view(P.shape),
                None if SIG is None else flat_SIG.view(SIG.shape), sizes, version)
        elif version in ('v0', 'v1'):
            kernel = _ConstructBilinear.apply(flat_weight, flat_P, sizes, version, host_reads)
        else:
            kernel = _ConstructKernel.apply(flat_weight, flat_P, flat_SIG, sizes, version)
    kernel = kernel.view(out_channels, in_per_group, *sizes)
    if kernel.dtype != weight.dtype and not is_autocast_enabled(device_type):
        # half-precision parameters: built in float32, convolved in their own dtype
        kernel = kernel.to(weight.dtype)
    return kernel
