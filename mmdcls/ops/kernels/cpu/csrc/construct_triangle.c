/* Compact-support rows of the max construction: see construct_triangle.h. */
#include "construct_triangle.h"

static size_t taps_scalars(int K) { return (size_t)K * (4 + TRIANGLE_SUPPORT); }

static void taps_bind(REAL *buffer, int K, Taps *ax) {
    ax->pos = buffer, ax->sig = ax->pos + K, ax->sum = ax->sig + K;
    ax->lo = (int *)(ax->sum + K);
    ax->v = ax->sum + 2 * K;
}

/* Windows of the K elements of one row on one axis of `size` taps (P, SIG: that component's
 * K values); 0 when an element may span more than TRIANGLE_SUPPORT taps. Indices are clamped
 * in int, so no input (NaN, huge positions) indexes outside the kernel. */
static int triangle_axis_taps(const REAL *restrict P, const REAL *restrict SIG, REAL half,
                              REAL sig_floor, int K, int size, Taps *ax) {
    REAL *restrict pos_ = ax->pos, *restrict sig_ = ax->sig, *restrict sum_ = ax->sum;
    REAL *restrict first = ax->sum, *restrict count = ax->v; /* scratch, overwritten below */
    int *restrict lo_ = ax->lo;
    REAL widest = 0;
    for (int k = 0; k < K; ++k) {
        REAL pos = P[k] + half, sig = FABS(SIG[k]) + sig_floor;
        /* positive on pos - sig < g < pos + sig; pos -/+ sig is rounded, so a boundary tap
         * whose value is positive is added */
        REAL lo = FLOOR(pos - sig) + 1, hi = CEIL(pos + sig) - 1;
        lo -= sig - FABS(lo - 1 - pos) > 0 ? 1 : 0;
        hi += sig - FABS(hi + 1 - pos) > 0 ? 1 : 0;
        lo = lo > 0 ? lo : 0;
        hi = hi < (REAL)(size - 1) ? hi : (REAL)(size - 1);
        pos_[k] = pos, sig_[k] = sig, first[k] = lo, count[k] = hi - lo + 1;
        widest = widest > sig ? widest : sig;
    }
    /* wide, or inf (fast-math may drop NaN checks: NaN rows stay in bounds, clamped below) */
    if (!(widest < (REAL)(TRIANGLE_SUPPORT / 2))) return 0;
    int taps = 1;
    for (int k = 0; k < K; ++k) {
        int n = (int)count[k];
        taps = taps > n ? taps : n;
    }
    if (taps > TRIANGLE_SUPPORT || taps > size) return 0;
    for (int k = 0; k < K; ++k) {
        int lo = (int)first[k];
        lo = lo > size - taps ? size - taps : lo;
        lo_[k] = lo < 0 ? 0 : lo;
    }
    ax->taps = taps;
    for (int k = 0; k < K; ++k) sum_[k] = 0;
    for (int t = 0; t < taps; ++t) {
        REAL *restrict v = ax->v + (int64_t)t * K;
        for (int k = 0; k < K; ++k) {
            REAL value = sig_[k] - FABS((REAL)(lo_[k] + t) - pos_[k]);
            value = value > 0 ? value : 0;
            v[k] = value;
            sum_[k] += value;
        }
    }
    return 1;
}

INTERNAL int FN(triangle_row_taps)(const REAL *P, const REAL *SIG, int64_t R, int K, int S0,
                                   int S1, int comp0, int comp1, REAL half0, REAL half1,
                                   REAL sig_floor, int64_t r, Taps *a, Taps *b) {
    const int64_t rk = r * K, plane = R * K;
    return triangle_axis_taps(P + comp0 * plane + rk, SIG + comp0 * plane + rk, half0,
                              sig_floor, K, S0, a) &&
           triangle_axis_taps(P + comp1 * plane + rk, SIG + comp1 * plane + rk, half1,
                              sig_floor, K, S1, b);
}

/* The scatter (forward) and gather (backward) of every element's na x nb window, inlined
 * with constant nb for the common widths. */
static inline __attribute__((always_inline)) void triangle_scatter(
        const Taps *a, const Taps *b, const REAL *restrict scale, int K, int S1,
        int na, int nb, REAL *restrict out) {
    for (int k = 0; k < K; ++k) {
        REAL *o = out + (int64_t)a->lo[k] * S1 + b->lo[k];
        for (int i = 0; i < na; ++i, o += S1) {
            REAL lead = a->v[(int64_t)i * K + k] * scale[k];
            for (int j = 0; j < nb; ++j) o[j] += lead * b->v[(int64_t)j * K + k];
        }
    }
}

/* part0 (na, K) / part1 (nb, K): d loss / d tap value on each axis (the other axis's taps
 * contracted); grad_scale (K): d loss / d (weight / normaliser). */
static inline __attribute__((always_inline)) void triangle_gather(
        const Taps *a, const Taps *b, const REAL *restrict grad, int K, int S1,
        int na, int nb, REAL *restrict part0, REAL *restrict part1,
        REAL *restrict grad_scale) {
    for (int k = 0; k < K; ++k) {
        const REAL *g = grad + (int64_t)a->lo[k] * S1 + b->lo[k];
        REAL bv[TRIANGLE_SUPPORT], pb[TRIANGLE_SUPPORT], total = 0;
        for (int j = 0; j < nb; ++j) bv[j] = b->v[(int64_t)j * K + k], pb[j] = 0;
        for (int i = 0; i < na; ++i, g += S1) {
            const REAL ai = a->v[(int64_t)i * K + k];
            REAL sum = 0;
            for (int j = 0; j < nb; ++j) {
                sum += g[j] * bv[j];
                pb[j] += g[j] * ai;
            }
            part0[(int64_t)i * K + k] = sum;
            total += sum * ai;
        }
        for (int j = 0; j < nb; ++j) part1[(int64_t)j * K + k] = pb[j];
        grad_scale[k] = total;
    }
}

#define TRIANGLE_BY_WIDTH(call, nb)                                                      \
    switch (nb) {                                                                        \
        case 1: call(1); break;                                                          \
        case 2: call(2); break;                                                          \
        case 3: call(3); break;                                                          \
        case 4: call(4); break;                                                          \
        default: call(nb);                                                               \
    }

INTERNAL void FN(triangle_forward_row)(const REAL *restrict weight, int K, int S1, REAL eps,
                                       const Taps *a, const Taps *b, REAL *restrict scale,
                                       REAL *restrict out, size_t area) {
    memset(out, 0, sizeof(REAL) * area);
    for (int k = 0; k < K; ++k)
        scale[k] = weight[k] / (a->sum[k] * b->sum[k] + eps);
    const int na = a->taps;
#define SCATTER(NB) triangle_scatter(a, b, scale, K, S1, na, NB, out)
    TRIANGLE_BY_WIDTH(SCATTER, b->taps)
#undef SCATTER
}

/* d loss / d (position, width) of the K elements on one axis: the dense path's arithmetic
 * (axis_backward) over the window, vectorised over elements. part: d loss / d tap, (taps, K);
 * rest: K values added to each; acc_pos / acc_sig: K outputs. */
static void triangle_axis_backward(const Taps *ax, const REAL *restrict part,
                                   const REAL *restrict rest, const REAL *restrict scale, int K,
                                   REAL *restrict acc_pos, REAL *restrict acc_sig) {
    for (int k = 0; k < K; ++k) acc_pos[k] = acc_sig[k] = 0;
    for (int t = 0; t < ax->taps; ++t) {
        const REAL *restrict v = ax->v + (int64_t)t * K, *restrict pt = part + (int64_t)t * K;
        for (int k = 0; k < K; ++k) {
            REAL offset = (REAL)(ax->lo[k] + t) - ax->pos[k];
            REAL active = v[k] > 0 ? rest[k] + pt[k] * scale[k] : 0;
            acc_sig[k] += active;
            acc_pos[k] += offset > 0 ? active : (offset < 0 ? -active : 0);
        }
    }
}

INTERNAL void FN(triangle_backward_row)(const REAL *weight, const REAL *SIG, const REAL *grad,
                                        REAL *grad_weight, REAL *grad_P, REAL *grad_SIG,
                                        int64_t R, int K, int S1, int comp0, int comp1,
                                        int64_t r, REAL eps, const Taps *a, const Taps *b,
                                        REAL *work) {
    const int64_t rk = r * K, plane = R * K;
    REAL *part0 = work, *part1 = part0 + (size_t)TRIANGLE_SUPPORT * K;
    REAL *scale = part1 + (size_t)TRIANGLE_SUPPORT * K, *rest0 = scale + K, *rest1 = rest0 + K;
    REAL *grad_scale = rest1 + K, *acc = grad_scale + K; /* acc: 4 K, both axes' sums */
    const int na = a->taps;
#define GATHER(NB) triangle_gather(a, b, grad, K, S1, na, NB, part0, part1, grad_scale)
    TRIANGLE_BY_WIDTH(GATHER, b->taps)
#undef GATHER
    for (int k = 0; k < K; ++k) {
        REAL norm = a->sum[k] * b->sum[k] + eps;
        scale[k] = weight[rk + k] / norm;
        REAL grad_norm = -grad_scale[k] * scale[k] / norm;
        grad_weight[rk + k] = grad_scale[k] / norm;
        rest0[k] = grad_norm * b->sum[k];
        rest1[k] = grad_norm * a->sum[k];
    }
    triangle_axis_backward(a, part0, rest0, scale, K, acc, acc + K);
    triangle_axis_backward(b, part1, rest1, scale, K, acc + 2 * K, acc + 3 * K);
    for (int k = 0; k < K; ++k) {
        /* d |SIG| / d SIG = sign(SIG) */
        REAL s0 = SIG[comp0 * plane + rk + k], s1 = SIG[comp1 * plane + rk + k];
        grad_P[comp0 * plane + rk + k] = acc[k];
        grad_P[comp1 * plane + rk + k] = acc[2 * K + k];
        grad_SIG[comp0 * plane + rk + k] = s0 > 0 ? acc[K + k] : (s0 < 0 ? -acc[K + k] : 0);
        grad_SIG[comp1 * plane + rk + k] =
            s1 > 0 ? acc[3 * K + k] : (s1 < 0 ? -acc[3 * K + k] : 0);
    }
}

INTERNAL int FN(triangle_alloc)(int version, int K, Triangle *tri) {
    tri->buffer = NULL;
    if (version != VERSION_MAX) return 1;
    size_t taps = taps_scalars(K);
    tri->buffer = malloc(sizeof(REAL) * (2 * taps + (size_t)(2 * TRIANGLE_SUPPORT + 8) * K));
    if (!tri->buffer) return 0;
    taps_bind(tri->buffer, K, &tri->a);
    taps_bind(tri->buffer + taps, K, &tri->b);
    tri->work = tri->buffer + 2 * taps;
    return 1;
}
