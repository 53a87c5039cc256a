/* The float32 Gaussian profiles of the dense gauss construction: see construct_gauss_f32.h. */
#include "construct_gauss_f32.h"

#ifndef REAL_IS_DOUBLE
typedef int32_t ivec __attribute__((vector_size(VECTOR_BYTES)));

/* mask ? a : b per lane (mask lanes all ones or zero, as vector comparisons give) */
static inline vec select_lanes(ivec mask, vec a, vec b) {
    return (vec)(((ivec)a & mask) | ((ivec)b & ~mask));
}

/* exp(x) for x in [-87, 0], LANES lanes inline (Cephes expf: ~1 ulp): a libmvec call costs as
 * much again in spills of the caller's vector registers and range checks. */
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

INTERNAL void FN(gauss_axis_profiles)(const REAL *restrict P, const REAL *restrict SIG,
                                      REAL half, REAL sig_floor, REAL exponent_floor, int K,
                                      int size, int V, vec *restrict prof, REAL *restrict sums) {
    vec lanes;
    for (int l = 0; l < LANES; ++l) lanes[l] = (REAL)l;
    const vec tail = lanes + (REAL)((V - 1) * LANES);
    for (int k = 0; k < K; ++k) {
        const REAL pos = P[k] + half, inverse = (REAL)1 / (FABS(SIG[k]) + sig_floor);
        vec *pk = prof + (int64_t)k * V;
        for (int v = 0; v < V; ++v) {
            vec t = (lanes + (REAL)(v * LANES) - pos) * inverse;
            vec e = t * t * (REAL)-0.5;
            e = select_lanes(e < exponent_floor, e - e + exponent_floor, e);
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

