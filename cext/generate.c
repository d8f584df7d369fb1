/* generate.c: minrnn_generate_start / minrnn_generate_next, the one generation loop that
 * `python -m minrnn sample`, minrnn.load's generate and stream, and cext/examples/minrnn_sample.c
 * all run.
 *
 * B streams from zero states (and their condition) are fed the prime, one step per id, all B at
 * a time (minrnn_step_compact with T = 1). Then, at each step, every stream that is still running
 * draws its next token from its logits, in stream order (one sampler for all: its generator's
 * draws go to stream 0, 1, ... in turn; or one sampler per stream), and the next step feeds what
 * each drew. A stream that draws end_id has ended, and end_id is not output; one whose drawn
 * tokens end with the stop ids has ended after them; every stream ends after max_length tokens.
 * banned_id is never drawn (its logit is set to -inf). The step that would follow the last draw
 * is not taken. A stream that has ended is still stepped with the last token it drew (or end_id)
 * while the others run: its row costs what it costs, and changes nothing the others compute.
 *
 * The call is resumable: minrnn_generate_next takes up to max_steps steps and returns, and the
 * next call goes on where it stopped, so that a caller can hand text out as it is drawn.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

#define GENERATION_MAGIC 0x6d696e726e6e4745ull   /* "minrnnGE": a workspace that start has set up */

/* ---- the workspace: typed regions of one byte buffer */

typedef struct {
    uint64_t magic;
    uint64_t key;               /* gen_key of the generation start set up: next runs only the same one */
    int64_t steps;              /* draws taken so far (tokens per stream that never ended) */
    int32_t running;            /* streams that have not ended */
    int32_t fresh;              /* 1: the logits are those of the last feed, not yet drawn from */
} progress;

typedef struct {
    size_t progress;            /* the progress above */
    size_t state;               /* float (L, S, B, H) */
    size_t logits;              /* float (B, V) */
    size_t model_ws;            /* float: minrnn_step's workspace for B rows */
    size_t tokens;              /* int32 (B): each stream's next input */
    size_t ended;               /* int32 (B): 1 once a stream has ended */
    size_t tail;                /* int32 (B, stop_length): each stream's last stop_length draws, a ring */
    size_t sample_scratch;      /* minrnn_sample's */
    size_t prepared;            /* the weights prepared at start (prepare_weights), for a few streams */
    size_t prepared_bytes;      /* 0: none (more streams, or an int8 block on a CPU with VNNI) */
    size_t total;
} gen_layout;

/* The layout for g at precision, or -1 if g's sizes are out of range for cfg. */
static int gen_layout_of(const minrnn_config *cfg, int precision, const minrnn_generation *g, gen_layout *w) {
    size_t ws = minrnn_workspace_size(cfg, g->B, 1), states = minrnn_state_size(cfg, g->B);
    if (ws == 0 || states == 0 || g->stop_length < 0 || g->stop_length > MINRNN_MAX_STOP) return -1;
    size_t B = (size_t)g->B, V = (size_t)cfg->vocab_size, F = sizeof(float), I = sizeof(int32_t);
    size_t at = 0;
    w->progress = take_bytes(&at, sizeof(progress));
    w->state = take_bytes(&at, states * F);
    w->logits = take_bytes(&at, B * V * F);
    w->model_ws = take_bytes(&at, ws * F);
    w->tokens = take_bytes(&at, B * I);
    w->ended = take_bytes(&at, B * I);
    w->tail = take_bytes(&at, B * (size_t)g->stop_length * I);
    w->sample_scratch = take_bytes(&at, minrnn_sample_scratch_size((int)V));
    w->prepared_bytes = g->B <= PREPARED_MAX_ROWS ? prepared_size(cfg, precision) : 0;
    w->prepared = take_bytes(&at, w->prepared_bytes);
    w->total = at;
    return 0;
}

/* Whether g's sizes, ids and samplers fit cfg's model (the config itself is checked). */
static int gen_shape_ok(const minrnn_config *cfg, const minrnn_generation *g) {
    int V = cfg->vocab_size;
    if (!g || cfg->task != MINRNN_TASK_LM || g->B < 1 || !g->prime || g->prime_length < 1) return 0;
    if (g->end_id < -1 || g->end_id >= V || g->banned_id < -1 || g->banned_id >= V || g->max_length < 0) return 0;
    if (g->stop_length < 0 || (g->stop_length > 0 && !g->stop)) return 0;
    if (!g->samplers || (g->num_samplers != 1 && g->num_samplers != g->B)) return 0;
    for (int i = 0; i < g->num_samplers; i++) {
        const minrnn_sampler *s = &g->samplers[i];
        if (!(s->temperature >= 0.0) || s->top_k < 0 || !(s->top_p > 0.0 && s->top_p <= 1.0)) return 0;
    }
    return 1;
}

/* Whether g's prime and stop ids are cfg's model's (start checks them once; next reads no prime). */
static int gen_ids_ok(const minrnn_config *cfg, const minrnn_generation *g) {
    for (int i = 0; i < g->prime_length; i++)
        if (g->prime[i] < 0 || g->prime[i] >= cfg->vocab_size) return 0;
    for (int i = 0; i < g->stop_length; i++)
        if (g->stop[i] < 0 || g->stop[i] >= cfg->vocab_size) return 0;
    return 1;
}

/* What every call of one generation must agree on: the config, the precision, where the weights
 * are (a copy of them may be prepared at start), g's sizes and ids, and its stop ids (not the
 * prime, which only start reads). */
static uint64_t gen_key(const minrnn_config *cfg, int precision, const void *params, const minrnn_generation *g) {
    int32_t shape[8] = {precision, g->B, g->prime_length, g->end_id, g->banned_id, g->stop_length,
                        g->num_samplers, 0};
    uint64_t at = (uint64_t)(uintptr_t)params;
    uint64_t h = hash_words(hash_words(hash_words(0, cfg, sizeof *cfg / 4), shape, 8), &at, sizeof at / 4);
    h = hash_words(h, &g->max_length, sizeof g->max_length / 4);
    return g->stop_length ? hash_words(h, g->stop, (size_t)g->stop_length) : h;
}

size_t minrnn_generate_workspace_size(const minrnn_config *cfg, int precision, const minrnn_generation *g) {
    gen_layout w;
    if (minrnn_config_check(cfg) != MINRNN_OK || minrnn_params_size(cfg, precision) == 0 || !gen_shape_ok(cfg, g) ||
        !gen_ids_ok(cfg, g) || gen_layout_of(cfg, precision, g, &w) != 0)
        return 0;
    return w.total + ALIGN_BYTES;   /* room to align the caller's buffer */
}

/* ---- a generation in progress */

typedef struct {
    const minrnn_config *cfg;
    const minrnn_generation *g;
    int precision, nt, V;
    const void *params;
    void *prepared;             /* params prepared at start, or NULL */
    progress *p;
    float *state, *logits, *model_ws;
    int32_t *tokens, *ended, *tail;
    void *scratch;
    minrnn_batch batch;         /* B rows of one step: tokens, and the condition */
} gen;

/* s over the workspace of g (its layout checked, not its contents) */
static int gen_open(gen *s, const minrnn_config *cfg, int precision, const void *params, const minrnn_generation *g,
                    void *workspace, int num_threads) {
    int status = minrnn_config_check(cfg);
    if (status != MINRNN_OK) return status;
    gen_layout w;
    if (!params || !workspace || minrnn_params_size(cfg, precision) == 0 || !gen_shape_ok(cfg, g) ||
        gen_layout_of(cfg, precision, g, &w) != 0)
        return MINRNN_ERR_ARG;
    unsigned char *base = aligned_bytes(workspace);
    *s = (gen){cfg, g, precision, num_threads, cfg->vocab_size, params, w.prepared_bytes ? base + w.prepared : NULL,
               (progress *)(base + w.progress),
               (float *)(base + w.state), (float *)(base + w.logits), (float *)(base + w.model_ws),
               (int32_t *)(base + w.tokens), (int32_t *)(base + w.ended), (int32_t *)(base + w.tail),
               base + w.sample_scratch, {0}};
    s->batch = (minrnn_batch){.B = g->B, .T = 1, .tokens = s->tokens, .labels = g->labels, .vectors = g->vectors};
    return MINRNN_OK;
}

/* status, after which the generation cannot go on (next refuses it) */
static int gen_fail(progress *p, int status) {
    p->magic = 0;
    return status;
}

/* One step of every stream on s->tokens: the logits of each stream's next token. */
static int gen_step(const gen *s) {
    return step_prepared(s->cfg, s->precision, s->params, s->prepared, &s->batch, s->state, s->logits, s->model_ws,
                         s->nt);
}

/* Whether a stream's draws so far end with the K stop ids, after it drew `token` as its n-th (from
 * 0); ring (K) keeps its last K draws. */
static int stopped(const int32_t *stop, int K, int32_t *ring, int32_t token, int64_t n) {
    if (K == 0) return 0;
    ring[n % K] = token;
    if (n + 1 < K) return 0;
    for (int i = 0; i < K; i++)   /* draw n - K + 1 + i sits at (n - K + 1 + i) % K */
        if (ring[(n + 1 + i) % K] != stop[i]) return 0;
    return 1;
}

/* The draw of every generation: from one stream's logits z (V), its n-th draw (from 0). The banned
 * id is never drawn; the end id ends the stream unwritten (*written -1); any other id is written,
 * and ends the stream when the draws end with the stop ids. */
static int draw(float *z, int V, minrnn_sampler *sampler, int32_t banned, int32_t end, const int32_t *stop, int K,
                int32_t *ring, int64_t n, void *scratch, int32_t *written, int *ended) {
    if (banned >= 0) z[banned] = -INFINITY;
    int32_t token;
    int status = minrnn_sample(z, V, sampler->temperature, sampler->top_k, sampler->top_p, &sampler->rng, scratch,
                               &token);
    if (status != MINRNN_OK) return status;
    *written = token == end ? -1 : token;
    *ended = token == end || stopped(stop, K, ring, token, n);
    return MINRNN_OK;
}

int minrnn_generate_start(const minrnn_config *cfg, int precision, const void *params, const minrnn_generation *g,
                          void *workspace, int num_threads) {
    gen s;
    int status = gen_open(&s, cfg, precision, params, g, workspace, num_threads);
    if (status != MINRNN_OK) return status;
    *s.p = (progress){0};   /* not a generation until the prime is fed */
    if (!gen_ids_ok(cfg, g)) return MINRNN_ERR_ARG;
    memset(s.state, 0, minrnn_state_size(cfg, g->B) * sizeof(float));
    memset(s.ended, 0, (size_t)g->B * sizeof(int32_t));
    if (s.prepared) prepare_weights(cfg, precision, params, s.prepared, num_threads);
    for (int i = 0; i < g->prime_length; i++) {
        for (int b = 0; b < g->B; b++) s.tokens[b] = g->prime[i];
        if ((status = gen_step(&s)) != MINRNN_OK) return status;
    }
    if (g->end_id >= 0)   /* what a stream that ends at its first draw is stepped with */
        for (int b = 0; b < g->B; b++) s.tokens[b] = g->end_id;
    *s.p = (progress){GENERATION_MAGIC, gen_key(cfg, precision, params, g), 0, g->B, 1};
    return MINRNN_OK;
}

int minrnn_generate_next(const minrnn_config *cfg, int precision, const void *params, const minrnn_generation *g,
                         void *workspace, int64_t max_steps, int32_t *tokens, int64_t *steps, int num_threads) {
    gen s;
    int status = gen_open(&s, cfg, precision, params, g, workspace, num_threads);
    if (status != MINRNN_OK) return status;
    progress *p = s.p;
    if (max_steps < 0 || (max_steps > 0 && !tokens) || !steps || p->magic != GENERATION_MAGIC ||
        p->key != gen_key(cfg, precision, params, g))
        return MINRNN_ERR_ARG;
    int B = g->B, V = s.V;
    *steps = 0;
    while (*steps < max_steps && p->running > 0 && p->steps < g->max_length) {
        if (!p->fresh && (status = gen_step(&s)) != MINRNN_OK) return gen_fail(p, status);
        p->fresh = 0;
        int32_t *out = tokens + (size_t)*steps * B;
        for (int b = 0; b < B; b++) {
            out[b] = -1;
            if (s.ended[b]) continue;
            int32_t written;
            int ended;
            status = draw(s.logits + (size_t)b * V, V, &g->samplers[g->num_samplers == 1 ? 0 : b], g->banned_id,
                          g->end_id, g->stop, g->stop_length, s.tail + (size_t)b * g->stop_length, p->steps,
                          s.scratch, &written, &ended);
            if (status != MINRNN_OK) return gen_fail(p, status);
            if (written >= 0) out[b] = s.tokens[b] = written;
            if (ended) s.ended[b] = 1, p->running--;
        }
        p->steps++, (*steps)++;
    }
    return MINRNN_OK;
}

/* ---- streams that join a batch at any step */

/* Whether a stream's fields fit a model of V tokens, and where it is is possible. */
static int stream_ok(const minrnn_stream *s, int V) {
    if (!s || !s->fed || s->fed_length < 1 || s->read < 0 || s->read > s->fed_length || s->draws < 0) return 0;
    if (s->end_id < -1 || s->end_id >= V || s->banned_id < -1 || s->banned_id >= V || s->max_length < 0) return 0;
    if (s->stop_length < 0 || s->stop_length > MINRNN_MAX_STOP || (s->stop_length > 0 && (!s->stop || !s->tail)))
        return 0;
    if (s->last < 0 || s->last >= V) return 0;
    if (!(s->sampler.temperature >= 0.0) || s->sampler.top_k < 0 ||
        !(s->sampler.top_p > 0.0 && s->sampler.top_p <= 1.0))
        return 0;
    for (int i = s->read; i < s->fed_length; i++)
        if (s->fed[i] < 0 || s->fed[i] >= V) return 0;
    for (int i = 0; i < s->stop_length; i++)
        if (s->stop[i] < 0 || s->stop[i] >= V) return 0;
    return 1;
}

int minrnn_streams_step(const minrnn_config *cfg, int precision, const void *params, minrnn_stream *const *streams,
                        int B, const int32_t *labels, const float *vectors, float *state, float *logits,
                        float *workspace, void *scratch, int32_t *tokens, int num_threads) {
    int status = minrnn_config_check(cfg);
    if (status != MINRNN_OK) return status;
    int V = cfg->vocab_size;
    if (cfg->task != MINRNN_TASK_LM || B < 1 || !streams || !state || !logits || !workspace || !scratch || !tokens ||
        (cfg->cond == MINRNN_COND_LABEL && !labels) || (cfg->cond == MINRNN_COND_VECTOR && !vectors))
        return MINRNN_ERR_ARG;
    for (int b = 0; b < B; b++) {
        const minrnn_stream *s = streams[b];
        if (!stream_ok(s, V)) return MINRNN_ERR_ARG;
        tokens[b] = s->read < s->fed_length ? s->fed[s->read] : s->last;
    }
    minrnn_batch batch = {.B = B, .T = 1, .tokens = tokens, .labels = labels, .vectors = vectors};
    if ((status = minrnn_step_compact(cfg, precision, params, &batch, state, logits, workspace, num_threads)) !=
        MINRNN_OK)
        return status;
    for (int b = 0; b < B; b++) {
        minrnn_stream *s = streams[b];
        tokens[b] = -1;
        if (s->ended) continue;
        if (s->read < s->fed_length && ++s->read < s->fed_length) continue;   /* still reading */
        if (s->draws >= s->max_length) {   /* a stream of no draws: done once fed */
            s->ended = 1;
            continue;
        }
        int32_t written;
        int ended;
        status = draw(logits + (size_t)b * V, V, &s->sampler, s->banned_id, s->end_id, s->stop, s->stop_length,
                      s->tail, s->draws, scratch, &written, &ended);
        if (status != MINRNN_OK) {   /* this stream's logits, say, are not finite: it ends, the others go on */
            s->status = status, s->ended = 1;
            continue;
        }
        s->draws++;
        if (written >= 0) s->last = tokens[b] = written;
        s->ended = ended || s->draws >= s->max_length;
    }
    return MINRNN_OK;
}
