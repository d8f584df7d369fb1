/* cells.c: one time step of each cell for a range of hidden units [j0, j1) of B streams, forward
 * and backward: the gate nonlinearities and the state update fused in one pass. The equations are
 * minrnn/reference/cells.py; the products around them are in model.c.
 *
 * Shapes, for one step (row b is stream b):
 *   a       (B, G*H)    in: x W_ih^T + b_ih + b_hh (GRU's n: + b_in only); forward overwrites it
 *                       with the gate activations
 *   hp      (B, G*Hp)   h_prev W_hh^T, gate blocks at a stride of Hp >= H
 *   h_prev, h, c_prev, c, dy, dh, dc   (B, H)
 *   dg, dgh (B, G*H)    gradients of the input and recurrent preactivations (the same except GRU's n);
 *                       dg may be `a` itself: each unit's activations are read before its gradients
 *                       are written, so model.c keeps them in one buffer
 *   db_ih, db_hh (G*H)  bias gradients: the sums of dg (dgh) over streams and steps, added here
 *
 * The loops over units are `omp simd` and the exponential below has no calls or branches, so they
 * vectorize; on x86 with GCC each function is also compiled for AVX2, chosen at load time.
 */
#include <stdint.h>
#include <string.h>

#include "internal.h"

/* Bit patterns: comparing them as integers keeps these loops free of float compares, which GCC
 * will not turn into vector selects under -ftrapping-math (the default, kept: no fast-math). */
static inline uint32_t bits_(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline float float_(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* x > 0 (and not -0, not a negative NaN) */
static inline int positive_(float x) { return (int32_t)bits_(x) > 0; }

/* e^x: Cephes' expf polynomial after x = n ln 2 + r, |r| <= ln(2) / 2. Within 2 ulp of expf on
 * [-87, 88]; outside, x is clamped to that range (where sigmoid and tanh below are saturated).
 * NaN, and also +-inf, come out as NaN. */
static inline float exp_(float x) {
    uint32_t u = bits_(x);
    const uint32_t hi = 0x42B00000u, lo = 0xC2AE0000u;          /* 88.0f, -87.0f */
    u = (u >> 31) ? (u > lo ? lo : u) : (u > hi ? hi : u);       /* negative floats grow as unsigned */
    float xc = float_(u);
    float n = (xc * 1.44269504f + 12582912.0f) - 12582912.0f;   /* round(x / ln 2): 1.5 * 2^23 trick */
    float r = xc - n * 0.693359375f + n * 2.12194440e-4f;       /* ln 2 in two parts: exact n ln2_hi */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    return p * float_((uint32_t)((int32_t)n + 127) << 23) + (x - x);   /* times 2^n; x - x: 0 or NaN */
}

static inline float sigmoid_(float x) { return 1.0f / (1.0f + exp_(-x)); }

/* tanh(x) = sign(x) (1 - e) / (1 + e), e = e^-2|x|, with an odd Taylor polynomial below
 * |x| = 0.04, where 1 - e would cancel. Absolute error below 2e-7 everywhere, relative error below
 * 2e-6. (glibc's tanhf is exact to an ulp, but it goes through expm1f and took a third of a small
 * LSTM's training step.) */
static inline float tanh_(float x) {
    uint32_t abs_bits = bits_(x) & 0x7FFFFFFFu;
    float ax = float_(abs_bits), e = exp_(-2.0f * ax);
    float t = float_(bits_((1.0f - e) / (1.0f + e)) | (bits_(x) & 0x80000000u));   /* copysign */
    float x2 = x * x;
    float small = x * (1.0f + x2 * (-1.0f / 3.0f + x2 * (2.0f / 15.0f + x2 * (-17.0f / 315.0f))));
    uint32_t use_small = 0u - (uint32_t)(abs_bits < 0x3D23D70Au);   /* all ones where |x| < 0.04f */
    return float_((bits_(small) & use_small) | (bits_(t) & ~use_small));   /* a select, as bits */
}

/* ---- vanilla RNN: h = act(a + hp); act = tanh or relu */

VECTOR_CLONES
void rnn_forward_units(int B, int H, int Hp, int j0, int j1, int relu, float *a, const float *hp, float *h) {
    for (int b = 0; b < B; b++) {
        float *ab = a + (size_t)b * H, *hb = h + (size_t)b * H;
        const float *pb = hp + (size_t)b * Hp;
        if (relu) {
            #pragma omp simd
            for (int j = j0; j < j1; j++) {
                float pre = ab[j] + pb[j];
                hb[j] = ab[j] = positive_(pre) ? pre : 0.0f;
            }
        } else {
            #pragma omp simd
            for (int j = j0; j < j1; j++) hb[j] = ab[j] = tanh_(ab[j] + pb[j]);
        }
    }
}

VECTOR_CLONES
void rnn_backward_units(int B, int H, int j0, int j1, int relu, const float *h, const float *dy,
                        const float *dh, float *dg, float *db_ih, float *db_hh) {
    for (int b = 0; b < B; b++) {
        const float *hb = h + (size_t)b * H, *dyb = dy + (size_t)b * H, *dhb = dh + (size_t)b * H;
        float *dgb = dg + (size_t)b * H;
        if (relu) {   /* relu' = 1 where h > 0, else 0 */
            #pragma omp simd
            for (int j = j0; j < j1; j++)   /* a select, as bits (see bits_) */
                dgb[j] = float_(bits_(dyb[j] + dhb[j]) & (0u - (uint32_t)positive_(hb[j])));
        } else {      /* tanh' = 1 - h^2 */
            #pragma omp simd
            for (int j = j0; j < j1; j++) dgb[j] = (dyb[j] + dhb[j]) * (1.0f - hb[j] * hb[j]);
        }
        #pragma omp simd
        for (int j = j0; j < j1; j++) {
            db_ih[j] += dgb[j];
            db_hh[j] += dgb[j];
        }
    }
}

/* ---- LSTM, gates i, f, g, o: c = f c_prev + i g; h = o tanh(c) */

VECTOR_CLONES
void lstm_forward_units(int B, int H, int Hp, int j0, int j1, float *a, const float *hp,
                        const float *c_prev, float *c, float *h) {
    for (int b = 0; b < B; b++) {
        float *ab = a + (size_t)b * 4 * H, *cb = c + (size_t)b * H, *hb = h + (size_t)b * H;
        const float *pb = hp + (size_t)b * 4 * Hp, *cpb = c_prev + (size_t)b * H;
        #pragma omp simd
        for (int j = j0; j < j1; j++) {
            float i = sigmoid_(ab[j] + pb[j]);
            float f = sigmoid_(ab[H + j] + pb[Hp + j]);
            float g = tanh_(ab[2 * H + j] + pb[2 * Hp + j]);
            float o = sigmoid_(ab[3 * H + j] + pb[3 * Hp + j]);
            ab[j] = i, ab[H + j] = f, ab[2 * H + j] = g, ab[3 * H + j] = o;
            cb[j] = f * cpb[j] + i * g;
            hb[j] = o * tanh_(cb[j]);
        }
    }
}

/* dc: in, the gradient from step t+1; out, the gradient with respect to c_prev. */
VECTOR_CLONES
void lstm_backward_units(int B, int H, int j0, int j1, const float *a, const float *c_prev, const float *c,
                         const float *dy, const float *dh, float *dc, float *dg, float *db_ih, float *db_hh) {
    for (int b = 0; b < B; b++) {
        const float *ab = a + (size_t)b * 4 * H, *cpb = c_prev + (size_t)b * H, *cb = c + (size_t)b * H;
        const float *dyb = dy + (size_t)b * H, *dhb = dh + (size_t)b * H;
        float *dcb = dc + (size_t)b * H, *dgb = dg + (size_t)b * 4 * H;
        #pragma omp simd
        for (int j = j0; j < j1; j++) {
            float i = ab[j], f = ab[H + j], g = ab[2 * H + j], o = ab[3 * H + j];
            float d = dyb[j] + dhb[j], tc = tanh_(cb[j]);
            float dct = dcb[j] + d * o * (1.0f - tc * tc);
            float di = dct * g * i * (1.0f - i), df = dct * cpb[j] * f * (1.0f - f);
            float dgg = dct * i * (1.0f - g * g), dop = d * tc * o * (1.0f - o);
            dgb[j] = di, dgb[H + j] = df, dgb[2 * H + j] = dgg, dgb[3 * H + j] = dop;
            db_ih[j] += di, db_ih[H + j] += df, db_ih[2 * H + j] += dgg, db_ih[3 * H + j] += dop;
            db_hh[j] += di, db_hh[H + j] += df, db_hh[2 * H + j] += dgg, db_hh[3 * H + j] += dop;
            dcb[j] = dct * f;
        }
    }
}

/* ---- GRU, gates r, z, n: n = tanh(a_n + r hn), hn = W_hn h_prev + b_hn (b_hn added here, as r
 * gates it); h = (1 - z) n + z h_prev */

VECTOR_CLONES
void gru_forward_units(int B, int H, int Hp, int j0, int j1, float *a, const float *hp, const float *b_hn,
                       const float *h_prev, float *hn, float *h) {
    for (int b = 0; b < B; b++) {
        float *ab = a + (size_t)b * 3 * H, *hnb = hn + (size_t)b * H, *hb = h + (size_t)b * H;
        const float *pb = hp + (size_t)b * 3 * Hp, *hpb = h_prev + (size_t)b * H;
        #pragma omp simd
        for (int j = j0; j < j1; j++) {
            float r = sigmoid_(ab[j] + pb[j]);
            float z = sigmoid_(ab[H + j] + pb[Hp + j]);
            hnb[j] = pb[2 * Hp + j] + b_hn[j];
            float n = tanh_(ab[2 * H + j] + r * hnb[j]);
            ab[j] = r, ab[H + j] = z, ab[2 * H + j] = n;
            hb[j] = (1.0f - z) * n + z * hpb[j];
        }
    }
}

/* dh: in, the gradient from step t+1; out, the part of dh_prev that bypasses W_hh (d z). */
VECTOR_CLONES
void gru_backward_units(int B, int H, int j0, int j1, const float *a, const float *h_prev, const float *hn,
                        const float *dy, float *dh, float *dg, float *dgh, float *db_ih, float *db_hh) {
    for (int b = 0; b < B; b++) {
        const float *ab = a + (size_t)b * 3 * H, *hpb = h_prev + (size_t)b * H, *hnb = hn + (size_t)b * H;
        const float *dyb = dy + (size_t)b * H;
        float *dhb = dh + (size_t)b * H, *dgb = dg + (size_t)b * 3 * H, *dghb = dgh + (size_t)b * 3 * H;
        #pragma omp simd
        for (int j = j0; j < j1; j++) {
            float r = ab[j], z = ab[H + j], n = ab[2 * H + j];
            float d = dyb[j] + dhb[j];
            float dan = d * (1.0f - z) * (1.0f - n * n);
            float dar = dan * hnb[j] * r * (1.0f - r);
            float daz = d * (hpb[j] - n) * z * (1.0f - z);
            dgb[j] = dghb[j] = dar;
            dgb[H + j] = dghb[H + j] = daz;
            dgb[2 * H + j] = dan;
            dghb[2 * H + j] = dan * r;
            db_ih[j] += dar, db_ih[H + j] += daz, db_ih[2 * H + j] += dan;
            db_hh[j] += dar, db_hh[H + j] += daz, db_hh[2 * H + j] += dan * r;
            dhb[j] = d * z;
        }
    }
}
