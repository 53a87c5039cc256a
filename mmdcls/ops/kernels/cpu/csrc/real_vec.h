/* The scalar type and vector types every source of the library is written in.
 *
 * Each source is compiled once per variant of REAL_TYPES in
 * mmdcls/ops/kernels/cpu/prototypes.py: REAL = float (names ending _f32) and, with
 * -DREAL_IS_DOUBLE, double (_f64); FN(name) gives the suffixed name. REAL, SUFFIX, VECTOR_BYTES,
 * the version codes, the FFT radices and every entry point's prototype come from the header the
 * loader generates from the Python side (mmdcls/ops/kernels/cpu/generated_header.py), so a
 * definition that differs from its Python declaration does not compile. */
#ifndef MMDCLS_REAL_VEC_H
#define MMDCLS_REAL_VEC_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "mmdcls_generated.h"

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SUFFIX)
/* functions shared between the library's sources, not exported from it */
#define INTERNAL __attribute__((visibility("hidden")))

#define LANES ((int)(VECTOR_BYTES / sizeof(REAL)))
typedef REAL vec __attribute__((vector_size(VECTOR_BYTES)));
/* unaligned vector loads / stores */
typedef REAL uvec __attribute__((vector_size(VECTOR_BYTES), aligned(sizeof(REAL))));

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
