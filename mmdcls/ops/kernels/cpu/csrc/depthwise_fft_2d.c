/* Depthwise 2-D convolution through FFTs vectorised across channels (bindings:
 * mmdcls/ops/kernels/cpu/depthwise_fft.py; the 'c_fft' algorithm of
 * mmdcls/ops/conv/algorithms/c_fft.py).
 *
 * A depthwise conv transforms every (sample, channel) map separately: many small 2-D FFTs,
 * which a general FFT library runs one at a time at a fraction of the CPU's vector width. Here
 * a vector holds one value of LANES channels, so every butterfly is plain vector arithmetic
 * with no shuffles (fft_1d.c), and two channel sets ride in one complex transform: channels
 * A in the real part, B in the imaginary part (the "two real FFTs for one complex" identity).
 * With Z = F(a + i b), the spectra of a and b are (Z + Z~) / 2 and (Z - Z~) / 2i where
 * Z~[k] = conj(Z[-k]), so the output spectrum Y = C_A F(a) + i C_B F(b) is
 *     Y = P Z + M Z~,   P = (C_A + C_B) / 2,   M = (C_A - C_B) / 2,
 * and one inverse complex transform returns y_A + i y_B. P and M are Hermitian (spectra of
 * real kernels), so only columns 0 .. L1 / 2 are stored ("spectra" below).
 *
 * Conventions (the same as the torch FFT of mmdcls/ops/conv/algorithms/fft.py): transforms of
 * length (L0, L1); correlation y[o] = sum_t k[t] x_p[o + t], x_p = x placed at (pad0, pad1)
 * in a zero plane, so F(y) = conj(F(k)) F(x_p); the input gradient is F(g) F(k) (no
 * conjugate) read at the padding offset, the kernel gradient conj(F(g)) F(x_p) read at rows /
 * columns 0 .. k - 1.
 *
 * Rows are transformed in place in the plane, columns gathered into a contiguous buffer in
 * pairs (k, -k) since Z~ pairs them. OpenMP threads take (sample, channel group) pairs; the kernel
 * gradient, a sum over samples, takes channel groups.
 */
#include "fft_1d.h"

#define GROUP (2 * LANES) /* channels per complex transform */

/* ------------------------------------------------------------------ planes */

/* Work buffers of one thread: the plane (L0 x L1), four columns, a scratch line. */
typedef struct {
    cvec *plane, *plane2, *col[4], *scratch;
} work;

static int work_init(work *wk, int L0, int L1, int two_planes) {
    size_t line = (size_t)(L0 > L1 ? L0 : L1);
    size_t total = (size_t)L0 * L1 * (two_planes ? 2 : 1) + 5 * line;
    cvec *buf = (cvec *)aligned_alloc(sizeof(cvec), sizeof(cvec) * total);
    wk->plane = buf;
    if (!buf) return 1;
    wk->plane2 = two_planes ? buf + (size_t)L0 * L1 : NULL;
    cvec *rest = buf + (size_t)L0 * L1 * (two_planes ? 2 : 1);
    for (int i = 0; i < 4; ++i) wk->col[i] = rest + i * line;
    wk->scratch = rest + 4 * line;
    return 0;
}

/* Element strides of a (N, C, H, W) tensor: NCHW-contiguous, channels-last or other. */
typedef struct {
    int64_t n, c, h, w;
} strides;

/* Row `row` of the plane: zeros, then channels c0 .. c0 + GROUP - 1 (those below C) of one
 * sample's maps src (strides st) at columns off .. off + w - 1: the first LANES channels in
 * the real part, the next in the imaginary part; forward-transformed. */
static void load_row(cvec *line, const REAL *src, strides st, int64_t C, int64_t c0, int row,
                     int w, int off, int L1, const plan *p1, cvec *scratch) {
    memset(line, 0, sizeof(cvec) * L1);
    const REAL *s = src + c0 * st.c + row * st.h;
    if (st.c == 1 && c0 + GROUP <= C) { /* channels-last: whole vectors */
        for (int x = 0; x < w; ++x) {
            line[off + x].re = *(const uvec *)(s + x * st.w);
            line[off + x].im = *(const uvec *)(s + x * st.w + LANES);
        }
    } else {
        for (int l = 0; l < GROUP && c0 + l < C; ++l) {
            const REAL *sl = s + l * st.c;
            if (l < LANES)
                for (int x = 0; x < w; ++x) line[off + x].re[l] = sl[x * st.w];
            else
                for (int x = 0; x < w; ++x) line[off + x].im[l - LANES] = sl[x * st.w];
        }
    }
    FN(fft)(line, scratch, p1, -1);
}

/* Writes columns off .. off + w - 1 of an inverse-transformed line, times scale, plus bias
 * (C,) or NULL, to row `row` of channels c0 .. (below C) of one sample's maps dst. */
static void store_row(const cvec *line, REAL *dst, strides st, int64_t C, int64_t c0, int row,
                      int w, int off, REAL scale, const REAL *bias) {
    REAL *d = dst + c0 * st.c + row * st.h;
    if (st.c == 1 && c0 + GROUP <= C) {
        vec ba = {0}, bb = {0};
        if (bias)
            for (int l = 0; l < LANES; ++l) ba[l] = bias[c0 + l], bb[l] = bias[c0 + LANES + l];
        for (int x = 0; x < w; ++x) {
            *(uvec *)(d + x * st.w) = line[off + x].re * scale + ba;
            *(uvec *)(d + x * st.w + LANES) = line[off + x].im * scale + bb;
        }
    } else {
        for (int l = 0; l < GROUP && c0 + l < C; ++l) {
            REAL b = bias ? bias[c0 + l] : 0, *dl = d + l * st.c;
            if (l < LANES)
                for (int x = 0; x < w; ++x) dl[x * st.w] = line[off + x].re[l] * scale + b;
            else
                for (int x = 0; x < w; ++x) dl[x * st.w] = line[off + x].im[l - LANES] * scale + b;
        }
    }
}

/* Gathers column k of plane rows [r0, r1) (zero elsewhere) into col and transforms it. */
static void load_column(cvec *col, const cvec *plane, int k, int r0, int r1, int L0, int L1,
                        const plan *p0, cvec *scratch) {
    for (int r = 0; r < L0; ++r)
        col[r] = (r >= r0 && r < r1) ? plane[(size_t)r * L1 + k] : (cvec){{0}, {0}};
    FN(fft)(col, scratch, p0, -1);
}

/* ------------------------------------------------------------------ entry points */

/* Spectra (G, L0, L1 / 2 + 1, 2) cvec of kernel (C, 1, kh, kw), G = ceil(C / GROUP): P and M
 * of the header, for the correlation (conj of the kernel's transform). 0 or 1 (failure). */
int FN(depthwise_fft_spectra)(const REAL *kernel, REAL *spectra_data, int64_t C, int kh,
                              int kw, int L0, int L1, int nthreads) {
    cvec *spectra = (cvec *)spectra_data;
    plan p0, p1;
    if (FN(plans_init)(&p0, L0, &p1, L1)) return 1;
    int failed = 0;
    const int64_t G = (C + GROUP - 1) / GROUP;
    const int H1 = L1 / 2 + 1;
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
    {
        work wk = {0};
        if (work_init(&wk, L0, L1, 0)) {
            failed = 1;
        } else {
#pragma omp for schedule(static)
            for (int64_t g = 0; g < G; ++g) {
                const strides ks = {0, (int64_t)kh * kw, kw, 1};
                for (int r = 0; r < kh; ++r)
                    load_row(wk.plane + (size_t)r * L1, kernel, ks, C, g * GROUP, r, kw, 0, L1,
                             &p1, wk.scratch);
                /* columns k and -k, so that each (k0, k) meets its mirror (-k0, -k) */
                for (int k = 0; k < H1; ++k) {
                    int km = mirror_index(k, L1);
                    load_column(wk.col[0], wk.plane, k, 0, kh, L0, L1, &p0, wk.scratch);
                    if (km != k)
                        load_column(wk.col[1], wk.plane, km, 0, kh, L0, L1, &p0, wk.scratch);
                    const cvec *mirror = km != k ? wk.col[1] : wk.col[0];
                    cvec *out = spectra + ((size_t)g * L0 * H1 + k) * 2;
                    for (int r = 0; r < L0; ++r) {
                        cvec z = wk.col[0][r], zm = cconj(mirror[mirror_index(r, L0)]);
                        /* K_A = (z + zm) / 2, K_B = (z - zm) / 2i; C = conj(K) */
                        cvec ka = {(z.re + zm.re) / 2, (z.im + zm.im) / 2};
                        cvec kb = {(z.im - zm.im) / 2, -(z.re - zm.re) / 2};
                        cvec ca = cconj(ka), cb = cconj(kb);
                        out[(size_t)r * H1 * 2] = (cvec){(ca.re + cb.re) / 2, (ca.im + cb.im) / 2};
                        out[(size_t)r * H1 * 2 + 1] =
                            (cvec){(ca.re - cb.re) / 2, (ca.im - cb.im) / 2};
                    }
                }
            }
        }
        free(wk.plane);
    }
    free(p0.tw);
    free(p1.tw);
    return failed;
}

/* out (N, C, oh, ow) = depthwise filtering of in (N, C, ih, iw) placed at (in0, in1) of the
 * zero (L0, L1) plane by the spectra, read at (out0, out1), plus bias (C,) or NULL.
 * conjugate = 0: the correlation with the kernel (forward); 1: the convolution (input
 * gradient). 0 or 1 (failure). */
int FN(depthwise_fft_filter)(const REAL *in, const int64_t *in_strides,
                             const REAL *spectra_data, const REAL *bias, REAL *out,
                             const int64_t *out_strides, int64_t N, int64_t C, int ih, int iw,
                             int in0, int in1, int oh, int ow, int out0, int out1, int L0,
                             int L1, int conjugate, int nthreads) {
    const cvec *spectra = (const cvec *)spectra_data;
    plan p0, p1;
    if (FN(plans_init)(&p0, L0, &p1, L1)) return 1;
    int failed = 0;
    const int64_t G = (C + GROUP - 1) / GROUP;
    const int H1 = L1 / 2 + 1;
    const REAL scale = (REAL)1 / ((REAL)L0 * L1), csign = conjugate ? -1 : 1;
    const strides is = {in_strides[0], in_strides[1], in_strides[2], in_strides[3]};
    const strides os = {out_strides[0], out_strides[1], out_strides[2], out_strides[3]};
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
    {
        work wk = {0};
        if (work_init(&wk, L0, L1, 0)) {
            failed = 1;
        } else {
#pragma omp for schedule(static)
            for (int64_t task = 0; task < N * G; ++task) {
                const int64_t n = task / G, c0 = (task % G) * GROUP;
                const cvec *spec = spectra + (size_t)(task % G) * L0 * H1 * 2;
                for (int r = 0; r < ih; ++r)
                    load_row(wk.plane + (size_t)(in0 + r) * L1, in + n * is.n, is, C, c0, r, iw,
                             in1, L1, &p1, wk.scratch);
                for (int k = 0; k < H1; ++k) {
                    const int km = mirror_index(k, L1), pair = km != k;
                    cvec *za = wk.col[0], *zb = pair ? wk.col[1] : wk.col[0];
                    load_column(za, wk.plane, k, in0, in0 + ih, L0, L1, &p0, wk.scratch);
                    if (pair) load_column(zb, wk.plane, km, in0, in0 + ih, L0, L1, &p0, wk.scratch);
                    cvec *ya = wk.col[2], *yb = wk.col[3];
                    for (int r = 0; r < L0; ++r) {
                        const int rm = mirror_index(r, L0);
                        /* column k: P(r, k), M(r, k) stored; column -k: conj of (-r, k) */
                        const cvec *s = spec + ((size_t)r * H1 + k) * 2;
                        const cvec *sm = spec + ((size_t)rm * H1 + k) * 2;
                        cvec P = s[0], M = s[1];
                        P.im *= csign;
                        M.im *= csign;
                        ya[r] = cadd(cmul(P, za[r]), cmul(M, cconj(zb[rm])));
                        if (pair) {
                            cvec Pm = {sm[0].re, -csign * sm[0].im};
                            cvec Mm = {sm[1].re, -csign * sm[1].im};
                            yb[r] = cadd(cmul(Pm, zb[r]), cmul(Mm, cconj(za[rm])));
                        }
                    }
                    FN(fft)(ya, wk.scratch, &p0, 1);
                    for (int r = out0; r < out0 + oh; ++r) wk.plane[(size_t)r * L1 + k] = ya[r];
                    if (pair) {
                        FN(fft)(yb, wk.scratch, &p0, 1);
                        for (int r = out0; r < out0 + oh; ++r)
                            wk.plane[(size_t)r * L1 + km] = yb[r];
                    }
                }
                for (int r = 0; r < oh; ++r) {
                    cvec *line = wk.plane + (size_t)(out0 + r) * L1;
                    FN(fft)(line, wk.scratch, &p1, 1);
                    store_row(line, out + n * os.n, os, C, c0, r, ow, out1, scale, bias);
                }
            }
        }
        free(wk.plane);
    }
    free(p0.tw);
    free(p1.tw);
    return failed;
}

/* grad_kernel (C, 1, kh, kw) = sum over n of the correlation of grad (N, C, gh, gw) placed at
 * (0, 0) with in (N, C, ih, iw) placed at (in0, in1), read at rows / columns 0 .. k - 1:
 * conj(F(g)) F(x_p) per channel, both channel sets in one spectrum S = S_A + i S_B. */
int FN(depthwise_fft_grad_kernel)(const REAL *in, const int64_t *in_strides, const REAL *grad,
                                  const int64_t *grad_strides, REAL *grad_kernel, int64_t N,
                                  int64_t C, int ih, int iw, int in0, int in1, int gh, int gw,
                                  int kh, int kw, int L0, int L1, int nthreads) {
    plan p0, p1;
    if (FN(plans_init)(&p0, L0, &p1, L1)) return 1;
    int failed = 0;
    const int64_t G = (C + GROUP - 1) / GROUP;
    const int H1 = L1 / 2 + 1;
    const REAL scale = (REAL)1 / ((REAL)L0 * L1);
    const strides is = {in_strides[0], in_strides[1], in_strides[2], in_strides[3]};
    const strides gs = {grad_strides[0], grad_strides[1], grad_strides[2], grad_strides[3]};
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
    {
        work wk = {0};
        cvec *S = NULL;
        if (work_init(&wk, L0, L1, 1) ||
            !(S = (cvec *)aligned_alloc(sizeof(cvec), sizeof(cvec) * (size_t)L0 * L1))) {
            failed = 1;
        } else {
#pragma omp for schedule(static)
            for (int64_t g = 0; g < G; ++g) {
                const int64_t c0 = g * GROUP;
                memset(S, 0, sizeof(cvec) * (size_t)L0 * L1);
                for (int64_t n = 0; n < N; ++n) {
                    for (int r = 0; r < ih; ++r)
                        load_row(wk.plane + (size_t)(in0 + r) * L1, in + n * is.n, is, C, c0, r,
                                 iw, in1, L1, &p1, wk.scratch);
                    for (int r = 0; r < gh; ++r)
                        load_row(wk.plane2 + (size_t)r * L1, grad + n * gs.n, gs, C, c0, r, gw,
                                 0, L1, &p1, wk.scratch);
                    for (int k = 0; k < H1; ++k) {
                        const int km = mirror_index(k, L1), pair = km != k;
                        cvec *xa = wk.col[0], *xb = pair ? wk.col[1] : wk.col[0];
                        cvec *ga = wk.col[2], *gb = pair ? wk.col[3] : wk.col[2];
                        load_column(xa, wk.plane, k, in0, in0 + ih, L0, L1, &p0, wk.scratch);
                        load_column(ga, wk.plane2, k, 0, gh, L0, L1, &p0, wk.scratch);
                        if (pair) {
                            load_column(xb, wk.plane, km, in0, in0 + ih, L0, L1, &p0, wk.scratch);
                            load_column(gb, wk.plane2, km, 0, gh, L0, L1, &p0, wk.scratch);
                        }
                        for (int side = 0; side <= pair; ++side) {
                            const cvec *zx = side ? xb : xa, *zxm = side ? xa : xb;
                            const cvec *zg = side ? gb : ga, *zgm = side ? ga : gb;
                            cvec *s = S + (side ? km : k);
                            for (int r = 0; r < L0; ++r) {
                                const int rm = mirror_index(r, L0);
                                cvec x = zx[r], xm = cconj(zxm[rm]), y = zg[r], ym = cconj(zgm[rm]);
                                /* spectra of the A and B maps (x: input, y: gradient) */
                                cvec XA = {(x.re + xm.re) / 2, (x.im + xm.im) / 2};
                                cvec XB = {(x.im - xm.im) / 2, -(x.re - xm.re) / 2};
                                cvec YA = {(y.re + ym.re) / 2, (y.im + ym.im) / 2};
                                cvec YB = {(y.im - ym.im) / 2, -(y.re - ym.re) / 2};
                                cvec sa = cmul(cconj(YA), XA), sb = cmul(cconj(YB), XB);
                                /* S += s_a + i s_b */
                                s[(size_t)r * L1].re += sa.re - sb.im;
                                s[(size_t)r * L1].im += sa.im + sb.re;
                            }
                        }
                    }
                }
                /* inverse: all columns, then the kernel's rows */
                for (int k = 0; k < L1; ++k) {
                    cvec *col = wk.col[0];
                    for (int r = 0; r < L0; ++r) col[r] = S[(size_t)r * L1 + k];
                    FN(fft)(col, wk.scratch, &p0, 1);
                    for (int r = 0; r < kh; ++r) S[(size_t)r * L1 + k] = col[r];
                }
                const strides ks = {0, (int64_t)kh * kw, kw, 1};
                for (int r = 0; r < kh; ++r) {
                    cvec *line = S + (size_t)r * L1;
                    FN(fft)(line, wk.scratch, &p1, 1);
                    store_row(line, grad_kernel, ks, C, c0, r, kw, 0, scale, NULL);
                }
            }
        }
        free(wk.plane);
        free(S);
    }
    free(p0.tw);
    free(p1.tw);
    return failed;
}
