/* test_seq2seq.c: sequence to sequence with attention through the public header only: the
 * configuration and the parameter block, bitwise independence of the thread count, padding,
 * the stamp, and learning a small task. The math itself is checked against the reference from
 * Python (tests/test_core_seq2seq.py). Prints one line per failed check; non-zero exit if any. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minrnn.h"

static int failures = 0;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
                                             printf(__VA_ARGS__); printf("\n"); } } while (0)

static const char *const KINDS[] = {"none", "dot", "general", "additive"};

static minrnn_config seq2seq(int cell, int V, int E, int H, int L, float dropout, int attention) {
    minrnn_config c = {cell, MINRNN_TANH, V, E, H, L, dropout, MINRNN_TASK_SEQ2SEQ, 0, MINRNN_COND_NONE, 0, 0,
                       MINRNN_MEAN, attention, attention == MINRNN_ATTENTION_ADDITIVE ? 5 : 0, 0, 0, 0};
    return c;
}

static void test_config_and_tensors(void) {
    minrnn_config c = seq2seq(MINRNN_LSTM, 10, 0, 8, 1, 0.0f, MINRNN_ATTENTION_ADDITIVE);
    CHECK(minrnn_config_check(&c) == MINRNN_OK, "valid seq2seq rejected");
    /* each model: LSTM(10 -> 8) = 4*8*(10+8) + 8*8 floats; then attn.query, attn.key (5, 8), attn.v (5),
     * combine (8, 16) + 8, out (10, 8) + 10 */
    size_t model = 4 * 8 * (10 + 8) + 8 * 8, expect = 2 * model + 2 * 5 * 8 + 5 + 8 * 16 + 8 + 10 * 8 + 10;
    CHECK(minrnn_param_count(&c) == expect, "param count %zu != %zu", minrnn_param_count(&c), expect);
    const char *names[] = {"enc.weight_ih_l0", "enc.weight_hh_l0", "enc.bias_ih_l0", "enc.bias_hh_l0",
                           "dec.weight_ih_l0", "dec.weight_hh_l0", "dec.bias_ih_l0", "dec.bias_hh_l0",
                           "attn.query", "attn.key", "attn.v", "combine.weight", "combine.bias",
                           "out.weight", "out.bias"};
    int n = (int)(sizeof names / sizeof names[0]);
    CHECK(minrnn_tensor_count(&c) == n, "%d tensors", minrnn_tensor_count(&c));
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        minrnn_tensor t;
        CHECK(minrnn_tensor_info(&c, i, &t) == MINRNN_OK && !strcmp(t.name, names[i]) && t.offset == at,
              "tensor %d is %s at %lld", i, t.name, (long long)t.offset);
        at += (int64_t)t.rows * t.cols;
    }
    CHECK((size_t)at == expect, "tensors cover %lld floats", (long long)at);
    int counts[] = {8 + 2, 8 + 4, 8 + 5, 8 + 7};   /* none, dot, general, additive */
    for (int k = 0; k < 4; k++) {
        minrnn_config d = seq2seq(MINRNN_GRU, 10, 3, 8, 1, 0.0f, k);
        CHECK(minrnn_tensor_count(&d) == counts[k] + 2, "%s: %d tensors", KINDS[k], minrnn_tensor_count(&d));
    }
    /* a captioner of grids of 5-vectors, fed: no encoder; the decoder's cond.weight (32, 5 + 5) for
     * [mean ; context]; attn.key (5, 5) and combine (8, 5 + 8) read the grid's width */
    minrnn_config g = c;
    g.input_size = 5, g.input_feeding = 1;
    CHECK(minrnn_config_check(&g) == MINRNN_OK, "valid captioner rejected");
    size_t dec = 4 * 8 * (10 + 8 + 10) + 8 * 8;
    CHECK(minrnn_param_count(&g) == dec + 5 * 8 + 5 * 5 + 5 + 8 * 13 + 8 + 10 * 8 + 10, "captioner's %zu floats",
          minrnn_param_count(&g));
    minrnn_tensor t;
    CHECK(minrnn_tensor_info(&g, 0, &t) == MINRNN_OK && !strcmp(t.name, "dec.cond.weight") && t.rows == 32
          && t.cols == 10 && t.offset == 0, "captioner's first tensor %s (%d, %d)", t.name, t.rows, t.cols);
    minrnn_config bad[] = {c, c, c, c, c, c, c, c, c, c, c};
    bad[0].attention_size = 0;                                     /* additive of size 0 */
    bad[1].attention = MINRNN_ATTENTION_DOT;                       /* a size without additive */
    bad[2].attention = 4;
    bad[3].vocab_size = 2;                                         /* no room for a symbol */
    bad[4].cond = MINRNN_COND_LABEL, bad[4].cond_size = 2;
    bad[5].task = MINRNN_TASK_LM;                                  /* attention on a language model */
    bad[6].reduction = MINRNN_SUM;
    bad[7].input_feeding = 2;
    bad[8].attention = MINRNN_ATTENTION_NONE, bad[8].attention_size = 0, bad[8].input_feeding = 1;   /* nothing to feed */
    bad[9].attention = MINRNN_ATTENTION_DOT, bad[9].attention_size = 0, bad[9].input_size = 5;   /* h . e: 8 by 5 */
    bad[10] = seq2seq(MINRNN_LSTM, 10, 0, 8, 1, 0.0f, MINRNN_ATTENTION_NONE), bad[10].task = MINRNN_TASK_LM,
        bad[10].input_feeding = 1;                                 /* feeding a language model */
    for (int i = 0; i < 11; i++)
        CHECK(minrnn_config_check(&bad[i]) == MINRNN_ERR_CONFIG, "bad seq2seq config %d accepted", i);
    float *params = calloc(expect, sizeof(float));
    CHECK(minrnn_init_params(&c, params, 1, MINRNN_INIT_IRNN) == MINRNN_ERR_ARG, "irnn init of a seq2seq model");
    free(params);
}

/* A batch of B pairs with ragged lengths, and everything a forward and backward needs. */
typedef struct {
    minrnn_config c;
    int B, Ts, Td;
    int32_t *source, *source_lengths, *inputs, *targets, *target_lengths;
    float *grid;   /* a captioner's (Ts, B, D), else NULL (and source is) */
    float *params, *masks, *ws, *logits, *alignments, *grads;
    minrnn_pairs pairs;
} bench;

static bench make(minrnn_config c, int B, int Ts, int Td, uint64_t seed) {
    bench b = {.c = c, .B = B, .Ts = Ts, .Td = Td};
    int V = c.vocab_size;
    minrnn_rng rng;
    minrnn_rng_seed(&rng, seed);
    b.source = malloc(sizeof(int32_t) * Ts * B), b.inputs = malloc(sizeof(int32_t) * Td * B);
    b.targets = malloc(sizeof(int32_t) * Td * B);
    b.source_lengths = malloc(sizeof(int32_t) * B), b.target_lengths = malloc(sizeof(int32_t) * B);
    for (int i = 0; i < B; i++) {
        b.source_lengths[i] = i == 0 ? Ts : 1 + (int)(minrnn_rng_next(&rng) % (uint64_t)Ts);
        b.target_lengths[i] = i == 1 % B ? Td : 1 + (int)(minrnn_rng_next(&rng) % (uint64_t)Td);
    }
    for (int i = 0; i < Ts * B; i++) b.source[i] = (int32_t)(minrnn_rng_next(&rng) % (uint64_t)(V - 2));
    if (c.input_size) {   /* a grid instead of ids */
        size_t D = (size_t)c.input_size;
        b.grid = malloc(sizeof(float) * Ts * B * D);
        for (size_t i = 0; i < (size_t)Ts * B * D; i++) b.grid[i] = 2.0f * minrnn_rng_uniform(&rng) - 1.0f;
        free(b.source), b.source = NULL;
    }
    for (int i = 0; i < Td * B; i++) {
        b.targets[i] = (int32_t)(minrnn_rng_next(&rng) % (uint64_t)(V - 2));
        b.inputs[i] = i < B ? V - 2 : b.targets[i - B];   /* start, then the target shifted */
    }
    for (int i = 0; i < B; i++) b.targets[(b.target_lengths[i] - 1) * B + i] = V - 1;   /* end */
    size_t n = minrnn_param_count(&c);
    b.params = malloc(n * sizeof(float)), b.grads = calloc(n, sizeof(float));
    minrnn_init_params(&c, b.params, seed, MINRNN_INIT_DEFAULT);
    if (c.dropout > 0.0f) {
        size_t per = (size_t)c.num_layers * B * c.hidden_size, Te = c.input_size ? 0 : (size_t)Ts;   /* a grid: no encoder */
        b.masks = malloc((Te + Td) * per * sizeof(float));
        if (Te) minrnn_dropout_masks(&c, B, Ts, &rng, b.masks);
        minrnn_dropout_masks(&c, B, Td, &rng, b.masks + Te * per);
    }
    b.ws = malloc(minrnn_seq2seq_workspace_size(&c, B, Ts, Td) * sizeof(float));
    b.logits = malloc(sizeof(float) * Td * B * V), b.alignments = malloc(sizeof(float) * Td * B * Ts);
    b.pairs = (minrnn_pairs){B, Ts, Td, b.source, b.source_lengths, b.inputs, b.targets, b.target_lengths, b.grid};
    return b;
}

static void release(bench *b) {
    free(b->source), free(b->source_lengths), free(b->inputs), free(b->targets), free(b->target_lengths), free(b->grid);
    free(b->params), free(b->masks), free(b->ws), free(b->logits), free(b->alignments), free(b->grads);
}

/* forward (loss, logits, alignments) then backward into zeroed grads; returns the status */
static int run(bench *b, float *loss, int threads) {
    memset(b->grads, 0, minrnn_param_count(&b->c) * sizeof(float));
    int s = minrnn_seq2seq_forward(&b->c, b->params, &b->pairs, b->masks, b->logits, b->alignments, loss,
                                   b->ws, threads);
    return s != MINRNN_OK ? s : minrnn_seq2seq_backward(&b->c, b->params, &b->pairs, b->masks, b->ws, b->grads,
                                                        threads);
}

/* c as a captioner of grids of D-vectors (for dot, D = H), fed its context if feed and it attends. */
static minrnn_config captioner(minrnn_config c, int D, int feed) {
    c.input_size = c.attention == MINRNN_ATTENTION_DOT ? c.hidden_size : D;
    c.input_feeding = feed && c.attention != MINRNN_ATTENTION_NONE;
    return c;
}

/* Sizes that take the threaded paths (products above the parallel threshold), for every kind and
 * cell, with dropout, translating and captioning (a grid of 24-vectors), each fed or not: the loss,
 * logits, alignments and every gradient are the same bits. */
static void test_threads_change_no_bit(void) {
    int cells[] = {MINRNN_LSTM, MINRNN_GRU, MINRNN_RNN};
    for (int variant = 0; variant < 4; variant++)
    for (int k = 0; k < 4; k++)
        for (int ci = 0; ci < 3; ci++) {
            minrnn_config c = seq2seq(cells[ci], 40, ci == 1 ? 16 : 0, 48, 2, 0.25f, k);
            if (variant & 1) c.input_feeding = k != MINRNN_ATTENTION_NONE;
            if (variant & 2) c = captioner(c, 24, variant & 1);
            bench b = make(c, 9, 13, 11, 7 + (uint64_t)k);
            size_t n = minrnn_param_count(&c), nl = (size_t)11 * 9 * 40, na = (size_t)11 * 9 * 13;
            float *grads = malloc(n * sizeof(float)), *logits = malloc(nl * sizeof(float));
            float *align = malloc(na * sizeof(float)), loss1, loss;
            CHECK(run(&b, &loss1, 1) == MINRNN_OK, "%s: run", KINDS[k]);
            memcpy(grads, b.grads, n * sizeof(float)), memcpy(logits, b.logits, nl * sizeof(float));
            memcpy(align, b.alignments, na * sizeof(float));
            for (int threads = 2; threads <= 3; threads++) {
                CHECK(run(&b, &loss, threads) == MINRNN_OK, "%s: run", KINDS[k]);
                CHECK(!memcmp(&loss, &loss1, sizeof loss) && !memcmp(grads, b.grads, n * sizeof(float))
                      && !memcmp(logits, b.logits, nl * sizeof(float)) && !memcmp(align, b.alignments, na * sizeof(float)),
                      "%s cell %d variant %d: %d threads differ from 1", KINDS[k], cells[ci], variant, threads);
            }
            CHECK(isfinite(loss1) && loss1 > 0.0f, "%s: loss %g", KINDS[k], loss1);
            free(grads), free(logits), free(align);
            release(&b);
        }
}

/* What lies past a record's end (source tokens, decoder inputs and targets) changes nothing; the
 * alignments are a distribution over each pair's own source and zero beyond it. */
static void test_padding_changes_nothing(void) {
    for (int k = 0; k < 4; k++) {
        bench b = make(seq2seq(MINRNN_LSTM, 9, 0, 6, 1, 0.0f, k), 4, 5, 6, 3);
        size_t n = minrnn_param_count(&b.c);
        float loss1, loss2, *grads = malloc(n * sizeof(float));
        CHECK(run(&b, &loss1, 1) == MINRNN_OK, "run");
        memcpy(grads, b.grads, n * sizeof(float));
        for (int t = 0; t < b.Td && k; t++)
            for (int i = 0; i < b.B; i++) {
                float sum = 0.0f;
                for (int s = 0; s < b.Ts; s++) {
                    float a = b.alignments[((size_t)t * b.B + i) * b.Ts + s];
                    CHECK(s < b.source_lengths[i] ? a > 0.0f : a == 0.0f, "%s: alpha %g at s %d", KINDS[k], a, s);
                    sum += a;
                }
                CHECK(fabsf(sum - 1.0f) < 1e-5f, "%s: alpha sums to %g", KINDS[k], sum);   /* a few roundings */
            }
        for (int i = 0; i < b.B; i++) {
            for (int s = b.source_lengths[i]; s < b.Ts; s++) b.source[s * b.B + i] = 6 - b.source[s * b.B + i];
            for (int t = b.target_lengths[i]; t < b.Td; t++)
                b.inputs[t * b.B + i] = 1, b.targets[t * b.B + i] = 8;
        }
        CHECK(run(&b, &loss2, 1) == MINRNN_OK, "run");
        CHECK(loss1 == loss2 && !memcmp(grads, b.grads, n * sizeof(float)), "%s: padding changed the result", KINDS[k]);
        free(grads);
        release(&b);
    }
}

static void test_backward_needs_its_forward(void) {
    bench b = make(seq2seq(MINRNN_GRU, 9, 0, 6, 1, 0.0f, MINRNN_ATTENTION_DOT), 3, 4, 4, 5);
    float loss;
    CHECK(minrnn_seq2seq_backward(&b.c, b.params, &b.pairs, NULL, b.ws, b.grads, 1) == MINRNN_ERR_NO_FORWARD,
          "backward before any forward");
    CHECK(run(&b, &loss, 1) == MINRNN_OK, "run");
    CHECK(minrnn_seq2seq_backward(&b.c, b.params, &b.pairs, NULL, b.ws, b.grads, 1) == MINRNN_ERR_NO_FORWARD,
          "a second backward");
    CHECK(minrnn_seq2seq_forward(&b.c, b.params, &b.pairs, NULL, NULL, NULL, &loss, b.ws, 1) == MINRNN_OK, "fwd");
    b.params[minrnn_param_count(&b.c) - 1] += 1.0f;   /* out.bias: the attention's own tensors count too */
    CHECK(minrnn_seq2seq_backward(&b.c, b.params, &b.pairs, NULL, b.ws, b.grads, 1) == MINRNN_ERR_NO_FORWARD,
          "backward after the parameters changed");
    b.source[0] = b.c.vocab_size - 2;   /* start is never a source token */
    CHECK(minrnn_seq2seq_forward(&b.c, b.params, &b.pairs, NULL, NULL, NULL, NULL, b.ws, 1) == MINRNN_ERR_ARG,
          "start in a source");
    b.source[0] = 0, b.target_lengths[0] = b.Td + 1;
    CHECK(minrnn_seq2seq_forward(&b.c, b.params, &b.pairs, NULL, NULL, NULL, NULL, b.ws, 1) == MINRNN_ERR_ARG,
          "a target longer than Td");
    b.target_lengths[0] = 1;
    minrnn_config lm = b.c;
    lm.task = MINRNN_TASK_LM, lm.attention = 0;
    CHECK(minrnn_seq2seq_forward(&lm, b.params, &b.pairs, NULL, NULL, NULL, NULL, b.ws, 1) == MINRNN_ERR_ARG,
          "a language model through the seq2seq calls");
    minrnn_batch batch = {1, 1, b.source, NULL, NULL, NULL, NULL, NULL, NULL};
    CHECK(minrnn_forward(&b.c, b.params, &batch, b.ws, NULL, NULL, NULL, NULL, b.ws, 1) == MINRNN_ERR_ARG,
          "a seq2seq model through minrnn_forward");
    release(&b);
}

/* Reversing strings of 1-5 symbols from 6: every kind learns it in a few hundred Adam steps; with
 * attention the loss ends lower than without (the decoder can look at each symbol it writes). */
static void test_learns_to_reverse(void) {
    float final[4];
    for (int k = 0; k < 4; k++) {
        minrnn_config c = seq2seq(MINRNN_LSTM, 8, 0, 32, 1, 0.0f, k);
        bench b = make(c, 32, 5, 6, 11);
        size_t n = minrnn_param_count(&c);
        float *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float)), loss = 0.0f;
        minrnn_optimizer opt = {MINRNN_ADAM, 0.01f, 0.0f, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f, 5.0f, 0, 0.0f};
        minrnn_rng rng, data;
        minrnn_rng_seed(&rng, 1), minrnn_rng_seed(&data, 2);
        for (int step = 0; step < 400; step++) {
            for (int i = 0; i < b.B; i++) {
                int len = 1 + (int)(minrnn_rng_next(&data) % 5);
                b.source_lengths[i] = len, b.target_lengths[i] = len + 1;
                for (int s = 0; s < 5; s++) b.source[s * b.B + i] = (int32_t)(minrnn_rng_next(&data) % 6);
                for (int t = 0; t < 6; t++) {
                    int32_t y = t < len ? b.source[(len - 1 - t) * b.B + i] : t == len ? 7 : 0;
                    b.targets[t * b.B + i] = y;
                    b.inputs[t * b.B + i] = t == 0 ? 6 : b.targets[(t - 1) * b.B + i];
                }
            }
            int s = minrnn_seq2seq_train_step(&c, b.params, b.grads, m, v, &opt, &rng, &b.pairs, &loss, NULL, b.ws, 0);
            CHECK(s == MINRNN_OK, "%s: step %d: %s", KINDS[k], step, minrnn_strerror(s));
        }
        final[k] = loss;
        CHECK(loss < 0.5f, "%s: loss %g after 400 steps", KINDS[k], loss);
        free(m), free(v);
        release(&b);
    }
    for (int k = 1; k < 4; k++)
        CHECK(final[k] < final[0], "%s attention %g, none %g", KINDS[k], final[k], final[0]);
}

/* One source's translation (source), or one grid's caption (grid), into out; returns the status. The
 * translate and caption below call it. */
static int search(const minrnn_config *c, int precision, const void *params, const int32_t *source,
                  const float *grid, int n, int beam, int max_length, double temperature, uint64_t seed, int threads,
                  int32_t *out, minrnn_translation *result, float *alignments) {
    void *work = malloc(minrnn_seq2seq_translate_size(c, n, beam, max_length));
    minrnn_rng rng;
    minrnn_rng_seed(&rng, seed);
    int status = source ? minrnn_seq2seq_translate(c, precision, params, source, n, beam, max_length, temperature, &rng,
                                                   out, result, alignments, work, threads)
                        : minrnn_seq2seq_caption(c, precision, params, grid, n, beam, max_length, temperature, &rng, out,
                                                 result, alignments, work, threads);
    free(work);
    return status;
}

static int translate(const minrnn_config *c, int precision, const void *params, const int32_t *source, int n,
                     int beam, int max_length, double temperature, uint64_t seed, int threads, int32_t *out,
                     minrnn_translation *result, float *alignments) {
    return search(c, precision, params, source, NULL, n, beam, max_length, temperature, seed, threads, out, result,
                  alignments);
}

/* Beam 1 is greedy; a wider beam is never less probable; the thread count changes no bit; compact
 * weights translate as the float32 block of their rounded values; alignments are distributions. */
static void test_translation(void) {
    for (int k = 0; k < 4; k++) {
        minrnn_config c = seq2seq(MINRNN_GRU, 12, 4, 40, 2, 0.0f, k);
        size_t n = minrnn_param_count(&c);
        float *params = malloc(n * sizeof(float)), *rounded = malloc(n * sizeof(float));
        uint16_t *half = malloc(n * sizeof(uint16_t));
        minrnn_init_params(&c, params, 21 + (uint64_t)k, MINRNN_INIT_DEFAULT);
        for (size_t i = 0; i < n; i++) params[i] *= 3.0f;   /* confident enough to end some translations */
        minrnn_params_compact(&c, params, MINRNN_BFLOAT16, half);
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)half[i] << 16;
            memcpy(&rounded[i], &u, sizeof u);
        }
        int32_t source[7] = {0, 3, 9, 2, 2, 7, 1}, out1[12], out[12], out3[12];
        float align1[12 * 7], align[12 * 7];
        minrnn_translation greedy, r, r3;
        CHECK(translate(&c, MINRNN_FLOAT32, params, source, 7, 1, 12, 0.0, 0, 1, out1, &greedy, align1) == MINRNN_OK,
              "%s: greedy", KINDS[k]);
        CHECK(greedy.steps >= greedy.length && greedy.steps <= greedy.length + 1 && greedy.logprob <= 0.0,
              "%s: greedy result %d %d %g", KINDS[k], greedy.length, greedy.steps, greedy.logprob);
        for (int beam = 2; beam <= 6; beam += 4) {
            CHECK(translate(&c, MINRNN_FLOAT32, params, source, 7, beam, 12, 0.0, 0, 1, out, &r, NULL) == MINRNN_OK
                  && r.logprob >= greedy.logprob, "%s: beam %d %g < greedy %g", KINDS[k], beam, r.logprob, greedy.logprob);
            CHECK(translate(&c, MINRNN_FLOAT32, params, source, 7, beam, 12, 0.0, 0, 3, out3, &r3, NULL) == MINRNN_OK
                  && r3.length == r.length && r3.logprob == r.logprob && !memcmp(out3, out, (size_t)r.length * 4),
                  "%s: beam %d on 3 threads differs", KINDS[k], beam);
        }
        for (int t = 0; t < greedy.steps && k; t++) {
            float sum = 0.0f;
            for (int s = 0; s < 7; s++) sum += align1[t * 7 + s];
            CHECK(fabsf(sum - 1.0f) < 1e-5f, "%s: alignment row %d sums to %g", KINDS[k], t, sum);   /* 7 roundings */
        }
        /* bfloat16 against float32 of the rounded values, sampling with a seed (the same draws) */
        CHECK(translate(&c, MINRNN_BFLOAT16, half, source, 7, 1, 12, 0.9, 5, 1, out, &r, align) == MINRNN_OK
              && translate(&c, MINRNN_FLOAT32, rounded, source, 7, 1, 12, 0.9, 5, 2, out3, &r3, align1) == MINRNN_OK
              && r.length == r3.length && r.logprob == r3.logprob && !memcmp(out, out3, (size_t)r.length * 4)
              && !memcmp(align, align1, (size_t)r.steps * 7 * sizeof(float)), "%s: bfloat16 differs", KINDS[k]);
        /* int8: the same bits on 1 and 3 threads, and greedy near float32 on the values it holds (a
         * block read at a wrong offset would translate otherwise: the parts are blocks of their own) */
        size_t bytes = minrnn_params_size(&c, MINRNN_INT8);
        unsigned char *q8 = malloc(bytes);
        float *held = malloc(n * sizeof(float));
        CHECK(minrnn_params_compact(&c, params, MINRNN_INT8, q8) == MINRNN_OK
              && minrnn_params_expand(&c, MINRNN_INT8, q8, held) == MINRNN_OK, "%s: int8 block", KINDS[k]);
        for (int beam = 1; beam <= 2; beam++) {
            minrnn_translation f;
            CHECK(translate(&c, MINRNN_INT8, q8, source, 7, beam, 12, 0.0, 0, 1, out, &r, NULL) == MINRNN_OK
                  && translate(&c, MINRNN_INT8, q8, source, 7, beam, 12, 0.0, 0, 3, out3, &r3, NULL) == MINRNN_OK
                  && r.length == r3.length && r.logprob == r3.logprob && !memcmp(out, out3, (size_t)r.length * 4),
                  "%s: int8 beam %d differs on 3 threads", KINDS[k], beam);
            if (beam > 1) continue;   /* a wider beam may take another path: near-ties */
            CHECK(translate(&c, MINRNN_FLOAT32, held, source, 7, beam, 12, 0.0, 0, 1, out1, &f, NULL) == MINRNN_OK
                  && f.length == r.length && !memcmp(out1, out, (size_t)r.length * 4)
                  && fabs(f.logprob - r.logprob) < 0.2,   /* five times the largest these seeds give, 0.04 */
                  "%s: int8 greedy: %d ids, log p %g; float32 %d, %g", KINDS[k], r.length, r.logprob, f.length,
                  f.logprob);
        }
        free(q8), free(held);
        int32_t bad[2] = {0, 10};   /* 10 is start */
        CHECK(translate(&c, MINRNN_FLOAT32, params, bad, 2, 1, 12, 0.0, 0, 1, out, &r, NULL) == MINRNN_ERR_ARG,
              "start in a source");
        CHECK(minrnn_seq2seq_translate_size(&c, 7, 0, 12) == 0 && minrnn_seq2seq_translate_size(&c, 0, 1, 12) == 0
              && minrnn_seq2seq_translate_size(&c, 7, 1, 0) == 0, "sizes out of range");
        minrnn_rng rng;
        minrnn_rng_seed(&rng, 1);
        CHECK(minrnn_seq2seq_translate(&c, MINRNN_FLOAT32, params, source, 7, 2, 12, 0.5, &rng, out, &r, NULL, half, 1)
              == MINRNN_ERR_ARG, "sampling with a beam");
        free(params), free(rounded), free(half);
    }
}

/* One grid's caption into out; returns the status. */
static int caption(const minrnn_config *c, int precision, const void *params, const float *grid, int n, int beam,
                   int max_length, double temperature, uint64_t seed, int threads, int32_t *out,
                   minrnn_translation *result, float *alignments) {
    return search(c, precision, params, NULL, grid, n, beam, max_length, temperature, seed, threads, out, result,
                  alignments);
}

/* Captions of a grid of 9 places, fed and not: beam 1 is greedy and a wider beam is never less
 * probable, the thread count changes no bit, compact weights caption as their rounded float32
 * values; ids where a grid belongs (and a grid where ids do) are refused, as is a NaN. */
static void test_caption(void) {
    enum { N = 9, D = 5, STEPS = 10 };
    float grid[N * D];
    minrnn_rng g;
    minrnn_rng_seed(&g, 3);
    for (int i = 0; i < N * D; i++) grid[i] = 2.0f * minrnn_rng_uniform(&g) - 1.0f;
    for (int k = 0; k < 4; k++)
        for (int feed = 0; feed <= (k != MINRNN_ATTENTION_NONE); feed++) {
            minrnn_config c = captioner(seq2seq(MINRNN_LSTM, 11, 3, 40, 2, 0.0f, k), D, feed);
            if (k == MINRNN_ATTENTION_DOT) c.input_size = D, c.hidden_size = D;   /* dot: D = H */
            CHECK(minrnn_config_check(&c) == MINRNN_OK, "%s: captioner config", KINDS[k]);
            size_t n = minrnn_param_count(&c);
            float *params = malloc(n * sizeof(float)), *rounded = malloc(n * sizeof(float));
            uint16_t *half = malloc(n * sizeof(uint16_t));
            minrnn_init_params(&c, params, 31 + (uint64_t)k, MINRNN_INIT_DEFAULT);
            for (size_t i = 0; i < n; i++) params[i] *= 3.0f;
            minrnn_params_compact(&c, params, MINRNN_BFLOAT16, half);
            for (size_t i = 0; i < n; i++) {
                uint32_t u = (uint32_t)half[i] << 16;
                memcpy(&rounded[i], &u, sizeof u);
            }
            int32_t out1[STEPS], out[STEPS], out3[STEPS];
            float align1[STEPS * N], align[STEPS * N];
            minrnn_translation greedy, r, r3;
            CHECK(caption(&c, MINRNN_FLOAT32, params, grid, N, 1, STEPS, 0.0, 0, 1, out1, &greedy, align1) == MINRNN_OK
                  && greedy.logprob <= 0.0, "%s feed %d: greedy caption", KINDS[k], feed);
            CHECK(caption(&c, MINRNN_FLOAT32, params, grid, N, 1, STEPS, 0.0, 0, 3, out3, &r3, align) == MINRNN_OK
                  && r3.length == greedy.length && r3.logprob == greedy.logprob
                  && !memcmp(out3, out1, (size_t)greedy.length * 4)
                  && !memcmp(align, align1, (size_t)greedy.steps * N * sizeof(float)),
                  "%s feed %d: 3 threads caption differently", KINDS[k], feed);
            CHECK(caption(&c, MINRNN_FLOAT32, params, grid, N, 4, STEPS, 0.0, 0, 2, out, &r, NULL) == MINRNN_OK
                  && r.logprob >= greedy.logprob, "%s feed %d: beam %g < greedy %g", KINDS[k], feed, r.logprob,
                  greedy.logprob);
            CHECK(caption(&c, MINRNN_BFLOAT16, half, grid, N, 1, STEPS, 0.9, 5, 1, out, &r, align) == MINRNN_OK
                  && caption(&c, MINRNN_FLOAT32, rounded, grid, N, 1, STEPS, 0.9, 5, 2, out3, &r3, align1) == MINRNN_OK
                  && r.length == r3.length && r.logprob == r3.logprob && !memcmp(out, out3, (size_t)r.length * 4)
                  && !memcmp(align, align1, (size_t)r.steps * N * sizeof(float)),
                  "%s feed %d: bfloat16 caption differs", KINDS[k], feed);
            int32_t ids[2] = {0, 1};
            CHECK(translate(&c, MINRNN_FLOAT32, params, ids, 2, 1, STEPS, 0.0, 0, 1, out, &r, NULL) == MINRNN_ERR_ARG,
                  "ids to a captioner");
            float nan_grid[N * D];
            memcpy(nan_grid, grid, sizeof grid);
            nan_grid[7] = NAN;
            CHECK(caption(&c, MINRNN_FLOAT32, params, nan_grid, N, 1, STEPS, 0.0, 0, 1, out, &r, NULL) == MINRNN_ERR_ARG,
                  "a NaN in a grid");
            free(params), free(rounded), free(half);
        }
    minrnn_config plain = seq2seq(MINRNN_GRU, 12, 4, 40, 2, 0.0f, MINRNN_ATTENTION_GENERAL);
    size_t n = minrnn_param_count(&plain);
    float *params = calloc(n, sizeof(float));
    int32_t out[STEPS];
    minrnn_translation r;
    CHECK(caption(&plain, MINRNN_FLOAT32, params, grid, N, 1, STEPS, 0.0, 0, 1, out, &r, NULL) == MINRNN_ERR_ARG,
          "a grid to a translator");
    free(params);
}

int main(void) {
    test_config_and_tensors();
    test_translation();
    test_caption();
    test_threads_change_no_bit();
    test_padding_changes_nothing();
    test_backward_needs_its_forward();
    test_learns_to_reverse();
    printf("test_seq2seq: %s\n", failures ? "FAILED" : "ok");
    return failures != 0;
}
