/* seq2seq.c: sequence to sequence with attention (MINRNN_TASK_SEQ2SEQ in minrnn.h). The encoder
 * and the decoder are MINRNN_TASK_ENCODE models that model.c runs; this file joins them through
 * the attention and the output layer. The math is minrnn/reference/seq2seq.py, batched:
 *
 *   memory    mem (Ns, H): the encoder's outputs, row s*B + b (Ns = Ts*B)
 *   keys      general: keys = mem W_a^T (Ns, H); additive: keys = mem W_k^T (Ns, A) and
 *             query = h W_q^T (Nd, A) (Nd = Td*B): one product each, for every row at once
 *   attention row t*B + b: scores over s < source_lengths[b], alpha = softmax, c = sum alpha_s e_s;
 *             cat = [c ; h] (Nd, 2H)
 *   combine   o = tanh(cat W_c^T + b_c) (Nd, H): one product
 *   output    logits = o W_out^T + b_out (Nd, V): one product (without attention o is h)
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
    size_t enc_ws, dec_ws;    /* the two models' workspaces */
    size_t mem;               /* (Ns, H) encoder outputs; in backward, their gradient is dmem */
    size_t dmem;              /* (Ns, H) */
    size_t keys, dkeys;       /* (Ns, KA): general KA = H, additive KA = A, dot 0 */
    size_t dec_out;           /* (Nd, H) decoder outputs h */
    size_t query, dquery;     /* additive: (Nd, A) */
    size_t dv_rows;           /* additive: (Nd, A) each row's part of attn.v's gradient */
    size_t alpha, dscore;     /* attention: (Nd, Ts) */
    size_t cat, dcat;         /* attention: (Nd, 2H) [c ; h], and its gradient */
    size_t o;                 /* attention: (Nd, H) the attentional state (dpre in backward) */
    size_t dh;                /* (Nd, H) the gradient with respect to the decoder's outputs */
    size_t logits;            /* (Nd, V) logits, probabilities, then their gradient */
    size_t row_loss;          /* (Nd) */
    size_t state, dstate;     /* (L, S, B, H): the encoder's final states; their gradient */
    size_t masks;             /* dropout: (L, Ns + Nd, H) drawn by the training step */
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
    minrnn_config part = seq2seq_part(cfg);
    size_t enc = minrnn_workspace_size(&part, B, Ts), dec = minrnn_workspace_size(&part, B, Td);
    if (enc == 0 || dec == 0) return -1;
    size_t H = cfg->hidden_size, V = cfg->vocab_size, A = cfg->attention_size, KA = key_size(cfg);
    size_t Ns = (size_t)B * Ts, Nd = (size_t)B * Td, L = cfg->num_layers, att = cfg->attention != 0;
    size_t states = minrnn_state_size(&part, B);
    if ((Ns + Nd) * max_size(max_size(V, 2 * H), max_size(A, (size_t)Ts)) > ((size_t)1 << 40)) return -1;
    memset(w, 0, sizeof *w);
    size_t at = 0;
    w->stamp = take(&at, STAMP_FLOATS);
    w->enc_ws = take(&at, enc);
    w->dec_ws = take(&at, dec);
    w->mem = take(&at, Ns * H);
    w->dmem = take(&at, Ns * H);
    w->keys = take(&at, Ns * KA);
    w->dkeys = take(&at, Ns * KA);
    w->dec_out = take(&at, Nd * H);
    w->query = take(&at, Nd * A);
    w->dquery = take(&at, Nd * A);
    w->dv_rows = take(&at, Nd * A);
    w->alpha = take(&at, att * Nd * Ts);
    w->dscore = take(&at, att * Nd * Ts);
    w->cat = take(&at, att * Nd * 2 * H);
    w->dcat = take(&at, att * Nd * 2 * H);
    w->o = take(&at, att * Nd * H);
    w->dh = take(&at, Nd * H);
    w->logits = take(&at, Nd * V);
    w->row_loss = take(&at, Nd);
    w->state = take(&at, states);
    w->dstate = take(&at, states);
    if (cfg->dropout > 0.0f) w->masks = take(&at, L * (Ns + Nd) * H);
    /* the largest packed operand (K, N): W^T of W_out, W_c, W_a, W_q, W_k; W of the same; and the
     * rows a weight gradient reads (Ns or Nd rows of H or 2H) */
    int h = (int)H, a = (int)A, v = (int)V, rows = (int)max_size(Ns, Nd);
    int operands[][2] = {{h, v}, {2 * h, h}, {h, h}, {h, a}, {v, h}, {h, 2 * h}, {a, h}, {rows, 2 * h}};
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
    minrnn_config part;           /* the encoder's and the decoder's configuration */
    const minrnn_pairs *pairs;
    int B, Ts, Td, Ns, Nd, H, V, A, KA, L, nt;
    size_t model;                 /* floats of each model's block */
    const float *params, *masks;  /* masks (L, Ns, H) then (L, Nd, H), or NULL */
    const float *W_a, *W_q, *W_k, *v_a, *W_c, *b_c, *W_out, *b_out;   /* NULL where absent */
    minrnn_batch enc, dec;        /* the two models' batches */
    float *ws;
    s2s_layout lay;
} s2s_run;

#define BUF(r, region) ((r)->ws + (r)->lay.region)

s2s_view s2s_views_at(const minrnn_config *cfg, const float *tail) {
    s2s_view v;
    memset(&v, 0, sizeof v);
    minrnn_config part = seq2seq_part(cfg);
    int64_t models = 2 * (int64_t)minrnn_param_count(&part);
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
    minrnn_config part = seq2seq_part(cfg);
    return s2s_views_at(cfg, block + 2 * minrnn_param_count(&part));
}

/* MINRNN_OK if the pairs hold what the model reads, every id and length in range. */
static int check_pairs(const minrnn_config *cfg, const minrnn_pairs *p) {
    if (!p->source || !p->source_lengths || !p->inputs || !p->target_lengths) return MINRNN_ERR_ARG;
    int V = cfg->vocab_size, B = p->B;
    for (int b = 0; b < B; b++)
        if (p->source_lengths[b] < 1 || p->source_lengths[b] > p->Ts || p->target_lengths[b] < 1
            || p->target_lengths[b] > p->Td)
            return MINRNN_ERR_ARG;
    for (int64_t i = 0; i < (int64_t)p->Ts * B; i++)
        if (p->source[i] < 0 || p->source[i] >= V - 2) return MINRNN_ERR_ARG;   /* never start or end */
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
    r->cfg = cfg, r->part = seq2seq_part(cfg), r->pairs = pairs;
    r->B = pairs->B, r->Ts = pairs->Ts, r->Td = pairs->Td, r->Ns = r->B * r->Ts, r->Nd = r->B * r->Td;
    r->H = cfg->hidden_size, r->V = cfg->vocab_size, r->A = cfg->attention_size, r->KA = key_size(cfg);
    r->L = cfg->num_layers, r->nt = resolve_threads(num_threads);
    r->model = minrnn_param_count(&r->part);
    r->params = params, r->masks = masks, r->ws = ws;
    s2s_view v = s2s_views(cfg, params);
    r->W_a = v.W_a, r->W_q = v.W_q, r->W_k = v.W_k, r->v_a = v.v_a;
    r->W_c = v.W_c, r->b_c = v.b_c, r->W_out = v.W_out, r->b_out = v.b_out;
    r->enc = (minrnn_batch){.B = r->B, .T = r->Ts, .tokens = pairs->source, .lengths = pairs->source_lengths};
    r->dec = (minrnn_batch){.B = r->B, .T = r->Td, .tokens = pairs->inputs, .lengths = pairs->target_lengths};
    return MINRNN_OK;
}

static const float *enc_masks(const s2s_run *r) { return r->masks; }

static const float *dec_masks(const s2s_run *r) {
    return r->masks ? r->masks + (size_t)r->L * r->Ns * r->H : NULL;
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
    h = hash_words(h, p->source, (size_t)r->Ns);
    h = hash_words(h, p->source_lengths, (size_t)r->B);
    h = hash_words(h, p->inputs, (size_t)r->Nd);
    h = hash_words(h, p->target_lengths, (size_t)r->B);
    if (p->targets) h = hash_words(h, p->targets, (size_t)r->Nd);
    if (r->masks) h = hash_words(h, r->masks, (size_t)r->L * (r->Ns + r->Nd) * r->H);
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
    int H = cfg->hidden_size, A = cfg->attention_size, KA = key_size(cfg);
    float m = -INFINITY;
    for (int s = 0; s < n; s++) {
        const float *e = mem + s * stride * H, *k = keys + s * stride * KA;
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
    memset(c, 0, (size_t)H * sizeof(float));
    for (int s = 0; s < n; s++) axpy_(c, alpha[s], mem + s * stride * H, H);
    memcpy(cat + H, h, (size_t)H * sizeof(float));
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
               BUF(r, mem) + (size_t)b * r->H, BUF(r, keys) + (size_t)b * r->KA, B, alpha,
               BUF(r, cat) + (size_t)i * 2 * r->H);
    for (int s = n; s < r->Ts; s++) alpha[s] = 0.0f;
}

/* The attention's backward for every decoder row of pair b: from dc (in dcat) into dh, and into
 * the pair's rows of dmem, dkeys, and for additive dquery and dv_rows. */
VECTOR_CLONES
static void attend_backward_pair(const s2s_run *r, int b) {
    int B = r->B, H = r->H, A = r->A, KA = r->KA, n = r->pairs->source_lengths[b], kind = r->cfg->attention;
    for (int t = 0; t < r->pairs->target_lengths[b]; t++) {   /* later rows have no gradient */
        size_t i = (size_t)t * B + b;
        const float *alpha = BUF(r, alpha) + i * r->Ts, *dc = BUF(r, dcat) + i * 2 * H;
        const float *h = BUF(r, dec_out) + i * H;
        float *dscore = BUF(r, dscore) + i * r->Ts, *dh = BUF(r, dh) + i * H;
        /* dalpha_s = dc . e_s; dscore_s = alpha_s (dalpha_s - sum_r alpha_r dalpha_r); de_s += alpha_s dc */
        float mean = 0.0f;
        for (int s = 0; s < n; s++) {
            size_t m = (size_t)s * B + b;
            dscore[s] = dot_(dc, BUF(r, mem) + m * H, H);
            mean += alpha[s] * dscore[s];
            axpy_(BUF(r, dmem) + m * H, alpha[s], dc, H);
        }
        for (int s = 0; s < n; s++) dscore[s] = alpha[s] * (dscore[s] - mean);
        for (int s = 0; s < n; s++) {
            size_t m = (size_t)s * B + b;
            float g = dscore[s];
            if (kind == MINRNN_ATTENTION_DOT) {   /* score = h . e_s */
                axpy_(dh, g, BUF(r, mem) + m * H, H);
                axpy_(BUF(r, dmem) + m * H, g, h, H);
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
}

/* ---- forward and backward */

static void zero(float *x, size_t n) { memset(x, 0, n * sizeof(float)); }

static double s2s_forward(s2s_run *r, float *logits_out, float *alignments) {
    int B = r->B, H = r->H, V = r->V, A = r->A, Ns = r->Ns, Nd = r->Nd, nt = r->nt;
    float *packed = BUF(r, packed), *state = BUF(r, state), *zeros = BUF(r, dstate);
    size_t states = minrnn_state_size(&r->part, B);
    zero(zeros, states);
    /* the models' own stamps are left out: this file's stamp covers both (s2s_key) */
    model_forward(&r->part, r->params, &r->enc, zeros, state, enc_masks(r), BUF(r, mem), NULL, BUF(r, enc_ws), nt, 0);
    model_forward(&r->part, r->params + r->model, &r->dec, state, NULL, dec_masks(r), BUF(r, dec_out), NULL,
                  BUF(r, dec_ws), nt, 0);
    if (r->cfg->attention) {
        if (r->W_a) product_wT(Ns, H, H, BUF(r, mem), r->W_a, BUF(r, keys), 0, packed, nt);
        if (r->W_k) {
            product_wT(Ns, A, H, BUF(r, mem), r->W_k, BUF(r, keys), 0, packed, nt);
            product_wT(Nd, A, H, BUF(r, dec_out), r->W_q, BUF(r, query), 0, packed, nt);
        }
        #pragma omp parallel for num_threads(threads_for(nt, (double)Nd * r->Ts * (H + A))) schedule(static)
        for (int i = 0; i < Nd; i++) attend_row(r, i);
        float *o = BUF(r, o);
        fill_rows(o, Nd, H, r->b_c, nt);
        product_wT(Nd, H, 2 * H, BUF(r, cat), r->W_c, o, 1, packed, nt);
        #pragma omp parallel for num_threads(threads_for(nt, 8.0 * Nd * H)) schedule(static)
        for (int i = 0; i < Nd; i++)
            for (int k = 0; k < H; k++) o[(size_t)i * H + k] = tanh_(o[(size_t)i * H + k]);
        if (alignments) memcpy(alignments, BUF(r, alpha), (size_t)Nd * r->Ts * sizeof(float));
    } else if (alignments) {
        zero(alignments, (size_t)Nd * r->Ts);
    }
    float *logits = BUF(r, logits), *row_loss = BUF(r, row_loss);
    fill_rows(logits, Nd, V, r->b_out, nt);
    product_wT(Nd, V, H, attended(r), r->W_out, logits, 1, packed, nt);
    if (logits_out) memcpy(logits_out, logits, (size_t)Nd * V * sizeof(float));
    if (!r->pairs->targets) return 0.0;
    #pragma omp parallel for num_threads(threads_for(nt, 8.0 * Nd * V)) schedule(static)
    for (int i = 0; i < Nd; i++) {
        int loss = has_loss(r, i);
        double value = cross_entropy_row(logits + (size_t)i * V, V, loss ? r->pairs->targets[i] : -1);
        row_loss[i] = loss ? (float)value : 0.0f;
    }
    double total = 0.0;
    for (int i = 0; i < Nd; i++) total += row_loss[i];
    return total / loss_count(r);
}

static void s2s_backward(s2s_run *r, float *grads) {
    int B = r->B, H = r->H, V = r->V, A = r->A, Ns = r->Ns, Nd = r->Nd, nt = r->nt;
    float *packed = BUF(r, packed), *dlogits = BUF(r, logits), *dh = BUF(r, dh);
    s2s_view g = s2s_views(r->cfg, grads);
    /* dlogits = (softmax - onehot(target)) / count at the rows with a loss, 0 elsewhere */
    float scale = (float)(1.0 / loss_count(r));
    #pragma omp parallel for num_threads(threads_for(nt, (double)Nd * V)) schedule(static)
    for (int i = 0; i < Nd; i++) {
        float *z = dlogits + (size_t)i * V;
        if (!has_loss(r, i)) {
            zero(z, (size_t)V);
            continue;
        }
        for (int v = 0; v < V; v++) z[v] *= scale;   /* softmax - onehot(target), from the forward */
    }
    product_grad(Nd, V, H, dlogits, attended(r), g.W_out, packed, nt);
    colsum_add(dlogits, Nd, V, g.b_out, nt);
    float *dmem = NULL;
    if (!r->cfg->attention) {
        product_w(Nd, H, V, dlogits, r->W_out, dh, 0, packed, nt);   /* dh = dlogits W_out */
    } else {
        float *dpre = BUF(r, o), *dcat = BUF(r, dcat);   /* o's gradient replaces o, element by element */
        float *d_o = dh;                               /* dh is free until dcat is known */
        product_w(Nd, H, V, dlogits, r->W_out, d_o, 0, packed, nt);
        #pragma omp parallel for num_threads(threads_for(nt, (double)Nd * H)) schedule(static)
        for (size_t k = 0; k < (size_t)Nd * H; k++) dpre[k] = d_o[k] * (1.0f - dpre[k] * dpre[k]);
        product_grad(Nd, H, 2 * H, dpre, BUF(r, cat), g.W_c, packed, nt);
        colsum_add(dpre, Nd, H, g.b_c, nt);
        product_w(Nd, 2 * H, H, dpre, r->W_c, dcat, 0, packed, nt);   /* dcat = dpre W_c: [dc ; dh] */
        #pragma omp parallel for num_threads(threads_for(nt, (double)Nd * H)) schedule(static)
        for (int i = 0; i < Nd; i++)
            memcpy(dh + (size_t)i * H, dcat + (size_t)i * 2 * H + H, (size_t)H * sizeof(float));
        dmem = BUF(r, dmem);
        zero(dmem, (size_t)Ns * H);
        zero(BUF(r, dkeys), (size_t)Ns * r->KA);
        zero(BUF(r, dquery), (size_t)Nd * A);
        zero(BUF(r, dv_rows), (size_t)Nd * A);
        #pragma omp parallel for num_threads(threads_for(nt, (double)Nd * r->Ts * (H + A))) schedule(static)
        for (int b = 0; b < B; b++) attend_backward_pair(r, b);
        if (r->W_a) {   /* keys = mem W_a^T */
            product_grad(Ns, H, H, BUF(r, dkeys), BUF(r, mem), g.W_a, packed, nt);
            product_w(Ns, H, H, BUF(r, dkeys), r->W_a, dmem, 1, packed, nt);
        }
        if (r->W_k) {   /* keys = mem W_k^T, query = h W_q^T */
            colsum_add(BUF(r, dv_rows), Nd, A, g.v_a, nt);
            product_grad(Ns, A, H, BUF(r, dkeys), BUF(r, mem), g.W_k, packed, nt);
            product_w(Ns, H, A, BUF(r, dkeys), r->W_k, dmem, 1, packed, nt);
            product_grad(Nd, A, H, BUF(r, dquery), BUF(r, dec_out), g.W_q, packed, nt);
            product_w(Nd, H, A, BUF(r, dquery), r->W_q, dh, 1, packed, nt);
        }
    }
    float *dstate = BUF(r, dstate);
    model_backward(&r->part, r->params + r->model, &r->dec, dec_masks(r), dh, NULL, BUF(r, dec_ws),
                   grads + r->model, dstate, NULL, nt, 0);
    model_backward(&r->part, r->params, &r->enc, enc_masks(r), dmem, dstate, BUF(r, enc_ws), grads, NULL,
                   NULL, nt, 0);
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
    if (cfg->dropout > 0.0f) {   /* the encoder's masks, then the decoder's */
        float *masks = BUF(&r, masks);
        minrnn_dropout_masks(cfg, r.B, r.Ts, rng, masks);
        minrnn_dropout_masks(cfg, r.B, r.Td, rng, masks + (size_t)r.L * r.Ns * r.H);
        r.masks = masks;
    }
    float value = (float)s2s_forward(&r, NULL, NULL);
    size_t n = minrnn_param_count(cfg);
    memset(grads, 0, n * sizeof(float));
    s2s_backward(&r, grads);
    return clip_and_update(opt, params, grads, m, v, n, value, loss, grad_norm, num_threads);
}
