/* Fused CPU construction of 2-D DCLS kernels (bindings: mmdcls/ops/native/construction.py).
 *
 * Compiled twice: REAL = float (names ending _f32), and with -DREAL_IS_DOUBLE (_f64). Every function
 * handles the kernel rows [r0, r1) of one call, so the Python side runs disjoint row ranges on
 * several threads. Per row, everything (per-axis profiles, partial sums) lives in a small work
 * buffer that stays in L1/L2: no (R, K, G) tensor is ever materialised, which is what makes
 * the torch path memory-bound.
 *
 * Layouts (contiguous): weight (R, K); P, SIG (2, R, K) indexed by component; kernel and
 * grad_kernel (R, S0, S1). comp0 / comp1: the P component giving kernel axis 0 / 1, half0 /
 * half1: the offset added to it (dcls adds sizes[component] // 2). The arithmetic follows
 * mmdcls/ops/construct/ (and through it dcls 0.1.1) operation by operation.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
/* Flush denormal results and operands to zero while a routine runs (restored after): Gaussian
 * tails (exp(-80) = 1.8e-35) times small weights land in the denormal range, where x86
 * arithmetic takes a microcode path ~100x slower; the values concerned are below 1.2e-38. */
#define FTZ_BEGIN unsigned int saved_csr = _mm_getcsr(); _mm_setcsr(saved_csr | 0x8040)
#define FTZ_END _mm_setcsr(saved_csr)
#else
#define FTZ_BEGIN
#define FTZ_END
#endif

#ifdef REAL_IS_DOUBLE
#define REAL double
#define SUFFIX _f64
#define EXP exp
#define FABS fabs
#define FLOOR floor
#define CEIL ceil
#else
#define REAL float
#define SUFFIX _f32
#define EXP expf /* vectorised through glibc's libmvec under -ffast-math */
#define FABS fabsf
#define FLOOR floorf
#define CEIL ceilf
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SUFFIX)

#define NORMALISATION_EPS ((REAL)1e-7)
#define GAUSS_EXPONENT_FLOOR ((REAL)-80.0)

enum { VERSION_GAUSS = 0, VERSION_MAX = 1 };
enum { VERSION_V0 = 0, VERSION_V1 = 1 };

/* ------------------------------------------------------------------ gauss / max */

/* The row contractions run on 32-byte vectors (gcc / clang vector extensions: AVX with
 * -march=native, pairs of SSE registers otherwise). Profiles and the gradient rows are stored
 * zero-padded to whole vectors, so inner loops have no remainder and no aliasing checks. */
#define LANES ((int)(32 / sizeof(REAL)))
typedef REAL vec __attribute__((vector_size(32)));

static inline int lanes_up(int n) { return (n + LANES - 1) / LANES; }

#ifndef REAL_IS_DOUBLE
typedef int32_t ivec __attribute__((vector_size(32)));

/* mask ? a : b per lane (mask lanes all ones or zero, as vector comparisons give) */
static inline vec select_lanes(ivec mask, vec a, vec b) {
    return (vec)(((ivec)a & mask) | ((ivec)b & ~mask));
}

/* exp(x) for x in [-87, 0], 8 lanes inline (Cephes expf: ~1 ulp): libmvec's call costs as much
 * again in spills of the caller's vector registers and range checks. */
static inline vec exp_nonpositive(vec x) {
    /* n = nearest integer to x / ln 2 (x <= 0: truncation of a non-negative number) */
    ivec n = -__builtin_convertvector((REAL)0.5 - x * (REAL)1.44269504088896341, ivec);
    vec nf = __builtin_convertvector(n, vec);
    vec f = x - nf * (REAL)0.693359375;
    f = f - nf * (REAL)-2.12194440e-4;
    vec p = f * (REAL)1.9875691500E-4 + (REAL)1.3981999507E-3;
    p = p * f + (REAL)8.3334519073E-3;
    p = p * f + (REAL)4.1665795894E-2;
    p = p * f + (REAL)1.6666665459E-1;
    p = p * f + (REAL)5.0000001201E-1;
    p = p * f * f + f + (REAL)1;
    return p * (vec)((n + 127) << 23); /* 2^n: n >= -126 keeps it a normal float */
}
#endif

/* One element's profile on one axis: prof[g] for g < size, zeros up to padded (a multiple of
 * LANES); returns the sum. Gaussians (float64 here; float32 ones: gauss_axis_profiles) call
 * libmvec over whole vectors, then zero the padding and sum with vector operations. The
 * triangle masks its padding and writes and sums in one pass. Padding is never written with
 * narrow stores: the vector loads that read it back would stall on store forwarding. */
static inline REAL profile(REAL pos, REAL sig, int size, int padded, int version,
                           REAL *restrict prof) {
    if (version == VERSION_GAUSS) {
        for (int g = 0; g < padded; ++g) {
            REAL t = ((REAL)g - pos) / sig;
            REAL e = t * t * (REAL)-0.5;
            e = e < GAUSS_EXPONENT_FLOOR ? GAUSS_EXPONENT_FLOOR : e;
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
    return aligned_alloc(32, count * sizeof(vec) > 0 ? count * sizeof(vec) : sizeof(vec));
}

#ifndef REAL_IS_DOUBLE
/* float32 Gaussian profiles of K elements on one axis (P, SIG: that component's K values,
 * prof: K x V vectors, padding masked in registers) and their sums. The loop holds only the
 * inline exps, independent from one element to the next, so several are in flight; the sums
 * follow in a second pass (20% faster forward than one element's profile and sum at a time). */
static void gauss_axis_profiles(const REAL *restrict P, const REAL *restrict SIG, REAL half,
                                REAL sig_floor, int K, int size, int V, vec *restrict prof,
                                REAL *restrict sums) {
    vec lanes;
    for (int l = 0; l < LANES; ++l) lanes[l] = (REAL)l;
    const vec tail = lanes + (REAL)((V - 1) * LANES);
    for (int k = 0; k < K; ++k) {
        const REAL pos = P[k] + half, inverse = (REAL)1 / (FABS(SIG[k]) + sig_floor);
        vec *pk = prof + (int64_t)k * V;
        for (int v = 0; v < V; ++v) {
            vec t = (lanes + (REAL)(v * LANES) - pos) * inverse;
            vec e = t * t * (REAL)-0.5;
            e = select_lanes(e < GAUSS_EXPONENT_FLOOR, e - e + GAUSS_EXPONENT_FLOOR, e);
            pk[v] = exp_nonpositive(e);
        }
        pk[V - 1] = select_lanes(tail < (REAL)size, pk[V - 1], pk[V - 1] - pk[V - 1]);
    }
    for (int k = 0; k < K; ++k) {
        vec total = prof[(int64_t)k * V];
        for (int v = 1; v < V; ++v) total += prof[(int64_t)k * V + v];
        REAL s = 0;
        for (int l = 0; l < LANES; ++l) s += total[l];
        sums[k] = s;
    }
}
#endif

/* Profiles of all K elements of row r on both axes, their sums and scale = w / normaliser.
 * axis1_given: prof1 / sum1 already hold the row's axis-1 profiles (saved by the forward). */
static void row_profiles(const REAL *weight, const REAL *P, const REAL *SIG, int64_t R,
                         int comp0, int comp1, REAL half0, REAL half1, REAL sig_floor,
                         int version, int64_t r, int axis1_given, Profiles *pr) {
    const int64_t rk = r * pr->K, plane = R * pr->K;
#ifndef REAL_IS_DOUBLE
    if (version == VERSION_GAUSS) {
        gauss_axis_profiles(P + comp0 * plane + rk, SIG + comp0 * plane + rk, half0, sig_floor,
                            pr->K, pr->S0, pr->V0, pr->prof0, pr->sum0);
        if (!axis1_given)
            gauss_axis_profiles(P + comp1 * plane + rk, SIG + comp1 * plane + rk, half1,
                                sig_floor, pr->K, pr->S1, pr->V1, pr->prof1, pr->sum1);
    } else
#endif
    for (int k = 0; k < pr->K; ++k) {
        REAL pos0 = P[comp0 * plane + rk + k] + half0;
        REAL sig0 = FABS(SIG[comp0 * plane + rk + k]) + sig_floor;
        pr->sum0[k] = profile(pos0, sig0, pr->S0, pr->V0 * LANES, version,
                              (REAL *)(pr->prof0 + (int64_t)k * pr->V0));
        if (!axis1_given) {
            REAL pos1 = P[comp1 * plane + rk + k] + half1;
            REAL sig1 = FABS(SIG[comp1 * plane + rk + k]) + sig_floor;
            pr->sum1[k] = profile(pos1, sig1, pr->S1, pr->V1 * LANES, version,
                                  (REAL *)(pr->prof1 + (int64_t)k * pr->V1));
        }
    }
    for (int k = 0; k < pr->K; ++k) {
        pr->norm[k] = pr->sum0[k] * pr->sum1[k] + NORMALISATION_EPS;
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

/* ------------------------------------------------------------------ max: compact support */

/* The triangle sig - |g - pos| is positive on fewer than 2 sig + 1 taps per axis (sig = |SIG|
 * + 1: at most two, the bilinear width, as initialised). Rows whose elements all span at most
 * TRIANGLE_SUPPORT taps per axis are built from a window of `taps` taps per element and axis
 * (the row's widest span, placed inside the kernel): a few scalar FMAs per element instead of
 * a full-size contraction, with the same trip counts for every element of the row (no
 * mispredicted branches). Wider rows take the dense path. Window values are computed as in
 * profile(), so the taps the window leaves out are exactly the dense path's zeros.
 * Per-element quantities are stored structure-of-arrays (element k; window tap t at t * K + k)
 * so the loops over elements vectorise; only each element's scatter / gather is scalar. */
#define TRIANGLE_SUPPORT 8

typedef struct {
    REAL *pos, *sig, *sum, *v; /* (K); v: (TRIANGLE_SUPPORT, K) */
    int *lo;                   /* (K) first tap of the window */
    int taps;                  /* window width of the row */
} FN(Taps);

static size_t FN(taps_scalars)(int K) { return (size_t)K * (4 + TRIANGLE_SUPPORT); }

static void FN(taps_bind)(REAL *buffer, int K, FN(Taps) *ax) {
    ax->pos = buffer, ax->sig = ax->pos + K, ax->sum = ax->sig + K;
    ax->lo = (int *)(ax->sum + K);
    ax->v = ax->sum + 2 * K;
}

/* Windows of the K elements of one row on one axis of `size` taps (P, SIG: that component's
 * K values); 0 when an element may span more than TRIANGLE_SUPPORT taps. Indices are clamped
 * in int, so no input (NaN, huge positions) indexes outside the kernel. */
static int FN(triangle_axis_taps)(const REAL *restrict P, const REAL *restrict SIG, REAL half,
                                  REAL sig_floor, int K, int size, FN(Taps) *ax) {
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

/* Windows of row r on both axes; 0 when the row needs the dense path. */
static int FN(triangle_row_taps)(const REAL *P, const REAL *SIG, int64_t R, int K, int S0,
                                 int S1, int comp0, int comp1, REAL half0, REAL half1,
                                 REAL sig_floor, int64_t r, FN(Taps) *a, FN(Taps) *b) {
    const int64_t rk = r * K, plane = R * K;
    return FN(triangle_axis_taps)(P + comp0 * plane + rk, SIG + comp0 * plane + rk, half0,
                                  sig_floor, K, S0, a) &&
           FN(triangle_axis_taps)(P + comp1 * plane + rk, SIG + comp1 * plane + rk, half1,
                                  sig_floor, K, S1, b);
}

/* The scatter (forward) and gather (backward) of every element's na x nb window, inlined
 * with constant nb for the common widths. */
static inline __attribute__((always_inline)) void FN(triangle_scatter)(
        const FN(Taps) *a, const FN(Taps) *b, const REAL *restrict scale, int K, int S1,
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
static inline __attribute__((always_inline)) void FN(triangle_gather)(
        const FN(Taps) *a, const FN(Taps) *b, const REAL *restrict grad, int K, int S1,
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

/* kernel row r (out, `area` scalars) from its windows; scale: K scalars of work space. */
static void FN(triangle_forward_row)(const REAL *restrict weight, int K, int S1,
                                     const FN(Taps) *a, const FN(Taps) *b,
                                     REAL *restrict scale, REAL *restrict out, size_t area) {
    memset(out, 0, sizeof(REAL) * area);
    for (int k = 0; k < K; ++k)
        scale[k] = weight[k] / (a->sum[k] * b->sum[k] + NORMALISATION_EPS);
    const int na = a->taps;
#define SCATTER(NB) FN(triangle_scatter)(a, b, scale, K, S1, na, NB, out)
    TRIANGLE_BY_WIDTH(SCATTER, b->taps)
#undef SCATTER
}

/* d loss / d (position, width) of the K elements on one axis: the dense path's arithmetic
 * (axis_backward) over the window, vectorised over elements. part: d loss / d tap, (taps, K);
 * rest: K values added to each; acc_pos / acc_sig: K outputs. */
static void FN(triangle_axis_backward)(const FN(Taps) *ax, const REAL *restrict part,
                                       const REAL *restrict rest, const REAL *restrict scale,
                                       int K, REAL *restrict acc_pos, REAL *restrict acc_sig) {
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

/* d loss / d (weight, P, SIG) of row r (grad: its d loss / d kernel) from its windows; work:
 * (2 TRIANGLE_SUPPORT + 8) K scalars. */
static void FN(triangle_backward_row)(const REAL *weight, const REAL *SIG, const REAL *grad,
                                      REAL *grad_weight, REAL *grad_P, REAL *grad_SIG,
                                      int64_t R, int K, int S1, int comp0, int comp1, int64_t r,
                                      const FN(Taps) *a, const FN(Taps) *b, REAL *work) {
    const int64_t rk = r * K, plane = R * K;
    REAL *part0 = work, *part1 = part0 + (size_t)TRIANGLE_SUPPORT * K;
    REAL *scale = part1 + (size_t)TRIANGLE_SUPPORT * K, *rest0 = scale + K, *rest1 = rest0 + K;
    REAL *grad_scale = rest1 + K, *acc = grad_scale + K; /* acc: 4 K, both axes' sums */
    const int na = a->taps;
#define GATHER(NB) FN(triangle_gather)(a, b, grad, K, S1, na, NB, part0, part1, grad_scale)
    TRIANGLE_BY_WIDTH(GATHER, b->taps)
#undef GATHER
    for (int k = 0; k < K; ++k) {
        REAL norm = a->sum[k] * b->sum[k] + NORMALISATION_EPS;
        scale[k] = weight[rk + k] / norm;
        REAL grad_norm = -grad_scale[k] * scale[k] / norm;
        grad_weight[rk + k] = grad_scale[k] / norm;
        rest0[k] = grad_norm * b->sum[k];
        rest1[k] = grad_norm * a->sum[k];
    }
    FN(triangle_axis_backward)(a, part0, rest0, scale, K, acc, acc + K);
    FN(triangle_axis_backward)(b, part1, rest1, scale, K, acc + 2 * K, acc + 3 * K);
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

/* Work space of the triangle rows: taps of both axes and the backward's partial sums. */
typedef struct {
    REAL *buffer, *work; /* buffer NULL: not a triangle (no compact rows) */
    FN(Taps) a, b;
} Triangle;

/* 0 when the buffer could not be allocated. */
static int FN(triangle_alloc)(int version, int K, Triangle *tri) {
    tri->buffer = NULL;
    if (version != VERSION_MAX) return 1;
    size_t taps = FN(taps_scalars)(K);
    tri->buffer = malloc(sizeof(REAL) * (2 * taps + (size_t)(2 * TRIANGLE_SUPPORT + 8) * K));
    if (!tri->buffer) return 0;
    FN(taps_bind)(tri->buffer, K, &tri->a);
    FN(taps_bind)(tri->buffer + taps, K, &tri->b);
    tri->work = tri->buffer + 2 * taps;
    return 1;
}

/* kernel[r] = sum_k (scale[k] * prof0[k]) (outer) prof1[k], rows [r0, r1). */
static int dense_forward_rows(const REAL *weight, const REAL *P, const REAL *SIG, REAL *kernel,
                      REAL *saved, int64_t R, int K, int S0, int S1, int comp0, int comp1,
                      REAL half0, REAL half1, REAL sig_floor, int version, int64_t r0,
                      int64_t r1) {
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
            FN(triangle_forward_row)(weight + r * K, K, S1, &tri.a, &tri.b, tri.work,
                                     kernel + r * S0 * S1, (size_t)S0 * S1);
            continue;
        }
        if (saved) /* the axis-1 profiles are computed into the saved buffer */
            saved_axis1(saved, R, K, pr.V1, r, &pr);
        row_profiles(weight, P, SIG, R, comp0, comp1, half0, half1, sig_floor, version, r, 0,
                     &pr);
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
                       const REAL *grad_kernel, REAL *saved, REAL *grad_weight, REAL *grad_P,
                       REAL *grad_SIG, int64_t R, int K, int S0, int S1, int comp0, int comp1,
                       REAL half0, REAL half1, REAL sig_floor, int version, int64_t r0,
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
                                      grad_P, grad_SIG, R, K, S1, comp0, comp1, r, &tri.a,
                                      &tri.b, tri.work);
            continue;
        }
        if (saved) saved_axis1(saved, R, K, V1, r, &pr);
        row_profiles(weight, P, SIG, R, comp0, comp1, half0, half1, sig_floor, version, r,
                     saved != NULL, &pr);
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

/* ------------------------------------------------------------------ v0 / v1 (bilinear) */

typedef struct {
    int tap[2];      /* lower, upper grid index */
    REAL w[2];       /* tap weights (1 - frac, frac), 0 where the tap is outside */
    int in[2];       /* tap inside the axis */
    REAL frac;
} FN(Axis);

static inline void FN(bilinear_axis)(REAL pos, int size, FN(Axis) *ax) {
    REAL low = FLOOR(pos);
    ax->frac = pos - low;
    /* far outside (or NaN): both taps outside; keeps the int conversion defined */
    if (!(low >= -2)) low = -2;
    if (low > size) low = size;
    ax->tap[0] = (int)low;
    ax->tap[1] = (int)low + 1;
    for (int b = 0; b < 2; ++b) {
        ax->in[b] = ax->tap[b] >= 0 && ax->tap[b] < size;
        ax->w[b] = ax->in[b] ? (b ? ax->frac : 1 - ax->frac) : 0;
    }
}

static int bilinear_forward_rows(const REAL *weight, const REAL *P, REAL *kernel, int64_t R, int K,
                         int S0, int S1, int comp0, int comp1, REAL half0, REAL half1,
                         int version, int64_t r0, int64_t r1) {
    const int64_t plane = R * K;
    for (int64_t r = r0; r < r1; ++r) {
        REAL *out = kernel + r * S0 * S1;
        memset(out, 0, sizeof(REAL) * (size_t)S0 * S1);
        const int64_t rk = r * K;
        for (int k = 0; k < K; ++k) {
            FN(Axis) a, b;
            FN(bilinear_axis)(P[comp0 * plane + rk + k] + half0, S0, &a);
            FN(bilinear_axis)(P[comp1 * plane + rk + k] + half1, S1, &b);
            REAL scale = weight[rk + k];
            if (version == VERSION_V1)
                scale = scale / ((a.w[0] + a.w[1]) * (b.w[0] + b.w[1]) + NORMALISATION_EPS);
            for (int i = 0; i < 2; ++i) {
                if (!a.in[i]) continue;
                for (int j = 0; j < 2; ++j)
                    if (b.in[j]) out[a.tap[i] * S1 + b.tap[j]] += a.w[i] * b.w[j] * scale;
            }
        }
    }
    return 0;
}

static int bilinear_backward_rows(const REAL *weight, const REAL *P, const REAL *grad_kernel,
                          REAL *grad_weight, REAL *grad_P, int64_t R, int K, int S0, int S1,
                          int comp0, int comp1, REAL half0, REAL half1, int version,
                          int64_t r0, int64_t r1) {
    const int64_t plane = R * K;
    for (int64_t r = r0; r < r1; ++r) {
        const REAL *grad = grad_kernel + r * S0 * S1;
        const int64_t rk = r * K;
        for (int k = 0; k < K; ++k) {
            FN(Axis) a, b;
            FN(bilinear_axis)(P[comp0 * plane + rk + k] + half0, S0, &a);
            FN(bilinear_axis)(P[comp1 * plane + rk + k] + half1, S1, &b);
            REAL g[2][2];
            for (int i = 0; i < 2; ++i)
                for (int j = 0; j < 2; ++j)
                    g[i][j] = a.in[i] && b.in[j] ? grad[a.tap[i] * S1 + b.tap[j]] : 0;
            /* d loss / d tap weight of each axis, summed over the other axis's taps */
            REAL pa[2], pb[2];
            for (int t = 0; t < 2; ++t) {
                pa[t] = g[t][0] * b.w[0] + g[t][1] * b.w[1];
                pb[t] = g[0][t] * a.w[0] + g[1][t] * a.w[1];
            }
            REAL grad_scale = pa[0] * a.w[0] + pa[1] * a.w[1];
            REAL scale = weight[rk + k], ga[2], gb[2];
            if (version == VERSION_V1) {
                REAL suma = a.w[0] + a.w[1], sumb = b.w[0] + b.w[1];
                REAL norm = suma * sumb + NORMALISATION_EPS;
                scale = scale / norm;
                grad_weight[rk + k] = grad_scale / norm;
                REAL grad_norm = -grad_scale * scale / norm;
                for (int t = 0; t < 2; ++t) {
                    ga[t] = pa[t] * scale + grad_norm * sumb;
                    gb[t] = pb[t] * scale + grad_norm * suma;
                }
            } else {
                grad_weight[rk + k] = grad_scale;
                for (int t = 0; t < 2; ++t) {
                    ga[t] = pa[t] * scale;
                    gb[t] = pb[t] * scale;
                }
            }
            /* d (1 - frac, frac) / d P = (-1, +1) on the taps inside the kernel; v1's
             * relu(1 - |x|) has zero subgradient on grid points, v0's frac slope 1 */
            REAL gpa = (a.in[1] ? ga[1] : 0) - (a.in[0] ? ga[0] : 0);
            REAL gpb = (b.in[1] ? gb[1] : 0) - (b.in[0] ? gb[0] : 0);
            if (version == VERSION_V1) {
                if (!(a.frac > 0)) gpa = 0;
                if (!(b.frac > 0)) gpb = 0;
            }
            grad_P[comp0 * plane + rk + k] = gpa;
            grad_P[comp1 * plane + rk + k] = gpb;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ exported entry points */

#ifdef _OPENMP
#define THREAD_RANGE(R, lo, hi)                                                          \
    int64_t lo = (R) * omp_get_thread_num() / omp_get_num_threads();                     \
    int64_t hi = (R) * (omp_get_thread_num() + 1) / omp_get_num_threads()
#else
#define THREAD_RANGE(R, lo, hi) int64_t lo = 0, hi = (R)
#endif

/* Body of every entry point: `rows_call` (which uses lo / hi) on disjoint row ranges of `R`
 * rows over `nthreads` OpenMP threads, denormals flushed; 0, or 1 when a work buffer could
 * not be allocated. */
#define OVER_ROW_RANGES(R, rows_call)                                                    \
    int failed = 0;                                                                      \
    _Pragma("omp parallel num_threads(nthreads) reduction(| : failed)")                  \
    {                                                                                    \
        THREAD_RANGE(R, lo, hi);                                                         \
        FTZ_BEGIN;                                                                       \
        failed |= rows_call;                                                             \
        FTZ_END;                                                                         \
    }                                                                                    \
    return failed

/* saved: NULL, or a 32-byte aligned buffer of R K (V1 LANES + 1) scalars that receives the
 * axis-1 profiles for dense_backward (see saved_axis1). */
int FN(dense_forward)(const REAL *weight, const REAL *P, const REAL *SIG, REAL *kernel,
                      REAL *saved, int64_t R, int K, int S0, int S1, int comp0, int comp1,
                      REAL half0, REAL half1, REAL sig_floor, int version, int nthreads) {
    OVER_ROW_RANGES(R, dense_forward_rows(weight, P, SIG, kernel, saved, R, K, S0, S1, comp0,
                                          comp1, half0, half1, sig_floor, version, lo, hi));
}

/* saved: NULL (profiles recomputed) or the buffer dense_forward filled. */
int FN(dense_backward)(const REAL *weight, const REAL *P, const REAL *SIG,
                       const REAL *grad_kernel, REAL *saved, REAL *grad_weight, REAL *grad_P,
                       REAL *grad_SIG, int64_t R, int K, int S0, int S1, int comp0, int comp1,
                       REAL half0, REAL half1, REAL sig_floor, int version, int nthreads) {
    OVER_ROW_RANGES(R, dense_backward_rows(weight, P, SIG, grad_kernel, saved, grad_weight,
                                           grad_P, grad_SIG, R, K, S0, S1, comp0, comp1, half0,
                                           half1, sig_floor, version, lo, hi));
}

int FN(bilinear_forward)(const REAL *weight, const REAL *P, REAL *kernel, int64_t R, int K,
                         int S0, int S1, int comp0, int comp1, REAL half0, REAL half1,
                         int version, int nthreads) {
    OVER_ROW_RANGES(R, bilinear_forward_rows(weight, P, kernel, R, K, S0, S1, comp0, comp1,
                                             half0, half1, version, lo, hi));
}

int FN(bilinear_backward)(const REAL *weight, const REAL *P, const REAL *grad_kernel,
                          REAL *grad_weight, REAL *grad_P, int64_t R, int K, int S0, int S1,
                          int comp0, int comp1, REAL half0, REAL half1, int version,
                          int nthreads) {
    OVER_ROW_RANGES(R, bilinear_backward_rows(weight, P, grad_kernel, grad_weight, grad_P, R,
                                              K, S0, S1, comp0, comp1, half0, half1, version,
                                              lo, hi));
}
