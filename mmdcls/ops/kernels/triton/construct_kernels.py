"""Triton kernels of the DCLS kernel construction for 1-D and 2-D kernels (launched by
:mod:`.construct`, which imports this module on first use: importing it imports triton).

A kernel row is the (S0, S1) kernel of one (out, in / groups) pair; 1-D kernels are rows of
(S0, 1). One program handles BLOCK_R rows: their (BLOCK_R, BS0, BS1) tile (sizes padded to
powers of two, padding masked) stays in registers while the program loops over the K
elements. Each element contributes the outer product of two per-axis profiles A (BS0) and
B (BS1), scaled by weight / (sum(A) * sum(B) + eps) (``v0``: by the weight). The backward
program holds the row tile of d loss / d kernel and contracts it, per element, with the
recomputed profiles into d loss / d (weight, position, width). Every step follows the torch
construction of :mod:`mmdcls.ops.construct` (and through it ``dcls`` 0.1.1) operation by
operation, in float32; positions anywhere (taps outside the kernel are masked by the grid).

Layouts (contiguous): weight (R, K); P, SIG (NDIM, R, K) indexed by component; kernel and
grad_kernel (R, S0, S1). COMP0 / COMP1: the component of P giving kernel axis 0 / 1, HALF0 /
HALF1 the offset added to it (dcls adds sizes[component] // 2); plane = R * K, the stride of
a component (an int64 argument when it needs one).
"""
import triton
import triton.language as tl

#: VERSION codes (the order of :data:`mmdcls.ops.construct.conventions.VERSIONS`)
V0 = tl.constexpr(0)
V1 = tl.constexpr(1)
GAUSS = tl.constexpr(2)
MAX = tl.constexpr(3)


@triton.jit
def _bilinear_taps(pos, grid, valid):
    """(frac, lower-tap mask, upper-tap mask) on one axis: taps floor(pos) and floor(pos) + 1,
    each present only where it is a grid point of the kernel (valid)."""
    low = tl.floor(pos)
    frac = pos - low
    return frac, (grid == low) & valid, (grid == low + 1) & valid


@triton.jit
def _profile(pos, sig, grid, valid, VERSION: tl.constexpr, SIGMA_FLOOR: tl.constexpr,
             EXP_FLOOR: tl.constexpr):
    """(BLOCK_R, BS) interpolation weights of one axis at grid points ``grid`` (1, BS) for
    positions ``pos`` and raw widths ``sig`` (BLOCK_R); 0 off the kernel."""
    pos = pos[:, None]
    sig = sig[:, None]
    if VERSION == V0 or VERSION == V1:
        frac, lower, upper = _bilinear_taps(pos, grid, valid)
        # + frac * 0: a non-finite position (frac NaN) gives a NaN profile, as in torch
        profile = tl.where(lower, 1 - frac, tl.where(upper, frac, 0.0)) + frac * 0.0
    elif VERSION == GAUSS:
        t = (grid - pos) / (tl.abs(sig) + SIGMA_FLOOR)
        profile = tl.where(valid, tl.exp(tl.maximum(t * t * -0.5, EXP_FLOOR)), 0.0)
    else:  # max: relu(sigma - |offset|), NaN kept as in torch
        triangle = (tl.abs(sig) + SIGMA_FLOOR) - tl.abs(grid - pos)
        profile = tl.where(valid, tl.maximum(triangle, 0.0, propagate_nan=tl.PropagateNan.ALL), 0.0)
    return profile


@triton.jit
def _axis_grads(grad_profile, profile, pos, sig, grid, valid, VERSION: tl.constexpr,
                SIGMA_FLOOR: tl.constexpr):
    """d loss / d (position, raw width) (BLOCK_R, each) of one axis from d loss / d profile
    (BLOCK_R, BS). Subgradients at kinks as autograd's through dcls: ``v1`` and ``max`` zero
    (abs'(0) = relu'(0) = 0), ``v0`` differentiates pos - floor(pos) with slope 1."""
    if VERSION == V0 or VERSION == V1:
        # d (1 - frac, frac) / d position = (-1, +1) on the taps inside the kernel
        frac, lower, upper = _bilinear_taps(pos[:, None], grid, valid)
        slope = tl.where(upper, 1.0, 0.0) - tl.where(lower, 1.0, 0.0)
        if VERSION == V1:  # relu(1 - |x|) is flat at grid points
            slope = slope * (frac > 0).to(tl.float32)
        grad_pos = tl.sum(grad_profile * slope, 1)
        grad_sig = grad_pos * 0.0
    elif VERSION == GAUSS:
        # d profile / d position = profile * offset / sigma^2, d / d sigma: that * offset / sigma
        sigma = tl.abs(sig) + SIGMA_FLOOR
        offset = grid - pos[:, None]
        weighted = grad_profile * profile * offset
        sigma_sq = sigma * sigma
        grad_pos = tl.sum(weighted, 1) / sigma_sq
        grad_sig = tl.sum(weighted * offset, 1) / (sigma_sq * sigma)
    else:
        # triangle: d / d position = sign(offset), d / d width = 1 where the profile is > 0
        offset = grid - pos[:, None]
        active = grad_profile * (profile > 0).to(tl.float32)
        sign = tl.where(offset > 0, 1.0, tl.where(offset < 0, -1.0, 0.0))
        grad_pos = tl.sum(active * sign, 1)
        grad_sig = tl.sum(active, 1)
    if VERSION == GAUSS or VERSION == MAX:
        # d |SIG| / d SIG = sign(SIG) (NaN for NaN, as torch.sign)
        grad_sig = grad_sig * tl.where(sig > 0, 1.0, tl.where(sig < 0, -1.0, sig * 0.0))
    return grad_pos, grad_sig


@triton.jit
def _element(weight, P, SIG, rows_k, row_ok, plane, k, grid0, valid0, grid1, valid1,
             COMP0: tl.constexpr, COMP1: tl.constexpr, HALF0: tl.constexpr, HALF1: tl.constexpr,
             NDIM: tl.constexpr, VERSION: tl.constexpr, SIGMA_FLOOR: tl.constexpr,
             EXP_FLOOR: tl.constexpr, BLOCK_R: tl.constexpr, BS1: tl.constexpr):
    """Element k of the program's rows: weight, positions and raw widths per axis (BLOCK_R
    each; widths 0 for v0 / v1) and profiles A (BLOCK_R, BS0), B (BLOCK_R, BS1; 1-D kernels:
    B = 1 at the single grid point)."""
    w = tl.load(weight + rows_k + k, mask=row_ok, other=0.0)
    pos0 = tl.load(P + COMP0 * plane + rows_k + k, mask=row_ok, other=0.0) + HALF0
    sig0 = tl.zeros((BLOCK_R, ), dtype=tl.float32)
    if VERSION == GAUSS or VERSION == MAX:
        sig0 = tl.load(SIG + COMP0 * plane + rows_k + k, mask=row_ok, other=0.0)
    a = _profile(pos0, sig0, grid0, valid0, VERSION, SIGMA_FLOOR, EXP_FLOOR)
    if NDIM == 2:
        pos1 = tl.load(P + COMP1 * plane + rows_k + k, mask=row_ok, other=0.0) + HALF1
        sig1 = tl.zeros((BLOCK_R, ), dtype=tl.float32)
        if VERSION == GAUSS or VERSION == MAX:
            sig1 = tl.load(SIG + COMP1 * plane + rows_k + k, mask=row_ok, other=0.0)
        b = _profile(pos1, sig1, grid1, valid1, VERSION, SIGMA_FLOOR, EXP_FLOOR)
    else:
        pos1 = pos0
        sig1 = sig0
        b = tl.broadcast_to(tl.where(valid1, 1.0, 0.0), (BLOCK_R, BS1))
    return w, pos0, sig0, a, pos1, sig1, b


@triton.jit
def construct_forward_kernel(weight, P, SIG, kernel, R, plane, K: tl.constexpr, S0: tl.constexpr,
                             S1: tl.constexpr, BS0: tl.constexpr, BS1: tl.constexpr,
                             COMP0: tl.constexpr, COMP1: tl.constexpr, HALF0: tl.constexpr,
                             HALF1: tl.constexpr, NDIM: tl.constexpr, VERSION: tl.constexpr,
                             SIGMA_FLOOR: tl.constexpr, EPS: tl.constexpr, EXP_FLOOR: tl.constexpr,
                             BLOCK_R: tl.constexpr):
    """kernel[r] = sum_k scale[r, k] * A[r, k] (outer) B[r, k] for BLOCK_R rows r."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    row_ok = rows < R
    rows_k = rows * K
    i = tl.arange(0, BS0)
    j = tl.arange(0, BS1)
    grid0, valid0 = i.to(tl.float32)[None, :], (i < S0)[None, :]
    grid1, valid1 = j.to(tl.float32)[None, :], (j < S1)[None, :]
    acc = tl.zeros((BLOCK_R, BS0, BS1), dtype=tl.float32)
    for k in range(K):
        w, _, _, a, _, _, b = _element(weight, P, SIG, rows_k, row_ok, plane, k, grid0, valid0,
                                       grid1, valid1, COMP0, COMP1, HALF0, HALF1, NDIM, VERSION,
                                       SIGMA_FLOOR, EXP_FLOOR, BLOCK_R, BS1)
        if VERSION == V0:
            scale = w
        else:
            scale = w / (tl.sum(a, 1) * tl.sum(b, 1) + EPS)
        lead = a * scale[:, None]
        acc += lead[:, :, None] * b[:, None, :]
    offsets = rows[:, None, None] * (S0 * S1) + i[None, :, None] * S1 + j[None, None, :]
    mask = row_ok[:, None, None] & (i < S0)[None, :, None] & (j < S1)[None, None, :]
    tl.store(kernel + offsets, acc, mask=mask)


@triton.jit
def construct_backward_kernel(weight, P, SIG, grad_kernel, grad_weight, grad_P, grad_SIG, R, plane,
                              K: tl.constexpr, S0: tl.constexpr, S1: tl.constexpr,
                              BS0: tl.constexpr, BS1: tl.constexpr, COMP0: tl.constexpr,
                              COMP1: tl.constexpr, HALF0: tl.constexpr, HALF1: tl.constexpr,
                              NDIM: tl.constexpr, VERSION: tl.constexpr, SIGMA_FLOOR: tl.constexpr,
                              EPS: tl.constexpr, EXP_FLOOR: tl.constexpr, BLOCK_R: tl.constexpr):
    """d loss / d (weight, P, SIG) of BLOCK_R rows from their tile of d loss / d kernel."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    row_ok = rows < R
    rows_k = rows * K
    i = tl.arange(0, BS0)
    j = tl.arange(0, BS1)
    grid0, valid0 = i.to(tl.float32)[None, :], (i < S0)[None, :]
    grid1, valid1 = j.to(tl.float32)[None, :], (j < S1)[None, :]
    offsets = rows[:, None, None] * (S0 * S1) + i[None, :, None] * S1 + j[None, None, :]
    mask = row_ok[:, None, None] & (i < S0)[None, :, None] & (j < S1)[None, None, :]
    grad = tl.load(grad_kernel + offsets, mask=mask, other=0.0)
    for k in range(K):
        w, pos0, sig0, a, pos1, sig1, b = _element(weight, P, SIG, rows_k, row_ok, plane, k, grid0,
                                                   valid0, grid1, valid1, COMP0, COMP1, HALF0,
                                                   HALF1, NDIM, VERSION, SIGMA_FLOOR, EXP_FLOOR,
                                                   BLOCK_R, BS1)
        # grad contracted with B over kernel axis 1 (BLOCK_R, BS0), with A over axis 0
        # (BLOCK_R, BS1): d loss / d profile before the scale and the normaliser
        partial0 = tl.sum(grad * b[:, None, :], 2)
        partial1 = tl.sum(grad * a[:, :, None], 1)
        grad_scale = tl.sum(partial0 * a, 1)
        if VERSION == V0:
            grad_w = grad_scale
            grad_a = partial0 * w[:, None]
            grad_b = partial1 * w[:, None]
        else:
            sum_a = tl.sum(a, 1)
            sum_b = tl.sum(b, 1)
            normaliser = sum_a * sum_b + EPS
            scale = w / normaliser
            grad_w = grad_scale / normaliser
            grad_normaliser = -grad_scale * scale / normaliser
            grad_a = partial0 * scale[:, None] + (grad_normaliser * sum_b)[:, None]
            grad_b = partial1 * scale[:, None] + (grad_normaliser * sum_a)[:, None]
        tl.store(grad_weight + rows_k + k, grad_w, mask=row_ok)
        grad_pos, grad_sig = _axis_grads(grad_a, a, pos0, sig0, grid0, valid0, VERSION, SIGMA_FLOOR)
        tl.store(grad_P + COMP0 * plane + rows_k + k, grad_pos, mask=row_ok)
        if VERSION == GAUSS or VERSION == MAX:
            tl.store(grad_SIG + COMP0 * plane + rows_k + k, grad_sig, mask=row_ok)
        if NDIM == 2:
            grad_pos, grad_sig = _axis_grads(grad_b, b, pos1, sig1, grid1, valid1, VERSION,
                                             SIGMA_FLOOR)
            tl.store(grad_P + COMP1 * plane + rows_k + k, grad_pos, mask=row_ok)
            if VERSION == GAUSS or VERSION == MAX:
                tl.store(grad_SIG + COMP1 * plane + rows_k + k, grad_sig, mask=row_ok)
