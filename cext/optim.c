/* optim.c: gradient clipping and the four update rules on the flat parameter block, as
 * minrnn/reference/optim.py. Every element is updated by one thread, independently. */
#include <math.h>
#include <omp.h>

#include "internal.h"

int resolve_threads(int num_threads) { return num_threads > 0 ? num_threads : omp_get_max_threads(); }

void minrnn_clip_value(float *grads, size_t n, float limit) {
    for (size_t j = 0; j < n; j++) grads[j] = fminf(fmaxf(grads[j], -limit), limit);
}

/* The sum of squares in double over 64 fixed slices (not per thread: the same partial sums
 * whatever the thread count), added in order. */
#define NORM_SLICES 64

static double sum_of_squares(const float *x, size_t n, int nt) {
    double part[NORM_SLICES];
    #pragma omp parallel for num_threads(nt) schedule(static)
    for (int s = 0; s < NORM_SLICES; s++) {
        size_t a = n * (size_t)s / NORM_SLICES, b = n * (size_t)(s + 1) / NORM_SLICES;
        double acc = 0.0;
        for (size_t j = a; j < b; j++) acc += (double)x[j] * x[j];
        part[s] = acc;
    }
    double total = 0.0;
    for (int s = 0; s < NORM_SLICES; s++) total += part[s];
    return total;
}

/* PyTorch's clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1. */
void minrnn_clip_norm(float *grads, size_t n, float max_norm, float *norm, int num_threads) {
    double total = sqrt(sum_of_squares(grads, n, resolve_threads(num_threads)));
    double scale = (double)max_norm / (total + 1e-6);
    if (scale < 1.0)
        for (size_t j = 0; j < n; j++) grads[j] = (float)(grads[j] * scale);
    if (norm) *norm = (float)total;
}

int minrnn_optimizer_update(minrnn_optimizer *opt, float *params, const float *grads, float *m, float *v,
                            size_t n, int num_threads) {
    if (!opt || !params || !grads || !m || (opt->kind == MINRNN_ADAM && !v)) return MINRNN_ERR_ARG;
    if (opt->kind < MINRNN_SGD || opt->kind > MINRNN_ADAM) return MINRNN_ERR_ARG;
    int nt = resolve_threads(num_threads);
    opt->step++;
    const float lr = opt->lr, eps = opt->eps;
    const ptrdiff_t count = (ptrdiff_t)n;
    switch (opt->kind) {
    case MINRNN_SGD: {          /* m = momentum m + g; p -= lr m */
        const float mu = opt->momentum;
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (ptrdiff_t j = 0; j < count; j++) {
            m[j] = mu * m[j] + grads[j];
            params[j] -= lr * m[j];
        }
        break;
    }
    case MINRNN_ADAGRAD: {      /* m += g^2; p -= lr g / sqrt(m + eps) */
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (ptrdiff_t j = 0; j < count; j++) {
            float g = grads[j];
            m[j] += g * g;
            params[j] -= lr * g / sqrtf(m[j] + eps);
        }
        break;
    }
    case MINRNN_RMSPROP: {      /* m = alpha m + (1 - alpha) g^2; p -= lr g / (sqrt(m) + eps) */
        const float alpha = opt->alpha;
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (ptrdiff_t j = 0; j < count; j++) {
            float g = grads[j];
            m[j] = alpha * m[j] + (1.0f - alpha) * g * g;
            params[j] -= lr * g / (sqrtf(m[j]) + eps);
        }
        break;
    }
    default: {                  /* Adam, Kingma & Ba Algorithm 1 */
        const float b1 = opt->beta1, b2 = opt->beta2;
        const float c1 = (float)(1.0 - pow(b1, (double)opt->step));
        const float c2 = (float)(1.0 - pow(b2, (double)opt->step));
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (ptrdiff_t j = 0; j < count; j++) {
            float g = grads[j];
            m[j] = b1 * m[j] + (1.0f - b1) * g;
            v[j] = b2 * v[j] + (1.0f - b2) * g * g;
            params[j] -= lr * (m[j] / c1) / (sqrtf(v[j] / c2) + eps);
        }
        break;
    }
    }
    return MINRNN_OK;
}
