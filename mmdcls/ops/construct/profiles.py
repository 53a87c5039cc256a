"""``max`` (triangle) and ``gauss`` construction in torch: full per-axis profiles contracted
with ``bmm``, ``kernel[r, a, b] = sum_k scale[r, k] * A[r, k, a] * B[r, k, b]``, in row chunks
that keep the forward's temporaries within 1.5x the kernel's size. :class:`_ConstructKernel` is
the autograd Function; its backward recomputes a chunk's profiles (:class:`_Interpolation`)
and applies the analytic gradient instead of storing autograd graphs."""
import functools
import math
from typing import List, Sequence, Tuple

import torch
from torch import Tensor

from .conventions import GAUSS_EXPONENT_FLOOR, NORMALISATION_EPS, SIGMA_FLOOR, outer, position_axes


def _axis_profile(offset: Tensor, sigma: Tensor, version: str, in_place: bool = False) -> Tensor:
    """``max`` / ``gauss`` weights on one kernel axis (``v0`` / ``v1``: :mod:`.bilinear`).
    offset ([ndim,] R, K, G): grid index minus position; sigma ([ndim,] R, K, 1): widths with
    their floor. ``in_place``: overwrite ``offset`` with the profile (forward passes)."""
    if version == 'max':
        profile = offset.abs_() if in_place else offset.abs()
        return profile.neg_().add_(sigma).relu_()
    profile = offset.div_(sigma) if in_place else offset / sigma
    return profile.square_().mul_(-0.5).clamp_min_(GAUSS_EXPONENT_FLOOR).exp_()


class _Interpolation:
    """Backward of ``max`` / ``gauss`` for one chunk of rows: recomputes the full per-axis
    profiles (R, K, G) and applies the analytic gradient (forward:
    :func:`_dense_profiles_kernel`)."""

    def __init__(self, P: Tensor, SIG: Tensor, sizes: Sequence[int], version: str):
        ndim = len(sizes)
        self.version, self.sizes = version, tuple(sizes)
        self.axes = position_axes(version, ndim)
        offsets, sigma = _offsets_and_sigmas(P, SIG, self.sizes, version)
        if isinstance(offsets, list):
            profiles = [_axis_profile(o, s, version) for o, s in zip(offsets, sigma)]
        else:  # one (ndim, R, K, G) tensor
            profiles = _axis_profile(offsets, sigma, version).unbind(0)
            offsets = offsets.unbind(0)
        sigmas = sigma.unbind(0)
        # per kernel axis
        self.profiles = [profiles[self.axes.index(axis)] for axis in range(ndim)]
        self.offsets = [offsets[self.axes.index(axis)] for axis in range(ndim)]
        self.sigmas = [sigmas[self.axes.index(axis)] for axis in range(ndim)]
        self.sums = [profile.sum(-1) for profile in self.profiles]
        self.normaliser = self.sums[0]
        for total in self.sums[1:]:
            self.normaliser = self.normaliser * total
        self.normaliser = self.normaliser + NORMALISATION_EPS

    def _partials(self, grad: Tensor) -> List[Tensor]:
        """For each axis d: sum over the other axes of grad * their profiles, (R, K, G_d).
        grad: this chunk's rows of d loss / d kernel (R, *G)."""
        rows, kernel_count = self.profiles[0].shape[:2]
        partials = []
        for axis in range(len(self.sizes)):
            others = self.profiles[:axis] + self.profiles[axis + 1:]
            grad_axis = grad.movedim(axis + 1, 1).reshape(rows, self.sizes[axis], -1)
            if others:
                other = outer(others).flatten(2)
                partial = torch.bmm(grad_axis, other.transpose(1, 2)).transpose(1, 2)
            else:
                partial = grad_axis.transpose(1, 2).expand(rows, kernel_count, -1)
            partials.append(partial)
        return partials

    def backward(self, weight: Tensor, grad: Tensor):
        """Gradients (weight, P, |SIG|) of this chunk from its rows of d loss / d kernel."""
        rows, kernel_count = weight.shape
        ndim = len(self.sizes)
        scale = weight / self.normaliser
        partials = self._partials(grad)
        grad_scale = (partials[0] * self.profiles[0]).sum(-1)
        grad_weight = grad_scale / self.normaliser
        grad_normaliser = -grad_scale * scale / self.normaliser
        grad_P = weight.new_empty(ndim, rows, kernel_count)
        grad_SIG = weight.new_empty(ndim, rows, kernel_count)
        for component, axis in enumerate(self.axes):
            rest = grad_normaliser
            for other in range(ndim):
                if other != axis:
                    rest = rest * self.sums[other]
            # d loss / d profile (R, K, G)
            grad_profile = torch.addcmul(rest.unsqueeze(-1), partials[axis], scale.unsqueeze(-1))
            offset, profile, sigma = self.offsets[axis], self.profiles[axis], self.sigmas[axis]
            if self.version == 'gauss':
                # d profile / d position = profile * offset / sigma^2, d / d sigma that
                # times offset / sigma
                weighted = grad_profile.mul_(profile).mul_(offset)
                sigma_sq = sigma.square().squeeze(-1)
                grad_P[component] = weighted.sum(-1) / sigma_sq
                grad_SIG[component] = weighted.mul_(offset).sum(-1) / (sigma_sq * sigma.squeeze(-1))
            else:
                # triangle: d / d position = sign(offset), d / d sigma = 1 where the profile
                # is positive; autograd's subgradients through dcls at the kinks are 0
                active = grad_profile.mul_(profile > 0)
                grad_SIG[component] = active.sum(-1)
                grad_P[component] = active.mul_(offset.sign()).sum(-1)
        return grad_weight, grad_P, grad_SIG


def _backward_chunk_rows(rows: int, kernel_count: int, sizes: Sequence[int]) -> int:
    """Backward rows per chunk of :class:`_Interpolation`: its ~7 live profile-sized (K, G)
    tensors per row (and for 3-D the outer products of the leading axes) within 4 kernel
    sizes or 16 MiB, whichever is larger (small next to the convolution's own gradients)."""
    per_row_temp = 7 * kernel_count * max(sizes)
    if len(sizes) > 2:
        per_row_temp += 2 * kernel_count * math.prod(sorted(sizes)[1:])
    budget = max(4 * rows * math.prod(sizes), (16 << 20) // 4)  # float32 entries
    return max(1, min(rows, budget // per_row_temp))


def _dense_chunk_rows(rows: int, kernel_count: int, sizes: Sequence[int]) -> int:
    """Forward rows per chunk of :func:`_dense_profiles_kernel`: one (K, G) profile per axis
    (and for 3-D the (K, G0 * G1) outer product) per row, within 1.5x the kernel's size."""
    per_row_temp = kernel_count * (sum(sizes) + 4)
    if len(sizes) > 2:
        per_row_temp += kernel_count * math.prod(sizes[:-1])
    return max(1, min(rows, 3 * rows * math.prod(sizes) // (2 * per_row_temp)))


@functools.lru_cache(maxsize=64)
def _grid(size: int, device, dtype) -> Tensor:
    return torch.arange(size, device=device, dtype=dtype)


def _offsets_and_sigmas(P: Tensor, SIG: Tensor, sizes: Tuple[int, ...], version: str):
    """Per component c of P: (grid - position) offsets (R, K, G) on the axis it indexes and
    widths with their floor (R, K, 1). Square kernels get them as one (ndim, R, K, G) tensor
    (indexed by component), halving the number of ops of the profile chains."""
    ndim = len(sizes)
    axes = position_axes(version, ndim)
    sigma = (SIG.abs() + SIGMA_FLOOR[version]).unsqueeze(-1)
    if len(set(sizes)) == 1:
        position = (P + sizes[0] // 2).unsqueeze(-1)
        return _grid(sizes[0], P.device, P.dtype) - position, sigma
    offsets = [
        _grid(sizes[axis], P.device, P.dtype) - (P[c] + sizes[c] // 2).unsqueeze(-1)
        for c, axis in enumerate(axes)
    ]
    return offsets, sigma


def _dense_profiles_kernel(weight: Tensor, P: Tensor, SIG: Tensor, sizes: Tuple[int, ...],
                           version: str, out: Tensor) -> None:
    """``max`` / ``gauss`` forward of one chunk into ``out`` (R, *sizes): full per-axis profiles
    computed in place by :func:`_axis_profile`, contracted with bmm.
    Keeps nothing for backward, which recomputes through :class:`_Interpolation`."""
    rows, kernel_count = weight.shape
    ndim = len(sizes)
    offsets, sigma = _offsets_and_sigmas(P, SIG, sizes, version)
    if isinstance(offsets, list):
        by_component = [_axis_profile(o, s, version, in_place=True) for o, s in zip(offsets, sigma)]
    else:
        stacked = _axis_profile(offsets, sigma, version, in_place=True)
        # select, not unbind: unbind's views may not be modified in place (mul_ below) when a
        # JIT trace replays these ops with autograd on
        by_component = [stacked[c] for c in range(ndim)]
    axes = position_axes(version, ndim)
    profiles = [by_component[axes.index(axis)] for axis in range(ndim)]
    normaliser = profiles[0].sum(-1)
    for profile in profiles[1:]:
        normaliser = normaliser * profile.sum(-1)
    scale = (weight / (normaliser + NORMALISATION_EPS)).unsqueeze(-1)
    if ndim == 1:
        leading = scale
    elif ndim == 2:
        leading = profiles[0].mul_(scale)
    else:
        leading = outer(profiles[:-1]).flatten(2).mul_(scale)
    torch.bmm(leading.transpose(1, 2), profiles[-1], out=out.view(rows, -1, sizes[-1]))


class _ConstructKernel(torch.autograd.Function):
    """``max`` / ``gauss`` construction in row chunks; backward recomputes each chunk's
    profiles and applies the analytic gradient, so no profile outlives its chunk."""

    @staticmethod
    def forward(ctx, weight, P, SIG, sizes, version):
        rows, kernel_count = weight.shape
        kernel = weight.new_empty((rows, *sizes))
        chunk = _dense_chunk_rows(rows, kernel_count, sizes)
        for start in range(0, rows, chunk):
            part = slice(start, start + chunk)
            _dense_profiles_kernel(weight[part], P[:, part], SIG[:, part], sizes, version,
                                   kernel[part])
        ctx.save_for_backward(weight, P, SIG)
        ctx.sizes, ctx.version = sizes, version
        return kernel

    @staticmethod
    def backward(ctx, grad_kernel):
        weight, P, SIG = ctx.saved_tensors
        grad_weight, grad_P, grad_SIG = (torch.empty_like(t) for t in (weight, P, SIG))
        grad_kernel = grad_kernel.contiguous()
        chunk = _backward_chunk_rows(*weight.shape, ctx.sizes)
        for start in range(0, weight.shape[0], chunk):
            part = slice(start, start + chunk)
            interpolation = _Interpolation(P[:, part], SIG[:, part], ctx.sizes, ctx.version)
            grad_weight[part], grad_P[:, part], grad_SIG[:, part] = interpolation.backward(
                weight[part], grad_kernel[part])
        grad_SIG.mul_(SIG.sign())  # d |SIG| / d SIG
        return grad_weight, grad_P, grad_SIG, None, None
