/* model.c: forward and backward of B streams over T steps through L layers of RNN, LSTM or GRU,
 * the output layer (a decoder at every step, or a classifier head on each stream's last step)
 * and the loss; the one-token step. The math is minrnn/reference/cells.py and model.py, batched:
 *
 *   input projection   act (N, GH) = x (N, In) W_ih^T + b_ih     one product before the time loop
 *                      (a one-hot layer 0 gathers rows of W_ih^T instead); layer 0 also adds
 *                      W_cond v (B, GH), computed once per batch (a label: a column of W_cond)
 *   recurrence         per step: hproj (B, GH) = h (B, H) W_hh^T + b_hh, then the gate
 *                      nonlinearities and the state update fused in one pass
 *   weight gradients   dW = dgates^T x over all N = T*B rows: one product after the time loop
 *
 * Threads: the time loop runs in one parallel region; hidden units are cut into chunks of
 * UNIT_CHUNK and each thread owns a contiguous range of chunks (all their gates, all B rows) at every
 * step, so the recurrent product and the fused pass need no synchronization beyond one barrier per
 * step. Everything else
 * is a parallel loop over output rows or columns. Each output element has one owner, so results
 * do not depend on the thread count.
 *
 * The cell is known only through its cell_kind (cells.c): how many gates and states, which gates
 * keep their recurrent part separate, what a step saves, and its two step functions.
 *
 * Records (batch->lengths): at a step past the end of stream b's record, the cells skip row b;
 * here its states are carried forward unchanged and its gate gradients zeroed, and its positions
 * have no loss. So nothing there reaches a weight, and the state gradient passes straight
 * through to the record's last step.
 */
#include <stdint.h>
#include <math.h>
#include <string.h>

#include "gemm.h"
#include "internal.h"

/* Products with fewer rows than this stream unpacked weights (mm_nt): packing a weight costs a
 * strided pass over it, which only pays off when many rows reuse it. A single step (T = 1: sampling)
 * never packs: there the pass cost as much as the product itself (B = 32, H = 512). The recurrence
 * of T > 1 steps packs W_hh once for all of them, and with fewer rows sums as mm_nt does (and packs
 * only where mm_nt_packs()). */
#define PACK_MIN_ROWS 8

/* Hidden units per piece of work in the time loop: a multiple of MM_NR, so that a chunk is an
 * aligned column range of the packed weights. Only speed depends on it. */
#define UNIT_CHUNK 32
#define COLUMN_BLOCK 256   /* rows of W_ih read down one column at a time: 256 cache lines */

/* ---- workspace layout: offsets in floats */

typedef struct {
    size_t stamp;
    size_t act[MINRNN_MAX_LAYERS];  /* (N, GH) gate activations (RNN: the new h); in the backward
                                     * pass, overwritten in place by the gradient of the input
                                     * preactivations (dgx), each step once its activations are used */
    size_t states[MINRNN_MAX_LAYERS];   /* (S, T+1, B, H): each state before step 0, then after
                                         * each step; state 0 is h, the layer's output */
    size_t saved[MINRNN_MAX_LAYERS];    /* (N, saved * H): what the cell keeps for backward */
    size_t ys[MINRNN_MAX_LAYERS];   /* dropout > 0: (N, H) layer output times its mask */
    size_t x0;          /* embedding input: (N, E) */
    size_t cond;        /* condition: (B, GH) W_cond v; in backward, the sum of layer 0's dgx
                         * over each stream's steps */
    size_t head_in;     /* classifier: (B, H) the top layer's output at each stream's last step;
                         * in backward, its gradient */
    size_t logits;      /* (R, O): logits, then probabilities, then their gradient; R = N rows
                         * and O = V (language model) or R = B and O = K (classifier) */
    size_t row_loss;    /* (R) */
    size_t bias_hh;     /* (GH) bias_hh as the cells read it, when the block has none in float32:
                         * zeros with one_bias; a compact step widens each layer's here */
    size_t lost_bias;   /* one_bias: (GH) where its gradient goes, never read */
    size_t hproj;       /* (B, G * Hp): one step's W_hh h, gate blocks padded to Hp */
    size_t dgh;         /* separate gates: (N, GH) gradient of the recurrent preactivations (else
                         * dgx itself) */
    size_t dy;          /* (N, max(H, E)): gradient flowing down between layers; a layer's dX
                         * overwrites its dH, which its time loop has finished with */
    size_t dstate;      /* (S, B, H) gradients with respect to the carried states */
    size_t packed;      /* packed weights of the product in progress */
    size_t onehot;      /* one-hot input: (V, GH) W_ih^T, and later its gradient */
    size_t masks;       /* dropout > 0: (L, N, H) masks drawn by minrnn_train_step */
    size_t total;
} ws_layout;

/* Returns 0 on success, -1 if B, T or the sizes are out of range. */
static int layout(const minrnn_config *cfg, int B, int T, ws_layout *w) {
    if (B < 1 || T < 1 || (int64_t)B * T > MINRNN_MAX_BATCH_ROWS) return -1;
    const cell_kind *cell = cell_kind_of(cfg);
    size_t N = (size_t)B * T, H = cfg->hidden_size, G = cell->gates, GH = G * H, V = cfg->vocab_size;
    size_t E = cfg->embed_size, L = cfg->num_layers, Hp = round_up(H, MM_NR), S = cell->states;
    size_t D = cfg->input_size, X = max_size(E, D);   /* layer 0's dense input: an embedding's, or given */
    size_t C = cfg->cond_size, classify = cfg->task == MINRNN_TASK_CLASSIFY;
    size_t R = classify ? (size_t)B : N;
    size_t O = (size_t)output_size(cfg);
    size_t widest = max_size(max_size(GH, max_size(V, O)), max_size(max_size(X, C), G * Hp));
    if (N * widest > ((size_t)1 << 40)) return -1;   /* 4 TiB of floats: refuse before overflow */
    memset(w, 0, sizeof *w);
    size_t at = 0;
    w->stamp = take(&at, STAMP_FLOATS);
    for (size_t l = 0; l < L; l++) {
        w->act[l] = take(&at, N * GH);
        w->states[l] = take(&at, S * (N + B) * H);
        if (cell->saved) w->saved[l] = take(&at, N * cell->saved * H);
        if (cfg->dropout > 0.0f) w->ys[l] = take(&at, N * H);
    }
    if (E) w->x0 = take(&at, N * E);
    if (C) w->cond = take(&at, B * GH);
    if (classify) w->head_in = take(&at, B * H);
    w->logits = take(&at, R * O);
    w->row_loss = take(&at, R);
    w->bias_hh = take(&at, GH);
    if (cfg->one_bias) w->lost_bias = take(&at, GH);
    w->hproj = take(&at, B * G * Hp);
    if (cell->separate) w->dgh = take(&at, N * GH);
    w->dy = take(&at, N * max_size(H, E));
    w->dstate = take(&at, S * B * H);
    /* the largest packed weight: forward W_ih^T (In, GH), G blocks of W_hh^T (H, H), the output
     * layer's W^T (H, O); backward W_hh (GH, H), W_ih (GH, In), W (O, H), W_cond (GH, C) */
    size_t packed = max_size(G * mm_packed_size((int)H, (int)H), mm_packed_size((int)H, (int)O));
    packed = max_size(packed, max_size(mm_packed_size((int)GH, (int)H), mm_packed_size((int)O, (int)H)));
    if (C) packed = max_size(packed, max_size(mm_packed_size((int)GH, (int)C), mm_packed_size(B, (int)C)));
    for (size_t l = 0; l < L; l++) {
        int in = layer_input_size(cfg, (int)l);
        if (l == 0 && X == 0) continue;   /* one-hot: a gather, nothing packed */
        packed = max_size(packed, max_size(mm_packed_size(in, (int)GH), mm_packed_size((int)GH, in)));
    }
    /* ...and the activations packed for weight gradients, never at the same time as a weight */
    packed = max_size(packed, mm_packed_size((int)N, (int)max_size(H, X)));
    /* ...and in an int8 run, which packs nothing, a product's input rows quantized (quantize_input) */
    size_t row_bytes = round_up(max_size(max_size(H, X), C), ALIGN_BYTES);
    packed = max_size(packed, (round_up(N * row_bytes, ALIGN_BYTES) + N * sizeof(float)) / sizeof(float) + 1);
    w->packed = take(&at, packed);
    if (X == 0) w->onehot = take(&at, V * GH);
    if (cfg->dropout > 0.0f) w->masks = take(&at, L * N * H);
    w->total = at;
    return 0;
}

size_t minrnn_workspace_size(const minrnn_config *cfg, int B, int T) {
    ws_layout w;
    if (minrnn_config_check(cfg) != MINRNN_OK || layout(cfg, B, T, &w) != 0) return 0;
    return w.total;
}

/* ---- what one forward or backward works on */

typedef struct {
    const minrnn_config *cfg;
    const cell_kind *cell;
    int B, T, N, H, G, S, GH, Hp, V, E, L, C, nt;
    int classify, R, O;       /* output rows and columns: (N, V), or (B, K) for a classifier */
    int encode;               /* MINRNN_TASK_ENCODE: no output layer; the outputs are the result */
    const float *params;      /* the float32 block; NULL in a compact run */
    const uint16_t *half;     /* a compact run's bfloat16 block, else NULL */
    const unsigned char *q8;  /* a compact run's int8 block, else NULL */
    const void *prep;         /* the weights prepared for a few streams (prepare_weights), or NULL */
    model_offsets prep_off;   /* where each prepared weight starts in prep, in elements */
    model_view w;             /* views of params (all NULL in a compact run) */
    model_offsets off;        /* where each tensor starts in the block */
    const minrnn_batch *batch;
    const int32_t *tokens, *targets, *lengths;
    const float *values;      /* MINRNN_SQUARED_ERROR: the targets, values */
    int has_targets;          /* targets or values: there is a loss */
    const float *masks;       /* (L, N, H) or NULL */
    float *ws;
    ws_layout lay;
} run;

#define WS(r, region) ((r)->ws + (r)->lay.region)

/* MINRNN_OK if every id and value the batch holds is in range, and it holds what the
 * configuration reads and nothing else. */
static int check_batch(const minrnn_config *cfg, const minrnn_batch *bt) {
    if (!bt->tokens != (cfg->input_size > 0) || !bt->inputs != (cfg->input_size == 0)
        || (bt->targets && cfg->task == MINRNN_TASK_ENCODE) || (bt->targets && cfg->loss == MINRNN_SQUARED_ERROR)
        || (bt->values && cfg->loss != MINRNN_SQUARED_ERROR)
        || (bt->labels != NULL) != (cfg->cond == MINRNN_COND_LABEL)
        || (bt->vectors != NULL) != (cfg->cond == MINRNN_COND_VECTOR))
        return MINRNN_ERR_ARG;
    int B = bt->B, T = bt->T, classify = cfg->task == MINRNN_TASK_CLASSIFY;
    for (int b = 0; b < B; b++) {
        if (bt->lengths && (bt->lengths[b] < 1 || bt->lengths[b] > T)) return MINRNN_ERR_ARG;
        if (bt->labels && (bt->labels[b] < 0 || bt->labels[b] >= cfg->cond_size)) return MINRNN_ERR_ARG;
        if (bt->targets && classify && (bt->targets[b] < 0 || bt->targets[b] >= cfg->num_classes))
            return MINRNN_ERR_ARG;
    }
    if (bt->vectors)
        for (int64_t i = 0; i < (int64_t)B * cfg->cond_size; i++)
            if (!isfinite(bt->vectors[i])) return MINRNN_ERR_ARG;
    if (bt->inputs)
        for (int64_t i = 0; i < (int64_t)B * T * cfg->input_size; i++)
            if (!isfinite(bt->inputs[i])) return MINRNN_ERR_ARG;
    int64_t O = classify ? cfg->num_classes : cfg->vocab_size;   /* values per row */
    for (int64_t i = 0; bt->values && i < (classify ? B : (int64_t)B * T); i++) {
        int has_loss = classify || !bt->lengths || i / B < bt->lengths[i % B];
        for (int64_t k = 0; has_loss && k < O; k++)
            if (!isfinite(bt->values[i * O + k])) return MINRNN_ERR_ARG;
    }
    for (int64_t i = 0; i < (int64_t)B * T; i++) {   /* the ids: tokens, and a model of vectors' too has targets */
        if (bt->tokens && (bt->tokens[i] < 0 || bt->tokens[i] >= cfg->vocab_size)) return MINRNN_ERR_ARG;
        int has_loss = !bt->lengths || i / B < bt->lengths[i % B];
        if (bt->targets && !classify && has_loss && (bt->targets[i] < 0 || bt->targets[i] >= cfg->vocab_size))
            return MINRNN_ERR_ARG;
    }
    return MINRNN_OK;
}

/* block: the parameters at precision (a compact run: anything but MINRNN_FLOAT32, or a step). */
static int setup(run *r, const minrnn_config *cfg, int precision, const void *block,
                 const minrnn_batch *batch, const float *masks, float *ws, int num_threads) {
    int status = minrnn_config_check(cfg);
    if (status != MINRNN_OK) return status;
    if (cfg->task == MINRNN_TASK_SEQ2SEQ) return MINRNN_ERR_ARG;   /* the minrnn_seq2seq_ calls */
    /* a known precision (not minrnn_params_size, which walks the tensors: an int8 block with rows too
     * long for it cannot have been made) */
    if (!block || !batch || !ws || precision < MINRNN_FLOAT32 || precision > MINRNN_INT8 ||
        layout(cfg, batch->B, batch->T, &r->lay) != 0)
        return MINRNN_ERR_ARG;
    if (masks && cfg->dropout == 0.0f) return MINRNN_ERR_ARG;   /* masks only with dropout */
    status = check_batch(cfg, batch);
    if (status != MINRNN_OK) return status;
    r->cfg = cfg, r->cell = cell_kind_of(cfg);
    r->B = batch->B, r->T = batch->T, r->N = batch->B * batch->T;
    r->H = cfg->hidden_size, r->G = r->cell->gates, r->S = r->cell->states, r->GH = r->G * r->H;
    r->Hp = (int)round_up((size_t)r->H, MM_NR);
    r->V = cfg->vocab_size, r->E = cfg->embed_size, r->L = cfg->num_layers, r->C = cfg->cond_size;
    r->classify = cfg->task == MINRNN_TASK_CLASSIFY;
    r->encode = cfg->task == MINRNN_TASK_ENCODE;
    r->R = r->classify ? r->B : r->N, r->O = output_size(cfg);
    r->nt = resolve_threads(num_threads);
    r->params = precision == MINRNN_FLOAT32 ? block : NULL;
    r->half = precision == MINRNN_BFLOAT16 ? block : NULL, r->q8 = precision == MINRNN_INT8 ? block : NULL;
    r->off = model_offsets_of(cfg, precision);
    r->prep = NULL;
    memset(&r->prep_off, 0xFF, sizeof r->prep_off);   /* nothing prepared */
    if (r->params) r->w = model_views(&r->off, r->L, r->params);
    else memset(&r->w, 0, sizeof r->w);
    r->batch = batch, r->tokens = batch->tokens, r->targets = batch->targets, r->lengths = batch->lengths;
    r->values = batch->values, r->has_targets = batch->targets || batch->values;
    r->masks = masks;
    r->ws = ws;
    if (cfg->one_bias) memset(WS(r, bias_hh), 0, (size_t)r->GH * sizeof(float));
    return MINRNN_OK;
}

/* ---- a parameter tensor (rows, cols) as forward reads it: in the float32 block, or in a compact
 * run's bfloat16 block (widened exactly where it is read) or int8 block (q times its row's scale,
 * exact; products in integers) */

typedef struct {
    const float *f;
    const uint16_t *h;
    const int8_t *q;
    const float *scale;       /* int8: a scale per row */
    const int32_t *sum;       /* int8: each row's sum of q */
    size_t cols;
    const void *prep;         /* its prepared copy (float32, bfloat16 or int8 as f, h or q), or NULL */
    int block_rows;           /* the rows of each block the copy prepares apart (a gate's H) */
} tensor;

/* f: the tensor's view in the float32 block; offset: where it starts in the block */
static tensor tensor_of(const run *r, const float *f, size_t offset, int rows, int cols) {
    tensor t = {f, NULL, NULL, NULL, NULL, (size_t)cols, NULL, 0};
    if (r->half) t.f = NULL, t.h = r->half + offset;
    if (r->q8) {
        int8_section s = int8_section_of(rows, cols, offset);
        t.f = NULL, t.q = (const int8_t *)(r->q8 + s.q);
        t.scale = (const float *)(r->q8 + s.scale), t.sum = (const int32_t *)(r->q8 + s.sum);
    }
    return t;
}

static inline float tensor_at(tensor t, size_t row, size_t col) {
    size_t i = row * t.cols + col;
    return t.f ? t.f[i] : t.h ? bf16_to_float(t.h[i]) : (float)t.q[i] * t.scale[row];
}

WIDE_CLONES static void add_column_f32(float *x, const float *w, ptrdiff_t ld, int n) {
    #pragma omp simd
    for (int k = 0; k < n; k++) x[k] += w[k * ld];
}

/* x (n) += column col of rows [row0, row0 + n) of t: one row of act at a time, in a loop the
 * compiler vectorizes for float32 (the one-hot input of a 32-stream step of LSTM H=512 took 7% of
 * it element by element, 2% so) */
static void add_column(float *x, tensor t, size_t row0, int n, size_t col) {
    if (t.f) {
        add_column_f32(x, t.f + row0 * t.cols + col, (ptrdiff_t)t.cols, n);
        return;
    }
    for (int k = 0; k < n; k++) x[k] += tensor_at(t, row0 + (size_t)k, col);
}

/* dst (n) = elements [from, from + n), row-major. Compact biases are copied at every step of a
 * sampler: their own loops, which vectorize (element by element, 6% of an int8 character). */
static void tensor_copy(tensor t, size_t from, size_t n, float *dst) {
    if (t.f) {
        memcpy(dst, t.f + from, n * sizeof(float));
        return;
    }
    if (t.h) {
        #pragma omp simd
        for (size_t i = 0; i < n; i++) dst[i] = bf16_to_float(t.h[from + i]);
        return;
    }
    if (t.cols == 1) {   /* an int8 bias: q times its row's scale */
        #pragma omp simd
        for (size_t i = 0; i < n; i++) dst[i] = (float)t.q[from + i] * t.scale[from + i];
        return;
    }
    for (size_t i = 0, row = from / t.cols, col = from % t.cols; i < n; i++) {
        dst[i] = tensor_at(t, row, col);
        if (++col == t.cols) col = 0, row++;
    }
}

/* Rows of a product's input, quantized for an int8 product (cext/int8.c): q (M, ld), scale (M). */
typedef struct {
    int8_t *q;
    float *scale;
    ptrdiff_t ld;
} quantized;

/* Where M quantized rows of K go: the packed region, which an int8 run never packs into. */
static quantized quantized_rows(const run *r, int M, int K) {
    int8_t *q = (int8_t *)WS(r, packed);
    ptrdiff_t ld = (ptrdiff_t)round_up((size_t)K, ALIGN_BYTES);
    return (quantized){q, (float *)(q + round_up((size_t)M * ld, ALIGN_BYTES)), ld};
}

/* A (M, K) quantized there. */
static quantized quantize_input(const run *r, int M, int K, const float *A, ptrdiff_t lda, int nt) {
    quantized x = quantized_rows(r, M, K);
    quantize_rows(M, K, A, lda, x.q, x.ld, x.scale, nt);
    return x;
}

/* A weight's prepared copy (cext/gemm.c, int8.c): bytes of an element, and elements for N rows. */
static size_t prep_element(int precision) {
    return precision == MINRNN_INT8 ? 1 : precision == MINRNN_BFLOAT16 ? sizeof(uint16_t) : sizeof(float);
}
static size_t prep_elements(int precision, int N, int K) {
    return precision == MINRNN_INT8 ? mm_i8_prepared_size(N, K) : mm_prepared_size(N, K);
}
static int precision_of(tensor W) { return W.q ? MINRNN_INT8 : W.h ? MINRNN_BFLOAT16 : MINRNN_FLOAT32; }

/* W with its prepared copy, where the run has one: the block at offset of prep, in blocks of
 * block_rows rows */
static tensor with_prepared(const run *r, tensor W, size_t offset, int block_rows) {
    if (r->prep && offset != NO_TENSOR) {
        W.prep = (const unsigned char *)r->prep + offset * prep_element(precision_of(W));
        W.block_rows = block_rows;
    }
    return W;
}

/* Whether a product of M rows over rows [from / ldw, + N) of W reads W's prepared copy: a few
 * rows of A, over whole rows of W that start a group (the same bits as without it). */
static int reads_prepared(int M, int K, tensor W, size_t from, ptrdiff_t ldw) {
    return W.prep && M <= PREPARED_MAX_ROWS && ldw == (ptrdiff_t)W.cols && (size_t)K == W.cols && from % W.cols == 0
           && from / W.cols % (size_t)W.block_rows % 8 == 0;
}

/* mm_nt from W's prepared copy: rows [row, row + N), block by block (each starts a group); A, or
 * for an int8 W its rows quantized (Aq). */
static void tensor_nt_prepared(int M, int N, int K, const float *A, ptrdiff_t lda, const quantized *Aq, tensor W,
                               size_t row, float *C, ptrdiff_t ldc, int acc, int nt) {
    int precision = precision_of(W);
    size_t per_block = prep_elements(precision, W.block_rows, K), size = prep_element(precision);
    for (int done = 0; done < N;) {
        size_t block = (row + (size_t)done) / (size_t)W.block_rows, in = (row + (size_t)done) % (size_t)W.block_rows;
        int n = N - done, left = W.block_rows - (int)in;   /* rows to do, rows left in the block */
        if (n > left) n = left;
        const void *P = (const unsigned char *)W.prep + (block * per_block + in / 8 * prep_elements(precision, 8, K)) * size;
        if (W.q) mm_nt_i8_prepared(M, n, K, Aq->q, Aq->ld, Aq->scale, P, W.scale + row + done, C + done, ldc, acc, nt);
        else if (W.h) mm_nt_prepared_bf16(M, n, K, A, lda, P, C + done, ldc, acc, nt);
        else mm_nt_prepared(M, n, K, A, lda, P, C + done, ldc, acc, nt);
        done += n;
    }
}

/* The int8 product: rows [from / cols, + N) of W, from its prepared copy where it reads one. */
static void tensor_nt_q(int M, int N, int K, quantized A, tensor W, size_t from, ptrdiff_t ldw, float *C,
                        ptrdiff_t ldc, int acc, int nt) {
    size_t row = from / W.cols;
    if (reads_prepared(M, K, W, from, ldw)) tensor_nt_prepared(M, N, K, NULL, 0, &A, W, row, C, ldc, acc, nt);
    else mm_nt_i8(M, N, K, A.q, A.ld, A.scale, W.q + from, ldw, W.scale + row, W.sum + row, C, ldc, acc, nt);
}

/* mm_nt of any precision (an int8 W quantizes A first), from W's prepared copy where it reads one */
static void tensor_nt(const run *r, int M, int N, int K, const float *A, ptrdiff_t lda, tensor W, size_t from,
                      ptrdiff_t ldw, float *C, ptrdiff_t ldc, int acc, int nt) {
    if (W.q) tensor_nt_q(M, N, K, quantize_input(r, M, K, A, lda, nt), W, from, ldw, C, ldc, acc, nt);
    else if (reads_prepared(M, K, W, from, ldw)) tensor_nt_prepared(M, N, K, A, lda, NULL, W, from / W.cols, C, ldc, acc, nt);
    else if (W.f) mm_nt(M, N, K, A, lda, W.f + from, ldw, C, ldc, acc, nt);
    else if (W.h) mm_nt_bf16(M, N, K, A, lda, W.h + from, ldw, C, ldc, acc, nt);
}

static void tensor_pack(int K, int N, tensor W, size_t from, ptrdiff_t rsb, ptrdiff_t csb, float *Bp, int nt) {
    if (W.f) mm_pack(K, N, W.f + from, rsb, csb, Bp, nt);
    else mm_pack_bf16(K, N, W.h + from, rsb, csb, Bp, nt);
}

static tensor w_ih_of(const run *r, int l) {
    tensor t = tensor_of(r, r->w.layer[l].w_ih, r->off.layer[l].w_ih, r->GH, layer_input_size(r->cfg, l));
    return with_prepared(r, t, r->prep_off.layer[l].w_ih, r->H);
}
static tensor w_hh_of(const run *r, int l) {
    tensor t = tensor_of(r, r->w.layer[l].w_hh, r->off.layer[l].w_hh, r->GH, r->H);
    return with_prepared(r, t, r->prep_off.layer[l].w_hh, r->H);
}

/* bias_hh of layer l as the cells read it, and where its gradient goes: with one_bias, zeros and
 * a sink; in a compact step, the copy that layer_forward widens. */
static const float *bias_hh(const run *r, int l) {
    return r->cfg->one_bias || !r->params ? WS(r, bias_hh) : r->w.layer[l].b_hh;
}

static float *bias_hh_grad(const run *r, const layer_view *gw) {
    return r->cfg->one_bias ? WS(r, lost_bias) : (float *)gw->b_hh;
}

/* Whether output row i has a loss: every row of a classifier; position (t, b) = row t*B + b of a
 * language model when t is within stream b's record. */
static int row_has_loss(const run *r, int i) {
    return r->classify || !r->lengths || i / r->B < r->lengths[i % r->B];
}

/* The positions (or streams) that have a loss: what MINRNN_MEAN divides by. */
static double loss_count(const run *r) {
    if (r->classify || !r->lengths) return (double)r->R;
    double n = 0.0;
    for (int b = 0; b < r->B; b++) n += r->lengths[b];
    return n;
}

/* Stream b's last step: where a classifier reads it. */
static int last_step(const run *r, int b) { return r->lengths ? r->lengths[b] - 1 : r->T - 1; }

/* State s of layer l over time: (T+1, B, H), row t*B + b before step t. */
static float *state_rows(const run *r, int l, int s) {
    return WS(r, states[l]) + (size_t)s * (r->N + r->B) * r->H;
}

/* The output of layer l as the next layer (or the decoder) sees it: (N, H). */
static float *layer_output(const run *r, int l) {
    return r->masks ? WS(r, ys[l]) : state_rows(r, l, 0) + (size_t)r->B * r->H;
}

/* Input of layer l: (N, In); NULL for a one-hot layer 0. */
static const float *layer_input(const run *r, int l) {
    if (l > 0) return layer_output(r, l - 1);
    return r->E ? WS(r, x0) : r->batch->inputs;
}

/* ---- the stamp: a forward pass leaves in the workspace a hash of everything the backward pass
 * depends on; minrnn_backward checks it before anything else, and uses it up (it
 * overwrites the activations). Any other call on the workspace clears it. */

#define STAMP_MAGIC 0x4b50524e4e524d4dull   /* a forward pass is here */

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* A 64-bit hash of n 4-byte words, folded into h: four interleaved lanes of xor, rotate and
 * multiply over 8-byte pieces, fast enough to cover the parameters at memory speed. It catches
 * accidents (another forward, changed weights), not attacks. */
uint64_t hash_words(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    const uint64_t K = 0x9E3779B97F4A7C15ull;
    uint64_t lane[4] = {h, h + 1, h + 2, h + 3};
    size_t bytes = n * 4, i = 0;
    for (; i + 32 <= bytes; i += 32)
        for (int k = 0; k < 4; k++) {
            uint64_t w;
            memcpy(&w, p + i + 8 * (size_t)k, 8);
            lane[k] = rotl64(lane[k] ^ w, 29) * K;
        }
    for (; i < bytes; i += 4) {
        uint32_t w;
        memcpy(&w, p + i, 4);
        lane[0] = rotl64(lane[0] ^ w, 29) * K;
    }
    uint64_t out = (uint64_t)n;
    for (int k = 0; k < 4; k++) out = rotl64(out ^ lane[k], 31) * 0xBF58476D1CE4E5B9ull;
    return out ^ (out >> 29);
}

_Static_assert(sizeof(minrnn_config) == 18 * 4, "minrnn_config: eighteen four-byte fields, no padding");

/* What backward depends on: the config, the parameters, the batch and the masks. */
static uint64_t forward_key(const run *r) {
    const minrnn_batch *bt = r->batch;
    int32_t shape[8] = {r->B, r->T, r->masks != NULL, bt->targets != NULL || bt->values != NULL, bt->lengths != NULL,
                        bt->labels != NULL, bt->vectors != NULL, bt->inputs != NULL};
    uint64_t h = hash_words(0, r->cfg, sizeof *r->cfg / 4);
    h = hash_words(h, shape, 8);
    h = hash_words(h, r->params, minrnn_param_count(r->cfg));
    if (r->tokens) h = hash_words(h, r->tokens, (size_t)r->N);
    if (bt->inputs) h = hash_words(h, bt->inputs, (size_t)r->N * r->cfg->input_size);
    if (bt->targets) h = hash_words(h, bt->targets, (size_t)(r->classify ? r->B : r->N));
    if (bt->values) h = hash_words(h, bt->values, (size_t)r->R * r->O);
    if (bt->lengths) h = hash_words(h, bt->lengths, (size_t)r->B);
    if (bt->labels) h = hash_words(h, bt->labels, (size_t)r->B);
    if (bt->vectors) h = hash_words(h, bt->vectors, (size_t)r->B * r->C);
    if (r->masks) h = hash_words(h, r->masks, (size_t)r->L * r->N * r->H);
    return h;
}

void stamp_write(float *at, uint64_t magic, uint64_t key) {
    uint64_t stamp[2] = {magic, key};
    memcpy(at, stamp, sizeof stamp);
}

int stamp_is(const float *at, uint64_t magic, uint64_t key) {
    uint64_t stamp[2];
    memcpy(stamp, at, sizeof stamp);
    return stamp[0] == magic && stamp[1] == key;
}

static void write_stamp(const run *r, uint64_t magic, uint64_t key) { stamp_write(WS(r, stamp), magic, key); }

static int stamp_matches(const run *r) { return stamp_is(WS(r, stamp), STAMP_MAGIC, forward_key(r)); }

/* ---- small parallel helpers; every output element has one owner */

/* C (M, N) = rows of bias, ready for products to accumulate into. */
void fill_rows(float *C, int M, int N, const float *bias, int nt) {
    SHARED_FOR(threads_for(nt, (double)M * N), i, M, memcpy(C + (size_t)i * N, bias, (size_t)N * sizeof(float)););
}

WIDE_CLONES   /* one multiply per element: the same bits at any width */
static void scale_in_place(float *z, int n, float scale) {
    #pragma omp simd
    for (int v = 0; v < n; v++) z[v] *= scale;
}

/* Not a clone itself: a clone's ifunc stays global in libminrnn.a, which exports only minrnn_*. */
void scale_floats(float *z, int n, float scale) { scale_in_place(z, n, scale); }

/* out [j0, j1) += the column sums of X (rows, cols) there, j1 - j0 <= 64. WIDE_CLONES: each
 * column's sum is its own chain, the same bits at any width. */
WIDE_CLONES
static void colsum_add_cols(const float *X, int rows, int cols, float *out, int j0, int j1) {
    float acc[64] = {0};
    for (int i = 0; i < rows; i++)
        #pragma omp simd
        for (int j = j0; j < j1; j++) acc[j - j0] += X[(size_t)i * cols + j];
    #pragma omp simd
    for (int j = j0; j < j1; j++) out[j] += acc[j - j0];
}

/* out (cols) += column sums of X (rows, cols), rows added in order. */
void colsum_add(const float *X, int rows, int cols, float *out, int nt) {
    SHARED_FOR(threads_for(nt, (double)rows * cols), c, (cols + 63) / 64,   /* columns [64 c, 64 c + 64) */
        colsum_add_cols(X, rows, cols, out, 64 * c, 64 * c + 64 < cols ? 64 * c + 64 : cols);
    );
}

/* out (V, cols) row tokens[i] += X row i, for i in order: the gradient of a row gather. Each part
 * of the work owns a range of tokens and reads their rows of X whole, in order (split by columns,
 * every thread read every row in pieces: 2.6 times as long for LSTM H=128's 2048 x 512). */
static void scatter_rows_add(const float *X, const int32_t *tokens, int rows, int cols, int V, float *out, int nt) {
    int parts = threads_for(nt, (double)rows * cols);
    SHARED_FOR(parts, part, parts,
        int v0 = (int)((long long)V * part / parts), v1 = (int)((long long)V * (part + 1) / parts);
        for (int i = 0; i < rows; i++) {
            if (tokens[i] < v0 || tokens[i] >= v1) continue;
            const float *x = X + (size_t)i * cols;
            float *o = out + (size_t)tokens[i] * cols;
            _Pragma("omp simd")
            for (int j = 0; j < cols; j++) o[j] += x[j];
        }
    );
}

/* out (R, C) += X^T for X (C, R). */
static void add_transposed(const float *X, int R, int C, float *out, int nt) {
    SHARED_FOR(threads_for(nt, (double)R * C), i, R,
        for (int j = 0; j < C; j++) out[(size_t)i * C + j] += X[(size_t)j * R + i];
    );
}

/* Whether a product of this many rows (in each of T steps) packs its weight: PACK_MIN_ROWS; an
 * int8 product never does. */
static int worth_packing(const run *r, int rows) { return rows >= PACK_MIN_ROWS && r->T > 1 && !r->q8; }

/* C (M, N) [+]= A (M, K) W^T for a weight W (N, K): packed when enough rows reuse it. */
static void linear_wT(const run *r, int M, int N, int K, const float *A, tensor W, float *C, int acc) {
    if (worth_packing(r, M)) {
        float *Wp = WS(r, packed);
        tensor_pack(K, N, W, 0, 1, K, Wp, threads_for(r->nt, (double)K * N));   /* B(k, j) = W[j][k] */
        mm_packed(M, N, K, A, K, 1, Wp, C, N, acc, gemm_threads(r->nt, M, N, K));
    } else {
        tensor_nt(r, M, N, K, A, K, W, 0, K, C, N, acc, gemm_threads(r->nt, M, N, K));
    }
}

void product_wT(int M, int N, int K, const float *A, const float *W, float *C, int acc, float *scratch, int nt) {
    mm_pack(K, N, W, 1, K, scratch, threads_for(nt, (double)K * N));   /* B(k, j) = W[j][k] */
    mm_packed(M, N, K, A, K, 1, scratch, C, N, acc, gemm_threads(nt, M, N, K));
}

void product_w(int M, int N, int K, const float *A, const float *W, float *C, int acc, float *scratch, int nt) {
    mm_pack(K, N, W, N, 1, scratch, threads_for(nt, (double)K * N));
    mm_packed(M, N, K, A, K, 1, scratch, C, N, acc, gemm_threads(nt, M, N, K));
}

void product_grad(int rows, int M, int N, const float *A, const float *X, float *dW, float *scratch, int nt) {
    mm_pack(rows, N, X, N, 1, scratch, threads_for(nt, (double)rows * N));
    mm_packed(M, N, rows, A, 1, M, scratch, dW, N, 1, gemm_threads(nt, rows, M, N));
}

/* dW (M, N) += A^T X for A (rows, M), X (rows, N): weight gradients over all T*B rows at once. */
static void weight_grad(const run *r, int rows, int M, int N, const float *A, const float *X, float *dW) {
    product_grad(rows, M, N, A, X, dW, WS(r, packed), r->nt);
}

/* ---- the fused per-step passes (cells.c) */

/* Where step t of layer l finds everything, for the cell's step functions. Backward also needs dH
 * (N, H), the gradient with respect to the layer's outputs, and gw, the layer's gradients. */
static cell_step step_at(const run *r, int l, int t, const float *dH, const layer_view *gw) {
    int B = r->B, H = r->H;
    size_t first = (size_t)t * B;                            /* row of (t, stream 0) */
    cell_step s;
    memset(&s, 0, sizeof s);
    s.B = B, s.H = H, s.Hp = r->Hp;
    s.a = WS(r, act[l]) + first * r->GH;
    s.hp = WS(r, hproj);
    s.b_hh = bias_hh(r, l);
    s.lengths = r->lengths, s.t = t;
    for (int k = 0; k < r->S; k++) {
        float *rows = state_rows(r, l, k);
        s.prev[k] = rows + first * H;
        s.next[k] = rows + (first + B) * H;
        s.dstate[k] = WS(r, dstate) + (size_t)k * B * H;
    }
    if (r->cell->saved) s.saved = WS(r, saved[l]) + first * r->cell->saved * H;
    if (dH) {
        s.dy = dH + first * H;
        s.dgx = s.a;   /* in place of the activations, each read before it is overwritten */
        s.dgh = r->cell->separate ? WS(r, dgh) + first * r->GH : s.dgx;
        s.db_ih = (float *)gw->b_ih, s.db_hh = bias_hh_grad(r, gw);
    }
    return s;
}

/* ---- one layer, forward */

/* One step's product (s: step t of layer l, built once per step and thread) for the units
 * [j0, j1): hproj = h_{t-1} W_hh^T for those columns of every gate block (Wp: W_hh^T packed by gate
 * block, each `block` floats, and summed as mm_nt sums if nt_order; NULL streams W_hh). */
static void forward_product(const run *r, int l, const cell_step *s, int j0, int j1, const float *Wp, size_t block,
                            int nt_order, quantized hq) {
    int B = r->B, H = r->H, G = r->G, Hp = r->Hp;
    const float *h_prev = s->prev[0];
    tensor w_hh = w_hh_of(r, l);
    for (int g = 0; g < G; g++) {
        float *out = WS(r, hproj) + (size_t)g * Hp;
        if (Wp && nt_order)
            mm_packed_nt_cols(B, H, H, h_prev, H, Wp + g * block, out, (ptrdiff_t)G * Hp, 0, j0, j1);
        else if (Wp)
            mm_packed_cols(B, H, H, h_prev, H, 1, Wp + g * block, out, (ptrdiff_t)G * Hp, 0, j0, j1);
        else if (r->q8)   /* hq: h_prev quantized at the start of the step */
            tensor_nt_q(B, j1 - j0, H, hq, w_hh, ((size_t)g * H + j0) * H, H, out + j0, (ptrdiff_t)G * Hp, 0, 1);
        else
            tensor_nt(r, B, j1 - j0, H, h_prev, H, w_hh, ((size_t)g * H + j0) * H, H, out + j0, (ptrdiff_t)G * Hp, 0, 1);
    }
}

/* The cell of step s for the units [j0, j1). */
static void forward_cell(const run *r, const cell_step *s, int j0, int j1) {
    int B = r->B, H = r->H;
    r->cell->step_forward(s, j0, j1);
    if (r->lengths)   /* rows past their record's end keep their states */
        for (int b = 0; b < B; b++)
            if (row_done(s, b))
                for (int k = 0; k < r->S; k++)
                    memcpy(s->next[k] + (size_t)b * H + j0, s->prev[k] + (size_t)b * H + j0,
                           (size_t)(j1 - j0) * sizeof(float));
}

/* Units [*j0, *j1) of the calling thread of a team in the time loop: the chunks of H split in
 * contiguous ranges, the same at every step (only speed depends on the split). A thread's product
 * over its whole range runs in the widest tiles. */
static void team_units(const run *r, int *j0, int *j1) {
    int n = team_size(), t = team_thread(), chunks = (r->H + UNIT_CHUNK - 1) / UNIT_CHUNK;
    int c0 = (int)((long long)chunks * t / n), c1 = (int)((long long)chunks * (t + 1) / n);
    *j0 = c0 * UNIT_CHUNK < r->H ? c0 * UNIT_CHUNK : r->H;
    *j1 = c1 * UNIT_CHUNK < r->H ? c1 * UNIT_CHUNK : r->H;
}

/* Row b of the state h before step s, quantized into hq. */
static void quantize_step_row(const cell_step *s, int b, quantized hq) {
    quantize_row(s->prev[0] + (size_t)b * s->H, s->H, hq.q + b * hq.ld, hq.scale + b);
}

static void layer_forward(const run *r, int l) {
    int B = r->B, T = r->T, N = r->N, H = r->H, G = r->G, GH = r->GH, nt = r->nt;
    tensor w_ih = w_ih_of(r, l), b_ih = tensor_of(r, r->w.layer[l].b_ih, r->off.layer[l].b_ih, GH, 1);
    float *act = WS(r, act[l]);
    if (!r->params && !r->cfg->one_bias)   /* the cells read bias_hh in float32 */
        tensor_copy(tensor_of(r, NULL, r->off.layer[l].b_hh, GH, 1), 0, (size_t)GH, WS(r, bias_hh));

    /* input projection for all N rows: act = x W_ih^T + b_ih + b_hh, both biases added here once
     * rather than at every step; except in the separate gates, whose b_hh the cell adds */
    float *bias = WS(r, hproj);   /* (GH) scratch: hproj is free until the time loop */
    const float *b_hh = bias_hh(r, l);
    int folded = (G - r->cell->separate) * H;
    tensor_copy(b_ih, 0, (size_t)GH, bias);
    #pragma omp simd   /* bias and b_hh never overlap; element by element this was 4% of an int8 character */
    for (int k = 0; k < folded; k++) bias[k] += b_hh[k];
    fill_rows(act, N, GH, bias, nt);
    const float *x = layer_input(r, l);
    if (x) {
        linear_wT(r, N, GH, layer_input_size(r->cfg, l), x, w_ih, act, 1);
    } else if (N > r->V) {   /* one-hot, many rows: gather rows of W_ih^T, transposed once */
        float *wT = WS(r, onehot);
        SHARED_FOR(threads_for(nt, (double)r->V * GH), v, r->V,
            for (int k = 0; k < GH; k++) wT[(size_t)v * GH + k] = tensor_at(w_ih, (size_t)k, (size_t)v);
        );
        SHARED_FOR(threads_for(nt, (double)N * GH), i, N,
            const float *src = wT + (size_t)r->tokens[i] * GH;
            float *dst = act + (size_t)i * GH;
            for (int k = 0; k < GH; k++) dst[k] += src[k];
        );
    } else {   /* one-hot, few rows (sampling): act row i += column tokens[i] of W_ih (GH, V), read
                * down the column in blocks of rows that stay in the cache for every row of act */
        SHARED_FOR(threads_for(nt, (double)N * GH), block, (GH + COLUMN_BLOCK - 1) / COLUMN_BLOCK,
            int k0 = block * COLUMN_BLOCK;
            for (int i = 0; i < N; i++)
                add_column(act + (size_t)i * GH + k0, w_ih, (size_t)k0, GH - k0 < COLUMN_BLOCK ? GH - k0 : COLUMN_BLOCK,
                           (size_t)r->tokens[i]);
        );
    }
    if (l == 0 && r->C) {   /* the condition: every step of stream b adds W_cond v_b */
        const float *cond = WS(r, cond);
        SHARED_FOR(threads_for(nt, (double)N * GH), i, N,
            const float *src = cond + (size_t)(i % B) * GH;
            float *dst = act + (size_t)i * GH;
            for (int k = 0; k < GH; k++) dst[k] += src[k];
        );
    }

    /* recurrence: gate block g of W_hh^T packed separately, so a chunk of units is the same
     * aligned column range in every block; packed once for T steps. Fewer than PACK_MIN_ROWS
     * streams sum as mm_nt sums, so that this product over T steps is that of T one-token steps to
     * the last bit (the input products, over T B rows, are packed from 8 rows and sum in k order):
     * from the packed W_hh (mm_packed_nt_cols) where that is faster, else by mm_nt itself */
    int nt_order = !worth_packing(r, B), packed = r->T > 1 && !r->q8 && (!nt_order || mm_nt_packs());
    float *Wp = WS(r, packed);
    size_t block = mm_packed_size(H, H);
    if (packed)
        for (int g = 0; g < G; g++)
            tensor_pack(H, H, w_hh_of(r, l), (size_t)g * H * H, 1, H, Wp + g * block, threads_for(nt, (double)H * H));
    int threads = gemm_threads(nt, B, GH, H);   /* by one step's work */
    quantized hq = {0};   /* int8: h_{t-1} quantized at each step */
    if (r->q8) hq = quantized_rows(r, B, H);
    if (threads == 1) {   /* no team: even alone, a thread pays a system call at each OpenMP barrier */
        for (int t = 0; t < T; t++) {
            cell_step s = step_at(r, l, t, NULL, NULL);
            if (r->q8)
                for (int b = 0; b < B; b++) quantize_step_row(&s, b, hq);
            forward_product(r, l, &s, 0, H, packed ? Wp : NULL, block, nt_order, hq);   /* the widest tiles */
            forward_cell(r, &s, 0, H);
        }
    } else {
        #pragma omp parallel num_threads(threads)
        {
            int j0, j1;
            team_units(r, &j0, &j1);
            for (int t = 0; t < T; t++) {
                cell_step s = step_at(r, l, t, NULL, NULL);   /* each thread's own */
                if (r->q8) {
                    #pragma omp for schedule(static)
                    for (int b = 0; b < B; b++) quantize_step_row(&s, b, hq);
                }   /* implicit barrier: every row quantized before any product reads it */
                forward_product(r, l, &s, j0, j1, packed ? Wp : NULL, block, nt_order, hq);
                forward_cell(r, &s, j0, j1);
                TEAM_BARRIER   /* h_t is complete before step t+1 reads it */
            }
        }
    }

    if (r->masks) {   /* dropout on the layer's output */
        float *y = WS(r, ys[l]);
        const float *m = r->masks + (size_t)l * N * H, *h = state_rows(r, l, 0) + (size_t)B * H;
        SHARED_FOR(threads_for(nt, (double)N * H), i, N,
            for (int j = 0; j < H; j++) y[(size_t)i * H + j] = h[(size_t)i * H + j] * m[(size_t)i * H + j];
        );
    }
}

/* ---- the condition: W_cond v for each stream, (B, GH), once per batch */

static void cond_forward(const run *r) {
    int B = r->B, GH = r->GH, C = r->C;
    float *cond = WS(r, cond);
    tensor w = tensor_of(r, r->w.cond, r->off.cond, GH, C);   /* (GH, C) */
    if (r->batch->labels) {       /* one-hot v: column labels[b] */
        for (int b = 0; b < B; b++)
            for (int k = 0; k < GH; k++) cond[(size_t)b * GH + k] = tensor_at(w, (size_t)k, (size_t)r->batch->labels[b]);
    } else {
        tensor_nt(r, B, GH, C, r->batch->vectors, C, w, 0, C, cond, GH, 0, gemm_threads(r->nt, B, GH, C));
    }
}

VECTOR_CLONES
static double cross_entropy_row_(float *z, int O, int target) {
    float m = z[0], target_logit = target >= 0 ? z[target] : 0.0f;
    #pragma omp simd reduction(max:m)
    for (int v = 1; v < O; v++) m = z[v] > m ? z[v] : m;   /* any order: the same maximum */
    #pragma omp simd
    for (int v = 0; v < O; v++) z[v] = exp_(z[v] - m);
    double lane[8] = {0};   /* element v into lane v % 8, so that 8 sums run side by side */
    int v = 0;
    for (; v + 8 <= O; v += 8)
        for (int q = 0; q < 8; q++) lane[q] += z[v + q];
    for (int q = 0; v < O; v++, q++) lane[q] += z[v];
    double sum = ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
    float inv = (float)(1.0 / sum);
    double others = target >= 0 ? sum - (double)z[target] : 0.0;   /* exact to ulp(sum): the others' mass */
    #pragma omp simd
    for (int v = 0; v < O; v++) z[v] *= inv;
    if (target < 0) return 0.0;
    z[target] = (float)(-others / sum);
    return (double)m + log(sum) - (double)target_logit;
}

double cross_entropy_row(float *z, int O, int target) { return cross_entropy_row_(z, O, target); }   /* not a clone: hidden */

/* ---- the output layer and the loss: returns the loss (0 without targets)
 *   language model  logits (N, V) = Y_top W_dec^T + b_dec at every position
 *   classifier      logits (B, K) = y_b W_head^T + b_head, y_b = Y_top row (last step of b, b) */

static double output_forward(const run *r, float *logits_out) {
    int R = r->R, O = r->O, H = r->H, nt = r->nt;
    float *logits = WS(r, logits), *row_loss = WS(r, row_loss);
    const float *y = layer_output(r, r->L - 1);
    if (r->classify) {
        float *head_in = WS(r, head_in);
        for (int b = 0; b < r->B; b++)
            memcpy(head_in + (size_t)b * H, y + ((size_t)last_step(r, b) * r->B + b) * H, (size_t)H * sizeof(float));
        y = head_in;
    }
    tensor_copy(tensor_of(r, r->w.out_b, r->off.out_b, O, 1), 0, (size_t)O, logits);   /* bias rows, from row 0 */
    fill_rows(logits + O, R - 1, O, logits, nt);
    tensor out_w = with_prepared(r, tensor_of(r, r->w.out_w, r->off.out_w, O, H), r->prep_off.out_w, O);
    linear_wT(r, R, O, H, y, out_w, logits, 1);
    if (logits_out) memcpy(logits_out, logits, (size_t)R * O * sizeof(float));
    if (!r->has_targets) return 0.0;
    if (r->values) {   /* y - t in place, what backward reads; loss = the sum of its squares, in double */
        SHARED_FOR(threads_for(nt, 2.0 * R * O), i, R,
            float *z = logits + (size_t)i * O;
            const float *t = r->values + (size_t)i * O;
            double sum = 0.0;
            if (row_has_loss(r, i))
                for (int k = 0; k < O; k++) {
                    z[k] -= t[k];
                    sum += (double)z[k] * z[k];
                }
            row_loss[i] = (float)sum;
        );
    } else {
        /* softmax - onehot(target) in place, what backward reads; loss = logsumexp - logit[target],
         * at the rows that have one */
        SHARED_FOR(threads_for(nt, 8.0 * R * O), i, R,
            int has_loss = row_has_loss(r, i);
            double loss = cross_entropy_row(logits + (size_t)i * O, O, has_loss ? r->targets[i] : -1);
            row_loss[i] = has_loss ? (float)loss : 0.0f;
        );
    }
    double total = 0.0;
    for (int i = 0; i < R; i++) total += row_loss[i];
    /* the mean: over the rows with a loss, and a row's values (MINRNN_SQUARED_ERROR) */
    return r->cfg->reduction == MINRNN_SUM ? total : total / (loss_count(r) * (r->values ? O : 1));
}

/* Between the caller's states (L, S, B, H) and row block t of every state: from the caller's `in`
 * into the block, or (in NULL) out of it into `out`. A row at a time, shared out: at one step of 32
 * streams they weigh as much as a product's share. */
static void copy_states(const run *r, int t, const float *in, float *out) {
    int rows = r->L * r->S * r->B, H = r->H;
    SHARED_FOR(threads_for(r->nt, (double)rows * H), i, rows,   /* row b of state k of layer l: i = (l S + k) B + b */
        int b = i % r->B, lk = i / r->B;
        float *block = state_rows(r, lk / r->S, lk % r->S) + ((size_t)t * r->B + b) * H;
        if (in) memcpy(block, in + (size_t)i * H, (size_t)H * sizeof(float));
        else memcpy(out + (size_t)i * H, block, (size_t)H * sizeof(float));
    );
}

static void forward(run *r, const float *state0, float *state_out, float *logits, float *loss) {
    copy_states(r, 0, state0, NULL);   /* the initial states into row block 0 */
    if (r->E) {   /* embedding lookup: x0 row i = encoder row tokens[i] */
        float *x0 = WS(r, x0);
        tensor enc = tensor_of(r, r->w.encoder, r->off.encoder, r->V, r->E);
        SHARED_FOR(threads_for(r->nt, (double)r->N * r->E), i, r->N,
            tensor_copy(enc, (size_t)r->tokens[i] * r->E, (size_t)r->E, x0 + (size_t)i * r->E);
        );
    }
    if (r->C) cond_forward(r);
    for (int l = 0; l < r->L; l++) layer_forward(r, l);
    if (r->encode) {   /* the outputs are the result */
        if (logits) memcpy(logits, layer_output(r, r->L - 1), (size_t)r->N * r->H * sizeof(float));
    } else if (r->has_targets || logits || loss) {   /* an encoder's caller may want only the final states */
        double value = output_forward(r, logits);
        if (loss) *loss = (float)value;
    }
    if (state_out) copy_states(r, r->T, NULL, state_out);   /* every state after the last step */
}

int model_forward(const minrnn_config *cfg, const float *params, const minrnn_batch *batch,
                  const float *state0, float *state_out, const float *masks, float *logits,
                  float *loss, float *workspace, int num_threads, int stamped) {
    run r;
    int status = setup(&r, cfg, MINRNN_FLOAT32, params, batch, masks, workspace, num_threads);
    if (status != MINRNN_OK) return status;
    if (!state0 || (loss && !batch->targets && !batch->values)) return MINRNN_ERR_ARG;
    write_stamp(&r, 0, 0);
    forward(&r, state0, state_out, logits, loss);
    if (stamped) write_stamp(&r, STAMP_MAGIC, forward_key(&r));
    return MINRNN_OK;
}

int minrnn_forward(const minrnn_config *cfg, const float *params, const minrnn_batch *batch,
                   const float *state0, float *state_out, const float *masks, float *logits,
                   float *loss, float *workspace, int num_threads) {
    return model_forward(cfg, params, batch, state0, state_out, masks, logits, loss, workspace, num_threads, 1);
}

/* ---- weights prepared for the steps of a few streams (a generation's): W_ih (but a one-hot
 * input's, which a step reads by columns), W_hh and the output weights, in cext/gemm.c's groups
 * (int8.c's for an int8 block: the rows' bytes; the scales stay in the block), each gate's block
 * of H rows apart (a thread's units start a group in every gate). A weight whose group of 8 rows
 * passes PREP_MAX_GROUP bytes stays unprepared: on a Zen 3, one row of A against float32 weights
 * of 8-16 MB with rows of 1,024 ran 10-25% slower prepared (rows of 256 and 512: 1.2-1.4 times
 * faster). On a CPU with VNNI an int8 block stays unprepared: its kernel there reads the rows as
 * they are, and the prepared kernel's speed against it is not measured. */
#define PREP_MAX_GROUP 16384

static size_t prepared_offsets(const minrnn_config *cfg, int precision, model_offsets *o) {
    memset(o, 0xFF, sizeof *o);   /* every offset NO_TENSOR until placed */
    if (minrnn_config_check(cfg) != MINRNN_OK || cfg->task == MINRNN_TASK_SEQ2SEQ || precision < MINRNN_FLOAT32 ||
        precision > MINRNN_INT8 || (precision == MINRNN_INT8 && mm_have_vnni()))
        return 0;
    size_t at = 0;
    int H = cfg->hidden_size, G = cell_kind_of(cfg)->gates, O = output_size(cfg);
    #define PREP_FITS(K) (prep_elements(precision, 8, K) * prep_element(precision) <= PREP_MAX_GROUP)
    for (int l = 0; l < cfg->num_layers; l++) {
        int in = layer_input_size(cfg, l), one_hot = l == 0 && !cfg->input_size && !cfg->embed_size;
        if (!one_hot && PREP_FITS(in)) o->layer[l].w_ih = at, at += (size_t)G * prep_elements(precision, H, in);
        if (PREP_FITS(H)) o->layer[l].w_hh = at, at += (size_t)G * prep_elements(precision, H, H);
    }
    if (O && PREP_FITS(H)) o->out_w = at, at += prep_elements(precision, O, H);
    #undef PREP_FITS
    return at * prep_element(precision);
}

size_t prepared_size(const minrnn_config *cfg, int precision) {
    model_offsets o;
    return prepared_offsets(cfg, precision, &o);
}

/* Weight (blocks of block_rows rows, K columns; it starts at `from` in the block: an element
 * offset, or the byte offset of an int8 section, which begins with its rows' bytes) into prep at
 * element `to`, block by block. */
static void prepare_one(int precision, const void *params, size_t from, int blocks, int block_rows, int K,
                        void *prep, size_t to, int nt) {
    size_t rows = (size_t)block_rows * (size_t)K, per_block = prep_elements(precision, block_rows, K);
    for (int b = 0; b < blocks; b++) {
        size_t src = from + b * rows, dst = to + b * per_block;
        if (precision == MINRNN_INT8)
            mm_prepare_i8(block_rows, K, (const int8_t *)params + src, K, (int8_t *)prep + dst, nt);
        else if (precision == MINRNN_BFLOAT16)
            mm_prepare_bf16(block_rows, K, (const uint16_t *)params + src, K, (uint16_t *)prep + dst, nt);
        else
            mm_prepare(block_rows, K, (const float *)params + src, K, (float *)prep + dst, nt);
    }
}

void prepare_weights(const minrnn_config *cfg, int precision, const void *params, void *prep, int nt) {
    model_offsets o, from = model_offsets_of(cfg, precision);
    if (prepared_offsets(cfg, precision, &o) == 0) return;
    int H = cfg->hidden_size, G = cell_kind_of(cfg)->gates;
    for (int l = 0; l < cfg->num_layers; l++) {
        if (o.layer[l].w_ih != NO_TENSOR)
            prepare_one(precision, params, from.layer[l].w_ih, G, H, layer_input_size(cfg, l), prep, o.layer[l].w_ih, nt);
        if (o.layer[l].w_hh != NO_TENSOR)
            prepare_one(precision, params, from.layer[l].w_hh, G, H, H, prep, o.layer[l].w_hh, nt);
    }
    if (o.out_w != NO_TENSOR) prepare_one(precision, params, from.out_w, 1, output_size(cfg), H, prep, o.out_w, nt);
}

static int forward_compact(const minrnn_config *cfg, int precision, const void *params, const void *prep,
                           const minrnn_batch *batch, const float *state0, float *state_out, float *logits,
                           float *loss, float *workspace, int num_threads) {
    run r;
    int status = setup(&r, cfg, precision, params, batch, NULL, workspace, num_threads);
    if (status != MINRNN_OK) return status;
    if (!state0 || (loss && !batch->targets && !batch->values)) return MINRNN_ERR_ARG;
    if (prep) r.prep = prep, prepared_offsets(cfg, precision, &r.prep_off);
    write_stamp(&r, 0, 0);   /* no stamp: nothing follows with backward */
    forward(&r, state0, state_out, logits, loss);
    return MINRNN_OK;
}

int minrnn_forward_compact(const minrnn_config *cfg, int precision, const void *params,
                           const minrnn_batch *batch, const float *state0, float *state_out, float *logits,
                           float *loss, float *workspace, int num_threads) {
    return forward_compact(cfg, precision, params, NULL, batch, state0, state_out, logits, loss, workspace, num_threads);
}

int step_prepared(const minrnn_config *cfg, int precision, const void *params, const void *prep,
                  const minrnn_batch *batch, float *state, float *logits, float *workspace, int num_threads) {
    if (!batch || batch->T != 1 || batch->targets || batch->values || batch->lengths) return MINRNN_ERR_ARG;
    return forward_compact(cfg, precision, params, prep, batch, state, state, logits, NULL, workspace, num_threads);
}

int minrnn_step_compact(const minrnn_config *cfg, int precision, const void *params,
                        const minrnn_batch *batch, float *state, float *logits, float *workspace,
                        int num_threads) {
    return step_prepared(cfg, precision, params, NULL, batch, state, logits, workspace, num_threads);
}

int minrnn_step(const minrnn_config *cfg, const float *params, const minrnn_batch *batch,
                float *state, float *logits, float *workspace, int num_threads) {
    return minrnn_step_compact(cfg, MINRNN_FLOAT32, params, batch, state, logits, workspace, num_threads);
}

/* The cell's backward of one step (s) for the units [j0, j1): the preactivation gradients of the
 * step, and in dstate the part of the gradient with respect to the states before it that bypasses
 * W_hh. */
static void backward_cell(const run *r, const cell_step *s, int j0, int j1) {
    r->cell->step_backward(s, j0, j1);
    if (r->lengths)   /* rows past their record's end: no gate gradients; dstate passes through */
        for (int b = 0; b < r->B; b++)
            if (row_done(s, b))
                for (int g = 0; g < r->G; g++) {
                    size_t at = (size_t)b * r->GH + (size_t)g * r->H + j0;
                    memset(s->dgx + at, 0, (size_t)(j1 - j0) * sizeof(float));
                    memset(s->dgh + at, 0, (size_t)(j1 - j0) * sizeof(float));
                }
}

/* Step t, columns [j0, j1): dh_{t-1} += dgh_t W_hh (Wp: W_hh packed), on top of the bypass. */
static void backward_product(const run *r, int t, int j0, int j1, const float *Wp, const float *dgh) {
    mm_packed_cols(r->B, r->H, r->GH, dgh + (size_t)t * r->B * r->GH, r->GH, 1, Wp, WS(r, dstate), r->H, 1, j0, j1);
}


/* ---- one layer, backward: dH (N, H) in; parameter gradients added; dX (N, In) out unless NULL
 * (dX may be dH: it is written after the time loop has used dH) */

static void layer_backward(const run *r, int l, const float *dH, const model_view *g, float *dX,
                           const float *dfinal, float *dstate0) {
    int B = r->B, T = r->T, N = r->N, H = r->H, GH = r->GH, nt = r->nt;
    const layer_view *w = &r->w.layer[l], *gw = &g->layer[l];
    float *dstate = WS(r, dstate), *dgx = WS(r, act[l]);   /* dgx replaces act[l], step by step */
    float *dgh = r->cell->separate ? WS(r, dgh) : dgx;
    float *Wp = WS(r, packed);
    size_t bh = (size_t)B * H;

    /* recurrence, last step first: dh_{t-1} = (the cell's bypass) + dgh_t W_hh, starting from the
     * gradient with respect to the final states (zero unless given) */
    if (dfinal)
        memcpy(dstate, dfinal + (size_t)l * r->S * bh, (size_t)r->S * bh * sizeof(float));
    else
        memset(dstate, 0, (size_t)r->S * bh * sizeof(float));
    mm_pack(GH, H, w->w_hh, H, 1, Wp, threads_for(nt, (double)GH * H));
    int threads = gemm_threads(nt, B, GH, H);
    if (threads == 1) {   /* no team, as in layer_forward */
        for (int t = T - 1; t >= 0; t--) {
            cell_step s = step_at(r, l, t, dH, gw);
            backward_cell(r, &s, 0, H);
            backward_product(r, t, 0, H, Wp, dgh);   /* all columns at once: the widest tiles */
        }
    } else {   /* one barrier per step: a thread's columns of the product of step t (of dh_{t-1}) are
                * all that the cell of step t-1 reads for its units, which are those columns */
        #pragma omp parallel num_threads(threads)
        {
            int j0, j1;
            team_units(r, &j0, &j1);
            cell_step s = step_at(r, l, T - 1, dH, gw);   /* each thread's own */
            backward_cell(r, &s, j0, j1);
            TEAM_BARRIER
            for (int t = T - 1; t > 0; t--) {   /* barrier behind: every gate gradient of step t is written */
                cell_step before = step_at(r, l, t - 1, dH, gw);
                backward_product(r, t, j0, j1, Wp, dgh);
                backward_cell(r, &before, j0, j1);
                TEAM_BARRIER
            }
            backward_product(r, 0, j0, j1, Wp, dgh);
        }
    }
    if (dstate0) memcpy(dstate0 + (size_t)l * r->S * bh, dstate, (size_t)r->S * bh * sizeof(float));

    /* weight gradients over all N rows */
    weight_grad(r, N, GH, H, dgh, state_rows(r, l, 0), (float *)gw->w_hh);   /* rows 0..N-1: h_{t-1} */
    const float *x = layer_input(r, l);
    int in = layer_input_size(r->cfg, l);
    if (x) {
        weight_grad(r, N, GH, in, dgx, x, (float *)gw->w_ih);
    } else if (N < r->V) {   /* one-hot, fewer rows than symbols: dW_ih (GH, V) column tokens[i] +=
                              * dgx row i, rows in order, straight into place (the same bits as the
                              * path below when the gradient starts at zero, as in a training step;
                              * added into a gradient that does not, each row is added to it in
                              * turn, where below their sum is) */
        float *dw = (float *)gw->w_ih;
        SHARED_FOR(threads_for(nt, (double)N * GH), c, (GH + 15) / 16,   /* rows [16 c, 16 c + 16) of dW_ih */
            for (int i = 0; i < N; i++)
                for (int k = 16 * c; k < 16 * c + 16 && k < GH; k++)
                    dw[(size_t)k * r->V + r->tokens[i]] += dgx[(size_t)i * GH + k];
        );
    } else {   /* one-hot: dW_ih^T row v += dgx rows of token v, then transposed into place */
        float *dwT = WS(r, onehot);
        memset(dwT, 0, (size_t)r->V * GH * sizeof(float));
        scatter_rows_add(dgx, r->tokens, N, GH, r->V, dwT, nt);
        add_transposed(dwT, GH, r->V, (float *)gw->w_ih, nt);
    }
    if (dX) {   /* dX = dgx W_ih */
        product_w(N, in, GH, dgx, w->w_ih, dX, 0, Wp, nt);
    }
}

/* The condition's gradients from layer 0's dgx (N, GH): per stream the sum over its steps, then
 * W_cond's gradient (a label: into its column) and, for vectors, dvectors (B, C) unless NULL. */
static void cond_backward(const run *r, const model_view *g, float *dvectors) {
    int B = r->B, T = r->T, GH = r->GH, C = r->C, nt = r->nt;
    const float *dgx = WS(r, act[0]);
    float *dsum = WS(r, cond), *dw = (float *)g->cond;
    SHARED_FOR(threads_for(nt, (double)r->N * GH), b, B,
        float *d = dsum + (size_t)b * GH;
        memset(d, 0, (size_t)GH * sizeof(float));
        for (int t = 0; t < T; t++)
            for (int k = 0; k < GH; k++) d[k] += dgx[((size_t)t * B + b) * GH + k];
    );
    if (r->batch->labels) {
        SHARED_FOR(threads_for(nt, (double)B * GH), k, GH,
            for (int b = 0; b < B; b++) dw[(size_t)k * C + r->batch->labels[b]] += dsum[(size_t)b * GH + k];
        );
        return;
    }
    weight_grad(r, B, GH, C, dsum, r->batch->vectors, dw);   /* dW_cond += dsum^T V */
    if (dvectors) {   /* dV = dsum W_cond */
        product_w(B, C, GH, dsum, r->w.cond, dvectors, 0, WS(r, packed), nt);
    }
}

/* The output layer's gradients, and dY (N, H) = the gradient with respect to the top layer's
 * outputs, into dy. */
static void output_backward(const run *r, const model_view *g, float *dy) {
    int R = r->R, O = r->O, H = r->H, N = r->N, nt = r->nt;
    float *dlogits = WS(r, logits);              /* softmax - onehot(target), from the forward */
    /* loss = sum of cross-entropies [/ count]: dlogits = (softmax - onehot(target)) [/ count],
     * and 0 at rows without a loss */
    double count = r->cfg->reduction == MINRNN_SUM ? 1.0 : loss_count(r) * (r->values ? O : 1);
    float scale = (float)((r->values ? 2.0 : 1.0) / count);   /* d (y - t)^2 = 2 (y - t) */
    SHARED_FOR(threads_for(nt, (double)R * O), i, R,
        float *z = dlogits + (size_t)i * O;
        if (!r->has_targets || !row_has_loss(r, i)) {
            memset(z, 0, (size_t)O * sizeof(float));
            continue;
        }
        scale_floats(z, O, scale);
    );
    const float *y = r->classify ? WS(r, head_in) : layer_output(r, r->L - 1);
    weight_grad(r, R, O, H, dlogits, y, (float *)g->out_w);
    colsum_add(dlogits, R, O, (float *)g->out_b, nt);
    float *Wp = WS(r, packed), *dY = r->classify ? WS(r, head_in) : dy;   /* head_in is packed: free */
    product_w(R, H, O, dlogits, r->w.out_w, dY, 0, Wp, nt);   /* dY = dlogits W */
    if (r->classify) {   /* only each stream's last step has a gradient */
        memset(dy, 0, (size_t)N * H * sizeof(float));
        for (int b = 0; b < r->B; b++)
            memcpy(dy + ((size_t)last_step(r, b) * r->B + b) * H, dY + (size_t)b * H, (size_t)H * sizeof(float));
    }
}

/* doutputs (N, H): an encoder's gradient with respect to its outputs, or NULL. */
static void backward(run *r, const float *doutputs, const float *dfinal, float *grads, float *dstate0,
                     float *dvectors) {
    int N = r->N, H = r->H, nt = r->nt;
    model_view g = model_views(&r->off, r->L, grads);   /* the same layout; written through casts */
    float *dy = WS(r, dy);
    if (r->has_targets)
        output_backward(r, &g, dy);
    else if (doutputs)   /* past a record's end the cells ignore it */
        memcpy(dy, doutputs, (size_t)N * H * sizeof(float));
    else   /* only the final states have a gradient */
        memset(dy, 0, (size_t)N * H * sizeof(float));
    for (int l = r->L - 1; l >= 0; l--) {
        if (r->masks) {
            const float *m = r->masks + (size_t)l * N * H;
            SHARED_FOR(threads_for(nt, (double)N * H), i, N,
                for (int j = 0; j < H; j++) dy[(size_t)i * H + j] *= m[(size_t)i * H + j];
            );
        }
        int wants_dx = l > 0 || r->E > 0;
        layer_backward(r, l, dy, &g, wants_dx ? dy : NULL, dfinal, dstate0);   /* dX replaces dH */
    }
    if (r->E) scatter_rows_add(dy, r->tokens, N, r->E, r->V, (float *)g.encoder, nt);
    if (r->C) cond_backward(r, &g, dvectors);
}

int model_backward(const minrnn_config *cfg, const float *params, const minrnn_batch *batch,
                   const float *masks, const float *doutputs, const float *dfinal, float *workspace,
                   float *grads, float *dstate0, float *dvectors, int num_threads, int stamped) {
    run r;
    int status = setup(&r, cfg, MINRNN_FLOAT32, params, batch, masks, workspace, num_threads);
    if (status != MINRNN_OK) return status;
    if ((!batch->targets && !batch->values && !dfinal && !doutputs) || !grads || (dvectors && cfg->cond != MINRNN_COND_VECTOR)
        || (doutputs && cfg->task != MINRNN_TASK_ENCODE))
        return MINRNN_ERR_ARG;
    if (stamped && !stamp_matches(&r)) return MINRNN_ERR_NO_FORWARD;
    write_stamp(&r, 0, 0);
    backward(&r, doutputs, dfinal, grads, dstate0, dvectors);
    return MINRNN_OK;
}

int minrnn_backward(const minrnn_config *cfg, const float *params, const minrnn_batch *batch,
                    const float *masks, const float *dfinal, float *workspace, float *grads,
                    float *dstate0, float *dvectors, int num_threads) {
    return model_backward(cfg, params, batch, masks, NULL, dfinal, workspace, grads, dstate0, dvectors,
                          num_threads, 1);
}

/* ---- the whole training step */

int minrnn_train_step(const minrnn_config *cfg, float *params, float *grads, float *m, float *v,
                      minrnn_optimizer *opt, minrnn_rng *rng, const minrnn_batch *batch,
                      float *state, float *loss, float *grad_norm, float *workspace,
                      int num_threads) {
    run r;
    int status = setup(&r, cfg, MINRNN_FLOAT32, params, batch, NULL, workspace, num_threads);
    if (status != MINRNN_OK) return status;
    if (!grads || !m || !v || !opt || !rng || (!batch->targets && !batch->values) || !state) return MINRNN_ERR_ARG;   /* not ENCODE */
    if (opt->kind < MINRNN_SGD || opt->kind > MINRNN_ADAM) return MINRNN_ERR_ARG;
    write_stamp(&r, 0, 0);
    if (cfg->dropout > 0.0f) {
        float *masks = WS(&r, masks);
        minrnn_dropout_masks(cfg, r.B, r.T, rng, masks);
        r.masks = masks;
    }
    float value;
    forward(&r, state, NULL, NULL, &value);
    size_t n = minrnn_param_count(cfg);
    memset(grads, 0, n * sizeof(float));
    backward(&r, NULL, NULL, grads, NULL, NULL);
    status = clip_and_update(opt, params, grads, m, v, n, value, loss, grad_norm, num_threads);
    if (status != MINRNN_OK) return status;
    copy_states(&r, r.T, NULL, state);
    return MINRNN_OK;
}

int clip_and_update(minrnn_optimizer *opt, float *params, float *grads, float *m, float *v, size_t n,
                    float value, float *loss, float *grad_norm, int num_threads) {
    float norm;
    clip_value_and_norm(grads, n, opt->clip_value, opt->clip_norm > 0.0f ? opt->clip_norm : INFINITY, &norm,
                        num_threads);
    if (loss) *loss = value;
    if (grad_norm) *grad_norm = norm;
    if (!isfinite(value) || !isfinite(norm)) return MINRNN_ERR_NONFINITE;
    return minrnn_optimizer_update(opt, params, grads, m, v, n, num_threads);
}
