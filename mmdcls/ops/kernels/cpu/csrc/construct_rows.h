/* What the sources of the fused construction of 2-D DCLS kernels share (bindings:
 * mmdcls/ops/kernels/cpu/construction.py): the kernel rows' layout, the scalar maths of REAL,
 * and how an entry point spreads the rows over threads.
 *
 * Every function handles the kernel rows [r0, r1) of one call, so the entry points run disjoint
 * row ranges on several threads. Per row, everything (per-axis profiles, partial sums) lives in
 * a small work buffer that stays in L1/L2: no (R, K, G) tensor is materialised, which is what
 * makes the torch path memory-bound.
 *
 * Layouts (contiguous): weight (R, K); P, SIG (2, R, K) indexed by component; kernel and
 * grad_kernel (R, S0, S1). comp0 / comp1: the P component giving kernel axis 0 / 1, half0 /
 * half1: the offset added to it (dcls adds sizes[component] // 2). sig_floor, eps and
 * exponent_floor: the width floor, normalisation epsilon and Gaussian exponent floor of
 * mmdcls/ops/construct/conventions.py. The arithmetic follows mmdcls/ops/construct/ (and
 * through it dcls 0.1.1) operation by operation.
 */
#ifndef MMDCLS_CONSTRUCT_ROWS_H
#define MMDCLS_CONSTRUCT_ROWS_H
#include <math.h>

#include "real_vec.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
/* Flush denormal results and operands to zero while a routine runs (restored after): Gaussian
 * tails (exp(-80) = 1.8e-35) times small weights land in the denormal range, where x86
 * arithmetic takes a slow microcode path; the values concerned are below 1.2e-38. */
#define FTZ_BEGIN unsigned int saved_csr = _mm_getcsr(); _mm_setcsr(saved_csr | 0x8040)
#define FTZ_END _mm_setcsr(saved_csr)
#else
#define FTZ_BEGIN
#define FTZ_END
#endif

#ifdef REAL_IS_DOUBLE
#define EXP exp
#define FABS fabs
#define FLOOR floor
#define CEIL ceil
#else
#define EXP expf /* vectorised through glibc's libmvec under -ffast-math */
#define FABS fabsf
#define FLOOR floorf
#define CEIL ceilf
#endif

/* The row contractions run on whole vectors (gcc / clang vector extensions: AVX with
 * -march=native, pairs of SSE registers otherwise). Profiles and the gradient rows are stored
 * zero-padded to whole vectors, so inner loops have no remainder and no aliasing checks. */
static inline int lanes_up(int n) { return (n + LANES - 1) / LANES; }

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
#endif
