/* Sparse direct depthwise 2-D convolution (stride 1, zero padding) over the kernel's non-zero
 * taps, and its kernel gradient, for training and inference: the 'sparse_direct' algorithm
 * of mmdcls/ops/conv/algorithms/sparse_direct.py; bindings in
 * mmdcls/ops/kernels/cpu/depthwise.py.
 *
 * Per (sample, channel) map: the input is copied once into a zero-padded plane, the kernel's
 * non-zero taps are listed (a folded DCLS v0 kernel has at most 4 per element: ~100 of 289),
 * and each output row is computed in blocks of up to four vectors held in registers, one FMA
 * per tap and vector: no stores in the tap loop, no masks, no im2col. Taps alternate between
 * two accumulator sets so that eight independent FMA chains hide the FMA latency. Maps are
 * split over OpenMP threads.
 */
#include "real_vec.h"

/* Output size (OH, OW), OW rounded up to whole vectors (OWr), and the zero-padded input plane
 * (Hp, Wp) wide enough for whole-vector reads at every tap. */
#define GEOMETRY(H, W, kh, kw, ph, pw)                                                   \
    const int OH = (H) + 2 * (ph) - (kh) + 1, OW = (W) + 2 * (pw) - (kw) + 1;            \
    const int OWr = (OW + LANES - 1) / LANES * LANES;                                    \
    const int Wp = (OWr + (kw) - 1 > (W) + 2 * (pw) ? OWr + (kw) - 1 : (W) + 2 * (pw));  \
    const int Hp = (H) + 2 * (ph)

#define BLOCK_CASE(NV)                                                                 \
    case NV: {                                                                         \
        vec a[NV];                                                                     \
        for (int i = 0; i < NV; ++i) a[i] = (vec){0} + b;                              \
        vec a2[NV];                                                                    \
        for (int i = 0; i < NV; ++i) a2[i] = (vec){0};                                 \
        int t = 0;                                                                     \
        for (; t + 1 < ntaps; t += 2) {                                                \
            const REAL *src = row0 + off[t], *src2 = row0 + off[t + 1];                \
            REAL v = wt[t], v2 = wt[t + 1];                                            \
            for (int i = 0; i < NV; ++i) {                                             \
                a[i] += v * *(const uvec *)(src + i * LANES);                          \
                a2[i] += v2 * *(const uvec *)(src2 + i * LANES);                       \
            }                                                                          \
        }                                                                              \
        for (; t < ntaps; ++t) {                                                       \
            const REAL *src = row0 + off[t];                                           \
            REAL v = wt[t];                                                            \
            for (int i = 0; i < NV; ++i) a[i] += v * *(const uvec *)(src + i * LANES); \
        }                                                                              \
        for (int i = 0; i < NV; ++i) a[i] += a2[i];                                    \
        for (int i = 0; i < NV; ++i) *(uvec *)(out + i * LANES) = a[i];                \
        break;                                                                         \
    }

/* y (N, C, OH, OW) = x (N, C, H, W) zero-padded by (ph, pw), correlated per channel with
 * kernel (C, 1, kh, kw), plus bias (C,) or NULL; 0, or 1 if a work buffer could not be
 * allocated. */
int FN(depthwise_forward)(const REAL *x, const REAL *kernel, const REAL *bias, REAL *y,
                          int64_t N, int C, int H, int W, int kh, int kw, int ph, int pw,
                          int nthreads) {
    GEOMETRY(H, W, kh, kw, ph, pw);
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
    {
        REAL *plane = (REAL *)malloc(sizeof(REAL) * ((size_t)Hp * Wp + OWr + (size_t)kh * kw));
        int *off = (int *)malloc(sizeof(int) * (size_t)kh * kw);
        if (!plane || !off) {
            failed = 1;
        } else {
            REAL *rowbuf = plane + (size_t)Hp * Wp, *wt = rowbuf + OWr;
            memset(plane, 0, sizeof(REAL) * (size_t)Hp * Wp);
#pragma omp for schedule(static)
            for (int64_t nc = 0; nc < N * C; ++nc) {
                int c = (int)(nc % C);
                const REAL *xp = x + nc * H * W;
                for (int r = 0; r < H; ++r)
                    memcpy(plane + (int64_t)(r + ph) * Wp + pw, xp + (int64_t)r * W,
                           sizeof(REAL) * W);
                /* this channel's non-zero taps, as offsets into the padded plane */
                const REAL *kc = kernel + (int64_t)c * kh * kw;
                /* built branch-free (every tap written, the count advanced for non-zero ones):
                 * a sparse pattern mispredicts about every other branch */
                int ntaps = 0;
                for (int i = 0; i < kh; ++i)
                    for (int j = 0; j < kw; ++j) {
                        off[ntaps] = i * Wp + j;
                        wt[ntaps] = kc[i * kw + j];
                        ntaps += nonzero_bits(kc[i * kw + j]); /* a NaN tap counts */
                    }
                REAL b = bias ? bias[c] : 0;
                REAL *yp = y + nc * OH * OW;
                for (int h = 0; h < OH; ++h) {
                    const REAL *rowh = plane + (int64_t)h * Wp;
                    for (int w0 = 0; w0 < OWr; w0 += 4 * LANES) {
                        int nv = (OWr - w0) / LANES;
                        const REAL *row0 = rowh + w0;
                        REAL *out = rowbuf + w0;
                        switch (nv >= 4 ? 4 : nv) {
                            BLOCK_CASE(4)
                            BLOCK_CASE(3)
                            BLOCK_CASE(2)
                            BLOCK_CASE(1)
                        }
                    }
                    memcpy(yp + (int64_t)h * OW, rowbuf, sizeof(REAL) * OW);
                }
            }
        }
        free(plane);
        free(off);
    }
    return failed;
}

/* d loss / d kernel (C, 1, kh, kw) of depthwise_forward: gk[c, i, j] = sum over samples and
 * output points of gy[n, c, h, w] * x_padded[n, c, h + i, w + j]. Channels are split over
 * threads; per (sample, channel) the padded input plane and the output gradient (rows padded
 * to whole vectors with zeros) are copied once, and for each kernel row i the dot products of
 * up to four consecutive taps j are accumulated in registers over the whole map (two sets,
 * alternating vectors, for independent FMA chains), sharing each gradient vector, with one
 * horizontal sum per tap and map. */
#define GRAD_CASE(NJ)                                                                    \
    case NJ: {                                                                           \
        vec a[NJ];                                                                       \
        for (int q = 0; q < NJ; ++q) a[q] = (vec){0};                                    \
        vec a2[NJ];                                                                      \
        for (int q = 0; q < NJ; ++q) a2[q] = (vec){0};                                   \
        for (int h = 0; h < OH; ++h) {                                                   \
            const REAL *xr = plane + (int64_t)(h + i) * Wp + j;                          \
            const vec *gr = (const vec *)(grad + (int64_t)h * OWr);                      \
            int v = 0;                                                                   \
            for (; v + 1 < OWr / LANES; v += 2) { /* two sets: 2 NJ FMA chains */        \
                vec g = gr[v], g2 = gr[v + 1];                                           \
                for (int q = 0; q < NJ; ++q) {                                           \
                    a[q] += g * *(const uvec *)(xr + q + v * LANES);                     \
                    a2[q] += g2 * *(const uvec *)(xr + q + (v + 1) * LANES);             \
                }                                                                        \
            }                                                                            \
            for (; v < OWr / LANES; ++v) {                                               \
                vec g = gr[v];                                                           \
                for (int q = 0; q < NJ; ++q)                                             \
                    a[q] += g * *(const uvec *)(xr + q + v * LANES);                     \
            }                                                                            \
        }                                                                                \
        for (int q = 0; q < NJ; ++q) a[q] += a2[q];                                      \
        for (int q = 0; q < NJ; ++q) {                                                   \
            REAL total = 0;                                                              \
            for (int l = 0; l < LANES; ++l) total += a[q][l];                            \
            gkc[i * kw + j + q] += total;                                                \
        }                                                                                \
        break;                                                                           \
    }

int FN(depthwise_grad_kernel)(const REAL *x, const REAL *gy, REAL *gk, int64_t N, int C, int H,
                              int W, int kh, int kw, int ph, int pw, int nthreads) {
    GEOMETRY(H, W, kh, kw, ph, pw);
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
    {
        REAL *plane = (REAL *)malloc(sizeof(REAL) * (size_t)Hp * Wp);
        const size_t grad_bytes = sizeof(REAL) * (size_t)OH * OWr + sizeof(vec);
        REAL *grad = (REAL *)aligned_alloc(sizeof(vec), grad_bytes);
        if (!plane || !grad) {
            failed = 1;
        } else {
            memset(plane, 0, sizeof(REAL) * (size_t)Hp * Wp);
            memset(grad, 0, sizeof(REAL) * (size_t)OH * OWr);
#pragma omp for schedule(static)
            for (int c = 0; c < C; ++c) {
                REAL *gkc = gk + (int64_t)c * kh * kw;
                memset(gkc, 0, sizeof(REAL) * (size_t)kh * kw);
                for (int64_t n = 0; n < N; ++n) {
                    const REAL *xp = x + (n * C + c) * H * W;
                    const REAL *gp = gy + (n * C + c) * OH * OW;
                    for (int r = 0; r < H; ++r)
                        memcpy(plane + (int64_t)(r + ph) * Wp + pw, xp + (int64_t)r * W,
                               sizeof(REAL) * W);
                    for (int h = 0; h < OH; ++h)
                        memcpy(grad + (int64_t)h * OWr, gp + (int64_t)h * OW, sizeof(REAL) * OW);
                    for (int i = 0; i < kh; ++i)
                        for (int j = 0; j < kw; j += 4) {
                            switch (kw - j >= 4 ? 4 : kw - j) {
                                GRAD_CASE(4)
                                GRAD_CASE(3)
                                GRAD_CASE(2)
                                GRAD_CASE(1)
                            }
                        }
                }
            }
        }
        free(plane);
        free(grad);
    }
    return failed;
}
