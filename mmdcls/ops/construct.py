"""Kernel construction for DCLS: sparse weights at real-valued positions -> dense kernel.

Every interpolation of the official ``dcls`` 0.1.1 package factorises per axis: an element's
contribution to the dense kernel is an outer product of 1-D profiles, one per kernel axis,
normalised (except for ``v0``) by the product of the profiles' sums. So instead of the official
``kernel_count x kH x kW`` tensor per channel, the dense kernel is a batched contraction of small
per-axis profiles, computed in row chunks and recomputed (not stored) for the backward pass:

    kernel[r, a, b] = sum_k scale[r, k] * A[r, k, a] * B[r, k, b],   r = (out, in / groups)

Conventions copied exactly from ``dcls`` 0.1.1 (see ``position_axes``):

* component ``i`` of ``P`` is offset by ``dilated_kernel_size[i] // 2`` and clamped to
  ``+- dilated_kernel_size[i] // 2``;
* ``v0`` (bilinear) maps ``P[0]`` to kernel rows in 2-D; ``v1``, ``gauss`` and ``max`` map the
  components in reverse (``P[0]`` to the last kernel axis). Square kernels hide the difference,
  rectangular ones do not;
* ``gauss`` uses sigma = |SIG| + 0.27, ``max`` (triangle) half-width |SIG| + 1, and both, like
  ``v1``, divide by (sum of the interpolation weights + 1e-7).
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

VERSIONS = ('v0', 'v1', 'gauss', 'max')
#: versions with a learnable width ``SIG``
VERSIONS_WITH_SIGMA = ('gauss', 'max')
_SIGMA_FLOOR = {'gauss': 0.27, 'max': 1.0}
_NORMALISATION_EPS = 1e-7


def check_version(version: str) -> None:
    if version not in VERSIONS:
        raise ValueError(f'version must be one of {VERSIONS}, but got {version!r}')


def position_axes(version: str, ndim: int) -> Tuple[int, ...]:
    """Kernel axis that each component of ``P`` (and ``SIG``) indexes, as in ``dcls`` 0.1.1."""
    check_version(version)
    if version == 'v0':
        return {1: (0,), 2: (0, 1), 3: (0, 2, 1)}[ndim]
    return tuple(reversed(range(ndim)))


def _axis_profile(offset: Tensor, sigma: Optional[Tensor], version: str) -> Tensor:
    """Interpolation weights of ``v1`` / ``gauss`` / ``max`` on one kernel axis, in place.

    Args:
        offset: (R, K, G) grid index minus position; overwritten.
        sigma: (R, K, 1) widths (floor added) for ``gauss`` / ``max``, else None.
    Returns:
        (R, K, G) profile (the storage of ``offset``).
    """
    if version == 'v1':
        return offset.abs_().neg_().add_(1).relu_()
    if version == 'max':
        return offset.abs_().neg_().add_(sigma).relu_()
    return offset.div_(sigma).square_().mul_(-0.5).exp_()


def _axis_derivatives(offset: Tensor, profile: Tensor, sigma: Optional[Tensor],
                      version: str) -> Tuple[Tensor, Optional[Tensor]]:
    """d profile / d position and d profile / d sigma, with torch's subgradients at kinks
    (``abs'(0) = 0``, ``relu'(0) = 0``) so that gradients match autograd through ``dcls``."""
    if version == 'gauss':
        d_position = profile * offset / sigma.square()
        return d_position, d_position * offset / sigma
    active = (profile > 0).to(profile.dtype)
    d_position = offset.sign() * active
    return d_position, (active if version == 'max' else None)


def _outer(profiles: Sequence[Tensor], rows: int, kernel_count: int, like: Tensor) -> Tensor:
    """(R, K, prod G) outer product over the axes of ``profiles`` (ones for no axis)."""
    if not profiles:
        return like.new_ones(rows, kernel_count, 1)
    result = profiles[0]
    for profile in profiles[1:]:
        result = (result.unsqueeze(-1) * profile.unsqueeze(-2)).flatten(2)
    return result


class _SeparableKernel:
    """Per-axis profiles of one chunk of rows for ``v1`` / ``gauss`` / ``max``."""

    def __init__(self, P: Tensor, SIG: Optional[Tensor], sizes: Sequence[int], version: str,
                 keep_offsets: bool):
        ndim = len(sizes)
        self.axes = position_axes(version, ndim)
        self.profiles: List[Optional[Tensor]] = [None] * ndim
        self.offsets: List[Optional[Tensor]] = [None] * ndim
        self.sigmas: List[Optional[Tensor]] = [None] * ndim
        self.sums: List[Optional[Tensor]] = [None] * ndim
        for component, axis in enumerate(self.axes):
            position = (P[component] + sizes[component] // 2).unsqueeze(-1)
            grid = torch.arange(sizes[axis], device=P.device, dtype=P.dtype)
            offset = grid - position
            sigma = None
            if version in VERSIONS_WITH_SIGMA:
                sigma = (SIG[component].abs() + _SIGMA_FLOOR[version]).unsqueeze(-1)
            if keep_offsets:
                self.offsets[axis] = offset.clone()
            profile = _axis_profile(offset, sigma, version)
            self.profiles[axis], self.sigmas[axis] = profile, sigma
            self.sums[axis] = profile.sum(-1)
        self.normaliser = self.sums[0]
        for total in self.sums[1:]:
            self.normaliser = self.normaliser * total
        self.normaliser = self.normaliser + _NORMALISATION_EPS

    def kernel(self, weight: Tensor, out: Tensor) -> None:
        rows, kernel_count = weight.shape
        scale = (weight / self.normaliser).unsqueeze(-1)
        if len(self.profiles) == 1:
            leading = scale
        else:
            leading = _outer(self.profiles[:-1], rows, kernel_count, weight) * scale
        torch.bmm(leading.transpose(1, 2), self.profiles[-1],
                  out=out.view(rows, -1, out.shape[-1]))

    def backward(self, weight: Tensor, grad: Tensor, version: str):
        """Gradients (weight, P, SIG) of one chunk given d loss / d kernel ``grad`` (R, *G)."""
        rows, kernel_count = weight.shape
        ndim = len(self.profiles)
        scale = weight / self.normaliser
        grad_scale = None
        grad_profiles = []
        for axis in range(ndim):
            others = _outer(self.profiles[:axis] + self.profiles[axis + 1:], rows, kernel_count,
                            weight)
            grad_axis = grad.movedim(axis + 1, 1).reshape(rows, grad.shape[axis + 1], -1)
            partial = torch.bmm(grad_axis, others.transpose(1, 2)).transpose(1, 2)  # (R, K, G)
            if grad_scale is None:
                grad_scale = (partial * self.profiles[axis]).sum(-1)
            grad_profiles.append(partial)
        grad_weight = grad_scale / self.normaliser
        grad_normaliser = -grad_scale * scale / self.normaliser
        grad_P = weight.new_empty(ndim, rows, kernel_count)
        grad_SIG = weight.new_empty(ndim, rows, kernel_count) if version in \
            VERSIONS_WITH_SIGMA else None
        for component, axis in enumerate(self.axes):
            rest = grad_normaliser
            for other in range(ndim):
                if other != axis:
                    rest = rest * self.sums[other]
            grad_profile = grad_profiles[axis].mul_(scale.unsqueeze(-1)).add_(rest.unsqueeze(-1))
            d_position, d_sigma = _axis_derivatives(self.offsets[axis], self.profiles[axis],
                                                    self.sigmas[axis], version)
            grad_P[component] = (grad_profile * d_position).sum(-1)
            if grad_SIG is not None:
                grad_SIG[component] = (grad_profile * d_sigma).sum(-1)
        return grad_weight, grad_P, grad_SIG


def _chunk_rows(rows: int, kernel_count: int, sizes: Sequence[int], version: str) -> int:
    """Rows per chunk so that a chunk's temporaries stay near the size of the whole kernel."""
    per_row_kernel = 1
    for s in sizes:
        per_row_kernel *= s
    if version == 'v0':
        # a few (K, 2**ndim) tensors, int64 tap indices counted twice.
        per_row_temp = 8 * kernel_count * 2 ** len(sizes)
    else:
        # backward holds ~4 profile-sized (K, G) tensors per axis, plus 3-D outer products.
        per_row_temp = 4 * kernel_count * sum(sizes)
        if len(sizes) == 3:
            per_row_temp += 2 * kernel_count * max(sizes[0] * sizes[1], sizes[1] * sizes[2])
    return max(1, min(rows, rows * per_row_kernel // per_row_temp))


class _ConstructChunked(torch.autograd.Function):
    """Construction in row chunks; backward recomputes each chunk's interpolation and applies
    the analytic gradient, so no grid-sized intermediate outlives its chunk."""

    @staticmethod
    def forward(ctx, weight, P, SIG, sizes, version, chunk):
        strategy = _BilinearKernel if version == 'v0' else _SeparableKernel
        rows = weight.shape[0]
        kernel = weight.new_empty((rows, *sizes))
        for start in range(0, rows, chunk):
            part = slice(start, start + chunk)
            sig = None if SIG is None else SIG[:, part]
            strategy(P[:, part], sig, sizes, version, keep_offsets=False).kernel(
                weight[part], kernel[part])
        ctx.save_for_backward(weight, P, SIG)
        ctx.sizes, ctx.version, ctx.chunk, ctx.strategy = sizes, version, chunk, strategy
        return kernel

    @staticmethod
    def backward(ctx, grad_kernel):
        weight, P, SIG = ctx.saved_tensors
        grad_weight = torch.empty_like(weight)
        grad_P = torch.empty_like(P)
        grad_SIG = None if SIG is None else torch.empty_like(SIG)
        grad_kernel = grad_kernel.contiguous()
        for start in range(0, weight.shape[0], ctx.chunk):
            part = slice(start, start + ctx.chunk)
            sig = None if SIG is None else SIG[:, part]
            strategy = ctx.strategy(P[:, part], sig, ctx.sizes, ctx.version, keep_offsets=True)
            g_weight, g_P, g_SIG = strategy.backward(weight[part], grad_kernel[part],
                                                     ctx.version)
            grad_weight[part] = g_weight
            grad_P[:, part] = g_P
            if grad_SIG is not None:
                grad_SIG[:, part] = g_SIG * sig.sign()  # d |SIG| / d SIG
        return grad_weight, grad_P, grad_SIG, None, None, None


class _BilinearKernel:
    """``v0`` for one chunk of rows: each element scatters onto the 2**ndim grid points around
    it, so memory and time are O(R * K * 2**ndim) with no grid-sized tensor per element.

    Taps outside the kernel are dropped, as in ``dcls`` (a position at the clamp limit puts all
    its weight on the last grid point).
    """

    def __init__(self, P: Tensor, SIG: Optional[Tensor], sizes: Sequence[int], version: str,
                 keep_offsets: bool):
        ndim = len(sizes)
        rows, kernel_count = P.shape[1:]
        strides = [1] * ndim
        for axis in range(ndim - 2, -1, -1):
            strides[axis] = strides[axis + 1] * sizes[axis + 1]
        self.components = position_axes('v0', ndim)
        self.tap_weights, self.tap_signs = [], []
        index, valid = None, None
        pair = torch.arange(2, device=P.device)
        for component, axis in enumerate(self.components):
            position = P[component] + sizes[component] // 2
            lower = position.floor()
            frac = position - lower
            taps = lower.long().unsqueeze(-1) + pair  # (R, K, 2)
            # Each component gets its own trailing tap dimension: (R, K, 2, 2, ...).
            shape = (rows, kernel_count) + (1,) * component + (2,) + (1,) * (ndim - 1 - component)
            inside = ((taps >= 0) & (taps < sizes[axis])).view(shape)
            self.tap_weights.append(torch.stack((1 - frac, frac), -1).view(shape))
            self.tap_signs.append(pair.to(P.dtype).mul(2).sub(1).view(shape[2:]))
            term = (taps * strides[axis]).view(shape)
            index = term if index is None else index + term
            valid = inside if valid is None else valid & inside
        self.valid = valid
        self.index = torch.where(valid, index, 0).reshape(rows, -1)

    def _coefficients(self, skip: int = -1) -> Tensor:
        result = None
        for component, tap_weight in enumerate(self.tap_weights):
            if component != skip:
                result = tap_weight if result is None else result * tap_weight
        return result

    def kernel(self, weight: Tensor, out: Tensor) -> None:
        rows, kernel_count = weight.shape
        value = self._coefficients() * weight.view(rows, kernel_count, *[1] * len(
            self.tap_weights))
        value = torch.where(self.valid, value, 0).reshape(rows, -1)
        out.zero_().view(rows, -1).scatter_add_(1, self.index, value)

    def backward(self, weight: Tensor, grad: Tensor, version: str):
        rows, kernel_count = weight.shape
        ndim = len(self.tap_weights)
        tapped = grad.reshape(rows, -1).gather(1, self.index).view(self.valid.shape)
        tapped = torch.where(self.valid, tapped, 0)
        grad_weight = (tapped * self._coefficients()).flatten(2).sum(-1)
        weighted = tapped * weight.view(rows, kernel_count, *[1] * ndim)
        grad_P = weight.new_empty(ndim, rows, kernel_count)
        for component in range(ndim):
            # d frac / d P = 1 (floor has zero gradient), d tap weight / d frac = -1, +1.
            partial = weighted * self.tap_signs[component]
            if ndim > 1:
                partial = partial * self._coefficients(skip=component)
            grad_P[component] = partial.flatten(2).sum(-1)
        return grad_weight, grad_P, None


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
        (out, in / groups, *dilated_kernel_size) kernel in the dtype of the parameters
        (float32 when they are half precision: construction never runs under autocast).
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
    with torch.autocast(device_type=weight.device.type, enabled=False):
        dtype = torch.promote_types(weight.dtype, torch.float32)
        flat_weight = weight.to(dtype).reshape(rows, kernel_count)
        flat_P = P.to(dtype).reshape(ndim, rows, kernel_count)
        flat_SIG = None if SIG is None else SIG.to(dtype).reshape(ndim, rows, kernel_count)
        chunk = _chunk_rows(rows, kernel_count, sizes, version)
        kernel = _ConstructChunked.apply(flat_weight, flat_P, flat_SIG, sizes, version, chunk)
    return kernel.view(out_channels, in_per_group, *sizes)
