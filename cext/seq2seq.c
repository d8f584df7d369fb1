/* seq2seq.c: sequence to sequence with attention (MINRNN_TASK_SEQ2SEQ in minrnn.h), and captioning
 * (the same over a grid of vectors). The encoder and the decoder are MINRNN_TASK_ENCODE models that
 * model.c runs; this file joins them through the attention and the output layer. The math is
 * minrnn/reference/seq2seq.py, batched:
 *
 *   memory    mem (Ns, M): the encoder's outputs, or the grid, row s*B + b (Ns = Ts*B)
 *   keys      general: keys = mem W_a^T (Ns, H); additive: keys = mem W_k^T (Ns, A) and
 *             query = h W_q^T (Nd, A) (Nd = Td*B): keys in one product for every row at once
 *   attention row t*B + b: scores over s < source_lengths[b], alpha = softmax, c = sum alpha_s e_s;
 *             cat = [c ; h] (Nd, M + H)
 *   combine   o = tanh(cat W_c^T + b_c) (Nd, H): one product
 *   output    logits = o W_out^T + b_out (Nd, V): one product (without attention o is h)
 *
 * Without input feeding the decoder runs once over all Td steps (model.c's own loop, a grid's mean
 * as its condition) and the attention of every row after it. With input feeding step t's
 * condition holds c_{t-1}, so the decoder runs one step at a time (a model call of T = 1 for all B
 * rows, each step with its own model workspace, kept for backward), each step's query and
 * attention before the next step; the keys, the combine and the output layer still run once, over
 * every row. Backward walks the steps back: the gradient of c_t that step t+1's condition sends
 * (model_backward's dvectors) joins the attention's backward of step t before step t's decoder.
 *
 * Threads: the products as in model.c; the attention rows run as a loop over pairs b, and pair b
 * owns its rows of every buffer (in backward also its rows of the memory's and keys' gradients), so
 * each element has one owner and results do not depend on the thread count.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "gemm.h"
#include "internal.h"

#define SEQ2SEQ_STAMP 0x5332534e4e524d4dull   /* a seq2seq forward pass is here */

/* ---- workspace layout: offsets in floats */

typedef struct {
    size_t stamp;
    size_t enc_ws, dec_ws;    /* the two models' workspaces; with input feeding Td of the decoder's,
                               * dec_step floats apart, one for each step */
    size_t dec_step;
    size_t mem;               /* (Ns, M) encoder outputs or the grid */
    size_t dmem;              /* (Ns, M) */
    size_t keys, dkeys;       /* (Ns, KA): general KA = H, additive KA = A, dot 0 */
    size_t dec_out;           /* (Nd, H) decoder outputs h */
    size_t query, dquery;     /* additive: (Nd, A) */
    size_t dv_rows;           /* additive: (Nd, A) each row's part of attn.v's gradient */
    size_t alpha, dscore;     /* attention: (Nd, Ts) */
    size_t cat, dcat;         /* attention: (Nd, M + H) [c ; h], and its gradient */
    size_t o;                 /* attention: (Nd, H) the attentional state (dpre in backward) */
    size_t dh;                /* (Nd, H) the gradient with respect to the decoder's outputs */
    size_t logits;            /* (Nd, V) logits, probabilities, then their gradient */
    size_t row_loss;          /* (Nd) */
    size_t state, dstate, dstate2;   /* (L, S, B, H): the decoder's first states; gradients */
    size_t cond, dcond;       /* the decoder's conditions: (Td, B, C) with feeding, else (B, C); (B, C) */
    size_t masks;             /* dropout: (L, Ns + Nd, H) drawn by the training step */
    size_t step_masks;        /* dropout with feeding: (Td, L, B, H), the decoder's masks by step */
    size_t packed;            /* a packed operand of the product in progress */
    size_t total;
} s2s_layout;

int key_size(const minrnn_config *cfg) {
    return cfg->attention == MINRNN_ATTENTION_GENERAL ? cfg->hidden_size
         : cfg->attention == MINRNN_ATTENTION_ADDITIVE ? cfg->attention_size : 0;
}

/* Returns 0, or -1 if the sizes are out of range. */
static int s2s_layout_of(const minrnn_config *cfg, int B, int Ts, int Td, s2s_layout *w) {
    if (B < 1 || Ts < 1 || Td < 1 || (int64_t)B * Ts > MINRNN_MAX_BATCH_ROWS
        || (int64_t)B * Td > MINRNN_MAX_BATCH_ROWS)
        return -1;
    minrnn_config enc_part = encoder_part(cfg), dec_part = decoder_part(cfg);
    int grid = cfg->input_size > 0, feed = cfg->input_feeding;
    size_t enc = grid ? 0 : minrnn_workspace_size(&enc_part, B, Ts);
    size_t dec = minrnn_workspace_size(&dec_part, B, feed ? 1 : Td);
    if ((!grid && enc == 0) || dec == 0) return -1;
    size_t H = cfg->hidden_size, V = cfg->vocab_size, A = cfg->attention_size, KA = key_size(cfg);
    size_t M = memory_size(cfg), C = decoder_cond_size(cfg);
    size_t Ns = (size_t)B * Ts, Nd = (size_t)B * Td, L = cfg->num_layers, att = cfg->attention != 0;
    size_t states = minrnn_state_size(&dec_part, B);
    if ((Ns + Nd) * max_size(max_size(V, M + H), max_size(A, (size_t)Ts)) > ((size_t)1 << 40)
        || (size_t)Td * round_up(dec, ALIGN_FLOATS) > ((size_t)1 << 40))
        return -1;
    memset(w, 0, sizeof *w);
    size_t at = 0;
    w->stamp = take(&at, STAMP_FLOATS);
    w->enc_ws = take(&at, enc);
    w->dec_step = round_up(dec, ALIGN_FLOATS);
    w->dec_ws = take(&at, feed ? (size_t)Td * w->dec_step : dec);
    w->mem = take(&at, Ns * M);
    w->dmem = take(&at, Ns * M);
    w->keys = take(&at, Ns * KA);
    w->dkeys = take(&at, Ns * KA);
    w->dec_out = take(&at, Nd * H);
    w->query = take(&at, Nd * A);
    w->dquery = take(&at, Nd * A);
    w->dv_rows = take(&at, Nd * A);
    w->alpha = take(&at, att * Nd * Ts);
    w->dscore = take(&at, att * Nd * Ts);
    w->cat = take(&at, att * Nd * (M + H));
    w->dcat = take(&at, att * Nd * (M + H));
    w->o = take(&at, att * Nd * H);
    w->dh = take(&at, Nd * H);
    w->logits = take(&at, Nd * V);
    w->row_loss = take(&at, Nd);
    w->state = take(&at, states);
    w->dstate = take(&at, states);
    w->dstate2 = take(&at, states);
    w->cond = take(&at, (feed ? Nd : (size_t)B) * C);
    w->dcond = take(&at, (size_t)B * C);
    if (cfg->dropout > 0.0f) w->masks = take(&at, L * (Ns + Nd) * H);
    if (cfg->dropout > 0.0f && feed) w->step_masks = take(&at, L * Nd * H);
    /* the largest packed operand (K, N): W^T of W_out, W_c, W_a, W_q, W_k; W of the same; and the
     * rows a weight gradient reads (Ns or Nd rows of M + H) */
    int h = (int)H, a = (int)A, v = (int)V, m = (int)M, rows = (int)max_size(Ns, Nd);
    int operands[][2] = {{h, v}, {m + h, h}, {m, h}, {h, a}, {m, a}, {v, h}, {h, m + h}, {a, h}, {a, m},
                         {h, m}, {rows, m + h}};
    size_t packed = 0;
    for (size_t k = 0; k < sizeof operands / sizeof operands[0]; k++)
        packed = max_size(packed, mm_packed_size(operands[k][0], operands[k][1]));
    w->packed = take(&at, packed);
    w->total = at;
    return 0;
}

size_t minrnn_seq2seq_workspace_size(const minrnn_config *cfg, int B, int Ts, int Td) {
    s2s_layout w;
    if (minrnn_config_check(cfg) != MINRNN_OK || cfg->task != MINRNN_TASK_SEQ2SEQ
        || s2s_layout_of(cfg, B, Ts, Td, &w) != 0)
        return 0;
    return w.total;
}

/* ---- what one call works on */

typedef struct {
    const minrnn_config *cfg;
    minrnn_config enc_part, dec_part;   /* the encoder's and the decoder's configurations */
    const minrnn_pairs *pairs;
    int B, Ts, Td, Ns, Nd, H, V, A, KA, M, D, C, L, nt, feed;
    size_t encoder;               /* floats of the encoder's block (0 for a grid): the decoder's starts there */
    const float *params, *masks;  /* masks (L, Ns, H) (not for a grid) then (L, Nd, H), or NULL */
    const float *W_a, *W_q, *W_k, *v_a, *W_c, *b_c, *W_out, *b_out;   /* NULL where absent */
    minrnn_batch enc, dec;        /* the two models' batches (dec: all steps, without feeding) */
    float *ws;
    s2s_layout lay;
} s2s_run;

#define BUF(r, region) ((r)->ws + (r)->lay.region)

s2s_view s2s_views_at(const minrnn_config *cfg, const float *tail) {
    s2s_view v;
    memset(&v, 0, sizeof v);
    int64_t models = (int64_t)models_param_count(cfg);
    minrnn_tensor t;
    for (int i = 0; minrnn_tensor_info(cfg, i, &t) == MINRNN_OK; i++) {
        if (t.offset < models) continue;
        float *p = (float *)tail + (t.offset - models);
        if (!strcmp(t.name, "attn.weight")) v.W_a = p;
        else if (!strcmp(t.name, "attn.query")) v.W_q = p;
        else if (!strcmp(t.name, "attn.key")) v.W_k = p;
        else if (!strcmp(t.name, "attn.v")) v.v_a = p;
        else if (!strcmp(t.name, "combine.weight")) v.W_c = p;
        else if (!strcmp(t.name, "combine.bias")) v.b_c = p;
        else if (!strcmp(t.name, "out.weight")) v.W_out = p;
        else if (!strcmp(t.name, "out.bias")) v.b_out = p;
    }
    return v;
}

static s2s_view s2s_views(const minrnn_config *cfg, const float *block) {
    return s2s_views_at(cfg, block + models_param_count(cfg));
}

/* MINRNN_OK if the pairs hold what the model reads, every id, vector and length in range. */
static int check_pairs(const minrnn_config *cfg, const minrnn_pairs *p) {
    int grid = cfg->input_size > 0;
    if ((grid ? !p->grid || p->source : !p->source || p->grid) || !p->source_lengths || !p->inputs
        || !p->target_lengths)
        return MINRNN_ERR_ARG;
    int V = cfg->vocab_size, B = p->B, D = cfg->input_size;
    for (int b = 0; b < B; b++)
        if (p->source_lengths[b] < 1 || p->source_lengths[b] > p->Ts || p->target_lengths[b] < 1
            || p->target_lengths[b] > p->Td)
            return MINRNN_ERR_ARG;
    for (int64_t i = 0; i < (int64_t)p->Ts * B; i++) {
        int within = i / B < p->source_lengths[i % B];
        if (!grid && (p->source[i] < 0 || p->source[i] >= V - 2)) return MINRNN_ERR_ARG;   /* never start or end */
        for (int64_t k = 0; grid && within && k < D; k++)
            if (!isfinite(p->grid[i * D + k])) return MINRNN_ERR_ARG;
    }
    for (int64_t i = 0; i < (int64_t)p->Td * B; i++) {
        if (p->inputs[i] < 0 || p->inputs[i] >= V) return MINRNN_ERR_ARG;
        int has_loss = i / B < p->target_lengths[i % B];
        if (p->targets && has_loss && (p->targets[i] < 0 || p->targets[i] >= V)) return MINRNN_ERR_ARG;
    }
    return MINRNN_OK;
}

static int s2s_setup(s2s_run *r, const minrnn_config *cfg, const float *params, const minrnn_pairs *pairs,
                     const float *masks, float *ws, int num_threads) {
    int status = minrnn_config_check(cfg);
    if (status != MINRNN_OK) return status;
    if (cfg->task != MINRNN_TASK_SEQ2SEQ || !params || !pairs || !ws
        || s2s_layout_of(cfg, pairs->B, pairs->Ts, pairs->Td, &r->lay) != 0)
        return MINRNN_ERR_ARG;
    if (masks && cfg->dropout == 0.0f) return MINRNN_ERR_ARG;
    status = check_pairs(cfg, pairs);
    if (status != MINRNN_OK) return status;
    r->cfg = cfg, r->enc_part = encoder_part(cfg), r->dec_part = decoder_part(cfg), r->pairs = pairs;
    r->B = pairs->B, r->Ts = pairs->Ts, r->Td = pairs->Td, r->Ns = r->B * r->Ts, r->Nd = r->B * r->Td;
    r->H = cfg->hidden_size, r->V = cfg->vocab_size, r->A = cfg->attention_size, r->KA = key_size(cfg);
    r->M = memory_size(cfg), r->D = cfg->input_size, r->C = decoder_cond_size(cfg), r->feed = cfg->input_feeding;
    r->L = cfg->num_layers, r->nt = resolve_threads(num_threads);
    r->encoder = encoder_param_count(cfg);
    r->params = params, r->masks = masks, r->ws = ws;
    s2s_view v = s2s_views(cfg, params);
    r->W_a = v.W_a, r->W_q = v.W_q, r->W_k = v.W_k, r->v_a = v.v_a;
    r->W_c = v.W_c, r->b_c = v.b_c, r->W_out = v.W_out, r->b_out = v.b_out;
    r->enc = (minrnn_batch){.B = r->B, .T = r->Ts, .tokens = pairs->source, .lengths = pairs->source_lengths};
    r->dec = (minrnn_batch){.B = r->B, .T = r->Td, .tokens = pairs->inputs, .lengths = pairs->target_lengths,
                            .vectors = r->C ? BUF(r, cond) : NULL};
    return MINRNN_OK;
}

static const float *enc_masks(const s2s_run *r) { return r->masks; }

static const float *dec_masks(const s2s_run *r) {
    return r->masks ? r->masks + (r->D ? 0 : (size_t)r->L * r->Ns * r->H) : NULL;
}

/* What the attention's last layer reads: o, or the decoder's outputs without attention. */
static float *attended(const s2s_run *r) { return r->cfg->attention ? BUF(r, o) : BUF(r, dec_out); }

static int has_loss(const s2s_run *r, int i) { return i / r->B < r->pairs->target_lengths[i % r->B]; }

static double loss_count(const s2s_run *r) {
    double n = 0.0;
    for (int b = 0; b < r->B; b++) n += r->pairs->target_lengths[b];
    return n;
}

/* ---- the stamp: what backward depends on */

static uint64_t s2s_key(const s2s_run *r) {
    const minrnn_pairs *p = r->pairs;
    int32_t shape[4] = {r->B, r->Ts, r->Td, r->masks != NULL};
    uint64_t h = hash_words(0, r->cfg, sizeof *r->cfg / 4);
    h = hash_words(h, shape, 4);
    h = hash_words(h, r->params, minrnn_param_count(r->cfg));
    if (p->source) h = hash_words(h, p->source, (size_t)r->Ns);
    if (p->grid) h = hash_words(h, p->grid, (size_t)r->Ns * r->D);
    h = hash_words(h, p->source_lengths, (size_t)r->B);
    h = hash_words(h, p->inputs, (size_t)r->Nd);
    h = hash_words(h, p->target_lengths, (size_t)r->B);
    if (p->targets) h = hash_words(h, p->targets, (size_t)r->Nd);
    if (r->masks) h = hash_words(h, r->masks, (size_t)r->L * ((r->D ? 0 : r->Ns) + r->Nd) * r->H);
    return h;
}

/* ---- attention, one decoder row at a time */

/* The loops below are vector loops (omp simd): a dot product sums in vector lanes, an order that
 * depends only on n and the build, never on the threads. */
static float dot_(const float *x, const float *y, int n) {
    float s = 0.0f;
    #pragma omp simd reduction(+:s)
    for (int k = 0; k < n; k++) s += x[k] * y[k];
    return s;
}

/* v . tanh(q + k) over A, in vector lanes. */
VECTOR_CLONES
static float additive_score(const float *v, const float *q, const float *k, int A) {
    float s = 0.0f;
    #pragma omp simd reduction(+:s)
    for (int a = 0; a < A; a++) s += v[a] * tanh_(q[a] + k[a]);
    return s;
}

/* y (n) += a x */
static void axpy_(float *restrict y, float a, const float *restrict x, int n) {
    #pragma omp simd
    for (int k = 0; k < n; k++) y[k] += a * x[k];
}

VECTOR_CLONES
static void attend_(const minrnn_config *cfg, const float *v_a, int n, const float *h, const float *query,
                    const float *mem, const float *keys, ptrdiff_t stride, float *alpha, float *cat) {
    int H = cfg->hidden_size, A = cfg->attention_size, KA = key_size(cfg), M = memory_size(cfg);
    float m = -INFINITY;
    for (int s = 0; s < n; s++) {
        const float *e = mem + s * stride * M, *k = keys + s * stride * KA;
        float score;
        if (cfg->attention == MINRNN_ATTENTION_DOT) {
            score = dot_(h, e, H);
        } else if (cfg->attention == MINRNN_ATTENTION_GENERAL) {
            score = dot_(h, k, H);
        } else {
            score = additive_score(v_a, query, k, A);
        }
        alpha[s] = score;
        m = score > m ? score : m;
    }
    double sum = 0.0;
    for (int s = 0; s < n; s++) sum += alpha[s] = exp_(alpha[s] - m);
    float inv = (float)(1.0 / sum);
    for (int s = 0; s < n; s++) alpha[s] *= inv;
    float *c = cat;
    memset(c, 0, (size_t)M * sizeof(float));
    for (int s = 0; s < n; s++) axpy_(c, alpha[s], mem + s * stride * M, M);
    memcpy(cat + M, h, (size_t)H * sizeof(float));
}

void attend(const minrnn_config *cfg, const float *v_a, int n, const float *h, const float *query,
            const float *mem, const float *keys, ptrdiff_t stride, float *alpha, float *cat) {
    attend_(cfg, v_a, n, h, query, mem, keys, stride, alpha, cat);   /* not a clone: hidden */
}

/* Decoder row i = t*B + b: alpha (Ts) over the pair's source (zeros past its length), and
 * cat = [c ; h]. Pair b's memory rows are s*B + b. */
static void attend_row(const s2s_run *r, int i) {
    int B = r->B, b = i % B, n = r->pairs->source_lengths[b];
    float *alpha = BUF(r, alpha) + (size_t)i * r->Ts;
    attend(r->cfg, r->v_a, n, BUF(r, dec_out) + (size_t)i * r->H, BUF(r, query) + (size_t)i * r->A,
           BUF(r, mem) + (size_t)b * r->M, BUF(r, keys) + (size_t)b * r->KA, B, alpha,
           BUF(r, cat) + (size_t)i * (r->M + r->H));
    for (int s = n; s < r->Ts; s++) alpha[s] = 0.0f;
}

/* The attention's backward for decoder row i = t*B + b: from dc (in dcat) into dh, and into the
 * pair's rows of dmem, dkeys, and for additive into dquery and dv_rows. Pair b owns them all. */
VECTOR_CLONES
static void attend_backward_row(const s2s_run *r, size_t i) {
    int B = r->B, H = r->H, A = r->A, KA = r->KA, M = r->M, b = (int)(i % B);
    int n = r->pairs->source_lengths[b], kind = r->cfg->attention;
    const float *alpha = BUF(r, alpha) + i * r->Ts, *dc = BUF(r, dcat) + i * (M + H);
    const float *h = BUF(r, dec_out) + i * H;
    float *dscore = BUF(r, dscore) + i * r->Ts, *dh = BUF(r, dh) + i * H;
    /* dalpha_s = dc . e_s; dscore_s = alpha_s (dalpha_s - sum_r alpha_r dalpha_r); de_s += alpha_s dc */
    float mean = 0.0f;
    for (int s = 0; s < n; s++) {
        size_t m = (size_t)s * B + b;
        dscore[s] = dot_(dc, BUF(r, mem) + m * M, M);
        mean += alpha[s] * dscore[s];
        axpy_(BUF(r, dmem) + m * M, alpha[s], dc, M);
    }
    for (int s = 0; s < n; s++) dscore[s] = alpha[s] * (dscore[s] - mean);
    for (int s = 0; s < n; s++) {
        size_t m = (size_t)s * B + b;
        float g = dscore[s];
        if (kind == MINRNN_ATTENTION_DOT) {   /* score = h . e_s */
            axpy_(dh, g, BUF(r, mem) + m * M, H);
            axpy_(BUF(r, dmem) + m * M, g, h, H);
        } else if (kind == MINRNN_ATTENTION_GENERAL) {   /* score = h . k_s */
            axpy_(dh, g, BUF(r, keys) + m * KA, H);
            axpy_(BUF(r, dkeys) + m * KA, g, h, H);
        } else {   /* score = v . u, u = tanh(q + k_s) */
            const float *q = BUF(r, query) + i * A, *key = BUF(r, keys) + m * A, *v = r->v_a;
            float *restrict dq = BUF(r, dquery) + i * A, *restrict dk = BUF(r, dkeys) + m * A;
            float *restrict dv = BUF(r, dv_rows) + i * A;
            #pragma omp simd
            for (int a = 0; a < A; a++) {
                float u = tanh_(q[a] + key[a]), dpre = g * v[a] * (1.0f - u * u);
                dv[a] += g * u, dq[a] += dpre, dk[a] += dpre;
            }
        }
    }
}

/* ---- forward and backward */

void grid_mean(const float *mem, int n, ptrdiff_t stride, int D, float *v) {
    memset(v, 0, (size_t)D * sizeof(float));
    for (int s = 0; s < n; s++) axpy_(v, 1.0f, mem + s * stride * D, D);
    for (int k = 0; k < D; k++) v[k] /= (float)n;
}

static void zero(float *x, size_t n) { memset(x, 0, n * sizeof(float)); }

/* Step t's decoder workspace, and its dropout masks (L, B, H) (NULL without dropout). */
static float *step_ws(const s2s_run *r, int t) { return BUF(r, dec_ws) + (size_t)t * r->lay.dec_step; }

static const float *step_masks(const s2s_run *r, int t) {
    return r->masks ? BUF(r, step_masks) + (size_t)t * r->L * r->B * r->H : NULL;
}

/* Step t's batch: its tokens and its conditions (B, C). */
static minrnn_batch step_batch(const s2s_run *r, int t) {
    return (minrnn_batch){.B = r->B, .T = 1, .tokens = r->pairs->inputs + (size_t)t * r->B,
                          .vectors = BUF(r, cond) + (size_t)t * r->B * r->C};
}

/* The memory (grid or encoder outputs), the decoder's first state, and for a grid its mean into
 * the first D columns of every condition row (the fed context's columns are filled as it runs). */
static void memory_forward(s2s_run *r) {
    int B = r->B, M = r->M, D = r->D, C = r->C;
    float *state = BUF(r, state), *mem = BUF(r, mem);
    size_t states = minrnn_state_size(&r->dec_part, B);
    zero(state, states);
    if (!D) {   /* the models' own stamps are left out: this file's stamp covers both (s2s_key) */
        float *zeros = BUF(r, dstate);
        zero(zeros, states);
        model_forward(&r->enc_part, r->params, &r->enc, zeros, state, enc_masks(r), mem, NULL, BUF(r, enc_ws),
                      r->nt, 0);
        return;
    }
    memcpy(mem, r->pairs->grid, (size_t)r->Ns * M * sizeof(float));
    for (int s = 0; s < r->Ts; s++)   /* padding is never read: zeros, whatever the caller left there */
        for (int b = 0; b < B; b++)
            if (s >= r->pairs->source_lengths[b]) zero(mem + ((size_t)s * B + b) * M, (size_t)M);
    int rows = r->feed ? r->Td : 1;
    for (int b = 0; b < B; b++) {
        float *v = BUF(r, cond) + (size_t)b * C;
        grid_mean(mem + (size_t)b * M, r->pairs->source_lengths[b], B, D, v);
        for (int t = 1; t < rows; t++) memcpy(v + (size_t)t * B * C, v, (size_t)D * sizeof(float));
    }
}

static void keys_forward(s2s_run *r) {
    if (r->W_a) product_wT(r->Ns, r->H, r->M, BUF(r, mem), r->W_a, BUF(r, keys), 0, BUF(r, packed), r->nt);
    if (r->W_k) product_wT(r->Ns, r->A, r->M, BUF(r, mem), r->W_k, BUF(r, keys), 0, BUF(r, packed), r->nt);
}

/* The query of rows [first, first + rows) (additive), then their attention rows. */
static void attention_rows(s2s_run *r, int first, int rows) {
    int H = r->H, A = r->A;
    if (r->W_q)
        product_wT(rows, A, H, BUF(r, dec_out) + (size_t)first * H, r->W_q, BUF(r, query) + (size_t)first * A, 0,
                   BUF(r, packed), r->nt);
    SHARED_FOR(threads_for(r->nt, (double)rows * r->Ts * (r->M + A)), i, rows, attend_row(r, first + i););
}

/* The decoder a step at a time, each step's attention before the next reads its context: the
 * context of a row within its target, zeros past it (where nothing reads it). */
static void fed_decoder_forward(s2s_run *r) {
    int B = r->B, H = r->H, M = r->M, D = r->D, C = r->C, L = r->L;
    if (r->masks)   /* (L, Td, B, H) -> (Td, L, B, H) */
        for (int t = 0; t < r->Td; t++)
            for (int l = 0; l < L; l++)
                memcpy(BUF(r, step_masks) + ((size_t)t * L + l) * B * H, dec_masks(r) + ((size_t)l * r->Td + t) * B * H,
                       (size_t)B * H * sizeof(float));
    for (int t = 0; t < r->Td; t++) {
        float *cond = BUF(r, cond) + (size_t)t * B * C;
        for (int b = 0; b < B; b++) {   /* c_{t-1}: step t-1's context, within the target */
            float *fed = cond + (size_t)b * C + D;
            if (t > 0 && t - 1 < r->pairs->target_lengths[b])
                memcpy(fed, BUF(r, cat) + ((size_t)(t - 1) * B + b) * (M + H), (size_t)M * sizeof(float));
            else
                zero(fed, (size_t)M);
        }
        minrnn_batch batch = step_batch(r, t);
        model_forward(&r->dec_part, r->params + r->encoder, &batch, BUF(r, state), BUF(r, state), step_masks(r, t),
                      BUF(r, dec_out) + (size_t)t * B * H, NULL, step_ws(r, t), r->nt, 0);
        attention_rows(r, t * B, B);
    }
}

static double s2s_forward(s2s_run *r, float *logits_out, float *alignments) {
    int H = r->H, V = r->V, M = r->M, Nd = r->Nd, nt = r->nt;
    float *packed = BUF(r, packed);
    memory_forward(r);
    if (r->cfg->attention) keys_forward(r);
    if (r->feed) {
        fed_decoder_forward(r);
    } else {
        model_forward(&r->dec_part, r->params + r->encoder, &r->dec, BUF(r, state), NULL, dec_masks(r),
                      BUF(r, dec_out), NULL, BUF(r, dec_ws), nt, 0);
        if (r->cfg->attention) attention_rows(r, 0, Nd);
    }
    if (r->cfg->attention) {
        float *o = BUF(r, o);
        fill_rows(o, Nd, H, r->b_c, nt);
        product_wT(Nd, H, M + H, BUF(r, cat), r->W_c, o, 1, packed, nt);
        SHARED_FOR(threads_for(nt, 8.0 * Nd * H), i, Nd,
            for (int k = 0; k < H; k++) o[(size_t)i * H + k] = tanh_(o[(size_t)i * H + k]);
        );
        if (alignments) memcpy(alignments, BUF(r, alpha), (size_t)Nd * r->Ts * sizeof(float));
    } else if (alignments) {
        zero(alignments, (size_t)Nd * r->Ts);
    }
    float *logits = BUF(r, logits), *row_loss = BUF(r, row_loss);
    fill_rows(logits, Nd, V, r->b_out, nt);
    product_wT(Nd, V, H, attended(r), r->W_out, logits, 1, packed, nt);
    if (logits_out) memcpy(logits_out, logits, (size_t)Nd * V * sizeof(float));
    if (!r->pairs->targets) return 0.0;
    SHARED_FOR(threads_for(nt, 8.0 * Nd * V), i, Nd,
        int loss = has_loss(r, i);
        double value = cross_entropy_row(logits + (size_t)i * V, V, loss ? r->pairs->targets[i] : -1);
        row_loss[i] = loss ? (float)value : 0.0f;
    );
    double total = 0.0;
    for (int i = 0; i < Nd; i++) total += row_loss[i];
    return total / loss_count(r);
}

/* The attention's backward of rows [first, first + rows) (whose dcat holds dc and dh), as one loop
 * over their pairs, then (additive) the query's share of dh. */
static void attention_backward_rows(s2s_run *r, int first, int rows) {
    int B = r->B, H = r->H, A = r->A;
    SHARED_FOR(threads_for(r->nt, (double)rows * r->Ts * (r->M + A)), b, B,   /* pair b's rows in order of t: it
                                                                                * owns what they write */
        for (int i = first + b; i < first + rows; i += B)
            if (has_loss(r, i)) attend_backward_row(r, (size_t)i);   /* later rows have no gradient */
    );
    if (r->W_q)
        product_w(rows, H, A, BUF(r, dquery) + (size_t)first * A, r->W_q, BUF(r, dh) + (size_t)first * H, 1,
                  BUF(r, packed), r->nt);
}

/* The decoder's steps back from the last: step t's attention, with the gradient of its context c_t
 * that step t+1's condition sent, gives dh of step t; step t's decoder then gives the state's
 * gradient for step t-1 and its condition's, whose fed columns are c_{t-1}'s. */
static void fed_decoder_backward(s2s_run *r, float *grads) {
    int B = r->B, H = r->H, M = r->M, D = r->D, C = r->C;
    float *dstate = BUF(r, dstate), *dstate0 = BUF(r, dstate2), *dcond = BUF(r, dcond);
    zero(dstate, minrnn_state_size(&r->dec_part, B));
    for (int t = r->Td - 1; t >= 0; t--) {
        if (t < r->Td - 1)
            for (int b = 0; b < B; b++)
                if (has_loss(r, t * B + b))
                    axpy_(BUF(r, dcat) + ((size_t)t * B + b) * (M + H), 1.0f, dcond + (size_t)b * C + D, M);
        attention_backward_rows(r, t * B, B);
        minrnn_batch batch = step_batch(r, t);
        model_backward(&r->dec_part, r->params + r->encoder, &batch, step_masks(r, t), BUF(r, dh) + (size_t)t * B * H,
                       dstate, step_ws(r, t), grads + r->encoder, dstate0, dcond, r->nt, 0);
        float *swap = dstate;
        dstate = dstate0, dstate0 = swap;
    }
    if (dstate != BUF(r, dstate)) memcpy(BUF(r, dstate), dstate, minrnn_state_size(&r->dec_part, B) * sizeof(float));
}

static void s2s_backward(s2s_run *r, float *grads) {
    int H = r->H, V = r->V, A = r->A, M = r->M, Ns = r->Ns, Nd = r->Nd, nt = r->nt;
    float *packed = BUF(r, packed), *dlogits = BUF(r, logits), *dh = BUF(r, dh);
    s2s_view g = s2s_views(r->cfg, grads);
    /* dlogits = (softmax - onehot(target)) / count at the rows with a loss, 0 elsewhere */
    float scale = (float)(1.0 / loss_count(r));
    SHARED_FOR(threads_for(nt, (double)Nd * V), i, Nd,
        float *z = dlogits + (size_t)i * V;
        if (!has_loss(r, i)) {
            zero(z, (size_t)V);
            continue;
        }
        scale_floats(z, V, scale);   /* softmax - onehot(target), from the forward */
    );
    product_grad(Nd, V, H, dlogits, attended(r), g.W_out, packed, nt);
    colsum_add(dlogits, Nd, V, g.b_out, nt);
    float *dstate = BUF(r, dstate);
    if (!r->cfg->attention) {
        product_w(Nd, H, V, dlogits, r->W_out, dh, 0, packed, nt);   /* dh = dlogits W_out */
    } else {
        float *dpre = BUF(r, o), *dcat = BUF(r, dcat);   /* o's gradient replaces o, element by element */
        float *d_o = dh;                               /* dh is free until dcat is known */
        product_w(Nd, H, V, dlogits, r->W_out, d_o, 0, packed, nt);
        SHARED_FOR(threads_for(nt, (double)Nd * H), i, Nd,
            for (size_t k = (size_t)i * H; k < (size_t)(i + 1) * H; k++) dpre[k] = d_o[k] * (1.0f - dpre[k] * dpre[k]);
        );
        product_grad(Nd, H, M + H, dpre, BUF(r, cat), g.W_c, packed, nt);
        colsum_add(dpre, Nd, H, g.b_c, nt);
        product_w(Nd, M + H, H, dpre, r->W_c, dcat, 0, packed, nt);   /* dcat = dpre W_c: [dc ; dh] */
        SHARED_FOR(threads_for(nt, (double)Nd * H), i, Nd,
            memcpy(dh + (size_t)i * H, dcat + (size_t)i * (M + H) + M, (size_t)H * sizeof(float));
        );
        zero(BUF(r, dmem), (size_t)Ns * M);
        zero(BUF(r, dkeys), (size_t)Ns * r->KA);
        zero(BUF(r, dquery), (size_t)Nd * A);
        zero(BUF(r, dv_rows), (size_t)Nd * A);
    }
    if (r->feed) {
        fed_decoder_backward(r, grads);
    } else {
        if (r->cfg->attention) attention_backward_rows(r, 0, Nd);
        model_backward(&r->dec_part, r->params + r->encoder, &r->dec, dec_masks(r), dh, NULL, BUF(r, dec_ws),
                       grads + r->encoder, dstate, NULL, nt, 0);
    }
    if (r->cfg->attention) {   /* the weight gradients of the keys and the query, over every row */
        float *dmem = BUF(r, dmem);
        if (r->W_a) {   /* keys = mem W_a^T */
            product_grad(Ns, H, M, BUF(r, dkeys), BUF(r, mem), g.W_a, packed, nt);
            product_w(Ns, M, H, BUF(r, dkeys), r->W_a, dmem, 1, packed, nt);
        }
        if (r->W_k) {   /* keys = mem W_k^T, query = h W_q^T */
            colsum_add(BUF(r, dv_rows), Nd, A, g.v_a, nt);
            product_grad(Ns, A, M, BUF(r, dkeys), BUF(r, mem), g.W_k, packed, nt);
            product_w(Ns, M, A, BUF(r, dkeys), r->W_k, dmem, 1, packed, nt);
            product_grad(Nd, A, H, BUF(r, dquery), BUF(r, dec_out), g.W_q, packed, nt);
        }
    }
    if (!r->D)   /* a grid has no encoder: its gradient is not asked for */
        model_backward(&r->enc_part, r->params, &r->enc, enc_masks(r), r->cfg->attention ? BUF(r, dmem) : NULL,
                       dstate, BUF(r, enc_ws), grads, NULL, NULL, nt, 0);
}

int minrnn_seq2seq_forward(const minrnn_config *cfg, const float *params, const minrnn_pairs *pairs,
                           const float *masks, float *logits, float *alignments, float *loss,
                           float *workspace, int num_threads) {
    s2s_run r;
    int status = s2s_setup(&r, cfg, params, pairs, masks, workspace, num_threads);
    if (status != MINRNN_OK) return status;
    if (loss && !pairs->targets) return MINRNN_ERR_ARG;
    stamp_write(BUF(&r, stamp), 0, 0);
    double value = s2s_forward(&r, logits, alignments);
    if (loss) *loss = (float)value;
    stamp_write(BUF(&r, stamp), SEQ2SEQ_STAMP, s2s_key(&r));
    return MINRNN_OK;
}

int minrnn_seq2seq_backward(const minrnn_config *cfg, const float *params, const minrnn_pairs *pairs,
                            const float *masks, float *workspace, float *grads, int num_threads) {
    s2s_run r;
    int status = s2s_setup(&r, cfg, params, pairs, masks, workspace, num_threads);
    if (status != MINRNN_OK) return status;
    if (!pairs->targets || !grads) return MINRNN_ERR_ARG;
    if (!stamp_is(BUF(&r, stamp), SEQ2SEQ_STAMP, s2s_key(&r))) return MINRNN_ERR_NO_FORWARD;
    stamp_write(BUF(&r, stamp), 0, 0);
    s2s_backward(&r, grads);
    return MINRNN_OK;
}

int minrnn_seq2seq_train_step(const minrnn_config *cfg, float *params, float *grads, float *m, float *v,
                              minrnn_optimizer *opt, minrnn_rng *rng, const minrnn_pairs *pairs,
                              float *loss, float *grad_norm, float *workspace, int num_threads) {
    s2s_run r;
    int status = s2s_setup(&r, cfg, params, pairs, NULL, workspace, num_threads);
    if (status != MINRNN_OK) return status;
    if (!grads || !m || !v || !opt || !rng || !pairs->targets) return MINRNN_ERR_ARG;
    if (opt->kind < MINRNN_SGD || opt->kind > MINRNN_ADAM) return MINRNN_ERR_ARG;
    stamp_write(BUF(&r, stamp), 0, 0);
    if (cfg->dropout > 0.0f) {   /* the encoder's masks (not for a grid), then the decoder's */
        float *masks = BUF(&r, masks);
        size_t encoder = r.D ? 0 : (size_t)r.L * r.Ns * r.H;
        if (!r.D) minrnn_dropout_masks(cfg, r.B, r.Ts, rng, masks);
        minrnn_dropout_masks(cfg, r.B, r.Td, rng, masks + encoder);
        r.masks = masks;
    }
    float value = (float)s2s_forward(&r, NULL, NULL);
    size_t n = minrnn_param_count(cfg);
    memset(grads, 0, n * sizeof(float));
    s2s_backward(&r, grads);
    return clip_and_update(opt, params, grads, m, v, n, value, loss, grad_norm, num_threads);
}
