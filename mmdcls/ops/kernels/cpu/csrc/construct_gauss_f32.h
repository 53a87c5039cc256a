/* The float32 Gaussian profiles of the dense gauss construction (construct_profiles_2d.c),
 * with an inline vector exp. */
#ifndef MMDCLS_CONSTRUCT_GAUSS_F32_H
#define MMDCLS_CONSTRUCT_GAUSS_F32_H
#include "construct_rows.h"

#ifndef REAL_IS_DOUBLE
/* float32 Gaussian profiles of K elements on one axis (P, SIG: that component's K values,
 * prof: K x V vectors, padding masked in registers) and their sums. The loop holds only the
 * inline exps, independent from one element to the next, so several are in flight; the sums
 * follow in a second pass. */
INTERNAL void FN(gauss_axis_profiles)(const REAL *restrict P, const REAL *restrict SIG,
                                      REAL half, REAL sig_floor, REAL exponent_floor, int K,
                                      int size, int V, vec *restrict prof, REAL *restrict sums);
#endif
#endif
