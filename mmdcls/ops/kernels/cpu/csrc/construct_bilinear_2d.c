/* Fused construction of 2-D DCLS kernels by bilinear interpolation: v0 and v1 (the layout of
 * the rows and arguments: construct_rows.h). Each element scatters its weight onto the four
 * grid taps around its position (forward) or gathers their gradient (backward). */
#include "construct_rows.h"

typedef struct {
    int tap[2];      /* lower, upper grid index */
    REAL w[2];       /* tap weights (1 - frac, frac), 0 where the tap is outside */
    int in[2];       /* tap inside the axis */
    REAL frac;
} Axis;

static inline void bilinear_axis(REAL pos, int size, Axis *ax) {
    REAL low = FLOOR(pos);
    ax->frac = pos - low;
    /* far outside (or NaN): both taps outside; keeps the int conversion defined */
    if (!(low >= -2)) low = -2;
    if (low > size) low = size;
    ax->tap[0] = (int)low;
    ax->tap[1] = (int)low + 1;
    for (int b = 0; b < 2; ++b) {
        ax->in[b] = ax->tap[b] >= 0 && ax->tap[b] < size;
        ax->w[b] = ax->in[b] ? (b ? ax->frac : 1 - ax->frac) : 0;
    }
}

static int bilinear_forward_rows(const REAL *weight, const REAL *P, REAL *kernel, int64_t R,
                                 int K, int S0, int S1, int comp0, int comp1, REAL half0,
                                 REAL half1, REAL eps, int version, int64_t r0, int64_t r1) {
    const int64_t plane = R * K;
    for (int64_t r = r0; r < r1; ++r) {
        REAL *out = kernel + r * S0 * S1;
        memset(out, 0, sizeof(REAL) * (size_t)S0 * S1);
        const int64_t rk = r * K;
        for (int k = 0; k < K; ++k) {
            Axis a, b;
            bilinear_axis(P[comp0 * plane + rk + k] + half0, S0, &a);
            bilinear_axis(P[comp1 * plane + rk + k] + half1, S1, &b);
            REAL scale = weight[rk + k];
            if (version == VERSION_V1)
                scale = scale / ((a.w[0] + a.w[1]) * (b.w[0] + b.w[1]) + eps);
            for (int i = 0; i < 2; ++i) {
                if (!a.in[i]) continue;
                for (int j = 0; j < 2; ++j)
                    if (b.in[j]) out[a.tap[i] * S1 + b.tap[j]] += a.w[i] * b.w[j] * scale;
            }
        }
    }
    return 0;
}

static int bilinear_backward_rows(const REAL *weight, const REAL *P, const REAL *grad_kernel,
                                  REAL *grad_weight, REAL *grad_P, int64_t R, int K, int S0,
                                  int S1, int comp0, int comp1, REAL half0, REAL half1, REAL eps,
                                  int version, int64_t r0, int64_t r1) {
    const int64_t plane = R * K;
    for (int64_t r = r0; r < r1; ++r) {
        const REAL *grad = grad_kernel + r * S0 * S1;
        const int64_t rk = r * K;
        for (int k = 0; k < K; ++k) {
            Axis a, b;
            bilinear_axis(P[comp0 * plane + rk + k] + half0, S0, &a);
            bilinear_axis(P[comp1 * plane + rk + k] + half1, S1, &b);
            REAL g[2][2];
            for (int i = 0; i < 2; ++i)
                for (int j = 0; j < 2; ++j)
                    g[i][j] = a.in[i] && b.in[j] ? grad[a.tap[i] * S1 + b.tap[j]] : 0;
            /* d loss / d tap weight of each axis, summed over the other axis's taps */
            REAL pa[2], pb[2];
            for (int t = 0; t < 2; ++t) {
                pa[t] = g[t][0] * b.w[0] + g[t][1] * b.w[1];
                pb[t] = g[0][t] * a.w[0] + g[1][t] * a.w[1];
            }
            REAL grad_scale = pa[0] * a.w[0] + pa[1] * a.w[1];
            REAL scale = weight[rk + k], ga[2], gb[2];
            if (version == VERSION_V1) {
                REAL suma = a.w[0] + a.w[1], sumb = b.w[0] + b.w[1];
                REAL norm = suma * sumb + eps;
                scale = scale / norm;
                grad_weight[rk + k] = grad_scale / norm;
                REAL grad_norm = -grad_scale * scale / norm;
                for (int t = 0; t < 2; ++t) {
                    ga[t] = pa[t] * scale + grad_norm * sumb;
                    gb[t] = pb[t] * scale + grad_norm * suma;
                }
            } else {
                grad_weight[rk + k] = grad_scale;
                for (int t = 0; t < 2; ++t) {
                    ga[t] = pa[t] * scale;
                    gb[t] = pb[t] * scale;
                }
            }
            /* d (1 - frac, frac) / d P = (-1, +1) on the taps inside the kernel; v1's
             * relu(1 - |x|) has zero subgradient on grid points, v0's frac slope 1 */
            REAL gpa = (a.in[1] ? ga[1] : 0) - (a.in[0] ? ga[0] : 0);
            REAL gpb = (b.in[1] ? gb[1] : 0) - (b.in[0] ? gb[0] : 0);
            if (version == VERSION_V1) {
                if (!(a.frac > 0)) gpa = 0;
                if (!(b.frac > 0)) gpb = 0;
            }
            grad_P[comp0 * plane + rk + k] = gpa;
            grad_P[comp1 * plane + rk + k] = gpb;
        }
    }
    return 0;
}

int FN(bilinear_forward)(const REAL *weight, const REAL *P, REAL *kernel, int64_t R, int K,
                         int S0, int S1, int comp0, int comp1, REAL half0, REAL half1, REAL eps,
                         int version, int nthreads) {
    OVER_ROW_RANGES(R, bilinear_forward_rows(weight, P, kernel, R, K, S0, S1, comp0, comp1,
                                             half0, half1, eps, version, lo, hi));
}

int FN(bilinear_backward)(const REAL *weight, const REAL *P, const REAL *grad_kernel,
                          REAL *grad_weight, REAL *grad_P, int64_t R, int K, int S0, int S1,
                          int comp0, int comp1, REAL half0, REAL half1, REAL eps, int version,
                          int nthreads) {
    OVER_ROW_RANGES(R, bilinear_backward_rows(weight, P, grad_kernel, grad_weight, grad_P, R,
                                              K, S0, S1, comp0, comp1, half0, half1, eps,
                                              version, lo, hi));
}
