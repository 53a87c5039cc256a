/* Compact-support rows of the max construction (construct_profiles_2d.c).
 *
 * The triangle sig - |g - pos| is positive on fewer than 2 sig + 1 taps per axis (sig = |SIG|
 * + 1: at most two, the bilinear width, as initialised). Rows whose elements all span at most
 * TRIANGLE_SUPPORT taps per axis are built from a window of `taps` taps per element and axis
 * (the row's widest span, placed inside the kernel): a few scalar FMAs per element instead of
 * a full-size contraction, with the same trip counts for every element of the row (no
 * mispredicted branches). Wider rows take the dense path. Window values are computed as in
 * profile(), so the taps the window leaves out are exactly the dense path's zeros.
 * Per-element quantities are stored structure-of-arrays (element k; window tap t at t * K + k)
 * so the loops over elements vectorise; only each element's scatter / gather is scalar. */
#ifndef MMDCLS_CONSTRUCT_TRIANGLE_H
#define MMDCLS_CONSTRUCT_TRIANGLE_H
#include "construct_rows.h"

#define TRIANGLE_SUPPORT 8

typedef struct {
    REAL *pos, *sig, *sum, *v; /* (K); v: (TRIANGLE_SUPPORT, K) */
    int *lo;                   /* (K) first tap of the window */
    int taps;                  /* window width of the row */
} Taps;

/* Work space of the triangle rows: taps of both axes and the backward's partial sums. */
typedef struct {
    REAL *buffer, *work; /* buffer NULL: not a triangle (no compact rows) */
    Taps a, b;
} Triangle;

/* Points tri at a work buffer for rows of K elements when version is max (else tri->buffer is
 * NULL: no compact rows); 0 when the buffer could not be allocated. */
INTERNAL int FN(triangle_alloc)(int version, int K, Triangle *tri);

/* Windows of row r on both axes; 0 when the row needs the dense path. */
INTERNAL int FN(triangle_row_taps)(const REAL *P, const REAL *SIG, int64_t R, int K, int S0,
                                   int S1, int comp0, int comp1, REAL half0, REAL half1,
                                   REAL sig_floor, int64_t r, Taps *a, Taps *b);

/* kernel row r (out, `area` scalars) from its windows; scale: K scalars of work space. */
INTERNAL void FN(triangle_forward_row)(const REAL *restrict weight, int K, int S1, REAL eps,
                                       const Taps *a, const Taps *b, REAL *restrict scale,
                                       REAL *restrict out, size_t area);

/* d loss / d (weight, P, SIG) of row r (grad: its d loss / d kernel) from its windows; work:
 * (2 TRIANGLE_SUPPORT + 8) K scalars. */
INTERNAL void FN(triangle_backward_row)(const REAL *weight, const REAL *SIG, const REAL *grad,
                                        REAL *grad_weight, REAL *grad_P, REAL *grad_SIG,
                                        int64_t R, int K, int S1, int comp0, int comp1,
                                        int64_t r, REAL eps, const Taps *a, const Taps *b,
                                        REAL *work);
#endif
