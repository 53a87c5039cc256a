/* The scalar type and 32-byte vector types of the depthwise convolutions (see
 * mmdcls/ops/native/prototypes.py): each source is compiled twice, REAL = float (names ending _f32) and,
 * with -DREAL_IS_DOUBLE, double (_f64); FN(name) gives the suffixed name. */
#ifndef MMDCLS_REAL_VEC_H
#define MMDCLS_REAL_VEC_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef REAL_IS_DOUBLE
#define REAL double
#define SUFFIX _f64
#else
#define REAL float
#define SUFFIX _f32
#endif
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SUFFIX)
#define LANES ((int)(32 / sizeof(REAL)))
typedef REAL vec __attribute__((vector_size(32)));
/* unaligned vector loads / stores */
typedef REAL uvec __attribute__((vector_size(32), aligned(sizeof(REAL))));

/* x != 0, NaN included, read from the bits (any bit but the sign set): the sources compile
 * with -ffast-math, whose -ffinite-math-only lets the compiler assume no NaN, and a
 * floating-point comparison then may treat a NaN tap as zero and drop it silently. */
static inline int nonzero_bits(REAL x) {
#ifdef REAL_IS_DOUBLE
    uint64_t u;
#else
    uint32_t u;
#endif
    memcpy(&u, &x, sizeof u);
    return (u << 1) != 0;
}
#endif
