/* 1-D complex FFTs whose every value is a vector: LANES independent transforms run in step, so
 * every butterfly is plain vector arithmetic with no shuffles (depthwise_fft_2d.c puts one
 * channel per lane). Mixed-radix (4, 2, 3, 5) Stockham autosort, out of place between two
 * buffers. Transform lengths may have no prime factor outside FFT_RADICES (the generated
 * header, from mmdcls/ops/kernels/cpu/constants.py). */
#ifndef MMDCLS_FFT_1D_H
#define MMDCLS_FFT_1D_H
#include "real_vec.h"

#define MAX_FACTORS 32

typedef struct {
    vec re, im;
} cvec;

typedef struct {
    int n, nf;
    int factor[MAX_FACTORS];
    REAL *tw; /* per stage s, q = 1 .. p - 1, j < span: (cos, sin) of -2 pi j q / (span p) */
    int tw_offset[MAX_FACTORS];
} plan;

/* Plans of lengths L0 and L1; 0, or 1 (a length with a prime factor outside FFT_RADICES, or an
 * allocation failure) with nothing left allocated. Free each plan's tw when done. */
INTERNAL int FN(plans_init)(plan *p0, int L0, plan *p1, int L1);

/* In-place transform of data (n values of the plan); scratch holds n. sign -1: forward, +1:
 * inverse (no scaling either way). */
INTERNAL void FN(fft)(cvec *data, cvec *scratch, const plan *pl, const REAL sign);

static inline __attribute__((always_inline)) cvec cadd(cvec a, cvec b) {
    return (cvec){a.re + b.re, a.im + b.im};
}
static inline __attribute__((always_inline)) cvec csub(cvec a, cvec b) {
    return (cvec){a.re - b.re, a.im - b.im};
}
/* a times the scalar (c, s) */
static inline __attribute__((always_inline)) cvec cmul_s(cvec a, REAL c, REAL s) {
    return (cvec){a.re * c - a.im * s, a.re * s + a.im * c};
}
/* a times i * s (s = +-1 or a real factor) */
static inline __attribute__((always_inline)) cvec cmul_i(cvec a, REAL s) {
    return (cvec){-a.im * s, a.re * s};
}
static inline __attribute__((always_inline)) cvec cmul(cvec a, cvec b) {
    return (cvec){a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}
static inline __attribute__((always_inline)) cvec cconj(cvec a) {
    return (cvec){a.re, -a.im};
}

/* (n - i) mod n for 0 <= i < n, without the integer division of `%` */
static inline __attribute__((always_inline)) int mirror_index(int i, int n) {
    return i ? n - i : 0;
}
#endif
