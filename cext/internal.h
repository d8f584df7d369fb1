/* internal.h: what the core's source files share (not installed). */
#ifndef MINRNN_INTERNAL_H
#define MINRNN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "minrnn.h"

int layer_input_size(const minrnn_config *cfg, int layer);
/* The encoder's and the decoder's configuration of a seq2seq model: cfg as MINRNN_TASK_ENCODE, the
 * decoder's with the condition v_t = [grid mean ; fed context] of decoder_cond_size C when C > 0. */
minrnn_config encoder_part(const minrnn_config *cfg);
minrnn_config decoder_part(const minrnn_config *cfg);
int decoder_cond_size(const minrnn_config *cfg);
/* M: the width of a seq2seq memory row, the encoder's H or the grid's D (input_size). */
int memory_size(const minrnn_config *cfg);
/* Floats of the encoder's block (0 for a grid), and of the encoder's and the decoder's together:
 * where the seq2seq model's own tensors (its tail) start. */
size_t encoder_param_count(const minrnn_config *cfg);
size_t models_param_count(const minrnn_config *cfg);
/* minrnn_forward and minrnn_backward for a caller that keeps its own stamp (seq2seq.c: one hash
 * of everything rather than one per model and call): stamped 0 neither writes nor checks the
 * model's. model_backward also takes doutputs (T, B, H), an encoder's (MINRNN_TASK_ENCODE)
 * gradient with respect to its outputs (ignored past a record's end), or NULL. */
int model_forward(const minrnn_config *cfg, const float *params, const minrnn_batch *batch,
                  const float *state0, float *state_out, const float *masks, float *logits,
                  float *loss, float *workspace, int num_threads, int stamped);
int model_backward(const minrnn_config *cfg, const float *params, const minrnn_batch *batch,
                   const float *masks, const float *doutputs, const float *dfinal, float *workspace,
                   float *grads, float *dstate0, float *dvectors, int num_threads, int stamped);
int resolve_threads(int num_threads);                     /* 0 -> OpenMP's default (1 without OpenMP) */

/* In a parallel region: the calling thread's number, its team's size, and the team's barrier (0, 1
 * and nothing in a build without OpenMP, where every region has one thread). */
#ifdef _OPENMP
#include <omp.h>
static inline int team_thread(void) { return omp_get_thread_num(); }
static inline int team_size(void) { return omp_get_num_threads(); }
#define TEAM_BARRIER _Pragma("omp barrier")
#else
static inline int team_thread(void) { return 0; }
static inline int team_size(void) { return 1; }
#define TEAM_BARRIER
#endif

/* for (int i = 0; i < n; i++) { body }, shared out among `threads` threads by OpenMP's static
 * schedule when there are more than one, and a plain loop when not: a parallel region costs about
 * 0.2 us and a malloc even for one thread, and min-char-rnn's training step ran a dozen (3 of its
 * 56 us). Each iteration runs on one thread either way. The body is the variadic rest, so that its
 * commas need no parentheses; a pragma in it is written _Pragma("omp simd"). */
#ifdef _OPENMP
#define SHARED_FOR(threads, i, n, ...) do {                                          \
        int shared_threads_ = (threads);                                             \
        if (shared_threads_ > 1) {                                                   \
            _Pragma("omp parallel for num_threads(shared_threads_) schedule(static)") \
            for (int i = 0; i < (n); i++) { __VA_ARGS__ }                            \
        } else {                                                                     \
            for (int i = 0; i < (n); i++) { __VA_ARGS__ }                            \
        }                                                                            \
    } while (0)
#else
#define SHARED_FOR(threads, i, n, ...) do {                                          \
        (void)(threads);                                                             \
        for (int i = 0; i < (n); i++) { __VA_ARGS__ }                                \
    } while (0)
#endif

/* A float's bit pattern, and back. */
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

/* bfloat16: the high 16 bits of a float32 (sign, the 8 exponent bits, 7 of the 23 fraction
 * bits). Widening is exact; narrowing rounds to nearest, ties to even (a NaN stays a NaN). */
static inline float bf16_to_float(uint16_t h) { return float_((uint32_t)h << 16); }

static inline uint16_t float_to_bf16(float x) {
    uint32_t u = bits_(x);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x0040u);   /* quiet NaN */
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

/* ---- workspaces: regions of a float buffer, in floats */

#define ALIGN_FLOATS 16   /* workspace regions start on 64-byte boundaries */
#define STAMP_FLOATS 16   /* the stamp: what the forward pass in the workspace was computed from */

static inline size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

static inline size_t max_size(size_t a, size_t b) { return a > b ? a : b; }
/* Where part p of `parts` contiguous parts of n items starts: n p / parts (part p ends where p + 1 starts). */
static inline int part_start(int n, int p, int parts) { return (int)((long long)n * p / parts); }
/* The outputs of a row of the top layer: a classifier's classes, a language model's vocabulary,
 * none for an encoder (its top layer's outputs are the result). */
static inline int output_size(const minrnn_config *cfg) {
    return cfg->task == MINRNN_TASK_CLASSIFY ? cfg->num_classes : cfg->task == MINRNN_TASK_ENCODE ? 0 : cfg->vocab_size;
}

/* The next region of n floats at *at, which moves past it. */
static inline size_t take(size_t *at, size_t n) {
    size_t here = *at;
    *at += round_up(n, ALIGN_FLOATS);
    return here;
}

/* ---- byte workspaces (translation, generation): regions on cache lines; a caller's buffer is
 * aligned first, which its size query's ALIGN_BYTES more make room for */

#define ALIGN_BYTES 64

static inline size_t take_bytes(size_t *at, size_t bytes) {
    size_t here = *at;
    *at += round_up(bytes, ALIGN_BYTES);
    return here;
}

/* The first ALIGN_BYTES boundary in a caller's buffer. */
static inline unsigned char *aligned_bytes(void *workspace) {
    return (unsigned char *)workspace + (ALIGN_BYTES - (uintptr_t)workspace % ALIGN_BYTES) % ALIGN_BYTES;
}

/* Vector loops are also compiled for AVX2 (with GCC on x86-64), chosen when the library loads. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
/* Loops without reductions (each lane's operations are the scalar loop's, and -std=c11 contracts
 * no multiply-add) give the same bits at any vector width: these also get AVX-512. */
#define WIDE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VECTOR_CLONES
#define WIDE_CLONES
#endif

/* Threads worth using for a loop of `work` simple operations: one below PAR_MIN_WORK, where
 * starting a team costs more than it saves. Results never depend on it. */
#define PAR_MIN_WORK 32768.0
static inline int threads_for(int nt, double work) { return work < PAR_MIN_WORK ? 1 : nt; }

/* The same for a product of (M, K) and (K, N): a vectorized multiply-add costs about a sixteenth
 * of one of those simple operations. */
static inline int gemm_threads(int nt, int M, int N, int K) { return threads_for(nt, (double)M * N * K / 8.0); }

/* The same for a product that runs alone, after a stretch of work on one thread (a translation's
 * attention keys, after an encoder too small to share): its team has gone to sleep (minrnn.core
 * lets idle threads spin about 0.1 ms), and waking it costs more than PAR_MIN_WORK saves. Measured
 * on the keys of a GRU of 128 units: 2 threads lost 40 us at 24 source tokens (work 49k) and 14 us
 * at 200 (410k), and gained 60 us at 1,000 (2M) and 1 ms at 3,000. */
#define LONE_MIN_WORK (16 * PAR_MIN_WORK)
static inline int lone_gemm_threads(int nt, int M, int N, int K) {
    return (double)M * N * K / 8.0 < LONE_MIN_WORK ? 1 : nt;
}

/* ---- int8 blocks (int8.c) */

#define INT8_MIN_EXP (-126)   /* scales 2^e: the least is float32's least normal number */
#define INT8_MAX_EXP 100      /* and rows beyond 127 * 2^100 saturate */
#define INT8_MAX_COLS 133144  /* the longest row whose products stay exact in int32: (2^31 - 1) / 127^2 */

/* Row x (K) as q (K) and a power-of-two scale: returns 0; 1 if it saturated; -1 if x holds a NaN
 * or an infinity (q all 0, scale NaN). row_scale is the first half (the scale and the status),
 * quantize_with the second (q from x and its scale). */
int quantize_row(const float *x, int K, int8_t *q, float *scale);
int row_scale(const float *x, int K, float *scale);
void quantize_with(const float *x, int K, float scale, int8_t *q);
/* The rows of A (M, K) into Aq (M, K) and scales (M), a row per thread. */
void quantize_rows(int M, int K, const float *A, ptrdiff_t lda, int8_t *Aq, ptrdiff_t ldq, float *scales, int nt);
/* A tensor's section in an int8 block: byte offsets of its parts, from at. */
typedef struct {
    size_t q, scale, sum, end;
} int8_section;
int8_section int8_section_of(int32_t rows, int32_t cols, size_t at);
/* Where tensor `index` starts in a block at precision: in bytes for MINRNN_INT8, else in elements. */
size_t block_offset(const minrnn_config *cfg, int precision, int index);
/* out = the float32 values of tensors first.. of a block at precision (out holds tensor `first` at 0). */
void expand_tensors(const minrnn_config *cfg, int precision, const void *block, int first, float *out);

/* ---- weights prepared once for the steps of a few streams (model.c, a generation's): bytes
 * (0: nothing to prepare at this precision), the copy of params, and minrnn_step_compact reading
 * it (the same bits). prep must be aligned to ALIGN_BYTES for speed. */
/* Products of more rows (streams) read the unprepared weights: prepared, each row of A reads its
 * group from L1 while mm_nt's tiles use each load of W for 2-3 rows (a Zen 3 core, 4 streams of
 * LSTM H=512 float32: 16% slower prepared; 1 and 2 streams faster). */
#define PREPARED_MAX_ROWS 2
size_t prepared_size(const minrnn_config *cfg, int precision);
void prepare_weights(const minrnn_config *cfg, int precision, const void *params, void *prep, int nt);
int step_prepared(const minrnn_config *cfg, int precision, const void *params, const void *prep,
                  const minrnn_batch *batch, float *state, float *logits, float *workspace, int num_threads);

/* ---- model.c's helpers that seq2seq.c shares; every output element has one owner */

/* Row z (O logits), in place, into the gradient of the cross-entropy with target: softmax(z) -
 * onehot(target) (target < 0: softmax(z)); returns log-sum-exp - z[target] (target < 0: 0). The
 * exponentials with exp_ (vectorized; within 2 ulp of expf), summed in double in order. The target's
 * entry is minus the other entries' mass, from that double sum, not p - 1 in float: near p = 1
 * (a confident model) p - 1 would keep only ulp(1) / (1 - p) of its digits. */
double cross_entropy_row(float *z, int O, int target);
/* minrnn_clip_value (when limit > 0) and minrnn_clip_norm in one pass over grads (optim.c). */
void clip_value_and_norm(float *grads, size_t n, float limit, float max_norm, float *norm, int num_threads);
/* The end of a training step: clip_value, the norm (then clip_norm), and the update unless the
 * loss (value) or the norm is not finite (MINRNN_ERR_NONFINITE); loss, grad_norm may be NULL. */
int clip_and_update(minrnn_optimizer *opt, float *params, float *grads, float *m, float *v, size_t n,
                    float value, float *loss, float *grad_norm, int num_threads);
/* A 64-bit hash of n 4-byte words, folded into h: what a forward pass stamps on its workspace. */
uint64_t hash_words(uint64_t h, const void *data, size_t n);
/* The stamp (STAMP_FLOATS at `at`): a magic number and the hash of what a forward pass was computed
 * from; backward checks it before anything else. */
void stamp_write(float *at, uint64_t magic, uint64_t key);
int stamp_is(const float *at, uint64_t magic, uint64_t key);
/* C (M, N) = rows of bias, ready for products to accumulate into. */
void fill_rows(float *C, int M, int N, const float *bias, int nt);
/* out (cols) += column sums of X (rows, cols), rows added in order. */
void colsum_add(const float *X, int rows, int cols, float *out, int nt);
void scale_floats(float *z, int n, float scale);   /* z (n) *= scale */
/* Products through gemm.h, packing the right-hand side into scratch (mm_packed_size of it):
 * C (M, N) [+]= A (M, K) W^T for W (N, K); C (M, N) [+]= A (M, K) W for W (K, N); and
 * dW (M, N) += A^T X for A (rows, M), X (rows, N), a weight gradient over all rows at once. */
void product_wT(int M, int N, int K, const float *A, const float *W, float *C, int acc, float *scratch, int nt);
void product_w(int M, int N, int K, const float *A, const float *W, float *C, int acc, float *scratch, int nt);
void product_grad(int rows, int M, int N, const float *A, const float *X, float *dW, float *scratch, int nt);

/* ---- seq2seq.c's pieces that translate.c shares */

/* Columns of the attention's keys: H (general), A (additive) or 0 (dot: the keys are the memory). */
int key_size(const minrnn_config *cfg);
/* Pointers to a seq2seq block's own tensors (after the two models), in a copy of them that starts
 * at tail; NULL where absent. */
typedef struct {
    float *W_a, *W_q, *W_k, *v_a, *W_c, *b_c, *W_out, *b_out;
} s2s_view;
s2s_view s2s_views_at(const minrnn_config *cfg, const float *tail);
/* The reference's attend, for one decoder output h (H): alpha (n) over the memory's first n rows (row s at mem + s*stride*M,
 * its key at keys + s*stride*KA; additive reads query = W_q h (A) and v_a), and cat (M + H) = [c ; h]
 * with c = sum_s alpha_s e_s. */
void attend(const minrnn_config *cfg, const float *v_a, int n, const float *h, const float *query,
                const float *mem, const float *keys, ptrdiff_t stride, float *alpha, float *cat);
/* v (D) = the mean of a grid's first n rows (row s at mem + s*stride*D), summed in the order of s
 * in float, then divided by n: what a grid's decoder is conditioned on. */
void grid_mean(const float *mem, int n, ptrdiff_t stride, int D, float *v);

/* Named pointers into the parameter block (or into a gradient block of the same layout). */
typedef struct {
    const float *w_ih, *w_hh, *b_ih, *b_hh;
} layer_view;

typedef struct {
    const float *encoder;                    /* (V, E) or NULL */
    const float *cond;                       /* (G*H, C) or NULL */
    layer_view layer[MINRNN_MAX_LAYERS];     /* b_hh NULL with one_bias */
    const float *out_w, *out_b;              /* the decoder (V, H), (V) or the head (K, H), (K) */
} model_view;

/* Where each tensor starts in a block (NO_TENSOR where it is absent): element offsets, the same
 * for float32 and bfloat16 blocks; byte offsets of its section in an int8 block. Computed once per
 * call. */
#define NO_TENSOR SIZE_MAX
typedef struct {
    size_t w_ih, w_hh, b_ih, b_hh;
} layer_offsets;

typedef struct {
    size_t encoder, cond;
    layer_offsets layer[MINRNN_MAX_LAYERS];
    size_t out_w, out_b;
} model_offsets;

model_offsets model_offsets_of(const minrnn_config *cfg, int precision);

/* The views of a float block (parameters, gradients, moments) with those offsets. */
model_view model_views(const model_offsets *o, int num_layers, const float *params);

/* ---- cells (cells.c). model.c runs every cell through these two types and never asks which
 * cell it runs. */

#define MAX_CELL_STATES 2

/* One time step of one layer for B streams: where the step's inputs and outputs are. Forward
 * reads a, hp, b_hh, prev and writes a (activations), next, saved; backward reads a, prev, next,
 * saved, dy, dstate and writes dgx, dgh, dstate, and adds into db_ih, db_hh. Shapes: cells.c. */
typedef struct {
    int B, H, Hp;
    float *a;                              /* (B, G*H) */
    const float *hp;                       /* (B, G*Hp) */
    const float *b_hh;                     /* (G*H): the cell adds the separate gates' part */
    const float *prev[MAX_CELL_STATES];    /* (B, H) each: the states before the step (h, c) */
    float *next[MAX_CELL_STATES];          /* (B, H) each: the states after it */
    float *saved;                          /* (B, saved * H) */
    const float *dy;                       /* (B, H): gradient of the loss with respect to next[0]
                                            * from the layer above (or the decoder) */
    float *dstate[MAX_CELL_STATES];        /* (B, H) each: in, the gradient with respect to next[s]
                                            * from step t+1; out, the part of the gradient with
                                            * respect to prev[s] that does not pass through W_hh
                                            * (the recurrent product adds the rest into dstate[0]) */
    float *dgx, *dgh;                      /* (B, G*H); dgh == dgx when separate == 0 */
    float *db_ih, *db_hh;                  /* (G*H) */
    const int32_t *lengths;                /* (B) or NULL: records of lengths[b] steps */
    int t;                                 /* the step */
} cell_step;

/* Whether stream b's record ended before this step. The cells skip such a row; model.c carries
 * its states forward unchanged and zeroes its gate gradients, so it changes nothing. */
static inline int row_done(const cell_step *s, int b) { return s->lengths && s->t >= s->lengths[b]; }

typedef struct {
    const char *name;              /* "rnn_tanh", "rnn_relu", "lstm", "gru" */
    int32_t cell, nonlinearity;    /* its minrnn_config fields */
    int gates;                     /* G: preactivations per hidden unit, each a block of H rows */
    int states;                    /* S: state vectors per layer (h, and c for LSTM) */
    int separate;                  /* trailing gates whose recurrent part W_hh h + b_hh the cell
                                    * combines itself (GRU's n, which r gates): their b_hh is not
                                    * folded into the input projection, and their dgh differs
                                    * from dgx (a separate buffer) */
    int saved;                     /* (B, H) vectors per step that forward keeps for backward */
    void (*step_forward)(const cell_step *s, int j0, int j1);    /* units [j0, j1) */
    void (*step_backward)(const cell_step *s, int j0, int j1);
} cell_kind;

/* The cell of a configuration; NULL if its cell and nonlinearity are not a pair in the table. */
const cell_kind *cell_kind_of(const minrnn_config *cfg);

#endif
