/* Fused construction of 2-D DCLS kernels from per-axis profiles: gauss and max (the layout of
 * the rows and arguments: construct_rows.h). Each kernel row is the sum over its elements of
 * scale * (axis-0 profile) (outer) (axis-1 profile), contracted in a cache-sized work buffer;
 * max rows whose triangles are narrow take the compact path of construct_triangle.c. */
#include "construct_gauss_f32.h"
#include "construct_triangle.h"

/* One element's profile on one axis: prof[g] for g < size, zeros up to padded (a multiple of
 * LANES); returns the sum. Gaussians (float64 here; float32 ones: gauss_axis_profiles) call
 * libmvec over whole vectors, then zero the padding and sum with vector operations. The
 * triangle masks its padding and writes and sums in one pass. Padding is never written with
 * narrow stores: the vector loads that read it back would stall on store forwarding. */
static inline REAL profile(REAL pos, REAL sig, int size, int padded, REAL exponent_floor,
                           int version, REAL *restrict prof) {
    if (version == VERSION_GAUSS) {
        for (int g = 0; g < padded; ++g) {
            REAL t = ((REAL)g - pos) / sig;
            REAL e = t * t * (REAL)-0.5;
            e = e < exponent_floor ? exponent_floor : e;
            prof[g] = EXP(e);
        }
        /* zero the padding with whole-vector operations: narrow stores re-read by vector
         * loads stall on store forwarding */
        vec *pv = (vec *)prof, sum = {0};
        const int last = padded / LANES - 1;
        vec tail;
        for (int l = 0; l < LANES; ++l) tail[l] = (REAL)(last * LANES + l < size);
        pv[last] *= tail;
        for (int v = 0; v <= last; ++v) sum += pv[v];
        REAL total = 0;
        for (int l = 0; l < LANES; ++l) total += sum[l];
        return total;
    }
    REAL total = 0; /* triangle: no call in the loop, so it writes and sums in one pass */
    for (int g = 0; g < padded; ++g) {
        REAL p = sig - FABS((REAL)g - pos);
        p = (p > 0 ? p : 0) * (REAL)(g < size);
        prof[g] = p;
        total += p;
    }
    return total;
}

typedef struct {
    int K, S0, S1, V0, V1; /* V: vectors per padded profile row */
    vec *prof0, *prof1;     /* (K, V0), (K, V1) */
    REAL *sum0, *sum1, *norm, *scale;
} Profiles;

static void *alloc_vectors(size_t count) {
    const size_t bytes = count * sizeof(vec);
    return aligned_alloc(sizeof(vec), bytes > 0 ? bytes : sizeof(vec));
}

/* Profiles of all K elements of row r on both axes, their sums and scale = w / normaliser.
 * axis1_given: prof1 / sum1 already hold the row's axis-1 profiles (saved by the forward).
 * Defined beside the row loops so that the compiler can inline it into them. */
static void row_profiles(const REAL *weight, const REAL *P, const REAL *SIG, int64_t R,
                         int comp0, int comp1, REAL half0, REAL half1, REAL sig_floor, REAL eps,
                         REAL exponent_floor, int version, int64_t r, int axis1_given,
                         Profiles *pr) {
    const int64_t rk = r * pr->K, plane = R * pr->K;
#ifndef REAL_IS_DOUBLE
    if (version == VERSION_GAUSS) {
        FN(gauss_axis_profiles)(P + comp0 * plane + rk, SIG + comp0 * plane + rk, half0,
                                sig_floor, exponent_floor, pr->K, pr->S0, pr->V0, pr->prof0,
                                pr->sum0);
        if (!axis1_given)
            FN(gauss_axis_profiles)(P + comp1 * plane + rk, SIG + comp1 * plane + rk, half1,
                                    sig_floor, exponent_floor, pr->K, pr->S1, pr->V1,
                                    pr->prof1, pr->sum1);
    } else
#endif
    for (int k = 0; k < pr->K; ++k) {
        REAL pos0 = P[comp0 * plane + rk + k] + half0;
        REAL sig0 = FABS(SIG[comp0 * plane + rk + k]) + sig_floor;
        pr->sum0[k] = profile(pos0, sig0, pr->S0, pr->V0 * LANES, exponent_floor, version,
                              (REAL *)(pr->prof0 + (int64_t)k * pr->V0));
        if (!axis1_given) {
            REAL pos1 = P[comp1 * plane + rk + k] + half1;
            REAL sig1 = FABS(SIG[comp1 * plane + rk + k]) + sig_floor;
            pr->sum1[k] = profile(pos1, sig1, pr->S1, pr->V1 * LANES, exponent_floor, version,
                                  (REAL *)(pr->prof1 + (int64_t)k * pr->V1));
        }
    }
    for (int k = 0; k < pr->K; ++k) {
        pr->norm[k] = pr->sum0[k] * pr->sum1[k] + eps;
        pr->scale[k] = weight[rk + k] / pr->norm[k];
    }
}

/* Points the axis-1 profiles and sums of pr at row r of `saved`: (R, K, V1) vectors of
 * profiles, then (R, K) sums. The forward computes them there, the backward reuses them
 * (a quarter of the profile evaluations, the construction's main cost, saved). */
static void saved_axis1(REAL *saved, int64_t R, int K, int V1, int64_t r, Profiles *pr) {
    pr->prof1 = (vec *)saved + r * K * V1;
    pr->sum1 = saved + R * K * V1 * LANES + r * K;
}

/* Work buffer of a Profiles plus `extra` vectors after it (returned through *extra). */
static vec *alloc_profiles(int K, int S0, int S1, size_t extra_vectors, Profiles *pr,
                           vec **extra) {
    pr->K = K, pr->S0 = S0, pr->S1 = S1, pr->V0 = lanes_up(S0), pr->V1 = lanes_up(S1);
    size_t scalars = lanes_up(4 * K);
    size_t count = (size_t)K * (pr->V0 + pr->V1) + scalars + extra_vectors;
    vec *work = (vec *)alloc_vectors(count);
    if (!work) return NULL;
    pr->prof0 = work;
    pr->prof1 = pr->prof0 + (size_t)K * pr->V0;
    pr->sum0 = (REAL *)(pr->prof1 + (size_t)K * pr->V1);
    pr->sum1 = pr->sum0 + K, pr->norm = pr->sum1 + K, pr->scale = pr->norm + K;
    *extra = pr->prof1 + (size_t)K * pr->V1 + scalars;
    return work;
}

/* out[m] = sum_t coef(m, t) * scale[t] * rows[t] for m < M, with coef(m, t) =
 * coef[m * m_stride + t * t_stride] (scale NULL: 1) and rows / out of V vectors each: every
 * contraction below is one of these. For V <= 4 (sizes up to 32 floats / 16 doubles) the
 * loops are unrolled and two outputs are accumulated at once in registers (2 V independent
 * FMA chains hide the FMA latency; each row vector is loaded once for both). Branch-free:
 * skipping zero coefficients costs more in mispredictions than it saves. */
#define MATVEC_CASE(NV)                                                                  \
    case NV: {                                                                           \
        int m = 0;                                                                       \
        for (; m + 1 < M; m += 2) {                                                      \
            vec a[NV], b[NV];                                                            \
            for (int v = 0; v < NV; ++v) a[v] = b[v] = (vec){0};                         \
            const REAL *c0 = coef + (int64_t)m * m_stride, *c1 = c0 + m_stride;          \
            for (int t = 0; t < T; ++t) {                                                \
                REAL s = scale ? scale[t] : 1;                                           \
                REAL l0 = c0[(int64_t)t * t_stride] * s, l1 = c1[(int64_t)t * t_stride] * s; \
                const vec *row = rows + (int64_t)t * NV;                                 \
                for (int v = 0; v < NV; ++v) {                                           \
                    a[v] += l0 * row[v];                                                 \
                    b[v] += l1 * row[v];                                                 \
                }                                                                        \
            }                                                                            \
            for (int v = 0; v < NV; ++v) {                                               \
                out[(int64_t)m * NV + v] = a[v];                                         \
                out[(int64_t)(m + 1) * NV + v] = b[v];                                   \
            }                                                                            \
        }                                                                                \
        for (; m < M; ++m) {                                                             \
            vec a[NV];                                                                   \
            for (int v = 0; v < NV; ++v) a[v] = (vec){0};                                \
            const REAL *c = coef + (int64_t)m * m_stride;                                \
            for (int t = 0; t < T; ++t) {                                                \
                REAL l = c[(int64_t)t * t_stride] * (scale ? scale[t] : 1);              \
                const vec *row = rows + (int64_t)t * NV;                                 \
                for (int v = 0; v < NV; ++v) a[v] += l * row[v];                         \
            }                                                                            \
            for (int v = 0; v < NV; ++v) out[(int64_t)m * NV + v] = a[v];                \
        }                                                                                \
        return;                                                                          \
    }

static void matvecs(vec *restrict out, int M, int V, const REAL *restrict coef,
                    int64_t m_stride, int64_t t_stride, const REAL *restrict scale,
                    const vec *restrict rows, int T) {
    switch (V) {
        MATVEC_CASE(1)
        MATVEC_CASE(2)
        MATVEC_CASE(3)
        MATVEC_CASE(4)
        default:
            for (int m = 0; m < M; ++m) {
                vec *o = out + (int64_t)m * V;
                for (int v = 0; v < V; ++v) o[v] = (vec){0};
                const REAL *c = coef + (int64_t)m * m_stride;
                for (int t = 0; t < T; ++t) {
                    REAL lead = c[(int64_t)t * t_stride] * (scale ? scale[t] : 1);
                    const vec *b = rows + (int64_t)t * V;
                    for (int v = 0; v < V; ++v) o[v] += lead * b[v];
                }
            }
    }
}

/* kernel[r] = sum_k (scale[k] * prof0[k]) (outer) prof1[k], rows [r0, r1). */
static int dense_forward_rows(const REAL *weight, const REAL *P, const REAL *SIG, REAL *kernel,
                              REAL *saved, int64_t R, int K, int S0, int S1, int comp0,
                              int comp1, REAL half0, REAL half1, REAL sig_floor, REAL eps,
                              REAL exponent_floor, int version, int64_t r0, int64_t r1) {
    Profiles pr;
    vec *acc;
    vec *work = alloc_profiles(K, S0, S1, (size_t)S0 * lanes_up(S1), &pr, &acc);
    Triangle tri;
    if (!work || !FN(triangle_alloc)(version, K, &tri)) {
        free(work);
        return 1;
    }
    for (int64_t r = r0; r < r1; ++r) {
        if (tri.buffer && FN(triangle_row_taps)(P, SIG, R, K, S0, S1, comp0, comp1, half0,
                                                half1, sig_floor, r, &tri.a, &tri.b)) {
            FN(triangle_forward_row)(weight + r * K, K, S1, eps, &tri.a, &tri.b, tri.work,
                                     kernel + r * S0 * S1, (size_t)S0 * S1);
            continue;
        }
        if (saved) /* the axis-1 profiles are computed into the saved buffer */
            saved_axis1(saved, R, K, pr.V1, r, &pr);
        row_profiles(weight, P, SIG, R, comp0, comp1, half0, half1, sig_floor, eps,
                     exponent_floor, version, r, 0, &pr);
        /* kernel row i = sum_k scale[k] * prof0[k][i] * prof1[k] */
        matvecs(acc, S0, pr.V1, (const REAL *)pr.prof0, 1, (int64_t)pr.V0 * LANES, pr.scale,
                pr.prof1, K);
        REAL *out = kernel + r * S0 * S1;
        for (int i = 0; i < S0; ++i)
            memcpy(out + (int64_t)i * S1, acc + (int64_t)i * pr.V1, sizeof(REAL) * S1);
    }
    free(work), free(tri.buffer);
    return 0;
}

/* Accumulates d loss / d (position, width) of one axis of element k into *grad_pos /
 * *grad_sig from d loss / d profile = rest + partial[g] * scale. `size` may include the
 * zero padding of prof (it contributes nothing): whole vectors, no scalar remainder. */
static inline void axis_backward(const REAL *restrict prof, const REAL *restrict partial,
                                 REAL rest, REAL scale, REAL pos, REAL sig, int size,
                                 int version, REAL *grad_pos, REAL *grad_sig) {
    REAL acc_pos = 0, acc_sig = 0;
    if (version == VERSION_GAUSS) {
        /* d profile / d position = profile * offset / sigma^2, d / d sigma: that * offset /
         * sigma (offset = grid - position) */
        for (int g = 0; g < size; ++g) {
            REAL offset = (REAL)g - pos;
            REAL weighted = (rest + partial[g] * scale) * prof[g] * offset;
            acc_pos += weighted;
            acc_sig += weighted * offset;
        }
        REAL sig_sq = sig * sig;
        *grad_pos = acc_pos / sig_sq;
        *grad_sig = acc_sig / (sig_sq * sig);
    } else {
        /* triangle: d / d position = sign(offset), d / d width = 1 where the profile is
         * positive (autograd's subgradients through dcls at the kinks are 0) */
        for (int g = 0; g < size; ++g) {
            REAL offset = (REAL)g - pos;
            REAL active = (rest + partial[g] * scale) * (REAL)(prof[g] > 0);
            acc_sig += active;
            acc_pos += active * (REAL)((offset > 0) - (offset < 0));
        }
        *grad_pos = acc_pos;
        *grad_sig = acc_sig;
    }
}

static int dense_backward_rows(const REAL *weight, const REAL *P, const REAL *SIG,
                               const REAL *grad_kernel, REAL *saved, REAL *grad_weight,
                               REAL *grad_P, REAL *grad_SIG, int64_t R, int K, int S0, int S1,
                               int comp0, int comp1, REAL half0, REAL half1, REAL sig_floor,
                               REAL eps, REAL exponent_floor, int version, int64_t r0,
                               int64_t r1) {
    const int V0 = lanes_up(S0), V1 = lanes_up(S1);
    Profiles pr;
    vec *extra;
    /* grad row padded (S0, V1) and transposed (S1, V0); partials (K, V0) and (K, V1) */
    vec *work = alloc_profiles(K, S0, S1, (size_t)S0 * V1 + (size_t)S1 * V0 +
                               (size_t)K * (V0 + V1), &pr, &extra);
    Triangle tri;
    if (!work || !FN(triangle_alloc)(version, K, &tri)) {
        free(work);
        return 1;
    }
    vec *grad_rows = extra, *grad_cols = grad_rows + (size_t)S0 * V1;
    vec *part0 = grad_cols + (size_t)S1 * V0, *part1 = part0 + (size_t)K * V0;
    memset(grad_rows, 0, sizeof(vec) * ((size_t)S0 * V1 + (size_t)S1 * V0));
    const int64_t plane = R * K;
    for (int64_t r = r0; r < r1; ++r) {
        if (tri.buffer && FN(triangle_row_taps)(P, SIG, R, K, S0, S1, comp0, comp1, half0,
                                                half1, sig_floor, r, &tri.a, &tri.b)) {
            FN(triangle_backward_row)(weight, SIG, grad_kernel + r * S0 * S1, grad_weight,
                                      grad_P, grad_SIG, R, K, S1, comp0, comp1, r, eps, &tri.a,
                                      &tri.b, tri.work);
            continue;
        }
        if (saved) saved_axis1(saved, R, K, V1, r, &pr);
        row_profiles(weight, P, SIG, R, comp0, comp1, half0, half1, sig_floor, eps,
                     exponent_floor, version, r, saved != NULL, &pr);
        const REAL *grad = grad_kernel + r * S0 * S1;
        for (int i = 0; i < S0; ++i) {
            memcpy(grad_rows + (int64_t)i * V1, grad + (int64_t)i * S1, sizeof(REAL) * S1);
            for (int j = 0; j < S1; ++j)
                ((REAL *)(grad_cols + (int64_t)j * V0))[i] = grad[i * S1 + j];
        }
        /* part0[k][i] = sum_j grad[i, j] prof1[k][j], part1[k][j] = sum_i grad[i, j]
         * prof0[k][i] */
        matvecs(part0, K, V0, (const REAL *)pr.prof1, (int64_t)V1 * LANES, 1, NULL, grad_cols,
                S1);
        matvecs(part1, K, V1, (const REAL *)pr.prof0, (int64_t)V0 * LANES, 1, NULL, grad_rows,
                S0);
        const int64_t rk = r * K;
        for (int k = 0; k < K; ++k) {
            const REAL *a = (const REAL *)(pr.prof0 + k * V0);
            const REAL *b = (const REAL *)(pr.prof1 + k * V1);
            const REAL *pa = (const REAL *)(part0 + k * V0);
            const REAL *pb = (const REAL *)(part1 + k * V1);
            REAL grad_scale = 0;
            for (int i = 0; i < V0 * LANES; ++i) grad_scale += pa[i] * a[i];
            grad_weight[rk + k] = grad_scale / pr.norm[k];
            REAL grad_norm = -grad_scale * pr.scale[k] / pr.norm[k];
            REAL pos0 = P[comp0 * plane + rk + k] + half0;
            REAL pos1 = P[comp1 * plane + rk + k] + half1;
            REAL s0 = SIG[comp0 * plane + rk + k], s1 = SIG[comp1 * plane + rk + k];
            REAL gp0, gs0, gp1, gs1;
            axis_backward(a, pa, grad_norm * pr.sum1[k], pr.scale[k], pos0,
                          FABS(s0) + sig_floor, V0 * LANES, version, &gp0, &gs0);
            axis_backward(b, pb, grad_norm * pr.sum0[k], pr.scale[k], pos1,
                          FABS(s1) + sig_floor, V1 * LANES, version, &gp1, &gs1);
            /* d |SIG| / d SIG = sign(SIG) */
            gs0 *= s0 > 0 ? 1 : (s0 < 0 ? -1 : 0);
            gs1 *= s1 > 0 ? 1 : (s1 < 0 ? -1 : 0);
            grad_P[comp0 * plane + rk + k] = gp0;
            grad_P[comp1 * plane + rk + k] = gp1;
            grad_SIG[comp0 * plane + rk + k] = gs0;
            grad_SIG[comp1 * plane + rk + k] = gs1;
        }
    }
    free(work), free(tri.buffer);
    return 0;
}

/* saved: NULL, or a VECTOR_BYTES-aligned buffer of R K (V1 LANES + 1) scalars that receives
 * the axis-1 profiles for dense_backward (see saved_axis1). */
int FN(dense_forward)(const REAL *weight, const REAL *P, const REAL *SIG, REAL *kernel,
                      REAL *saved, int64_t R, int K, int S0, int S1, int comp0, int comp1,
                      REAL half0, REAL half1, REAL sig_floor, REAL eps, REAL exponent_floor,
                      int version, int nthreads) {
    OVER_ROW_RANGES(R, dense_forward_rows(weight, P, SIG, kernel, saved, R, K, S0, S1, comp0,
                                          comp1, half0, half1, sig_floor, eps, exponent_floor,
                                          version, lo, hi));
}

/* saved: NULL (profiles recomputed) or the buffer dense_forward filled. */
int FN(dense_backward)(const REAL *weight, const REAL *P, const REAL *SIG,
                       const REAL *grad_kernel, REAL *saved, REAL *grad_weight, REAL *grad_P,
                       REAL *grad_SIG, int64_t R, int K, int S0, int S1, int comp0, int comp1,
                       REAL half0, REAL half1, REAL sig_floor, REAL eps, REAL exponent_floor,
                       int version, int nthreads) {
    OVER_ROW_RANGES(R, dense_backward_rows(weight, P, SIG, grad_kernel, saved, grad_weight,
                                           grad_P, grad_SIG, R, K, S0, S1, comp0, comp1, half0,
                                           half1, sig_floor, eps, exponent_floor, version, lo,
                                           hi));
}
