/* 1-D complex FFTs of vectors: see fft_1d.h. */
#include <math.h>

#include "fft_1d.h"

/* stage() has butterflies for the radices 2, 3, 4 and 5 only */
#if 30 % FFT_RADIX_PRODUCT != 0
#error "FFT_RADICES (mmdcls/ops/kernels/cpu/constants.py) may hold only 2, 3 and 5, each once"
#endif

/* 0 on success; 1 if n is not positive, has a prime factor outside FFT_RADICES or allocation
 * fails. */
static int plan_init(plan *pl, int n) {
    static const int radices[] = {FFT_RADICES};
    pl->n = n;
    pl->nf = 0;
    pl->tw = NULL;
    if (n < 1) return 1;
    int m = n;
    for (size_t i = 0; i < sizeof radices / sizeof *radices; ++i) {
        const int p = radices[i];
        if (p == 2) /* pairs of 2 first, as radix-4 stages */
            while (m % 4 == 0) pl->factor[pl->nf++] = 4, m /= 4;
        while (m % p == 0) pl->factor[pl->nf++] = p, m /= p;
    }
    if (m != 1 || pl->nf > MAX_FACTORS) return 1;
    size_t total = 0;
    int span = 1;
    for (int s = 0; s < pl->nf; ++s) {
        pl->tw_offset[s] = (int)total;
        total += (size_t)2 * span * (pl->factor[s] - 1);
        span *= pl->factor[s];
    }
    pl->tw = (REAL *)malloc(sizeof(REAL) * (total + 1));
    if (!pl->tw) return 1;
    span = 1;
    for (int s = 0; s < pl->nf; ++s) {
        int p = pl->factor[s];
        REAL *t = pl->tw + pl->tw_offset[s];
        for (int j = 0; j < span; ++j)
            for (int q = 1; q < p; ++q) {
                double angle = -2.0 * M_PI * (double)j * q / ((double)span * p);
                t[2 * (j * (p - 1) + q - 1)] = (REAL)cos(angle);
                t[2 * (j * (p - 1) + q - 1) + 1] = (REAL)sin(angle);
            }
        span *= p;
    }
    return 0;
}

/* One radix-p Stockham stage: src indexed [j][q][c] (j < span, q < p, c < rest), dst
 * [u][j][c] with u < p: dst = DFT_p over q of twiddle(j, q) src. sign: -1 forward, +1
 * inverse (the conjugate twiddles). */
static inline __attribute__((always_inline)) void stage(const cvec *restrict src,
                                                        cvec *restrict dst, int p, int span,
                                                        int rest, const REAL *tw,
                                                        const REAL sign) {
    const REAL c3 = (REAL)-0.5, s3 = (REAL)0.86602540378443864676 * sign;
    const REAL c51 = (REAL)0.30901699437494742410, c52 = (REAL)-0.80901699437494742410;
    const REAL s51 = (REAL)0.95105651629515357212 * sign,
               s52 = (REAL)0.58778525229247312917 * sign;
    const int stride = span * rest; /* between outputs u and u + 1 */
    for (int j = 0; j < span; ++j) {
        const cvec *in = src + (size_t)j * p * rest;
        cvec *out = dst + (size_t)j * rest;
        const REAL *w = tw + 2 * j * (p - 1);
        for (int c = 0; c < rest; ++c) {
            cvec a[5];
            a[0] = in[c];
            for (int q = 1; q < p; ++q)
                a[q] = j ? cmul_s(in[q * rest + c], w[2 * (q - 1)], -sign * w[2 * (q - 1) + 1])
                         : in[q * rest + c];
            switch (p) {
            case 2:
                out[c] = cadd(a[0], a[1]);
                out[stride + c] = csub(a[0], a[1]);
                break;
            case 4: {
                cvec t0 = cadd(a[0], a[2]), t1 = csub(a[0], a[2]);
                cvec t2 = cadd(a[1], a[3]), t3 = cmul_i(csub(a[1], a[3]), sign);
                out[c] = cadd(t0, t2);
                out[stride + c] = cadd(t1, t3);
                out[2 * stride + c] = csub(t0, t2);
                out[3 * stride + c] = csub(t1, t3);
                break;
            }
            case 3: {
                cvec t1 = cadd(a[1], a[2]), t2 = csub(a[1], a[2]);
                cvec m = {a[0].re + c3 * t1.re, a[0].im + c3 * t1.im};
                cvec n = cmul_i(t2, s3);
                out[c] = cadd(a[0], t1);
                out[stride + c] = cadd(m, n);
                out[2 * stride + c] = csub(m, n);
                break;
            }
            case 5: {
                cvec t1 = cadd(a[1], a[4]), t2 = cadd(a[2], a[3]);
                cvec t3 = csub(a[1], a[4]), t4 = csub(a[2], a[3]);
                cvec m1 = {a[0].re + c51 * t1.re + c52 * t2.re,
                           a[0].im + c51 * t1.im + c52 * t2.im};
                cvec m2 = {a[0].re + c52 * t1.re + c51 * t2.re,
                           a[0].im + c52 * t1.im + c51 * t2.im};
                cvec n1 = {-(s51 * t3.im + s52 * t4.im), s51 * t3.re + s52 * t4.re};
                cvec n2 = {-(s52 * t3.im - s51 * t4.im), s52 * t3.re - s51 * t4.re};
                out[c] = cadd(a[0], cadd(t1, t2));
                out[stride + c] = cadd(m1, n1);
                out[4 * stride + c] = csub(m1, n1);
                out[2 * stride + c] = cadd(m2, n2);
                out[3 * stride + c] = csub(m2, n2);
                break;
            }
            }
        }
    }
}

INTERNAL void FN(fft)(cvec *data, cvec *scratch, const plan *pl, const REAL sign) {
    cvec *src = data, *dst = scratch;
    int span = 1;
    for (int s = 0; s < pl->nf; ++s) {
        int p = pl->factor[s], rest = pl->n / (span * p);
        const REAL *tw = pl->tw + pl->tw_offset[s];
        if (sign < 0) {
            switch (p) { /* constant radix: the butterfly's switch folds away */
            case 4: stage(src, dst, 4, span, rest, tw, -1); break;
            case 2: stage(src, dst, 2, span, rest, tw, -1); break;
            case 3: stage(src, dst, 3, span, rest, tw, -1); break;
            default: stage(src, dst, 5, span, rest, tw, -1); break;
            }
        } else {
            switch (p) {
            case 4: stage(src, dst, 4, span, rest, tw, 1); break;
            case 2: stage(src, dst, 2, span, rest, tw, 1); break;
            case 3: stage(src, dst, 3, span, rest, tw, 1); break;
            default: stage(src, dst, 5, span, rest, tw, 1); break;
            }
        }
        cvec *t = src;
        src = dst;
        dst = t;
        span *= p;
    }
    if (src != data) memcpy(data, src, sizeof(cvec) * pl->n);
}

INTERNAL int FN(plans_init)(plan *p0, int L0, plan *p1, int L1) {
    if (plan_init(p0, L0) | plan_init(p1, L1)) { /* both run: both tw pointers are set */
        free(p0->tw);
        free(p1->tw);
        return 1;
    }
    return 0;
}
