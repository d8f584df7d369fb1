/* translate.c: a seq2seq model's translation of one source (minrnn_seq2seq_translate), or its
 * caption of one grid (minrnn_seq2seq_caption): greedy decoding, sampling, or beam search with
 * greedy's own hypothesis never pruned. The search is minrnn/reference/seq2seq.py's translate, step
 * for step: the same candidates, ranks, ties and stopping rule, with log probabilities in double.
 *
 * The encoder runs one token at a time and the decoder one step for all live hypotheses at a time
 * (rows of one batch), both through minrnn_step_compact, so that a compact (bfloat16) block
 * gives bit for bit the float32 result of its rounded weights; the attention's and the output
 * layer's tensors are widened once per call. A grid is its own memory; the decoder's condition
 * rows [grid mean ; fed context] are rebuilt at every step, the fed context following each row's
 * parent as the states do.
 */
#include <math.h>
#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#include "gemm.h"
#include "internal.h"


/* ---- the workspace: typed regions of one byte buffer */

typedef struct {
    size_t model_ws;            /* float (the two models' step workspace for R rows) */
    size_t memory, keys;        /* float (n, M), (n, KA) */
    size_t cond, fed, mean;     /* float (R, C): the decoder's conditions; (R, M) each row's fed context; (D) */
    size_t state, state2;       /* float (L, S, R, H): the live rows' decoder states; the next ones */
    size_t h, query, alpha;     /* float (R, H), (R, A), (R, n) */
    size_t cat, o, logits;      /* float (R, M + H), (R, H), (R, V) */
    size_t tail;                /* float: the attention's and output layer's tensors, widened */
    size_t trail_parent;        /* int32 (max_length, R): at step t, each live row's parent among step t-1's */
    size_t trail_token;         /* int32 (max_length, R): the token it took at step t */
    size_t trail_alpha;         /* float (max_length, R, n): the alignment it took it with */
    size_t end_alpha;           /* float (n): the alignment with which the best finished hypothesis wrote end */
    size_t best_ids, best_alphas;   /* the best finished hypothesis, read back from the trail at the end */
    size_t score, score2;       /* double (R) */
    size_t ext;                 /* double (R, V): extension scores */
    size_t parent, token;       /* int32 (R) */
    size_t sample_scratch;      /* minrnn_sample's */
    size_t total;
} tr_layout;

static size_t tail_floats(const minrnn_config *cfg) { return minrnn_param_count(cfg) - models_param_count(cfg); }

/* R: the most rows a step runs, beam + 1 (greedy's own hypothesis). Returns 0, or -1 out of range. */
static int tr_layout_of(const minrnn_config *cfg, int n, int beam, int max_length, tr_layout *w) {
    if (n < 1 || beam < 1 || max_length < 1 || n > MINRNN_MAX_BATCH_ROWS || beam > 4096
        || max_length > MINRNN_MAX_BATCH_ROWS / n)
        return -1;
    minrnn_config enc = encoder_part(cfg), dec = decoder_part(cfg);
    size_t R = (size_t)beam + 1, H = cfg->hidden_size, V = cfg->vocab_size, A = cfg->attention_size;
    size_t KA = (size_t)key_size(cfg), F = sizeof(float), M = (size_t)max_length, W = (size_t)memory_size(cfg);
    size_t C = (size_t)decoder_cond_size(cfg);
    size_t ws = max_size(minrnn_workspace_size(&enc, 1, 1), minrnn_workspace_size(&dec, (int)R, 1));
    size_t states = minrnn_state_size(&dec, (int)R);
    if (minrnn_workspace_size(&dec, (int)R, 1) == 0 || R * M * (size_t)n > ((size_t)1 << 36)) return -1;
    memset(w, 0, sizeof *w);
    size_t at = 0;
    w->model_ws = take_bytes(&at, ws * F);
    w->memory = take_bytes(&at, (size_t)n * W * F);
    w->keys = take_bytes(&at, (size_t)n * KA * F);
    w->cond = take_bytes(&at, R * C * F);
    w->fed = take_bytes(&at, R * W * F);
    w->mean = take_bytes(&at, (size_t)cfg->input_size * F);
    w->state = take_bytes(&at, states * F);
    w->state2 = take_bytes(&at, states * F);
    w->h = take_bytes(&at, R * H * F);
    w->query = take_bytes(&at, R * A * F);
    w->alpha = take_bytes(&at, R * (size_t)n * F);
    w->cat = take_bytes(&at, R * (W + H) * F);
    w->o = take_bytes(&at, R * H * F);
    w->logits = take_bytes(&at, R * V * F);
    w->tail = take_bytes(&at, tail_floats(cfg) * F);
    w->trail_parent = take_bytes(&at, M * R * sizeof(int32_t));
    w->trail_token = take_bytes(&at, M * R * sizeof(int32_t));
    w->trail_alpha = take_bytes(&at, M * R * (size_t)n * F);
    w->end_alpha = take_bytes(&at, (size_t)n * F);
    w->best_ids = take_bytes(&at, M * sizeof(int32_t));
    w->best_alphas = take_bytes(&at, M * (size_t)n * F);
    w->score = take_bytes(&at, R * sizeof(double));
    w->score2 = take_bytes(&at, R * sizeof(double));
    w->ext = take_bytes(&at, R * V * sizeof(double));
    w->parent = take_bytes(&at, R * sizeof(int32_t));
    w->token = take_bytes(&at, R * sizeof(int32_t));
    w->sample_scratch = take_bytes(&at, minrnn_sample_scratch_size((int)V));
    w->total = at;
    return 0;
}

size_t minrnn_seq2seq_translate_size(const minrnn_config *cfg, int n, int beam, int max_length) {
    tr_layout w;
    if (minrnn_config_check(cfg) != MINRNN_OK || cfg->task != MINRNN_TASK_SEQ2SEQ
        || tr_layout_of(cfg, n, beam, max_length, &w) != 0)
        return 0;
    return w.total + ALIGN_BYTES;   /* room to align the caller's buffer */
}

/* ---- one search */

typedef struct {
    const minrnn_config *cfg;
    minrnn_config enc_part, dec_part;
    int precision, n, H, V, A, KA, L, S, M, nt;
    int W, D, C;                /* the memory's width, the grid's (0 for ids), the decoder's condition's */
    int lay_rows;               /* R: the trail's rows per step, beam + 1 */
    const void *enc, *dec;      /* the two models' blocks, at precision */
    s2s_view w;                 /* the widened tail */
    unsigned char *base;
    tr_layout lay;
    int rows;                   /* live rows now */
    int best_steps, best_length, have_best;
    int best_row, best_end;     /* the best's last row in the trail (at step best_length - 1), and whether it wrote end */
    double best_score;
} search;

#define AT(s, type, region) ((type *)((s)->base + (s)->lay.region))

/* Where tensor `index` of a block at precision starts: the block of the part it begins. */
static const void *block_at(const minrnn_config *cfg, const void *params, int precision, int index) {
    size_t at = block_offset(cfg, precision, index);
    size_t width = precision == MINRNN_INT8 ? 1 : precision == MINRNN_BFLOAT16 ? sizeof(uint16_t) : sizeof(float);
    return (const unsigned char *)params + at * width;
}

/* The decoder's step for every live row from its token, then attention and the output layer:
 * logits (rows, V) and each row's alpha (n). */
static int decode(search *s) {
    int R = s->rows, H = s->H, V = s->V, W = s->W, D = s->D, C = s->C, nt = s->nt;
    float *cond = AT(s, float, cond);
    for (int r = 0; r < R; r++) {   /* [grid mean ; fed context], what of it the model has */
        if (D) memcpy(cond + (size_t)r * C, AT(s, float, mean), (size_t)D * sizeof(float));
        if (s->cfg->input_feeding)
            memcpy(cond + (size_t)r * C + D, AT(s, float, fed) + (size_t)r * W, (size_t)W * sizeof(float));
    }
    minrnn_batch batch = {.B = R, .T = 1, .tokens = AT(s, int32_t, token), .vectors = C ? cond : NULL};
    float *h = AT(s, float, h), *o = h;
    int status = minrnn_step_compact(&s->dec_part, s->precision, s->dec, &batch, AT(s, float, state), h,
                                     AT(s, float, model_ws), nt);
    if (status != MINRNN_OK) return status;
    if (s->cfg->attention) {
        float *query = AT(s, float, query), *cat = AT(s, float, cat);
        if (s->w.W_q) mm_nt(R, s->A, H, h, H, s->w.W_q, H, query, s->A, 0, gemm_threads(nt, R, s->A, H));
        for (int r = 0; r < R; r++)
            attend(s->cfg, s->w.v_a, s->n, h + (size_t)r * H, query + (size_t)r * s->A, AT(s, float, memory),
                       AT(s, float, keys), 1, AT(s, float, alpha) + (size_t)r * s->n, cat + (size_t)r * (W + H));
        o = AT(s, float, o);
        for (int r = 0; r < R; r++) memcpy(o + (size_t)r * H, s->w.b_c, (size_t)H * sizeof(float));
        mm_nt(R, H, W + H, cat, W + H, s->w.W_c, W + H, o, H, 1, gemm_threads(nt, R, H, W + H));
        for (size_t k = 0; k < (size_t)R * H; k++) o[k] = tanh_(o[k]);
    }
    float *logits = AT(s, float, logits);
    for (int r = 0; r < R; r++) memcpy(logits + (size_t)r * V, s->w.b_out, (size_t)V * sizeof(float));
    mm_nt(R, V, H, o, H, s->w.W_out, H, logits, V, 1, gemm_threads(nt, R, V, H));
    return MINRNN_OK;
}

/* ext (V) = score + log softmax(logits), in double as the reference's next_logprobs; START -inf. */
static void extension_scores(const search *s, const float *logits, double score, double *ext) {
    double m = logits[0];
    for (int v = 1; v < s->V; v++) m = logits[v] > m ? logits[v] : m;
    double total = 0.0;
    for (int v = 0; v < s->V; v++) total += exp((double)logits[v] - m);
    double lse = m + log(total);
    for (int v = 0; v < s->V; v++) ext[v] = score + ((double)logits[v] - lse);
    ext[s->V - 2] = -INFINITY;
}

static int argmax_of(const double *x, int V) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (x[v] > x[best]) best = v;
    return best;
}

/* A candidate: live row r extended by token v. */
typedef struct {
    double score;
    int32_t row, token;
} candidate;

/* The `keep` best candidates over every live row and token but START, best first; ties: lower
 * row, then lower token (the order they are visited in, so a later one must be strictly better). */
static int best_candidates(const search *s, int keep, candidate *out) {
    const double *ext = AT(s, double, ext);
    int count = 0;
    for (int r = 0; r < s->rows; r++)
        for (int v = 0; v < s->V; v++) {
            double x = ext[(size_t)r * s->V + v];
            if (v == s->V - 2 || (count == keep && !(x > out[keep - 1].score))) continue;
            int at = count < keep ? count++ : keep - 1;
            while (at > 0 && x > out[at - 1].score) out[at] = out[at - 1], at--;
            out[at] = (candidate){x, r, v};
        }
    return count;
}

/* Row r's hypothesis (its tokens are the trail's, up to step steps - 2 with end, steps - 1
 * without), as finished: the new best if its score is higher than the best's (the first finished
 * wins ties). With end, its last alignment is the one it wrote end with (row r's alpha now). Only
 * where it is is kept: the hypothesis is read back from the trail once, at the end (so a step
 * costs the same at step 10 and at step 10,000). */
static void finish(search *s, int r, int steps, double score, int with_end) {
    if (s->have_best && !(score > s->best_score)) return;
    if (with_end)
        memcpy(AT(s, float, end_alpha), AT(s, float, alpha) + (size_t)r * s->n, (size_t)s->n * sizeof(float));
    s->have_best = 1, s->best_score = score, s->best_steps = steps, s->best_length = with_end ? steps - 1 : steps;
    s->best_row = r, s->best_end = with_end;
}

/* The best hypothesis's tokens and alignments, walked back from its last row through the trail. */
static void read_back_best(search *s) {
    int R = s->lay_rows, n = s->n;
    int32_t *ids = AT(s, int32_t, best_ids);
    float *alphas = AT(s, float, best_alphas);
    const int32_t *parent = AT(s, int32_t, trail_parent), *token = AT(s, int32_t, trail_token);
    const float *alpha = AT(s, float, trail_alpha);
    for (int t = s->best_length - 1, r = s->best_row; t >= 0; r = parent[(size_t)t * R + r], t--) {
        ids[t] = token[(size_t)t * R + r];
        memcpy(alphas + (size_t)t * n, alpha + ((size_t)t * R + r) * n, (size_t)n * sizeof(float));
    }
    if (s->best_end)
        memcpy(alphas + (size_t)s->best_length * n, AT(s, float, end_alpha), (size_t)n * sizeof(float));
}

/* The next live rows: row k continues parent[k] with token[k] (its score in score2): their states
 * gathered, and the step's trail written (parent, token, the alignment it was taken with). */
static void advance(search *s, int rows, int step) {
    int n = s->n, H = s->H, R0 = s->rows, R = s->lay_rows;
    const int32_t *parent = AT(s, int32_t, parent), *token = AT(s, int32_t, token);
    float *state = AT(s, float, state), *state2 = AT(s, float, state2);
    for (int l = 0; l < s->L * s->S; l++)   /* (L, S, R0, H) -> (L, S, rows, H) */
        for (int k = 0; k < rows; k++)
            memcpy(state2 + ((size_t)l * rows + k) * H, state + ((size_t)l * R0 + parent[k]) * H,
                   (size_t)H * sizeof(float));
    memcpy(state, state2, (size_t)s->L * s->S * rows * H * sizeof(float));
    if (s->cfg->input_feeding) {   /* row k is fed its parent's context */
        float *fed = AT(s, float, fed);
        for (int k = 0; k < rows; k++)
            memcpy(fed + (size_t)k * s->W, AT(s, float, cat) + (size_t)parent[k] * (s->W + H), (size_t)s->W * sizeof(float));
    }
    int32_t *trail_parent = AT(s, int32_t, trail_parent) + (size_t)step * R;
    int32_t *trail_token = AT(s, int32_t, trail_token) + (size_t)step * R;
    float *trail_alpha = AT(s, float, trail_alpha) + (size_t)step * R * n;
    for (int k = 0; k < rows; k++) {
        trail_parent[k] = parent[k], trail_token[k] = token[k];
        memcpy(trail_alpha + (size_t)k * n, AT(s, float, alpha) + (size_t)parent[k] * n, (size_t)n * sizeof(float));
    }
    memcpy(AT(s, double, score), AT(s, double, score2), (size_t)rows * sizeof(double));
    s->rows = rows;
}

/* One step of the search from the live rows; returns 1 to stop, 0 to go on, or < 0 on an error
 * (-status). beam 1 with temperature > 0 samples. */
static int search_step(search *s, int beam, int step, double temperature, minrnn_rng *rng, int *greedy) {
    int status = decode(s);
    if (status != MINRNN_OK) return -status;
    int V = s->V, end = V - 1;
    double *ext = AT(s, double, ext), *score = AT(s, double, score);
    for (int r = 0; r < s->rows; r++)
        extension_scores(s, AT(s, float, logits) + (size_t)r * V, score[r], ext + (size_t)r * V);
    candidate kept[4097];
    int count;
    if (temperature > 0.0) {   /* one row: draw the token, START excluded */
        float *logits = AT(s, float, logits);
        logits[V - 2] = -INFINITY;
        int32_t v;
        status = minrnn_sample(logits, V, temperature, 0, 1.0, rng, AT(s, void, sample_scratch), &v);
        if (status != MINRNN_OK) return -status;
        kept[0] = (candidate){ext[v], 0, v}, count = 1;
    } else {
        count = best_candidates(s, beam, kept);
        if (*greedy >= 0) {   /* greedy's extension rides along when it is not among them */
            int g = argmax_of(ext + (size_t)*greedy * V, V), in = 0;
            for (int k = 0; k < count; k++) in |= kept[k].row == *greedy && kept[k].token == g;
            if (!in) kept[count++] = (candidate){ext[(size_t)*greedy * V + g], *greedy, g};
        }
    }
    int32_t *parent = AT(s, int32_t, parent), *token = AT(s, int32_t, token);
    double *score2 = AT(s, double, score2);
    int rows = 0, next_greedy = -1, was_greedy = *greedy;
    int g_token = was_greedy >= 0 && temperature == 0.0 ? argmax_of(ext + (size_t)was_greedy * V, V) : -1;
    for (int k = 0; k < count; k++) {
        if (kept[k].token == end) {
            finish(s, kept[k].row, step + 1, kept[k].score, 1);
            continue;
        }
        if (kept[k].row == was_greedy && kept[k].token == g_token) next_greedy = rows;
        parent[rows] = kept[k].row, token[rows] = kept[k].token, score2[rows] = kept[k].score;
        rows++;
    }
    *greedy = next_greedy;
    if (rows == 0) return 1;
    advance(s, rows, step);
    double best_live = score2[0];
    for (int k = 1; k < rows; k++) best_live = score2[k] > best_live ? score2[k] : best_live;
    return s->have_best && s->best_score >= best_live;
}

/* The search for source ids (grid NULL) or a grid (source NULL) of n. */
static int search_run(const minrnn_config *cfg, int precision, const void *params, const int32_t *source,
                      const float *grid, int n, int beam, int max_length, double temperature, minrnn_rng *rng,
                      int32_t *out, minrnn_translation *result, float *alignments, void *workspace, int num_threads) {
    int status = minrnn_config_check(cfg);
    if (status != MINRNN_OK) return status;
    search s;
    memset(&s, 0, sizeof s);
    if (cfg->task != MINRNN_TASK_SEQ2SEQ || (cfg->input_size > 0) != (grid != NULL) || minrnn_params_size(cfg, precision) == 0
        || !params || !(source || grid) || !out || !result || !workspace || tr_layout_of(cfg, n, beam, max_length, &s.lay) != 0
        || !(temperature >= 0.0 && temperature <= 1e6) || (temperature > 0.0 && (beam != 1 || !rng)))
        return MINRNN_ERR_ARG;
    for (int64_t i = 0; source && i < n; i++)
        if (source[i] < 0 || source[i] >= cfg->vocab_size - 2) return MINRNN_ERR_ARG;
    for (int64_t i = 0; grid && i < (int64_t)n * cfg->input_size; i++)
        if (!isfinite(grid[i])) return MINRNN_ERR_ARG;
    s.cfg = cfg, s.enc_part = encoder_part(cfg), s.dec_part = decoder_part(cfg), s.precision = precision, s.n = n;
    s.H = cfg->hidden_size, s.V = cfg->vocab_size, s.A = cfg->attention_size, s.KA = key_size(cfg);
    s.W = memory_size(cfg), s.D = cfg->input_size, s.C = decoder_cond_size(cfg);
    s.L = cfg->num_layers, s.M = max_length, s.nt = resolve_threads(num_threads);
    s.S = (int)(minrnn_state_size(&s.dec_part, 1) / ((size_t)s.L * s.H));
    s.lay_rows = beam + 1;
    s.base = aligned_bytes(workspace);
    int decoder = cfg->input_size ? 0 : minrnn_tensor_count(&s.enc_part);   /* its first tensor */
    s.enc = params, s.dec = block_at(cfg, params, precision, decoder);
    float *t = AT(&s, float, tail);   /* the tail in float32: copied, widened or expanded */
    expand_tensors(cfg, precision, params, decoder + minrnn_tensor_count(&s.dec_part), t);
    s.w = s2s_views_at(cfg, t);
    memset(AT(&s, float, alpha), 0, (size_t)(beam + 1) * n * sizeof(float));   /* no attention: zeros, as promised */
    memset(AT(&s, float, fed), 0, (size_t)(beam + 1) * s.W * sizeof(float));    /* the first step is fed zeros */

    /* the memory: the encoder, one token at a time from zeros, gives its rows and the decoder's
     * first state; a grid is the memory, with zeros and its mean */
    float *state = AT(&s, float, state), *memory = AT(&s, float, memory);
    memset(state, 0, minrnn_state_size(&s.dec_part, 1) * sizeof(float));
    if (grid) {
        memcpy(memory, grid, (size_t)n * s.W * sizeof(float));
        grid_mean(memory, n, 1, s.D, AT(&s, float, mean));
    }
    for (int i = 0; source && i < n; i++) {
        minrnn_batch batch = {.B = 1, .T = 1, .tokens = source + i};
        status = minrnn_step_compact(&s.enc_part, precision, s.enc, &batch, state, memory + (size_t)i * s.H,
                                     AT(&s, float, model_ws), s.nt);
        if (status != MINRNN_OK) return status;
    }
    if (s.w.W_a)
        mm_nt(n, s.H, s.W, memory, s.W, s.w.W_a, s.W, AT(&s, float, keys), s.H, 0, lone_gemm_threads(s.nt, n, s.H, s.W));
    if (s.w.W_k)
        mm_nt(n, s.A, s.W, memory, s.W, s.w.W_k, s.W, AT(&s, float, keys), s.A, 0, lone_gemm_threads(s.nt, n, s.A, s.W));

    s.rows = 1;
    AT(&s, int32_t, token)[0] = cfg->vocab_size - 2;   /* start */
    AT(&s, double, score)[0] = 0.0;
    int greedy = 0, step = 0, stop = 0;
    for (; step < max_length && !stop; step++) {
        stop = search_step(&s, beam, step, temperature, rng, &greedy);
        if (stop < 0) return -stop;
    }
    if (!stop)   /* max_length steps: the live rows count as finished, in their order */
        for (int r = 0; r < s.rows; r++) finish(&s, r, max_length, AT(&s, double, score)[r], 0);
    read_back_best(&s);
    memcpy(out, AT(&s, int32_t, best_ids), (size_t)s.best_length * sizeof(int32_t));
    result->length = s.best_length, result->steps = s.best_steps, result->logprob = s.best_score;
    if (alignments) memcpy(alignments, AT(&s, float, best_alphas), (size_t)s.best_steps * n * sizeof(float));
    return MINRNN_OK;
}

int minrnn_seq2seq_translate(const minrnn_config *cfg, int precision, const void *params,
                             const int32_t *source, int n, int beam, int max_length, double temperature,
                             minrnn_rng *rng, int32_t *out, minrnn_translation *result, float *alignments,
                             void *workspace, int num_threads) {
    if (!source) return MINRNN_ERR_ARG;
    return search_run(cfg, precision, params, source, NULL, n, beam, max_length, temperature, rng, out, result,
                      alignments, workspace, num_threads);
}

int minrnn_seq2seq_caption(const minrnn_config *cfg, int precision, const void *params,
                           const float *grid, int n, int beam, int max_length, double temperature,
                           minrnn_rng *rng, int32_t *out, minrnn_translation *result, float *alignments,
                           void *workspace, int num_threads) {
    if (!grid) return MINRNN_ERR_ARG;
    return search_run(cfg, precision, params, NULL, grid, n, beam, max_length, temperature, rng, out, result,
                      alignments, workspace, num_threads);
}
