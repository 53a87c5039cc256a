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
"""
import functools
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from . import native

VERSIONS = ('v0', 'v1', 'gauss', 'max')
#: versions with a learnable width ``SIG``
VERSIONS_WITH_SIGMA = ('gauss', 'max')
_SIGMA_FLOOR = {'gauss': 0.27, 'max': 1.0}
_NORMALISATION_EPS = 1e-7
# Gaussian exponents are floored here: exp() of arguments below about -87 (float32 results
# that are denormal or zero) takes a slow path, 15-40x slower on CPU, and a Gaussian's far
# tail is then 1.8e-35 instead of ~0 (its gradient contributions likewise ~1e-31).
_GAUSS_EXPONENT_FLOOR = -80.0


def check_version(version: str) -> None:
    if version not in VERSIONS:
        raise ValueError(f'version must be one of {VERSIONS}, but got {version!r}')


def position_axes(version: str, ndim: int) -> Tuple[int, ...]:
    """Kernel axis that each component of ``P`` (and ``SIG``) indexes, as in ``dcls`` 0.1.1."""
    check_version(version)
    if version == 'v0':
        return {1: (0,), 2: (0, 1), 3: (0, 2, 1)}[ndim]
    return tuple(reversed(range(ndim)))


def _axis_profile(offset: Tensor, sigma: Tensor, version: str, in_place: bool = False) -> Tensor:
    """``max`` / ``gauss`` weights on one kernel axis (``v0`` / ``v1``: :class:`_Bilinear`).
    offset ([ndim,] R, K, G): grid index minus position; sigma ([ndim,] R, K, 1): widths with
    their floor. ``in_place``: overwrite ``offset`` with the profile (forward passes)."""
    if version == 'max':
        profile = offset.abs_() if in_place else offset.abs()
        return profile.neg_().add_(sigma).relu_()
    profile = offset.div_(sigma) if in_place else offset / sigma
    return profile.square_().mul_(-0.5).clamp_min_(_GAUSS_EXPONENT_FLOOR).exp_()


def _outer(profiles: Sequence[Tensor]) -> Tensor:
    """(R, K, T0, T1, ...) outer product of (R, K, Ti) profiles."""
    ndim = len(profiles)
    result = None
    for axis, profile in enumerate(profiles):
        shape = profile.shape[:2] + (1,) * axis + profile.shape[2:] + (1,) * (ndim - 1 - axis)
        result = profile.view(shape) if result is None else result * profile.view(shape)
    return result


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
        self.normaliser = self.normaliser + _NORMALISATION_EPS

    def _partials(self, grad: Tensor) -> List[Tensor]:
        """For each axis d: sum over the other axes of grad * their profiles, (R, K, G_d).
        grad: this chunk's rows of d loss / d kernel (R, *G)."""
        rows, kernel_count = self.profiles[0].shape[:2]
        partials = []
        for axis in range(len(self.sizes)):
            others = self.profiles[:axis] + self.profiles[axis + 1:]
            grad_axis = grad.movedim(axis + 1, 1).reshape(rows, self.sizes[axis], -1)
            if others:
                other = _outer(others).flatten(2)
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
            grad_profile = torch.addcmul(rest.unsqueeze(-1), partials[axis],
                                         scale.unsqueeze(-1))
            offset, profile, sigma = self.offsets[axis], self.profiles[axis], self.sigmas[axis]
            if self.version == 'gauss':
                # d profile / d position = profile * offset / sigma^2, d / d sigma that
                # times offset / sigma
                weighted = grad_profile.mul_(profile).mul_(offset)
                sigma_sq = sigma.square().squeeze(-1)
                grad_P[component] = weighted.sum(-1) / sigma_sq
                grad_SIG[component] = weighted.mul_(offset).sum(-1) / (
                    sigma_sq * sigma.squeeze(-1))
            else:
                # triangle: d / d position = sign(offset), d / d sigma = 1 where the profile
                # is positive; autograd's subgradients through dcls at the kinks are 0
                active = grad_profile.mul_(profile > 0)
                grad_SIG[component] = active.sum(-1)
                grad_P[component] = active.mul_(offset.sign()).sum(-1)
        return grad_weight, grad_P, grad_SIG


class _Bilinear:
    """``v0`` / ``v1`` for one chunk of rows when some position lies outside the kernel (before
    clamping; otherwise :class:`_InsideBilinear`), every axis in one tensor: each element has
    two taps per axis (floor(p), floor(p) + 1) with weights (1 - frac, frac), masked where a
    tap falls outside the kernel, and its 2**ndim taps are scattered into the kernel with
    ``index_add_``. O(R * K * 2**ndim) time and memory."""

    def __init__(self, P: Tensor, sizes: Sequence[int], version: str, first_row: int = 0):
        ndim = len(sizes)
        self.first_row = first_row
        components = position_axes(version, ndim)
        # row d of every tensor below belongs to kernel axis d
        self.component_of_axis = [components.index(axis) for axis in range(ndim)]
        self.version, self.sizes = version, tuple(sizes)
        device = P.device
        half = torch.tensor([sizes[c] // 2 for c in self.component_of_axis], dtype=P.dtype,
                            device=device)
        limit = torch.tensor(sizes, dtype=torch.int32, device=device).view(ndim, 1, 1, 1)
        stride = torch.tensor([math.prod(sizes[axis + 1:]) for axis in range(ndim)],
                              dtype=torch.int32, device=device).view(ndim, 1, 1, 1)
        position = P[self.component_of_axis] + half.view(ndim, 1, 1)  # (ndim, R, K)
        lower = position.floor()
        self.frac = position - lower
        taps = lower.to(torch.int32).unsqueeze(-1) + torch.arange(2, dtype=torch.int32,
                                                                   device=device)
        self.inside = (taps >= 0) & (taps < limit)  # (ndim, R, K, 2)
        self.tap_weights = torch.stack((1 - self.frac, self.frac), -1) * self.inside
        self.tap_offsets = torch.minimum(taps.clamp_min(0), limit - 1) * stride
        self.normaliser = None
        if version == 'v1':
            self.sums = self.tap_weights.sum(-1)  # (ndim, R, K)
            self.normaliser = self.sums.prod(0) + _NORMALISATION_EPS

    def _scale(self, weight: Tensor) -> Tensor:
        return weight if self.normaliser is None else weight / self.normaliser

    def _index(self) -> Tensor:
        rows = self.frac.shape[1]
        row_base = torch.arange(self.first_row, self.first_row + rows, dtype=torch.int32,
                                device=self.frac.device)
        row_base = row_base.mul_(math.prod(self.sizes)).view(rows, 1, *[1] * len(self.sizes))
        return row_base + _outer_sum(list(self.tap_offsets.unbind(0)))

    def accumulate_kernel(self, weight: Tensor, kernel: Tensor) -> None:
        """Adds this chunk's taps into the zero-initialised ``kernel`` (R_total, *sizes)."""
        rows, kernel_count = weight.shape
        ndim = len(self.sizes)
        values = _outer(list(self.tap_weights.unbind(0))) * self._scale(weight).view(
            rows, kernel_count, *[1] * ndim)
        kernel.view(-1).index_add_(0, self._index().view(-1), values.view(-1))

    def backward(self, weight: Tensor, grad: Tensor):
        rows, kernel_count = weight.shape
        ndim = len(self.sizes)
        tapped = grad.reshape(-1).index_select(0, self._index().view(-1))
        tapped = tapped.view(rows, kernel_count, *[2] * ndim)
        tap_weights = list(self.tap_weights.unbind(0))
        partials = []  # d loss / d (scaled) tap weight of each axis, (R, K, 2)
        for axis in range(ndim):
            others = [w if i != axis else torch.ones_like(w[..., :1])
                      for i, w in enumerate(tap_weights)]
            dims = tuple(2 + i for i in range(ndim) if i != axis)
            partials.append((tapped * _outer(others)).sum(dims) if dims else tapped)
        partials = torch.stack(partials)  # (ndim, R, K, 2)
        scale = self._scale(weight)
        grad_scale = (partials[0] * tap_weights[0]).sum(-1)
        grad_tap = partials * scale.unsqueeze(-1)
        if self.normaliser is None:
            grad_weight = grad_scale
        else:
            grad_weight = grad_scale / self.normaliser
            grad_normaliser = -grad_scale * scale / self.normaliser
            # d normaliser / d sum_d = product of the other axes' sums
            others = torch.stack([
                torch.stack([self.sums[i] for i in range(ndim) if i != axis]).prod(0)
                if ndim > 1 else torch.ones_like(self.sums[0]) for axis in range(ndim)])
            grad_tap = grad_tap + (grad_normaliser * others).unsqueeze(-1)
        # d (1 - frac, frac) / d P = (-1, +1); v1's relu(1 - |x|) has zero subgradient there
        # when P sits exactly on a grid point (abs'(0) = relu'(0) = 0), v0's does not.
        grad_frac = (grad_tap[..., 1] - grad_tap[..., 0]) if self.inside.all() else (
            (grad_tap * self.inside).diff(dim=-1).squeeze(-1))
        if self.version == 'v1':
            grad_frac = grad_frac * (self.frac > 0)
        grad_P = torch.empty_like(grad_frac)
        grad_P[self.component_of_axis] = grad_frac
        return grad_weight, grad_P


def _bilinear_chunk_rows(rows: int, kernel_count: int, sizes: Sequence[int]) -> int:
    """Rows per chunk keeping the ~6 live (K, 2**ndim) temporaries under the kernel's size."""
    chunks = math.ceil(6 * kernel_count * 2 ** len(sizes) / math.prod(sizes))
    return max(1, math.ceil(rows / chunks))


class _InsideBilinear:
    """``v0`` / ``v1`` when every position lies inside the kernel on every axis
    (0 <= p + size // 2 <= size - 1: always so after ``clamp_parameters()``), in few ops.

    Inside, the lower tap always exists and the upper one is missing only where p sits exactly
    on the last grid point, where its weight ``frac`` is exactly 0. So the forward pass
    scatters every tap unmasked into a kernel buffer with a little slack at its end: a missing
    tap lands (as +0) on a neighbouring entry. The backward pass gathers the taps from
    d loss / d kernel zero-padded by one on every axis, so a missing tap reads 0, as in
    ``dcls`` (unpadded when no position sits on a last grid point: no tap is missing).
    ``v1``'s normaliser (the product of the per-axis tap sums, 1 inside) has the same
    derivative for both taps of an axis, which cancels in d loss / d frac.

    Tensors keep the taps in their leading dimensions, (2, ..., 2, R, K), so that every slice
    is contiguous, and contractions over the two taps are written out: torch's reductions
    over a dimension of size 2 cost more than the arithmetic.
    """

    def __init__(self, P: Tensor, sizes: Sequence[int], version: str, consts):
        # P: (ndim, R, K) positions of one chunk of rows, all inside the kernel (see `inside`)
        self.sizes, self.version, self.consts = tuple(sizes), version, consts
        self.rows, self.kernel_count = P.shape[1:]
        # grid coordinates per kernel axis, in [0, size - 1]
        position = (P if consts.identity else P[consts.component_of_axis]) + consts.half
        self.low = position.to(consts.index_dtype)  # truncation == floor: positions >= 0
        # tap_weights[b, d] = weight of tap b (lower, upper) on axis d: (1 - frac, frac)
        self.tap_weights = position.new_empty((2, *position.shape))
        torch.frac(position, out=self.tap_weights[1])
        torch.mul(self.tap_weights[1], -1, out=self.tap_weights[0]).add_(1)

    @staticmethod
    def inside(P: Tensor, sizes: Tuple[int, ...], version: str):
        """(inside, strictly, constants): whether every position of P (ndim, R, K) is inside
        the kernel, and whether also none sits on the last grid point of an axis (then every
        upper tap exists)."""
        consts = _bilinear_constants(sizes, version, P.device, P.dtype)
        if consts.square:
            low, high = (t.item() for t in torch.aminmax(P))
            low, high = [low] * len(sizes), [high] * len(sizes)
        else:
            low, high = (t.tolist() for t in torch.aminmax(P.reshape(len(sizes), -1), dim=1))
        inside = all(a >= b for a, b in zip(low, consts.low_limits)) and all(
            a <= b for a, b in zip(high, consts.high_limits))
        strictly = inside and all(a < b for a, b in zip(high, consts.high_limits))
        return inside, strictly, consts

    def _index(self, padded: bool, first_row: int) -> Tensor:
        """(2**ndim, R, K) flat tap indices, taps ordered with axis 0 most significant.
        Releases the tap coordinates (memory: a chunk needs them only once)."""
        strides, tap_offsets, per_row = self.consts.padded if padded else self.consts.plain
        low, self.low = self.low, None
        base = low[-1] + _row_offsets(first_row, self.rows, per_row, low.device,
                                      self.consts.index_dtype)
        for axis in range(len(self.sizes) - 1):
            base = torch.add(base, low[axis], alpha=strides[axis])
        del low
        return base + tap_offsets

    def _scale(self, weight: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """(weight / normaliser, normaliser); ``v0`` has no normaliser."""
        if self.version != 'v1':
            return weight, None
        sums = self.tap_weights[0] + self.tap_weights[1]
        normaliser = sums[0]
        for axis in range(1, len(self.sizes)):
            normaliser = normaliser * sums[axis]
        normaliser = normaliser + _NORMALISATION_EPS
        return weight / normaliser, normaliser

    def accumulate_kernel(self, weight: Tensor, kernel_flat: Tensor, first_row: int) -> None:
        """Adds this chunk's taps into the zero-initialised flat kernel buffer (with slack)."""
        scale, _ = self._scale(weight)
        index = self._index(False, first_row)
        ndim, rows, count = len(self.sizes), self.rows, self.kernel_count
        values = self.tap_weights[:, 0]
        for axis in range(1, ndim):
            values = values.unsqueeze(axis) * self.tap_weights[:, axis].view(
                *[1] * axis, 2, rows, count)
        values = values * scale if ndim == 1 else values.mul_(scale)
        kernel_flat.index_add_(0, index.view(-1), values.view(-1))

    def backward(self, weight: Tensor, grad_flat: Tensor, padded: bool, first_row: int,
                 grad_weight: Tensor, grad_P: Tensor) -> None:
        """Writes this chunk's d loss / d weight (R, K) and d loss / d P (ndim, R, K) into
        ``grad_weight`` / ``grad_P`` from the flat d loss / d kernel (zero-padded by one on
        every axis if ``padded``)."""
        ndim = len(self.sizes)
        scale, normaliser = self._scale(weight)
        tapped = grad_flat.index_select(0, self._index(padded, first_row).view(-1))
        tapped = tapped.view(*[2] * ndim, self.rows, self.kernel_count)
        weights = self.tap_weights
        grad_scale = None
        for axis in range(ndim):
            # sum over the other axes' taps, weighted by their tap weights: (2, R, K)
            partial = tapped
            for other in reversed(range(ndim)):
                if other != axis:
                    partial = torch.addcmul(partial.select(other, 0) * weights[0, other],
                                            partial.select(other, 1), weights[1, other])
            component = self.consts.component_of_axis[axis]
            torch.sub(partial[1], partial[0], out=grad_P[component])
            if axis == 0:
                grad_scale = torch.addcmul(partial[0] * weights[0, 0], partial[1],
                                           weights[1, 0])
        grad_P.mul_(scale)
        if self.version == 'v1':
            # relu(1 - |x|) has zero subgradient at x = 0: positions on grid points
            on_grid = weights[1] == 0
            if not self.consts.identity:
                on_grid = on_grid[self.consts.component_of_axis]
            grad_P.masked_fill_(on_grid, 0)
            torch.div(grad_scale, normaliser, out=grad_weight)
        else:
            grad_weight.copy_(grad_scale)


@functools.lru_cache(maxsize=256)
def _row_offsets(first_row: int, rows: int, per_row: int, device, dtype) -> Tensor:
    """(R, 1) flat offsets of kernel rows [first_row, first_row + R)."""
    return torch.arange(first_row * per_row, (first_row + rows) * per_row, per_row,
                        dtype=dtype, device=device).unsqueeze(1)


class _BilinearConstants:
    """Small per-(sizes, version, device, dtype) constants of :class:`_InsideBilinear`."""

    def __init__(self, sizes: Tuple[int, ...], version: str, device, dtype):
        ndim = len(sizes)
        components = position_axes(version, ndim)
        self.component_of_axis = [components.index(axis) for axis in range(ndim)]
        self.identity = self.component_of_axis == list(range(ndim))
        self.square = len(set(sizes)) == 1
        # component c is offset by its own size // 2 (as in dcls), whichever axis it indexes
        half = [sizes[c] // 2 for c in self.component_of_axis]
        self.half = torch.tensor(half, dtype=dtype, device=device).view(ndim, 1, 1)
        # range of each P component that keeps its position inside the axis it indexes
        self.low_limits = [-(sizes[c] // 2) for c in range(ndim)]
        self.high_limits = [sizes[axis] - 1 - sizes[c] // 2 for c, axis in enumerate(components)]
        self.index_dtype = torch.int32
        self.plain = self._layout(sizes, device)
        self.padded = self._layout(tuple(s + 1 for s in sizes), device)

    def _layout(self, sizes, device):
        """(strides, (2**ndim, 1, 1) tap offsets, entries per row) of a kernel layout."""
        ndim = len(sizes)
        strides = [math.prod(sizes[axis + 1:]) for axis in range(ndim)]
        offsets = torch.zeros((), dtype=torch.int64)
        for stride in strides:  # axis 0 is the most significant bit of a tap's number
            offsets = (offsets.unsqueeze(-1) + torch.tensor([0, stride])).flatten()
        offsets = offsets.to(device=device, dtype=self.index_dtype).view(-1, 1, 1)
        return strides, offsets, math.prod(sizes)


@functools.lru_cache(maxsize=64)
def _bilinear_constants(sizes: Tuple[int, ...], version: str, device, dtype):
    return _BilinearConstants(sizes, version, device, dtype)


def _inside_chunk_rows(rows: int, kernel_count: int, sizes: Sequence[int]) -> int:
    """Rows per chunk keeping the ~3 live (K, 2**ndim) temporaries of
    :class:`_InsideBilinear` within 1.5x the kernel's size."""
    chunks = math.ceil(3 * kernel_count * 2 ** len(sizes) / (1.5 * math.prod(sizes)))
    return max(1, math.ceil(rows / chunks))


class _ConstructBilinear(torch.autograd.Function):
    """``v0`` / ``v1`` construction in a few row chunks; backward recomputes the taps (cheap)
    instead of storing them. Positions inside the kernel (the normal case) take
    :class:`_InsideBilinear`, others the masked :class:`_Bilinear`."""

    @staticmethod
    def forward(ctx, weight, P, sizes, version):
        rows, kernel_count = weight.shape
        if torch.jit.is_tracing():
            # the inside test reads values (.item()), which a JIT trace (flop counters,
            # exporters) cannot follow: the masked path is data-independent
            inside = strictly = False
        else:
            inside, strictly, consts = _InsideBilinear.inside(P, sizes, version)
        ctx.save_for_backward(weight, P)
        ctx.sizes, ctx.version, ctx.inside, ctx.strictly = sizes, version, inside, strictly
        if inside:
            chunk = _inside_chunk_rows(rows, kernel_count, sizes)
            per_row = math.prod(sizes)
            # slack after the last row for the (zero-weight) missing upper taps
            slack = sum(s * math.prod(sizes[axis + 1:])
                        for axis, s in enumerate(sizes) if axis > 0) + 1
            kernel_flat = weight.new_zeros(rows * per_row + slack)
            for start in range(0, rows, chunk):
                part = slice(start, start + chunk)
                _InsideBilinear(P[:, part], sizes, version, consts).accumulate_kernel(
                    weight[part], kernel_flat, start)
            ctx.chunk = chunk
            return kernel_flat[:rows * per_row].view(rows, *sizes)
        chunk = _bilinear_chunk_rows(rows, kernel_count, sizes)
        kernel = weight.new_zeros((rows, *sizes))
        for start in range(0, rows, chunk):
            part = slice(start, start + chunk)
            _Bilinear(P[:, part], sizes, version, start).accumulate_kernel(weight[part], kernel)
        ctx.chunk = chunk
        return kernel

    @staticmethod
    def backward(ctx, grad_kernel):
        weight, P = ctx.saved_tensors
        grad_weight, grad_P = torch.empty_like(weight), torch.empty_like(P)
        if ctx.inside:
            if ctx.strictly:  # every upper tap exists: gather from d loss / d kernel as is
                grad_flat = grad_kernel.contiguous().view(-1)
            else:
                grad_flat = F.pad(grad_kernel, (0, 1) * len(ctx.sizes)).view(-1)
            consts = _bilinear_constants(ctx.sizes, ctx.version, P.device, P.dtype)
            for start in range(0, weight.shape[0], ctx.chunk):
                part = slice(start, start + ctx.chunk)
                _InsideBilinear(P[:, part], ctx.sizes, ctx.version, consts).backward(
                    weight[part], grad_flat, not ctx.strictly, start, grad_weight[part],
                    grad_P[:, part])
            return grad_weight, grad_P, None, None
        grad_kernel = grad_kernel.contiguous()
        for start in range(0, weight.shape[0], ctx.chunk):
            part = slice(start, start + ctx.chunk)
            grad_weight[part], grad_P[:, part] = _Bilinear(
                P[:, part], ctx.sizes, ctx.version, start).backward(weight[part], grad_kernel)
        return grad_weight, grad_P, None, None


def _outer_sum(terms: Sequence[Tensor]) -> Tensor:
    """(R, K, T0, T1, ...) outer sum of (R, K, Ti) integer tensors."""
    ndim = len(terms)
    result = None
    for axis, term in enumerate(terms):
        shape = term.shape[:2] + (1,) * axis + term.shape[2:] + (1,) * (ndim - 1 - axis)
        result = term.view(shape) if result is None else result + term.view(shape)
    return result


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
    sigma = (SIG.abs() + _SIGMA_FLOOR[version]).unsqueeze(-1)
    if len(set(sizes)) == 1:
        position = (P + sizes[0] // 2).unsqueeze(-1)
        return _grid(sizes[0], P.device, P.dtype) - position, sigma
    offsets = [_grid(sizes[axis], P.device, P.dtype) - (P[c] + sizes[c] // 2).unsqueeze(-1)
               for c, axis in enumerate(axes)]
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
        by_component = [_axis_profile(o, s, version, in_place=True)
                        for o, s in zip(offsets, sigma)]
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
    scale = (weight / (normaliser + _NORMALISATION_EPS)).unsqueeze(-1)
    if ndim == 1:
        leading = scale
    elif ndim == 2:
        leading = profiles[0].mul_(scale)
    else:
        leading = _outer(profiles[:-1]).flatten(2).mul_(scale)
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


class _ConstructNative2d(torch.autograd.Function):
    """Every version for 2-D kernels on CPU through the fused C library of
    :mod:`mmdcls.ops.native` (same arithmetic as the torch classes above, row by row in cache);
    backward recomputes each row's interpolation (the Gaussian's axis-0 half only, when the
    forward kept the axis-1 profiles: see ``native.SAVED_PROFILES_MAX_RATIO``). Takes the
    parameters in their own shapes
    (weight (out, in / groups, K), P / SIG (2, out, in / groups, K)) and returns the kernel
    (out, in / groups, S0, S1): no view nodes around it in the autograd graph, whose per-node
    cost is a noticeable part of a ~1 ms construction."""

    @staticmethod
    def forward(ctx, weight, P, SIG, sizes, version, grad_needed):
        weight, P = weight.contiguous(), P.contiguous()
        components = position_axes(version, 2)
        layout = [components.index(axis) for axis in range(2)]
        ctx.sizes, ctx.version, ctx.layout = sizes, version, layout
        if version in VERSIONS_WITH_SIGMA:
            SIG = SIG.contiguous()
            # Gaussian profiles (an exp per tap) are the main cost: the backward reuses the
            # forward's axis-1 half when that memory stays small next to the kernel
            save = grad_needed and version == 'gauss' and native.saved_profiles_size(
                sizes, weight.shape[-1], weight.dtype) <= (
                    native.SAVED_PROFILES_MAX_RATIO * sizes[0] * sizes[1])
            kernel, saved = native.dense_forward(weight, P, SIG, sizes, layout,
                                                 _SIGMA_FLOOR[version], version, save)
            ctx.saved = saved
            ctx.save_for_backward(weight, P, SIG)
            return kernel
        ctx.save_for_backward(weight, P)
        return native.bilinear_forward(weight, P, sizes, layout, version)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_kernel):
        grad_kernel = grad_kernel.contiguous()
        if ctx.version in VERSIONS_WITH_SIGMA:
            weight, P, SIG = ctx.saved_tensors
            grads = native.dense_backward(weight, P, SIG, grad_kernel, ctx.sizes, ctx.layout,
                                          _SIGMA_FLOOR[ctx.version], ctx.version, ctx.saved)
            ctx.saved = None
            return (*grads, None, None, None)
        weight, P = ctx.saved_tensors
        grads = native.bilinear_backward(weight, P, grad_kernel, ctx.sizes, ctx.layout,
                                         ctx.version)
        return (*grads, None, None, None, None)


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
    if version in ('v0', 'v1') and rows * math.prod(s + 1 for s in sizes) >= 2 ** 31:
        # the bilinear paths index the (padded) flat kernel with int32
        raise ValueError(f'kernel of {rows} x {sizes} entries is too large for the bilinear '
                         f'construction (out * in / groups * prod(dilated_kernel_size + 1) '
                         f'must be < 2**31)')
    if (P.dtype == weight.dtype and (SIG is None or SIG.dtype == weight.dtype)
            and native.usable(weight, sizes)):
        # C code: autocast does not apply; float32 / float64 parameters as they are
        grad_needed = torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (weight, P, SIG))
        return _ConstructNative2d.apply(weight, P, SIG, sizes, version, grad_needed)
    with torch.autocast(device_type=weight.device.type, enabled=False):
        dtype = torch.promote_types(weight.dtype, torch.float32)
        flat_weight = weight.to(dtype).reshape(rows, kernel_count)
        flat_P = P.to(dtype).reshape(ndim, rows, kernel_count)
        flat_SIG = None if SIG is None else SIG.to(dtype).reshape(ndim, rows, kernel_count)
        if version in ('v0', 'v1'):
            kernel = _ConstructBilinear.apply(flat_weight, flat_P, sizes, version)
        else:
            kernel = _ConstructKernel.apply(flat_weight, flat_P, flat_SIG, sizes, version)
    return kernel.view(out_channels, in_per_group, *sizes)
