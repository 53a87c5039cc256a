"""``v0`` / ``v1`` (bilinear) construction in torch: each element has two taps per axis, and
its 2**ndim taps are scattered into the kernel (O(R * K * 2**ndim), R = out * in / groups rows):
without masks when every position is inside the kernel (:class:`_InsideBilinear`: always so
after clamping), masked otherwise (:class:`_Bilinear`). :class:`_ConstructBilinear` is the
autograd Function; its backward recomputes the taps (cheap) instead of storing them."""
import functools
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .conventions import NORMALISATION_EPS, outer, position_axes


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
        # (per-axis Python scalars: no small host tensors copied to the device)
        position = torch.stack([P[c] + sizes[c] // 2 for c in self.component_of_axis])
        lower = position.floor()  # (ndim, R, K)
        self.frac = position - lower
        taps = lower.to(torch.int32).unsqueeze(-1) + torch.arange(
            2, dtype=torch.int32, device=P.device)
        self.inside = torch.stack([(taps[axis] >= 0) & (taps[axis] < size)
                                   for axis, size in enumerate(sizes)])  # (ndim, R, K, 2)
        self.tap_weights = torch.stack((1 - self.frac, self.frac), -1) * self.inside
        self.tap_offsets = torch.stack([
            taps[axis].clamp(0, size - 1) * math.prod(sizes[axis + 1:])
            for axis, size in enumerate(sizes)
        ])
        self.normaliser = None
        if version == 'v1':
            self.sums = self.tap_weights.sum(-1)  # (ndim, R, K)
            self.normaliser = self.sums.prod(0) + NORMALISATION_EPS

    def _scale(self, weight: Tensor) -> Tensor:
        return weight if self.normaliser is None else weight / self.normaliser

    def _index(self) -> Tensor:
        rows = self.frac.shape[1]
        row_base = torch.arange(
            self.first_row, self.first_row + rows, dtype=torch.int32, device=self.frac.device)
        row_base = row_base.mul_(math.prod(self.sizes)).view(rows, 1, *[1] * len(self.sizes))
        return row_base + _outer_sum(list(self.tap_offsets.unbind(0)))

    def accumulate_kernel(self, weight: Tensor, kernel: Tensor) -> None:
        """Adds this chunk's taps into the zero-initialised ``kernel`` (R_total, *sizes)."""
        rows, kernel_count = weight.shape
        ndim = len(self.sizes)
        values = outer(list(self.tap_weights.unbind(0))) * self._scale(weight).view(
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
            others = [
                w if i != axis else torch.ones_like(w[..., :1]) for i, w in enumerate(tap_weights)
            ]
            dims = tuple(2 + i for i in range(ndim) if i != axis)
            partials.append((tapped * outer(others)).sum(dims) if dims else tapped)
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
                torch.stack([self.sums[i] for i in range(ndim)
                             if i != axis]).prod(0) if ndim > 1 else torch.ones_like(self.sums[0])
                for axis in range(ndim)
            ])
            grad_tap = grad_tap + (grad_normaliser * others).unsqueeze(-1)
        # d (1 - frac, frac) / d P = (-1, +1); v1's relu(1 - |x|) has zero subgradient there
        # when P sits exactly on a grid point (abs'(0) = relu'(0) = 0), v0's does not.
        # (the mask is all ones for positions inside the kernel; no host read to check that)
        grad_frac = (grad_tap * self.inside).diff(dim=-1).squeeze(-1)
        if self.version == 'v1':
            grad_frac = grad_frac * (self.frac > 0)
        grad_P = torch.empty_like(grad_frac)
        grad_P[self.component_of_axis] = grad_frac
        return grad_weight, grad_P


def _bilinear_chunk_rows(rows: int, kernel_count: int, sizes: Sequence[int]) -> int:
    """Rows per chunk keeping the ~6 live (K, 2**ndim) temporaries under the kernel's size."""
    chunks = math.ceil(6 * kernel_count * 2**len(sizes) / math.prod(sizes))
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
        normaliser = normaliser + NORMALISATION_EPS
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
                    partial = torch.addcmul(
                        partial.select(other, 0) * weights[0, other], partial.select(other, 1),
                        weights[1, other])
            component = self.consts.component_of_axis[axis]
            torch.sub(partial[1], partial[0], out=grad_P[component])
            if axis == 0:
                grad_scale = torch.addcmul(partial[0] * weights[0, 0], partial[1], weights[1, 0])
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
    return torch.arange(
        first_row * per_row, (first_row + rows) * per_row, per_row, dtype=dtype,
        device=device).unsqueeze(1)


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
    chunks = math.ceil(3 * kernel_count * 2**len(sizes) / (1.5 * math.prod(sizes)))
    return max(1, math.ceil(rows / chunks))


class _ConstructBilinear(torch.autograd.Function):
    """``v0`` / ``v1`` construction in a few row chunks; backward recomputes the taps (cheap)
    instead of storing them. Positions inside the kernel (the normal case) take
    :class:`_InsideBilinear`, others the masked :class:`_Bilinear`."""

    @staticmethod
    def forward(ctx, weight, P, sizes, version, host_reads):
        rows, kernel_count = weight.shape
        if host_reads:
            inside, strictly, consts = _InsideBilinear.inside(P, sizes, version)
        else:
            # the inside test reads values back to the host (a device synchronisation, a
            # break in a traced graph): the masked path is data-independent
            inside = strictly = False
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
                _InsideBilinear(P[:, part], sizes, version,
                                consts).accumulate_kernel(weight[part], kernel_flat, start)
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
                _InsideBilinear(P[:, part], ctx.sizes, ctx.version,
                                consts).backward(weight[part], grad_flat, not ctx.strictly, start,
                                                 grad_weight[part], grad_P[:, part])
            return grad_weight, grad_P, None, None, None
        grad_kernel = grad_kernel.contiguous()
        for start in range(0, weight.shape[0], ctx.chunk):
            part = slice(start, start + ctx.chunk)
            grad_weight[part], grad_P[:,
                                      part] = _Bilinear(P[:, part], ctx.sizes, ctx.version,
                                                        start).backward(weight[part], grad_kernel)
        return grad_weight, grad_P, None, None, None


def _outer_sum(terms: Sequence[Tensor]) -> Tensor:
    """(R, K, T0, T1, ...) outer sum of (R, K, Ti) integer tensors."""
    ndim = len(terms)
    result = None
    for axis, term in enumerate(terms):
        shape = term.shape[:2] + (1, ) * axis + term.shape[2:] + (1, ) * (ndim - 1 - axis)
        result = term.view(shape) if result is None else result + term.view(shape)
    return result
