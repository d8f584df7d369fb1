/* optim.c: gradient clipping and the four update rules on the flat parameter block, as
 * minrnn/reference/optim.py. Every element is updated by one thread, independently, by the same
 * operations at any vector width (WIDE_CLONES: no reductions, and C11 contracts no multiply-add). */
#include <limits.h>
#include <math.h>

#include "gemm.h"       /* mm_have_avx512, mm_first_lanes */
#include "internal.h"

/* NaN stays NaN (fminf/fmaxf would drop it), so a broken gradient is still seen afterwards. */
static inline float clipped(float g, float limit) { return g < -limit ? -limit : g > limit ? limit : g; }

WIDE_CLONES
static void clip_values(float *grads, size_t n, float limit) {
    #pragma omp simd
    for (size_t j = 0; j < n; j++) grads[j] = clipped(grads[j], limit);
}

void minrnn_clip_value(float *grads, size_t n, float limit) { clip_values(grads, n, limit); }   /* not a clone:
                                                                                                  * exported */

/* The sum of squares in double over fixed slices (not per thread: the same partial sums whatever
 * the thread count), added in order: n / NORM_SLICE_MIN of them, from 1 to NORM_SLICES, because
 * a slice costs about a hundred cycles of its own (a 64th of min-char-rnn's 23,000 was mostly
 * that). */
#define NORM_SLICES 64
#define NORM_SLICE_MIN 4096

/* Elements [a, b) in NORM_LANES running sums, element j into lane (j - a) % NORM_LANES, then the
 * lanes added pairwise (lane k + w into lane k, for w = 16, 8, ..., 1): the order depends on
 * nothing but n (not on threads, nor on how the buffer happens to be aligned), and it vectorizes
 * (the lanes are independent, so the AVX2 clone and the AVX-512 version compute exactly what the
 * plain loop does); 32 lanes are 4 independent AVX-512 sums, whose latency 8 lanes waited on (7 us
 * of min-char-rnn's step, now under 1). With limit > 0, each element is first clipped to [-limit, limit] in place
 * (minrnn_clip_value's rule): one pass where clipping and the norm took two. */
#define NORM_LANES 32

static double lanes_added(double *lane) {
    for (int w = NORM_LANES / 2; w > 0; w /= 2)
        for (int k = 0; k < w; k++) lane[k] += lane[k + w];
    return lane[0];
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define MM_ALWAYS_INLINE __attribute__((always_inline)) inline
/* Lanes 0-3 of lanes_added's sum, in one register: added as it adds them (w = 2, then w = 1). */
__attribute__((target("avx"))) static MM_ALWAYS_INLINE double lanes4_added(__m256d v) {
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));         /* w = 2 */
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));                              /* w = 1 */
}

/* The lanes in 4 registers of 8 (the compiler's own vectorization kept them in memory). A float's
 * square is exact in double, so a fused multiply-add is the product and the sum of the plain loop.
 * The last partial group is loaded masked: a lane without an element adds 0 to a sum that is >= +0,
 * the same. The lanes are then added as lanes_added adds them. With limit > 0 each group of 8 is
 * first clipped as clipped() clips and stored back (NaN stays NaN), the same floats as clip_values
 * then the squares, in one pass; by VMINPS and VMAXPS on 256 bits, which run beside the 512-bit
 * conversions (comparisons into masks waited for the same port: 3.2 us of min-char-rnn's step). */
__attribute__((target("avx512f"))) static MM_ALWAYS_INLINE __m512d squares8(float *x, __mmask16 m, float limit,
                                                                           __m512d s) {
    /* a whole group in 256-bit moves: masked 512-bit ones overlap the next group's, and a load
     * then waits for the store before it to leave (min-char-rnn's step took 20 us longer) */
    __m256 f = m == 0xFF ? _mm256_loadu_ps(x)
                         : _mm256_castsi256_ps(_mm512_castsi512_si256(_mm512_maskz_loadu_epi32(m, x)));
    if (limit > 0.0f) {   /* max(a, b) and min(a, b) give b when either is NaN, and b when equal */
        f = _mm256_min_ps(_mm256_set1_ps(limit), _mm256_max_ps(_mm256_set1_ps(-limit), f));
        if (m == 0xFF) _mm256_storeu_ps(x, f);
        else _mm512_mask_storeu_epi32(x, m, _mm512_castps_si512(_mm512_castps256_ps512(f)));
    }
    __m512d v = _mm512_cvtps_pd(f);
    return _mm512_fmadd_pd(v, v, s);
}

__attribute__((target("avx512f"))) static double slice_squares_avx512(float *x, size_t a, size_t b, float limit) {
    __m512d s[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd()};
    size_t j = a;
    for (; j + NORM_LANES <= b; j += NORM_LANES)
        #pragma GCC unroll 4
        for (int q = 0; q < 4; q++) s[q] = squares8(x + j + 8 * q, 0xFF, limit, s[q]);
    if (j < b)
        #pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {   /* unrolled, so that s stays in registers */
            size_t n = b - j > 8 * (size_t)q ? b - j - 8 * (size_t)q : 0;
            s[q] = squares8(x + j + 8 * q, n >= 8 ? 0xFF : (__mmask16)((1u << n) - 1u), limit, s[q]);
        }
    __m512d u = _mm512_add_pd(_mm512_add_pd(s[0], s[2]), _mm512_add_pd(s[1], s[3]));   /* w = 16, 8 */
    return lanes4_added(_mm256_add_pd(_mm512_castpd512_pd256(u), _mm512_extractf64x4_pd(u, 1)));  /* w = 4 */
}

/* The same on AVX2: the 32 lanes in 8 registers of 4 (group q's 8 floats into s[2q] and s[2q + 1]),
 * the last partial group loaded and stored masked, and the registers added as lanes_added adds the
 * lanes. Where the clone kept the lanes in memory and clipped in a pass of its own, min-char-rnn's
 * clip and norm took 4.4% of its step. */
__attribute__((target("avx2,fma"))) static MM_ALWAYS_INLINE void squares8_avx2(float *x, int n, float limit,
                                                                             __m256d *lo, __m256d *hi) {
    __m256i m = mm_first_lanes(n);
    __m256 f = n >= 8 ? _mm256_loadu_ps(x) : _mm256_maskload_ps(x, m);
    if (limit > 0.0f) {   /* as squares8 */
        f = _mm256_min_ps(_mm256_set1_ps(limit), _mm256_max_ps(_mm256_set1_ps(-limit), f));
        if (n >= 8) _mm256_storeu_ps(x, f);
        else _mm256_maskstore_ps(x, m, f);
    }
    __m256d l = _mm256_cvtps_pd(_mm256_castps256_ps128(f)), h = _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1));
    *lo = _mm256_fmadd_pd(l, l, *lo);
    *hi = _mm256_fmadd_pd(h, h, *hi);
}

__attribute__((target("avx2,fma"))) static double slice_squares_avx2(float *x, size_t a, size_t b, float limit) {
    __m256d s[8];
    #pragma GCC unroll 8
    for (int q = 0; q < 8; q++) s[q] = _mm256_setzero_pd();
    size_t j = a;
    for (; j + NORM_LANES <= b; j += NORM_LANES)
        #pragma GCC unroll 4
        for (int q = 0; q < 4; q++) squares8_avx2(x + j + 8 * q, 8, limit, &s[2 * q], &s[2 * q + 1]);
    if (j < b)
        #pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {   /* unrolled, so that s stays in registers */
            size_t n = b - j > 8 * (size_t)q ? b - j - 8 * (size_t)q : 0;
            if (n > 0) squares8_avx2(x + j + 8 * q, n >= 8 ? 8 : (int)n, limit, &s[2 * q], &s[2 * q + 1]);
        }
    #pragma GCC unroll 4
    for (int q = 0; q < 4; q++) s[q] = _mm256_add_pd(s[q], s[q + 4]);                      /* w = 16 */
    s[0] = _mm256_add_pd(s[0], s[2]), s[1] = _mm256_add_pd(s[1], s[3]);                      /* w = 8 */
    return lanes4_added(_mm256_add_pd(s[0], s[1]));                                          /* w = 4 */
}
#endif

/* Elements [a, b) of x, first clipped in place to [-limit, limit] when limit > 0: their sum of
 * squares (lanes as described above). */
VECTOR_CLONES
static double slice_sum_of_squares(float *x, size_t a, size_t b, float limit) {
#if defined(__GNUC__) && defined(__x86_64__)
    if (mm_have_avx512()) return slice_squares_avx512(x, a, b, limit);
    if (mm_have_avx2()) return slice_squares_avx2(x, a, b, limit);
#endif
    if (limit > 0.0f) clip_values(x + a, b - a, limit);
    double lane[NORM_LANES] = {0};
    size_t j = a;
    for (; j + NORM_LANES <= b; j += NORM_LANES)
        for (int k = 0; k < NORM_LANES; k++) lane[k] += (double)x[j + k] * x[j + k];
    for (int k = 0; j < b; j++, k++) lane[k] += (double)x[j] * x[j];
    return lanes_added(lane);
}

/* Slice s of `slices` over n elements. */
static double slice_part(float *x, size_t n, int s, int slices, float limit) {
    return slice_sum_of_squares(x, n * (size_t)s / slices, n * (size_t)(s + 1) / slices, limit);
}

static double sum_of_squares(float *x, size_t n, float limit, int nt) {
    double part[NORM_SLICES];
    size_t want = n / NORM_SLICE_MIN;
    int slices = want < 1 ? 1 : want > NORM_SLICES ? NORM_SLICES : (int)want;
    SHARED_FOR(threads_for(nt, (double)n), s, slices, part[s] = slice_part(x, n, s, slices, limit););
    double total = 0.0;
    for (int s = 0; s < slices; s++) total += part[s];
    return total;
}
void clip_value_and_norm(float *grads, size_t n, float limit, float max_norm, float *norm, int num_threads) {
    double total = sqrt(sum_of_squares(grads, n, limit, resolve_threads(num_threads)));
    double scale = (double)max_norm / (total + 1e-6);
    if (scale < 1.0)
        for (size_t j = 0; j < n; j++) grads[j] = (float)(grads[j] * scale);
    if (norm) *norm = (float)total;
}

/* PyTorch's clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1. */
void minrnn_clip_norm(float *grads, size_t n, float max_norm, float *norm, int num_threads) {
    clip_value_and_norm(grads, n, 0.0f, max_norm, norm, num_threads);
}

/* ---- the update rules on elements [a, b); the caller splits the block into fixed chunks */

/* Decoupled weight decay (AdamW's), before any rule: p *= decay = 1 - lr weight_decay. A pass of its
 * own over a chunk that is then in the cache, so the rules' loops are the same without it. */
WIDE_CLONES
static void decay_weights(float *p, float decay, size_t a, size_t b) {
    #pragma omp simd
    for (size_t j = a; j < b; j++) p[j] *= decay;
}

WIDE_CLONES
static void sgd_update(float *p, const float *g, float *m, float lr, float momentum, size_t a, size_t b) {
    #pragma omp simd
    for (size_t j = a; j < b; j++) {          /* m = momentum m + g; p -= lr m */
        m[j] = momentum * m[j] + g[j];
        p[j] -= lr * m[j];
    }
}

WIDE_CLONES
static void adagrad_update(float *p, const float *g, float *m, float lr, float eps, size_t a, size_t b) {
    #pragma omp simd
    for (size_t j = a; j < b; j++) {          /* m += g^2; p -= lr g / sqrt(m + eps) */
        m[j] += g[j] * g[j];
        p[j] -= lr * g[j] / sqrtf(m[j] + eps);
    }
}

WIDE_CLONES
static void rmsprop_update(float *p, const float *g, float *m, float lr, float alpha, float eps,
                           size_t a, size_t b) {
    #pragma omp simd
    for (size_t j = a; j < b; j++) {          /* m = alpha m + (1 - alpha) g^2; p -= lr g / (sqrt(m) + eps) */
        m[j] = alpha * m[j] + (1.0f - alpha) * g[j] * g[j];
        p[j] -= lr * g[j] / (sqrtf(m[j]) + eps);
    }
}

/* Kingma & Ba, Algorithm 1; c1 = 1 - beta1^t, c2 = 1 - beta2^t */
WIDE_CLONES
static void adam_update(float *p, const float *g, float *m, float *v, float lr, float beta1, float beta2,
                        float eps, float c1, float c2, size_t a, size_t b) {
    #pragma omp simd
    for (size_t j = a; j < b; j++) {
        m[j] = beta1 * m[j] + (1.0f - beta1) * g[j];
        v[j] = beta2 * v[j] + (1.0f - beta2) * g[j] * g[j];
        p[j] -= lr * (m[j] / c1) / (sqrtf(v[j] / c2) + eps);
    }
}

/* Elements [a, b) through the rule, after the weight decay if any. */
static void update_chunk(const minrnn_optimizer *o, float *params, const float *grads, float *m, float *v,
                         float decay, float c1, float c2, size_t a, size_t b) {
    if (o->weight_decay > 0.0f) decay_weights(params, decay, a, b);
    switch (o->kind) {
    case MINRNN_SGD: sgd_update(params, grads, m, o->lr, o->momentum, a, b); break;
    case MINRNN_ADAGRAD: adagrad_update(params, grads, m, o->lr, o->eps, a, b); break;
    case MINRNN_RMSPROP: rmsprop_update(params, grads, m, o->lr, o->alpha, o->eps, a, b); break;
    default: adam_update(params, grads, m, v, o->lr, o->beta1, o->beta2, o->eps, c1, c2, a, b);
    }
}

/* Elements per piece of work. The update is worth a team from PAR_MIN_WORK elements (counting an
 * element as one operation: a team costs about what 20 us of updates save, measured): below, as in a
 * min-char-rnn (23,000 parameters, after a backward pass on one thread whose team has gone to
 * sleep), waking a team cost more than it saved: its step took 118 us on 2 threads, 98 on one. */
#define UPDATE_CHUNK 16384

int minrnn_optimizer_update(minrnn_optimizer *opt, float *params, const float *grads, float *m, float *v,
                            size_t n, int num_threads) {
    if (!opt || !params || !grads || !m || (opt->kind == MINRNN_ADAM && !v)) return MINRNN_ERR_ARG;
    if (opt->kind < MINRNN_SGD || opt->kind > MINRNN_ADAM) return MINRNN_ERR_ARG;
    if (opt->step < 0 || opt->step == INT64_MAX) return MINRNN_ERR_ARG;   /* the count would overflow */
    if (!(opt->weight_decay >= 0.0f) || isinf(opt->weight_decay)) return MINRNN_ERR_ARG;
    if (n / UPDATE_CHUNK >= INT_MAX) return MINRNN_ERR_ARG;   /* chunks are counted in an int */
    const minrnn_optimizer o = *opt;
    const double t = (double)(++opt->step);
    const float c1 = (float)(1.0 - pow(o.beta1, t)), c2 = (float)(1.0 - pow(o.beta2, t));
    const float decay = (float)(1.0 - (double)o.lr * (double)o.weight_decay);
    SHARED_FOR(threads_for(resolve_threads(num_threads), (double)n), c, (int)((n + UPDATE_CHUNK - 1) / UPDATE_CHUNK),
        size_t a = (size_t)c * UPDATE_CHUNK;
        update_chunk(&o, params, grads, m, v, decay, c1, c2, a, a + UPDATE_CHUNK < n ? a + UPDATE_CHUNK : n);
    );
    return MINRNN_OK;
}
