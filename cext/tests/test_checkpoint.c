/* test_checkpoint.c: minrnn_checkpoint_save / _peek / _load, format 4 (and formats 1, 2 and 3
 * read), through the public API only.
 *
 * Round trips (bitwise, NaN payloads included) of language models, classifiers with their label
 * names, conditioned record models, one_bias and SUM, seq2seq models of every attention kind;
 * bfloat16 parameters (rounded as written, against a rounding written here from the format's
 * definition; inference only); format-1 files built here byte by byte (as minrnn 0.1 and 0.2 wrote
 * them), format-2 files (format 3 without its precision field) and format-3 files (format 4
 * without its attention fields); the seq2seq rules (attention fields, START/END, no bare
 * encoder); changed fields (MISMATCH), every truncation, every header bit
 * flipped, random byte flips, hostile headers with a valid checksum, each rule on contents
 * refused by save and by the readers, other versions, non-checkpoints, I/O failures (which step
 * failed, errno kept, no temporary file left behind), reading through one descriptor while the
 * path is replaced, overwriting, and the argument checks of save. Files go to a fresh mkdtemp
 * folder in /dev/shm (or /tmp without it), removed at the end.
 *
 *   gcc -std=c11 -O1 -g -Wall -Wextra -fopenmp -fsanitize=address,undefined -Icext \
 *       cext/tests/test_checkpoint.c cext/checkpoint.c cext/core.c cext/cells.c -lm \
 *       -o /tmp/test_checkpoint && /tmp/test_checkpoint
 *
 * It needs only minrnn_config_check, minrnn_param_count and minrnn_state_size (core.c, with
 * cells.c's table) besides the checkpoint calls. Exit status 0 when every check passes; each
 * failure is printed. Run as root, the unwritable-folder case cannot happen (root writes to a
 * 0555 folder) and says so.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "../minrnn.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        checks++;                                                            \
        if (!(cond)) {                                                       \
            failures++;                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

/* The test's own copy of the format's constants, written from the format table. */
enum {
    HEADER = 512, TRAILER = 8,
    O_VERSION = 8, O_HEADER_SIZE = 12, O_CELL = 16, O_NONLIN = 20, O_V = 24, O_E = 28, O_H = 32,
    O_L = 36, O_DROPOUT = 40, O_ENCODING = 44, O_HAS_TRAIN = 48, O_B = 52, O_T = 56, O_KIND = 60,
    O_LR = 64, O_MOMENTUM = 68, O_ALPHA = 72, O_BETA1 = 76, O_BETA2 = 80, O_EPS = 84,
    O_CLIP_VALUE = 88, O_CLIP_NORM = 92, O_STEP = 96, O_EPOCH = 104, O_POSITION = 112, O_RNG = 120,
    O_TABLE = 128, O_TASK = 256, O_CLASSES = 260, O_COND = 264, O_COND_SIZE = 268,
    O_ONE_BIAS = 272, O_REDUCTION = 276, O_PRECISION = 280, O_ATTENTION = 284, O_ATTENTION_SIZE = 288,
    O_PADDING = 292, O_WEIGHT_DECAY = 304
};
enum { S_VOCAB, S_PARAMS, S_M, S_V, S_STATE, S_META, S_LABELS, S_COND, SECTIONS };
/* Format 3: format 4 with padding where the attention fields are. Format 2: format 3 with padding
 * where the precision is. Format 1: the same up to byte 128, then six table pairs and zero padding
 * up to 256. */
enum { HEADER_V1 = 256, SECTIONS_V1 = 6, O_PADDING_V1 = 224 };

/* ---- small helpers */

static uint64_t rng_s = 0x0123456789ABCDEFULL;

static uint64_t rnd(void)   /* xorshift64*, for test data only */
{
    rng_s ^= rng_s >> 12;
    rng_s ^= rng_s << 25;
    rng_s ^= rng_s >> 27;
    return rng_s * 0x2545F4914F6CDD1DULL;
}

static void put_u32(unsigned char *p, uint32_t x)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(x >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t x)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(x >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) x |= (uint32_t)p[i] << (8 * i);
    return x;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t x = 0;
    for (int i = 0; i < 8; i++) x |= (uint64_t)p[i] << (8 * i);
    return x;
}

static uint32_t bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float from_bits(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* Recompute the FNV-1a trailer of a whole file image. */
static void rechecksum(unsigned char *b, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i + TRAILER < len; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    put_u64(b + len - TRAILER, h);
}

/* The format-4 image b (len bytes) with section s replaced by the n bytes at data: the later
 * sections move, and the table and the checksum follow. Returns a new image of *out_len bytes. */
static unsigned char *splice(const unsigned char *b, size_t len, int s, const void *data, size_t n,
                             size_t *out_len)
{
    size_t off = (size_t)get_u64(b + O_TABLE + 16 * s), size = (size_t)get_u64(b + O_TABLE + 16 * s + 8);
    *out_len = len - size + n;
    unsigned char *r = malloc(*out_len);
    memcpy(r, b, off);
    if (n) memcpy(r + off, data, n);
    memcpy(r + off + n, b + off + size, len - off - size);
    put_u64(r + O_TABLE + 16 * s + 8, n);
    for (int t = s + 1; t < SECTIONS; t++) put_u64(r + O_TABLE + 16 * t, get_u64(b + O_TABLE + 16 * t) - size + n);
    rechecksum(r, *out_len);
    return r;
}

static char dir[64];

static const char *in_dir(const char *name)   /* one result at a time */
{
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    if (len) fwrite(b, 1, len, f);
    fclose(f);
}

static int count_temp_files(const char *folder)
{
    DIR *d = opendir(folder);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, ".tmp-") != NULL;
    closedir(d);
    return n;
}

static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        chmod(path, 0700);
        DIR *d = opendir(path);
        if (d) {
            for (struct dirent *e; (e = readdir(d));) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
                char sub[512];
                snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                remove_tree(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* ---- checkpoints with their own buffers */

typedef struct {
    minrnn_checkpoint ck;
    size_t P, S;
} owned;

/* A language model with no condition, PyTorch's two biases and the mean loss (the fields of
 * format 1); the helpers below change that. */
static minrnn_config config(int cell, int nonlin, int V, int E, int H, int L, float dropout)
{
    minrnn_config c = {cell, nonlin, V, E, H, L, dropout, MINRNN_TASK_LM, 0, MINRNN_COND_NONE, 0, 0,
                       MINRNN_MEAN, 0, 0, 0, 0, 0};
    return c;
}

static minrnn_config classifier(minrnn_config c, int K)
{
    c.task = MINRNN_TASK_CLASSIFY;
    c.num_classes = K;
    return c;
}

static minrnn_config conditioned(minrnn_config c, int cond, int C)
{
    c.cond = cond;
    c.cond_size = C;
    return c;
}

/* A sequence to sequence model of c's cell and sizes (c: no condition, two biases, the mean loss). */
static minrnn_config seq2seq(minrnn_config c, int attention, int A)
{
    c.task = MINRNN_TASK_SEQ2SEQ;
    c.attention = attention;
    c.attention_size = A;
    return c;
}

static minrnn_config min_char_rnn(minrnn_config c)   /* one hidden bias, the summed loss */
{
    c.one_bias = 1;
    c.reduction = MINRNN_SUM;
    return c;
}

/* The names the labels section holds for this config (the classes, then the condition's labels). */
static int label_count(const minrnn_config *cfg)
{
    return (cfg->task == MINRNN_TASK_CLASSIFY ? cfg->num_classes : 0) +
           (cfg->cond == MINRNN_COND_LABEL ? cfg->cond_size : 0);
}

static float random_finite(void)   /* -0, subnormals and the largest floats included */
{
    float x;
    do x = from_bits((uint32_t)rnd());
    while (!isfinite(x));
    return x;
}

/* A checkpoint with random contents: every float is a random bit pattern (NaNs with payloads,
 * infinities, subnormals, -0 included), so a round trip must be bitwise. */
static owned make(minrnn_config cfg, int encoding, int train, int B, const char *meta)
{
    static const int32_t points[] = {9, 10, 32, 33, 65, 97, 122, 0xE9, 0x3B1, 0x4E2D, 0xD7FF,
                                     0xE000, 0xFFFD, 0x1F600, 0x10FFFF};
    owned o;
    memset(&o, 0, sizeof o);
    minrnn_checkpoint *ck = &o.ck;
    ck->config = cfg;
    ck->encoding = encoding;
    ck->has_train_state = train;
    int V = cfg.vocab_size;
    o.P = minrnn_param_count(&cfg);
    ck->vocab = malloc(sizeof(int32_t) * (size_t)V);
    for (int i = 0; i < V; i++) {
        if (encoding == MINRNN_BYTES) ck->vocab[i] = V <= 128 ? 2 * i + 1 : i;
        else if (V <= (int)(sizeof points / sizeof *points)) ck->vocab[i] = points[i];
        else ck->vocab[i] = 32 + 3 * i;
    }
    ck->params = malloc(sizeof(float) * o.P);
    for (size_t i = 0; i < o.P; i++) ck->params[i] = from_bits((uint32_t)rnd());
    ck->meta_size = meta ? strlen(meta) : 0;
    if (meta) {
        ck->meta = malloc(ck->meta_size + 1);
        memcpy(ck->meta, meta, ck->meta_size);
    }
    /* label names in several scripts and lengths: ASCII, 2-, 3- and 4-byte UTF-8 */
    static const char *const stems[] = {"positive", "n\xc3\xa9gatif", "\xe4\xb8\xad\xe6\x96\x87",
                                        "\xf0\x9f\x98\x80 smile", "x", "a b"};
    int names = label_count(&cfg);
    if (names > 0) {
        ck->labels = malloc(64 * (size_t)names);
        for (int i = 0; i < names; i++)
            ck->labels_size += (uint64_t)sprintf(ck->labels + ck->labels_size, "%s %d\n", stems[i % 6], i);
    }
    if (cfg.cond == MINRNN_COND_VECTOR) {
        ck->cond_shift = malloc(sizeof(float) * (size_t)cfg.cond_size);
        ck->cond_scale = malloc(sizeof(float) * (size_t)cfg.cond_size);
        for (int i = 0; i < cfg.cond_size; i++) ck->cond_shift[i] = random_finite();
        for (int i = 0; i < cfg.cond_size; i++) ck->cond_scale[i] = random_finite();
    }
    if (train) {
        o.S = minrnn_state_size(&cfg, B);
        ck->batch_size = B;
        ck->seq_len = 7;
        ck->optimizer.kind = MINRNN_ADAM;
        ck->optimizer.lr = 1e-3f;
        ck->optimizer.momentum = 0.9f;
        ck->optimizer.alpha = 0.99f;
        ck->optimizer.beta1 = 0.9f;
        ck->optimizer.beta2 = 0.999f;
        ck->optimizer.eps = 1e-8f;
        ck->optimizer.clip_value = 5.0f;
        ck->optimizer.clip_norm = -0.0f;
        ck->optimizer.step = 12345678901LL;
        ck->rng_state = 0xDEADBEEFCAFEF00DULL;
        ck->epoch = 3;
        ck->position = 0x100000000LL;
        ck->m = malloc(sizeof(float) * o.P);
        ck->v = malloc(sizeof(float) * o.P);
        ck->state = malloc(sizeof(float) * o.S);
        for (size_t i = 0; i < o.P; i++) ck->m[i] = from_bits((uint32_t)rnd());
        for (size_t i = 0; i < o.P; i++) ck->v[i] = from_bits((uint32_t)rnd());
        for (size_t i = 0; i < o.S; i++) ck->state[i] = from_bits((uint32_t)rnd());
    }
    return o;
}

/* A record model's vocabulary: the last two symbols become the START and END markers. */
static owned with_markers(owned o)
{
    int32_t V = o.ck.config.vocab_size;
    o.ck.vocab[V - 2] = MINRNN_START_SYMBOL;
    o.ck.vocab[V - 1] = MINRNN_END_SYMBOL;
    return o;
}

/* Buffers for what peek found (m, v, state when train). */
static owned alloc_for(const minrnn_checkpoint *peeked, int train_buffers)
{
    owned o;
    memset(&o, 0, sizeof o);
    o.ck = *peeked;
    o.ck.m = o.ck.v = o.ck.state = NULL;
    o.P = minrnn_param_count(&peeked->config);
    int64_t entries = peeked->vocab_length ? peeked->vocab_length : peeked->config.vocab_size;   /* 0: V */
    o.ck.vocab = calloc((size_t)entries, sizeof(int32_t));
    o.ck.params = calloc(o.P, sizeof(float));
    o.ck.meta = peeked->meta_size ? calloc(peeked->meta_size, 1) : NULL;
    o.ck.labels = peeked->labels_size ? calloc(peeked->labels_size, 1) : NULL;
    if (peeked->config.cond == MINRNN_COND_VECTOR) {
        o.ck.cond_shift = calloc((size_t)peeked->config.cond_size, sizeof(float));
        o.ck.cond_scale = calloc((size_t)peeked->config.cond_size, sizeof(float));
    }
    if (peeked->has_train_state && train_buffers) {
        o.S = minrnn_state_size(&peeked->config, peeked->batch_size);
        o.ck.m = calloc(o.P, sizeof(float));
        o.ck.v = calloc(o.P, sizeof(float));
        o.ck.state = calloc(o.S, sizeof(float));
    }
    return o;
}

static void release(owned *o)
{
    free(o->ck.vocab);
    free(o->ck.params);
    free(o->ck.meta);
    free(o->ck.labels);
    free(o->ck.cond_shift);
    free(o->ck.cond_scale);
    free(o->ck.m);
    free(o->ck.v);
    free(o->ck.state);
    memset(o, 0, sizeof *o);
}

/* Every scalar field equal, floats bit for bit. */
static int same_scalars(const minrnn_checkpoint *a, const minrnn_checkpoint *b)
{
    const minrnn_optimizer *p = &a->optimizer, *q = &b->optimizer;
    return a->config.cell == b->config.cell && a->config.nonlinearity == b->config.nonlinearity &&
           a->config.vocab_size == b->config.vocab_size &&
           a->config.embed_size == b->config.embed_size &&
           a->config.hidden_size == b->config.hidden_size &&
           a->config.num_layers == b->config.num_layers &&
           bits(a->config.dropout) == bits(b->config.dropout) &&
           a->config.task == b->config.task && a->config.num_classes == b->config.num_classes &&
           a->config.cond == b->config.cond && a->config.cond_size == b->config.cond_size &&
           a->config.one_bias == b->config.one_bias && a->config.reduction == b->config.reduction &&
           a->config.attention == b->config.attention &&
           a->config.attention_size == b->config.attention_size &&
           a->encoding == b->encoding && a->has_train_state == b->has_train_state &&
           a->meta_size == b->meta_size && a->labels_size == b->labels_size &&
           a->precision == b->precision && p->kind == q->kind && bits(p->lr) == bits(q->lr) &&
           bits(p->momentum) == bits(q->momentum) && bits(p->alpha) == bits(q->alpha) &&
           bits(p->beta1) == bits(q->beta1) && bits(p->beta2) == bits(q->beta2) &&
           bits(p->eps) == bits(q->eps) && bits(p->clip_value) == bits(q->clip_value) &&
           bits(p->clip_norm) == bits(q->clip_norm) && bits(p->weight_decay) == bits(q->weight_decay) &&
           p->step == q->step &&
           a->rng_state == b->rng_state && a->batch_size == b->batch_size &&
           a->seq_len == b->seq_len && a->epoch == b->epoch && a->position == b->position;
}

static int same_buffers(const owned *a, const owned *b, int train_buffers)
{
    const minrnn_checkpoint *x = &a->ck, *y = &b->ck;
    int ok = !memcmp(x->vocab, y->vocab, sizeof(int32_t) * (size_t)x->config.vocab_size) &&
             !memcmp(x->params, y->params, sizeof(float) * a->P) &&
             (x->meta_size == 0 || !memcmp(x->meta, y->meta, x->meta_size)) &&
             (x->labels_size == 0 || !memcmp(x->labels, y->labels, x->labels_size));
    if (ok && x->config.cond == MINRNN_COND_VECTOR) {
        size_t C = (size_t)x->config.cond_size;
        ok = !memcmp(x->cond_shift, y->cond_shift, sizeof(float) * C) &&
             !memcmp(x->cond_scale, y->cond_scale, sizeof(float) * C);
    }
    if (ok && x->has_train_state && train_buffers)
        ok = !memcmp(x->m, y->m, sizeof(float) * a->P) && !memcmp(x->v, y->v, sizeof(float) * a->P) &&
             !memcmp(x->state, y->state, sizeof(float) * a->S);
    return ok;
}

/* What peek says of path. */
static int peek_status(const char *path)
{
    minrnn_checkpoint ck;
    return minrnn_checkpoint_peek(path, &ck);
}

/* ---- the tests */

/* src is released here. */
static void round_trip(const char *name, owned src)
{
    const char *path = in_dir(name);
    const minrnn_config cfg = src.ck.config;
    int train = src.ck.has_train_state;
    int st = minrnn_checkpoint_save(path, &src.ck);
    CHECK(st == MINRNN_OK, "%s: save gave %d", name, st);

    struct stat sb;
    mode_t mask = umask(0);
    umask(mask);
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == (0644 & ~mask),
          "%s: mode %o, umask %o", name, (unsigned)(sb.st_mode & 0777), (unsigned)mask);

    minrnn_checkpoint peeked;
    memset(&peeked, 0xAB, sizeof peeked);
    st = minrnn_checkpoint_peek(path, &peeked);
    CHECK(st == MINRNN_OK, "%s: peek gave %d", name, st);
    CHECK(same_scalars(&peeked, &src.ck), "%s: peek's scalars differ", name);
    CHECK(!peeked.vocab && !peeked.params && !peeked.meta && !peeked.labels && !peeked.cond_shift &&
              !peeked.cond_scale && !peeked.m && !peeked.v && !peeked.state,
          "%s: peek left a pointer", name);

    owned dst = alloc_for(&peeked, 1);
    st = minrnn_checkpoint_load(path, &dst.ck);
    CHECK(st == MINRNN_OK, "%s: load gave %d", name, st);
    CHECK(same_scalars(&dst.ck, &src.ck), "%s: load changed scalars", name);
    CHECK(same_buffers(&src, &dst, 1), "%s: loaded data differ", name);
    release(&dst);

    /* without the training buffers: the rest is still loaded */
    dst = alloc_for(&peeked, 0);
    st = minrnn_checkpoint_load(path, &dst.ck);
    CHECK(st == MINRNN_OK, "%s: load without training buffers gave %d", name, st);
    CHECK(same_buffers(&src, &dst, 0), "%s: loaded data differ (no training buffers)", name);
    release(&dst);

    /* the file is exactly as long as the format says */
    size_t len = 0;
    unsigned char *b = slurp(path, &len);
    uint64_t param_bytes = src.ck.precision == MINRNN_BFLOAT16 ? 2 : 4;
    uint64_t expect = HEADER + 4 * (uint64_t)cfg.vocab_size + param_bytes * (uint64_t)src.P +
                      (train ? 8 * (uint64_t)src.P + 4 * (uint64_t)src.S : 0) +
                      src.ck.meta_size + src.ck.labels_size +
                      (cfg.cond == MINRNN_COND_VECTOR ? 8 * (uint64_t)cfg.cond_size : 0) + TRAILER;
    CHECK(b && len == expect, "%s: length %zu, expected %llu", name, len, (unsigned long long)expect);
    CHECK(b && !memcmp(b, "minrnnCK", 8) && get_u32(b + O_VERSION) == MINRNN_CHECKPOINT_FORMAT &&
              get_u32(b + O_HEADER_SIZE) == HEADER, "%s: header start", name);
    CHECK(b && get_u32(b + O_PRECISION) == (uint32_t)src.ck.precision &&
              get_u64(b + O_TABLE + 16 * S_PARAMS + 8) == param_bytes * src.P, "%s: the precision", name);
    CHECK(b && get_u32(b + O_TASK) == (uint32_t)cfg.task && get_u32(b + O_CLASSES) == (uint32_t)cfg.num_classes &&
              get_u32(b + O_COND) == (uint32_t)cfg.cond && get_u32(b + O_COND_SIZE) == (uint32_t)cfg.cond_size &&
              get_u32(b + O_ONE_BIAS) == (uint32_t)cfg.one_bias &&
              get_u32(b + O_REDUCTION) == (uint32_t)cfg.reduction,
          "%s: the model fields at 256..279", name);
    CHECK(b && get_u32(b + O_ATTENTION) == (uint32_t)cfg.attention &&
              get_u32(b + O_ATTENTION_SIZE) == (uint32_t)cfg.attention_size, "%s: the attention at 284..291", name);
    CHECK(b && get_u64(b + O_TABLE + 16 * S_LABELS + 8) == src.ck.labels_size, "%s: labels size", name);
    free(b);
    CHECK(count_temp_files(dir) == 0, "%s: temporary file left", name);
    release(&src);
}

static void test_round_trip(const char *name, minrnn_config cfg, int encoding, int train, int B,
                            const char *meta)
{
    round_trip(name, make(cfg, encoding, train, B, meta));
}

/* Change one scalar field after peek: load must refuse with MISMATCH. */
static void test_mismatch(void)
{
    const char *path = in_dir("mismatch.ck");
    minrnn_config cfg = config(MINRNN_LSTM, MINRNN_TANH, 6, 3, 4, 2, 0.25f);
    owned src = make(conditioned(classifier(cfg, 3), MINRNN_COND_LABEL, 2), MINRNN_UTF8, 1, 2,
                     "{\"a\": 1}");
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "save");
    minrnn_checkpoint peeked;
    CHECK(minrnn_checkpoint_peek(path, &peeked) == MINRNN_OK, "peek");
    owned dst = alloc_for(&peeked, 1);
    for (int field = 0; field < 31; field++) {
        minrnn_checkpoint saved = dst.ck, *c = &dst.ck;
        switch (field) {
        case 0: c->config.cell = MINRNN_GRU; break;
        case 1: c->config.vocab_size = 5; break;   /* smaller: no overflow of our buffers */
        case 2: c->config.embed_size = 2; break;
        case 3: c->config.hidden_size = 3; break;
        case 4: c->config.num_layers = 1; break;
        case 5: c->config.dropout = from_bits(bits(0.25f) + 1); break;
        case 6: c->encoding = MINRNN_BYTES; break;
        case 7: c->has_train_state = 0; break;
        case 8: c->meta_size = 7; break;
        case 9: c->optimizer.kind = MINRNN_SGD; break;
        case 10: c->optimizer.lr = 2e-3f; break;
        case 11: c->optimizer.clip_norm = 0.0f; break;   /* the file has -0.0 */
        case 12: c->optimizer.step++; break;
        case 13: c->rng_state ^= 1; break;
        case 14: c->batch_size = 1; break;
        case 15: c->seq_len = 8; break;
        case 16: c->epoch = 4; break;
        case 17: c->position = 0; break;
        case 18: c->optimizer.beta2 = 0.99f; break;
        case 19: c->optimizer.eps = 1e-7f; break;
        case 20: c->config.task = MINRNN_TASK_LM; break;
        case 21: c->config.num_classes = 2; break;
        case 22: c->config.cond = MINRNN_COND_NONE; break;
        case 23: c->config.cond_size = 1; break;
        case 24: c->config.one_bias = 1; break;
        case 25: c->config.reduction = MINRNN_SUM; break;
        case 26: c->labels_size--; break;
        case 27: c->labels_size = 0; break;
        case 28: c->precision = MINRNN_BFLOAT16; break;
        case 29: c->config.attention = MINRNN_ATTENTION_DOT; break;
        case 30: c->config.attention_size = 2; break;
        }
        int st = minrnn_checkpoint_load(path, c);
        CHECK(st == MINRNN_ERR_MISMATCH, "field %d: load gave %d", field, st);
        dst.ck = saved;
    }
    CHECK(minrnn_checkpoint_load(path, &dst.ck) == MINRNN_OK, "load after restoring the fields");
    CHECK(same_buffers(&src, &dst, 1), "data after restoring the fields");

    /* null required buffers */
    minrnn_checkpoint c = dst.ck;
    c.vocab = NULL;
    CHECK(minrnn_checkpoint_load(path, &c) == MINRNN_ERR_ARG, "load without vocab");
    c = dst.ck;
    c.params = NULL;
    CHECK(minrnn_checkpoint_load(path, &c) == MINRNN_ERR_ARG, "load without params");
    c = dst.ck;
    c.meta = NULL;
    CHECK(minrnn_checkpoint_load(path, &c) == MINRNN_ERR_ARG, "load without meta");
    c = dst.ck;
    c.labels = NULL;
    CHECK(minrnn_checkpoint_load(path, &c) == MINRNN_ERR_ARG, "load without labels");
    CHECK(minrnn_checkpoint_load(path, NULL) == MINRNN_ERR_ARG, "load NULL ck");
    CHECK(minrnn_checkpoint_peek(NULL, &c) == MINRNN_ERR_ARG, "peek NULL path");
    release(&dst);
    release(&src);

    /* a condition vector: its sizes, and both of its buffers are required */
    src = make(conditioned(cfg, MINRNN_COND_VECTOR, 3), MINRNN_UTF8, 0, 0, NULL);
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "save a vector model");
    CHECK(minrnn_checkpoint_peek(path, &peeked) == MINRNN_OK, "peek a vector model");
    dst = alloc_for(&peeked, 1);
    c = dst.ck;
    c.cond_shift = NULL;
    CHECK(minrnn_checkpoint_load(path, &c) == MINRNN_ERR_ARG, "load without cond_shift");
    c = dst.ck;
    c.cond_scale = NULL;
    CHECK(minrnn_checkpoint_load(path, &c) == MINRNN_ERR_ARG, "load without cond_scale");
    c = dst.ck;
    c.config.cond_size = 2;
    CHECK(minrnn_checkpoint_load(path, &c) == MINRNN_ERR_MISMATCH, "load with another cond_size");
    c = dst.ck;
    c.config.cond = MINRNN_COND_LABEL;
    CHECK(minrnn_checkpoint_load(path, &c) == MINRNN_ERR_MISMATCH, "load with labels for a vector");
    CHECK(minrnn_checkpoint_load(path, &dst.ck) == MINRNN_OK, "load the vector model");
    CHECK(same_buffers(&src, &dst, 1), "the vector model's data");
    release(&dst);
    release(&src);
}

/* The small valid checkpoint the corruption tests start from. */
static owned small_source(void)
{
    return make(config(MINRNN_LSTM, MINRNN_TANH, 5, 3, 4, 2, 0.1f), MINRNN_UTF8, 1, 2,
                "{\"loss\": 1.5, \"text\": \"h\xc3\xa9\"}");
}

/* Format 7's weight_decay: saved and read back with the training state, and compared by load with
 * what it is given; a format-6 file (padding at 304) reads as 0, and one with bytes there is
 * refused; save refuses a weight decay that is not finite. */
static void test_weight_decay(void)
{
    const char *path = in_dir("decay.ck");
    owned src = small_source();
    src.ck.optimizer.weight_decay = 0.375f;
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "save with a weight decay");
    minrnn_checkpoint peeked;
    CHECK(minrnn_checkpoint_peek(path, &peeked) == MINRNN_OK && peeked.optimizer.weight_decay == 0.375f,
          "peek: weight decay %g", (double)peeked.optimizer.weight_decay);
    owned dst = alloc_for(&peeked, 1);
    dst.ck.optimizer.weight_decay = 0.5f;
    CHECK(minrnn_checkpoint_load(path, &dst.ck) == MINRNN_ERR_MISMATCH, "load given another weight decay");
    dst.ck.optimizer.weight_decay = 0.375f;
    CHECK(minrnn_checkpoint_load(path, &dst.ck) == MINRNN_OK && same_buffers(&src, &dst, 1), "load");
    size_t len = 0;
    unsigned char *b = slurp(path, &len);
    put_u32(b + O_VERSION, 6);
    rechecksum(b, len);
    spit(path, b, len);
    CHECK(peek_status(path) == MINRNN_ERR_CORRUPT, "a format-6 file with a weight decay in its padding");
    memset(b + O_WEIGHT_DECAY, 0, 4);
    rechecksum(b, len);
    spit(path, b, len);
    CHECK(minrnn_checkpoint_peek(path, &peeked) == MINRNN_OK && bits(peeked.optimizer.weight_decay) == 0,
          "a format-6 file reads as weight decay 0");
    src.ck.optimizer.weight_decay = INFINITY;
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_ERR_ARG, "save with an infinite weight decay");
    free(b);
    release(&dst);
    release(&src);
}

/* A classifier whose condition is a label, with a record vocabulary: label names of both kinds. */
static owned labelled_source(void)
{
    minrnn_config cfg = config(MINRNN_GRU, MINRNN_TANH, 6, 2, 3, 1, 0.0f);
    return with_markers(make(conditioned(classifier(cfg, 2), MINRNN_COND_LABEL, 2), MINRNN_UTF8, 1, 2,
                             "{\"k\": 2}"));
}

/* A model with a condition vector, one bias and the summed loss. */
static owned vector_source(void)
{
    minrnn_config cfg = config(MINRNN_RNN, MINRNN_TANH, 4, 0, 3, 2, 0.0f);
    return make(min_char_rnn(conditioned(cfg, MINRNN_COND_VECTOR, 3)), MINRNN_BYTES, 1, 1, "{}");
}

/* A seq2seq model of this attention kind (additive: A = 3), its vocabulary ending with START and
 * END. */
static owned seq2seq_source(int attention, int train)
{
    minrnn_config cfg = seq2seq(config(MINRNN_GRU, MINRNN_TANH, 7, 3, 4, 2, 0.1f), attention,
                                attention == MINRNN_ATTENTION_ADDITIVE ? 3 : 0);
    return with_markers(make(cfg, MINRNN_UTF8, train, 2, "{\"task\": \"seq2seq\"}"));
}

/* bfloat16 as the format defines it, written here from that definition: the high half of the
 * float32's bits, rounded to nearest by the low half, ties to even (a carry may reach the exponent:
 * the largest floats round to infinity); a NaN keeps its high half with the quiet bit set. */
static uint16_t bf16_of(float x)
{
    uint32_t u = bits(x), high = u >> 16, low = u & 0xFFFF;
    if (isnan(x)) return (uint16_t)(high | 0x0040);
    if (low > 0x8000 || (low == 0x8000 && (high & 1))) high++;
    return (uint16_t)high;
}

static float widened(uint16_t h) { return from_bits((uint32_t)h << 16); }

/* o stored at MINRNN_BFLOAT16 (o has no train state), its parameters already widened bfloat16
 * values, so that a round trip is bitwise again. */
static owned in_bf16(owned o)
{
    o.ck.precision = MINRNN_BFLOAT16;
    for (size_t i = 0; i < o.P; i++) o.ck.params[i] = widened(bf16_of(o.ck.params[i]));
    return o;
}

/* A classifier with label names and a condition vector, its parameters in bfloat16. */
static owned bf16_source(void)
{
    minrnn_config cfg = config(MINRNN_GRU, MINRNN_TANH, 6, 2, 3, 2, 0.0f);
    return in_bf16(make(conditioned(classifier(cfg, 2), MINRNN_COND_VECTOR, 2), MINRNN_UTF8, 0, 0,
                        "{\"precision\": \"bfloat16\"}"));
}

/* The file image b (len bytes, valid) cut at every length: always TRUNCATED. */
static void truncate_all(const char *name, const unsigned char *b, size_t len)
{
    const char *path = in_dir("trunc.ck");
    spit(path, b, len);
    minrnn_checkpoint peeked;
    CHECK(minrnn_checkpoint_peek(path, &peeked) == MINRNN_OK, "%s: peek", name);
    owned dst = alloc_for(&peeked, 1);
    int bad = 0;
    for (size_t n = len; n-- > 0;) {
        if (truncate(path, (off_t)n) != 0) {
            perror("truncate");
            exit(2);
        }
        int p = peek_status(path), l = minrnn_checkpoint_load(path, &dst.ck);
        if (p != MINRNN_ERR_TRUNCATED || l != MINRNN_ERR_TRUNCATED) {
            if (bad++ < 10) CHECK(0, "%s: truncated to %zu of %zu: peek %d, load %d", name, n, len, p, l);
        }
    }
    CHECK(bad == 0, "%s: %d of %zu truncations not reported as TRUNCATED", name, bad, len);
    checks += (int)len;
    release(&dst);
}

static void truncate_saved(const char *name, owned src)
{
    const char *path = in_dir("trunc.ck");
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "%s: save", name);
    size_t len = 0;
    unsigned char *b = slurp(path, &len);
    truncate_all(name, b, len);
    free(b);
    release(&src);
}

static void test_truncation(void)
{
    truncate_saved("language model", small_source());
    truncate_saved("labels", labelled_source());
    truncate_saved("vector", vector_source());
    truncate_saved("bfloat16", bf16_source());
    truncate_saved("seq2seq", seq2seq_source(MINRNN_ATTENTION_ADDITIVE, 1));

    /* a truncated file that is no prefix of the magic is not a checkpoint */
    const char *path = in_dir("trunc.ck");
    spit(path, "minrnX", 6);
    CHECK(peek_status(path) == MINRNN_ERR_NOT_CHECKPOINT, "6 bytes, not a prefix");
    spit(path, "minrnnCK\2\0", 10);   /* magic and half the version */
    CHECK(peek_status(path) == MINRNN_ERR_TRUNCATED, "10 bytes");
    spit(path, "minrnnCK\2\0\0\0", 12);   /* magic and version: too short for any header */
    CHECK(peek_status(path) == MINRNN_ERR_TRUNCATED, "12 bytes");
}

/* src is released here. */
static void flips(owned src)
{
    const char *path = in_dir("flip.ck");
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "save");
    size_t len = 0;
    unsigned char *b = slurp(path, &len);
    minrnn_checkpoint peeked;
    CHECK(minrnn_checkpoint_peek(path, &peeked) == MINRNN_OK, "peek");
    owned dst = alloc_for(&peeked, 1);
    int bad = 0;
    /* every bit of the header and of the trailer */
    for (size_t i = 0; i < len; i++) {
        if (i == HEADER) i = len - TRAILER;
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (unsigned char)(1u << bit);
            spit(path, b, len);
            int p = peek_status(path), l = minrnn_checkpoint_load(path, &dst.ck);
            if (p == MINRNN_OK || l == MINRNN_OK || l == MINRNN_ERR_MISMATCH)
                if (bad++ < 10) CHECK(0, "bit %d of byte %zu: peek %d, load %d", bit, i, p, l);
            b[i] ^= (unsigned char)(1u << bit);
        }
    }
    /* random byte changes after the header: always caught (an FNV-1a step is a bijection) */
    for (int k = 0; k < 3000; k++) {
        size_t i = HEADER + (size_t)(rnd() % (len - HEADER));
        unsigned char x = (unsigned char)(1 + rnd() % 255);
        b[i] ^= x;
        spit(path, b, len);
        int p = peek_status(path), l = minrnn_checkpoint_load(path, &dst.ck);
        if (p != MINRNN_ERR_CORRUPT || l != MINRNN_ERR_CORRUPT)
            if (bad++ < 10) CHECK(0, "byte %zu ^= %d: peek %d, load %d", i, x, p, l);
        b[i] ^= x;
    }
    CHECK(bad == 0, "%d flips not caught", bad);
    checks += 8 * (HEADER + TRAILER) + 3000;
    spit(path, b, len);
    CHECK(minrnn_checkpoint_load(path, &dst.ck) == MINRNN_OK, "the original again");
    CHECK(same_buffers(&src, &dst, 1), "the original's data");
    free(b);
    release(&dst);
    release(&src);
}

static void test_flips(void)
{
    flips(small_source());
    flips(labelled_source());
    flips(vector_source());
    flips(bf16_source());
    flips(seq2seq_source(MINRNN_ATTENTION_ADDITIVE, 1));
}

/* Rewrite the section table as the format requires for these fields. */
static void set_table(unsigned char *b, const minrnn_config *cfg, int train, int B, uint64_t meta,
                      uint64_t labels)
{
    uint64_t P = minrnn_param_count(cfg), S = train ? minrnn_state_size(cfg, B) : 0;
    uint64_t size[SECTIONS] = {4 * (uint64_t)cfg->vocab_size, 4 * P, train ? 4 * P : 0,
                               train ? 4 * P : 0, 4 * S, meta, labels,
                               cfg->cond == MINRNN_COND_VECTOR ? 8 * (uint64_t)cfg->cond_size : 0};
    uint64_t at = HEADER;
    for (int s = 0; s < SECTIONS; s++) {
        put_u64(b + O_TABLE + 16 * s, at);
        put_u64(b + O_TABLE + 16 * s + 8, size[s]);
        at += size[s];
    }
}

/* Hostile files with a valid checksum: only CORRUPT or TRUNCATED, and never a crash. */
static void test_hostile(void)
{
    const char *path = in_dir("hostile.ck");
    owned src = small_source();
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "save");
    size_t len = 0;
    unsigned char *orig = slurp(path, &len);
    minrnn_checkpoint peeked;
    CHECK(minrnn_checkpoint_peek(path, &peeked) == MINRNN_OK, "peek");
    owned dst = alloc_for(&peeked, 1);
    const uint64_t meta_off = get_u64(orig + O_TABLE + 16 * S_META);
    unsigned char *b = malloc(len + 64);

    for (int c = 0; c < 84; c++) {
        size_t n = len;
        int expect = -1;   /* -1: CORRUPT or TRUNCATED */
        memcpy(b, orig, len);
        minrnn_config cfg = src.ck.config;
        switch (c) {
        case 0: put_u32(b + O_V, 0x7FFFFFFF); break;
        case 1: put_u32(b + O_V, MINRNN_MAX_VOCAB); expect = MINRNN_ERR_CORRUPT; break;
        case 2: put_u32(b + O_H, 65536); put_u32(b + O_L, 64); expect = MINRNN_ERR_CORRUPT; break;
        case 3:   /* huge but consistent: the file is too short for it */
            cfg.vocab_size = MINRNN_MAX_VOCAB;
            cfg.hidden_size = 65536;
            cfg.embed_size = 65536;
            cfg.num_layers = 64;
            put_u32(b + O_V, (uint32_t)cfg.vocab_size);
            put_u32(b + O_H, 65536);
            put_u32(b + O_E, 65536);
            put_u32(b + O_L, 64);
            set_table(b, &cfg, 1, 2, src.ck.meta_size, 0);
            expect = MINRNN_ERR_TRUNCATED;
            break;
        case 4:
            put_u32(b + O_B, 0x7FFFFFFF);
            set_table(b, &cfg, 1, 0x7FFFFFFF, src.ck.meta_size, 0);
            expect = MINRNN_ERR_TRUNCATED;
            break;
        case 5: put_u64(b + O_TABLE + 16 * S_META + 8, UINT64_MAX); expect = MINRNN_ERR_CORRUPT; break;
        case 6:   /* meta end wraps around to 0 */
            put_u64(b + O_TABLE + 16 * S_META + 8, 0 - meta_off);
            expect = MINRNN_ERR_CORRUPT;
            break;
        case 7:   /* meta end + 8 wraps around to 0 */
            put_u64(b + O_TABLE + 16 * S_META + 8, 0 - meta_off - 8);
            expect = MINRNN_ERR_CORRUPT;
            break;
        case 8:   /* meta end wraps to a small number */
            put_u64(b + O_TABLE + 16 * S_META + 8, 0 - meta_off + 100);
            expect = MINRNN_ERR_CORRUPT;
            break;
        case 9:   /* the largest file an off_t can describe (the empty sections after meta move too) */
            put_u64(b + O_TABLE + 16 * S_META + 8, (uint64_t)INT64_MAX - 8 - meta_off);
            put_u64(b + O_TABLE + 16 * S_LABELS, (uint64_t)INT64_MAX - 8);
            put_u64(b + O_TABLE + 16 * S_COND, (uint64_t)INT64_MAX - 8);
            expect = MINRNN_ERR_TRUNCATED;
            break;
        case 10:
            put_u64(b + O_TABLE + 16 * S_META + 8, src.ck.meta_size + 4);
            put_u64(b + O_TABLE + 16 * S_LABELS, meta_off + src.ck.meta_size + 4);
            put_u64(b + O_TABLE + 16 * S_COND, meta_off + src.ck.meta_size + 4);
            expect = MINRNN_ERR_TRUNCATED;
            break;
        case 11: put_u64(b + O_TABLE + 16 * S_META + 8, src.ck.meta_size - 1); expect = MINRNN_ERR_CORRUPT; break;
        case 12: put_u64(b + O_TABLE + 16 * S_PARAMS, HEADER); expect = MINRNN_ERR_CORRUPT; break;   /* overlaps vocab */
        case 13: put_u64(b + O_TABLE + 16 * S_M, get_u64(b + O_TABLE + 16 * S_PARAMS)); expect = MINRNN_ERR_CORRUPT; break;
        case 14: put_u64(b + O_TABLE + 16 * S_VOCAB, UINT64_MAX); expect = MINRNN_ERR_CORRUPT; break;
        case 15: put_u64(b + O_TABLE + 16 * S_STATE, (uint64_t)1 << 62); expect = MINRNN_ERR_CORRUPT; break;
        case 16: put_u64(b + O_TABLE + 16 * S_PARAMS + 8, UINT64_MAX - 3); expect = MINRNN_ERR_CORRUPT; break;
        case 17: put_u64(b + O_TABLE + 16 * S_STATE + 8, 0); expect = MINRNN_ERR_CORRUPT; break;
        case 18: put_u64(b + O_TABLE + 16 * S_VOCAB, 0); expect = MINRNN_ERR_CORRUPT; break;
        case 19: put_u32(b + O_HEADER_SIZE, 256); expect = MINRNN_ERR_CORRUPT; break;
        case 20: b[O_PADDING + 31] = 1; expect = MINRNN_ERR_CORRUPT; break;
        case 21: put_u32(b + O_HAS_TRAIN, 2); expect = MINRNN_ERR_CORRUPT; break;
        case 22: put_u32(b + O_HAS_TRAIN, 0); expect = MINRNN_ERR_CORRUPT; break;   /* fields left */
        case 23: put_u32(b + O_B, 0); expect = MINRNN_ERR_CORRUPT; break;
        case 24: put_u32(b + O_B, 0xFFFFFFFF); expect = MINRNN_ERR_CORRUPT; break;
        case 25: put_u32(b + O_T, 0); expect = MINRNN_ERR_CORRUPT; break;
        case 26: put_u32(b + O_KIND, 4); expect = MINRNN_ERR_CORRUPT; break;
        case 27: put_u32(b + O_KIND, 0xFFFFFFFF); expect = MINRNN_ERR_CORRUPT; break;
        case 28: put_u32(b + O_LR, 0x7FC00001); expect = MINRNN_ERR_CORRUPT; break;   /* NaN */
        case 29: put_u32(b + O_EPS, 0x7F800000); expect = MINRNN_ERR_CORRUPT; break;  /* inf */
        case 30: put_u64(b + O_STEP, UINT64_MAX); expect = MINRNN_ERR_CORRUPT; break;
        case 31: put_u64(b + O_EPOCH, (uint64_t)1 << 63); expect = MINRNN_ERR_CORRUPT; break;
        case 32: put_u64(b + O_POSITION, UINT64_MAX); expect = MINRNN_ERR_CORRUPT; break;
        case 33: put_u64(b + O_RNG, 0); expect = MINRNN_ERR_CORRUPT; break;
        case 34: put_u32(b + O_CELL, 1000); expect = MINRNN_ERR_CORRUPT; break;   /* no such cell */
        case 35: put_u32(b + O_CELL, 0xFFFFFFFF); expect = MINRNN_ERR_CORRUPT; break;
        case 36: put_u32(b + O_NONLIN, MINRNN_RELU); expect = MINRNN_ERR_CORRUPT; break;  /* LSTM */
        case 37: put_u32(b + O_NONLIN, 2); expect = MINRNN_ERR_CORRUPT; break;
        case 38: put_u32(b + O_E, 0xFFFFFFFF); expect = MINRNN_ERR_CORRUPT; break;
        case 39: put_u32(b + O_E, 65537); expect = MINRNN_ERR_CORRUPT; break;
        case 40: put_u32(b + O_H, 0); expect = MINRNN_ERR_CORRUPT; break;
        case 41: put_u32(b + O_H, 0x80000000); expect = MINRNN_ERR_CORRUPT; break;
        case 42: put_u32(b + O_L, 0); expect = MINRNN_ERR_CORRUPT; break;
        case 43: put_u32(b + O_L, 65); expect = MINRNN_ERR_CORRUPT; break;
        case 44: put_u32(b + O_DROPOUT, 0x7FC00000); expect = MINRNN_ERR_CORRUPT; break;
        case 45: put_u32(b + O_DROPOUT, bits(1.0f)); expect = MINRNN_ERR_CORRUPT; break;
        case 46: put_u32(b + O_DROPOUT, bits(-0.5f)); expect = MINRNN_ERR_CORRUPT; break;
        case 47: put_u32(b + O_ENCODING, 2); expect = MINRNN_ERR_CORRUPT; break;
        case 48:   /* BYTES, with a symbol over 255 */
            put_u32(b + O_ENCODING, MINRNN_BYTES);
            put_u32(b + HEADER + 4 * 4, 0x4E2D);
            expect = MINRNN_ERR_CORRUPT;
            break;
        case 49:   /* BYTES with V = 300, consistent table */
            cfg.vocab_size = 300;
            put_u32(b + O_ENCODING, MINRNN_BYTES);
            put_u32(b + O_V, 300);
            set_table(b, &cfg, 1, 2, src.ck.meta_size, 0);
            expect = MINRNN_ERR_CORRUPT;
            break;
        case 50: put_u32(b + HEADER + 4, 9); expect = MINRNN_ERR_CORRUPT; break;   /* vocab[1] = vocab[0] */
        case 51: put_u32(b + HEADER + 4 * 4, 0xD800); expect = MINRNN_ERR_CORRUPT; break;   /* surrogate */
        case 52: put_u32(b + HEADER + 4 * 4, 0x110000); expect = MINRNN_ERR_CORRUPT; break;
        case 53: put_u32(b + HEADER, 0xFFFFFFFF); expect = MINRNN_ERR_CORRUPT; break;   /* -1 */
        case 54: memset(b + len, 0, 16); n = len + 16; expect = MINRNN_ERR_CORRUPT; break;   /* longer */
        case 55:   /* a valid header for a smaller model on a longer file */
            cfg.num_layers = 1;
            put_u32(b + O_L, 1);
            set_table(b, &cfg, 1, 2, src.ck.meta_size, 0);
            expect = MINRNN_ERR_CORRUPT;
            break;
        case 56:   /* no train state: consistent table, zeroed fields, but the file is longer */
            memset(b + O_B, 0, O_TABLE - O_B);
            put_u32(b + O_HAS_TRAIN, 0);
            set_table(b, &cfg, 0, 0, src.ck.meta_size, 0);
            expect = MINRNN_ERR_CORRUPT;
            break;
        case 57:   /* the same, with the file cut to the length it implies: a valid checkpoint */
            memset(b + O_B, 0, O_TABLE - O_B);
            put_u32(b + O_HAS_TRAIN, 0);
            set_table(b, &cfg, 0, 0, 0, 0);
            n = HEADER + 4 * 5 + 4 * src.P + TRAILER;
            expect = MINRNN_OK;
            break;
        case 58:   /* that valid file with a training field that should be zero */
        case 59:
        case 60:
            memset(b + O_B, 0, O_TABLE - O_B);
            put_u32(b + O_HAS_TRAIN, 0);
            set_table(b, &cfg, 0, 0, 0, 0);
            n = HEADER + 4 * 5 + 4 * src.P + TRAILER;
            if (c == 58) put_u32(b + O_B, 1);
            if (c == 59) put_u32(b + O_LR, 0x80000000);   /* -0.0 */
            if (c == 60) b[O_RNG + 7] = 1;
            expect = MINRNN_ERR_CORRUPT;
            break;
        /* the model fields of format 2 */
        case 61: put_u32(b + O_TASK, 4); expect = MINRNN_ERR_CORRUPT; break;
        case 62: put_u32(b + O_TASK, 0xFFFFFFFF); expect = MINRNN_ERR_CORRUPT; break;
        case 63: put_u32(b + O_CLASSES, 2); expect = MINRNN_ERR_CORRUPT; break;   /* K for a language model */
        case 64: put_u32(b + O_COND, 3); expect = MINRNN_ERR_CORRUPT; break;
        case 65: put_u32(b + O_COND_SIZE, 1); expect = MINRNN_ERR_CORRUPT; break;   /* C without a condition */
        case 66: put_u32(b + O_ONE_BIAS, 2); expect = MINRNN_ERR_CORRUPT; break;
        case 67: put_u32(b + O_REDUCTION, 2); expect = MINRNN_ERR_CORRUPT; break;
        case 68: put_u32(b + O_ONE_BIAS, 1); expect = MINRNN_ERR_CORRUPT; break;   /* fewer parameters: table */
        case 69:   /* one bias with a consistent table: the file is longer than it says */
            cfg.one_bias = 1;
            put_u32(b + O_ONE_BIAS, 1);
            set_table(b, &cfg, 1, 2, src.ck.meta_size, 0);
            expect = MINRNN_ERR_CORRUPT;
            break;
        case 70:   /* a classifier with a consistent table: its label names are missing */
            cfg = classifier(cfg, 2);
            put_u32(b + O_TASK, MINRNN_TASK_CLASSIFY);
            put_u32(b + O_CLASSES, 2);
            set_table(b, &cfg, 1, 2, src.ck.meta_size, 0);
            expect = -1;
            break;
        case 71:   /* a condition vector with a consistent table: the file is too short for it */
            cfg = conditioned(cfg, MINRNN_COND_VECTOR, 4);
            put_u32(b + O_COND, MINRNN_COND_VECTOR);
            put_u32(b + O_COND_SIZE, 4);
            set_table(b, &cfg, 1, 2, src.ck.meta_size, 0);
            expect = -1;
            break;
        case 72: put_u32(b + O_REDUCTION, MINRNN_SUM); expect = MINRNN_OK; break;   /* the same layout */
        case 73: put_u64(b + O_TABLE + 16 * S_LABELS + 8, 2); expect = MINRNN_ERR_CORRUPT; break;   /* no labels */
        case 74: put_u64(b + O_TABLE + 16 * S_COND + 8, 8); expect = MINRNN_ERR_CORRUPT; break;   /* no vector */
        case 75: put_u64(b + O_TABLE + 16 * S_COND, HEADER); expect = MINRNN_ERR_CORRUPT; break;
        case 76: put_u64(b + O_TABLE + 16 * S_LABELS, 0); expect = MINRNN_ERR_CORRUPT; break;
        case 77: put_u64(b + O_TABLE + 16 * S_LABELS + 8, UINT64_MAX); expect = MINRNN_ERR_CORRUPT; break;
        case 78: b[O_PADDING] = 0x80; expect = MINRNN_ERR_CORRUPT; break;
        case 79: b[HEADER - 1] = 1; expect = MINRNN_ERR_CORRUPT; break;
        case 80:   /* labels for a language model, consistent table: the header is wrong, whatever the length */
            set_table(b, &cfg, 1, 2, src.ck.meta_size, 2);
            expect = MINRNN_ERR_CORRUPT;
            break;
        /* the precision of formats 3 and 4 */
        case 81: put_u32(b + O_PRECISION, 2); expect = MINRNN_ERR_CORRUPT; break;
        case 82: put_u32(b + O_PRECISION, 0xFFFFFFFF); expect = MINRNN_ERR_CORRUPT; break;
        case 83: put_u32(b + O_PRECISION, MINRNN_BFLOAT16); expect = MINRNN_ERR_CORRUPT; break;   /* a train state */
        default: continue;
        }
        rechecksum(b, n);
        spit(path, b, n);
        int p = peek_status(path), l = minrnn_checkpoint_load(path, &dst.ck);
        if (expect == MINRNN_OK) {
            CHECK(p == MINRNN_OK && l == MINRNN_ERR_MISMATCH, "case %d: peek %d, load %d", c, p, l);
        } else if (expect < 0) {
            CHECK((p == MINRNN_ERR_CORRUPT || p == MINRNN_ERR_TRUNCATED) && l == p,
                  "case %d: peek %d, load %d", c, p, l);
        } else {
            CHECK(p == expect && l == expect, "case %d: peek %d, load %d, expected %d", c, p, l,
                  expect);
        }
    }
    free(b);
    free(orig);
    release(&dst);
    release(&src);
}

/* ---- the rules on contents: save refuses a checkpoint that breaks one (ARG); a file that breaks
 * one, with a valid checksum so that the rule is what fires, is CORRUPT for peek and load */

/* save of k gives OK if ok, ARG otherwise (and then writes no file). */
static void check_save(const char *what, const minrnn_checkpoint *k, int ok)
{
    const char *path = in_dir("rules-save.ck");
    int st = minrnn_checkpoint_save(path, k);
    CHECK(st == (ok ? MINRNN_OK : MINRNN_ERR_ARG), "%s: save gave %d", what, st);
    CHECK(ok || access(path, F_OK) != 0, "%s: a file was written", what);
    unlink(path);
}

/* The image b read back gives OK for peek and load into dst if ok (dst's scalar fields must then
 * be the file's), CORRUPT for both otherwise. */
static void check_read(const char *what, const unsigned char *b, size_t len, int ok, minrnn_checkpoint *dst)
{
    const char *path = in_dir("rules.ck");
    spit(path, b, len);
    int p = peek_status(path), l = minrnn_checkpoint_load(path, dst);
    int expect = ok ? MINRNN_OK : MINRNN_ERR_CORRUPT;
    CHECK(p == expect && l == expect, "%s: peek %d, load %d, expected %d", what, p, l, expect);
}

/* The labels section of src replaced by the n bytes at names: save of it, and the file. */
static void check_names(const char *what, const owned *src, const unsigned char *image, size_t len,
                        const char *names, size_t n, int ok)
{
    minrnn_checkpoint k = src->ck;
    k.labels = (char *)names;
    k.labels_size = n;
    check_save(what, &k, ok);
    size_t len2 = 0;
    unsigned char *b = splice(image, len, S_LABELS, names, n, &len2);
    owned dst = alloc_for(&k, 1);
    check_read(what, b, len2, ok, &dst.ck);
    CHECK(!ok || n == 0 || !memcmp(dst.ck.labels, names, n), "%s: the names loaded", what);
    release(&dst);
    free(b);
}

static void test_label_rules(void)
{
    const char *path = in_dir("rules.ck");
    /* three names: two classes, then one condition label */
    minrnn_config cfg = config(MINRNN_LSTM, MINRNN_TANH, 5, 0, 3, 1, 0.0f);
    owned src = make(conditioned(classifier(cfg, 2), MINRNN_COND_LABEL, 1), MINRNN_UTF8, 0, 0, NULL);
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "save");
    size_t len = 0;
    unsigned char *image = slurp(path, &len);
#define NAMES(text, ok, what) {text, sizeof text - 1, ok, what}
    static const struct {
        const char *text;
        size_t n;
        int ok;
        const char *what;
    } cases[] = {
        NAMES("a\nb\nc\n", 1, "three names"),
        NAMES("a b\n\xc3\xa9t\xc3\xa9\n\xf0\x9f\x98\x80\n", 1, "spaces and UTF-8"),
        NAMES("a\nb\n", 0, "two names"),
        NAMES("a\nb\nc\nd\n", 0, "four names"),
        NAMES("", 0, "no names"),
        NAMES("a\nb\nc", 0, "the last name without its newline"),
        NAMES("a\nb\nc\n\n", 0, "an empty fourth name"),
        NAMES("a\n\nc\n", 0, "an empty name"),
        NAMES("\nb\nc\n", 0, "an empty first name"),
        NAMES("a\tx\nb\nc\n", 0, "a tab"),
        NAMES("a\nb\nc\t\n", 0, "a tab at the end of a name"),
        NAMES("a\rx\nb\nc\n", 0, "a carriage return"),
        NAMES("a\r\nb\r\nc\r\n", 0, "CRLF line ends"),
        NAMES("a\0x\nb\nc\n", 0, "a NUL"),
        /* UTF-8: the first and last code points of each length pass; the rest is refused */
        NAMES("\x7f\n\xc2\x80\n\xdf\xbf\n", 1, "U+007F, U+0080, U+07FF"),
        NAMES("\xe0\xa0\x80\n\xed\x9f\xbf\n\xee\x80\x80\n", 1, "U+0800, U+D7FF, U+E000"),
        NAMES("\xef\xbf\xbf\n\xf0\x90\x80\x80\n\xf4\x8f\xbf\xbf\n", 1, "U+FFFF, U+10000, U+10FFFF"),
        NAMES("\x80\nb\nc\n", 0, "a lone continuation byte"),
        NAMES("\xc0\x80\nb\nc\n", 0, "an overlong NUL"),
        NAMES("\xc1\xbf\nb\nc\n", 0, "an overlong U+007F"),
        NAMES("\xc1\nb\nc\n", 0, "the byte C1 alone"),
        NAMES("\xc0" "a\nb\nc\n", 0, "the byte C0, then ASCII"),
        NAMES("\xe0\x9f\xbf\nb\nc\n", 0, "an overlong U+07FF"),
        NAMES("\xf0\x8f\xbf\xbf\nb\nc\n", 0, "an overlong U+FFFF"),
        NAMES("\xed\xa0\x80\nb\nc\n", 0, "the surrogate U+D800"),
        NAMES("\xed\xbf\xbf\nb\nc\n", 0, "the surrogate U+DFFF"),
        NAMES("\xf4\x90\x80\x80\nb\nc\n", 0, "U+110000"),
        NAMES("\xf5\x80\x80\x80\nb\nc\n", 0, "the lead byte F5"),
        NAMES("\xff\nb\nc\n", 0, "the byte FF"),
        NAMES("\xc3\x28\nb\nc\n", 0, "a lead byte, then ASCII"),
        NAMES("\xe4\xb8\nb\nc\n", 0, "a sequence cut by the newline"),
        NAMES("a\nb\n\xf0\x9f\x98\n", 0, "a 4-byte sequence cut by the newline"),
        NAMES("a\nb\nc\xe4\xb8", 0, "a sequence cut by the end of the section"),
        NAMES("a\nb\nc\nd", 0, "bytes after the last newline"),
        NAMES("a\nb\nc\n\xe4\xb8", 0, "an open sequence after the last newline"),
        NAMES("\xa9\xc3\nb\nc\n", 0, "a sequence's bytes in the wrong order"),
    };
#undef NAMES
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_names(cases[i].what, &src, image, len, cases[i].text, cases[i].n, cases[i].ok);

    /* a 4-byte sequence across the readers' 64 KiB chunks: the check goes on from one to the next */
    enum { CHUNK = 64 * 1024 };
    char *long_names = malloc(CHUNK + 16);
    memset(long_names, 'a', CHUNK - 3);
    memcpy(long_names + CHUNK - 3, "\xf0\x9f\x98\x80\nb\nc\n", 9);   /* the emoji: bytes CHUNK - 3 .. CHUNK */
    check_names("a sequence across chunks", &src, image, len, long_names, CHUNK + 6, 1);
    long_names[CHUNK] = 'x';   /* its last byte, the first of the second chunk */
    check_names("a sequence broken across chunks", &src, image, len, long_names, CHUNK + 6, 0);
    memset(long_names, 'a', CHUNK - 1);
    memcpy(long_names + CHUNK - 1, "\nb\nc\n", 5);   /* the first name ends the first chunk */
    check_names("a name ending the first chunk", &src, image, len, long_names, CHUNK + 4, 1);
    memcpy(long_names + CHUNK, "\nc\n", 3);   /* and an empty name begins the second */
    check_names("an empty name after the chunk boundary", &src, image, len, long_names, CHUNK + 3, 0);
    free(long_names);
    free(image);
    release(&src);

    /* label names for models that have none */
    owned none[2] = {make(config(MINRNN_RNN, MINRNN_TANH, 4, 0, 3, 1, 0.0f), MINRNN_UTF8, 0, 0, NULL),
                     make(conditioned(cfg, MINRNN_COND_VECTOR, 2), MINRNN_UTF8, 1, 1, NULL)};
    for (int i = 0; i < 2; i++) {
        CHECK(minrnn_checkpoint_save(path, &none[i].ck) == MINRNN_OK, "save");
        image = slurp(path, &len);
        check_names(i ? "names with a condition vector" : "names with a language model", &none[i], image,
                    len, "a\n", 2, 0);
        free(image);
        release(&none[i]);
    }
}

/* A word vocabulary (MINRNN_WORDS): tokens of code points, each ended by MINRNN_TOKEN_END, the
 * first empty (the unknown word), the rest strictly increasing; the markers as one id each. */
static void test_word_vocab_rules(void)
{
    enum { T = MINRNN_TOKEN_END, ST = MINRNN_START_SYMBOL, EN = MINRNN_END_SYMBOL, N = 10 };
    static const struct {
        int32_t vocab[N + 1];
        int ok;
        const char *what;
    } cases[] = {   /* V = 5: "", "a", "ab", "b", " b" sorted is "", " b", "a", "ab", "b" */
        {{T, 32, 98, T, 97, T, 97, 98, T, 98, 99}, 0, "the last token left open"},
        {{T, 32, 98, T, 97, T, 97, 98, T, T, T}, 0, "a second empty token"},
        {{T, 97, T, 32, 98, T, 97, 98, T, 98, T}, 0, "out of order"},
        {{T, 32, 98, T, 97, 98, T, 97, T, 98, T}, 0, "a longer token before its prefix"},
        {{97, T, T, 32, 98, T, 97, 98, T, 98, T}, 0, "the first token not empty"},
        {{T, 32, 98, T, 97, T, 97, T, 98, T, T}, 0, "a token twice"},
        {{T, 32, 98, T, 97, T, 97, 0xD800, T, 98, T}, 0, "a surrogate"},
        {{T, 32, 98, T, 97, T, 97, -4, T, 98, T}, 0, "another negative entry"},
        {{T, 32, 98, T, 97, T, 97, 98, T, 98, ST}, 0, "START without END"},
        {{T, 32, 98, T, 97, T, 97, 98, ST, EN, T}, 0, "markers inside a token"},
        {{T, 32, 98, T, 97, T, 97, 98, T, 98, T}, 1, "five tokens"},
        {{T, 32, 98, T, 97, T, 97, 98, T, 0x10FFFF, T}, 1, "the largest code point"},
        {{T, 32, 98, T, 97, T, 97, 98, T, 0x110000, T}, 0, "beyond the code points"},
    };
    static const int32_t good[N + 2] = {T, 32, 98, T, 97, T, 97, 98, T, 98, T, 0};
    char path[256];   /* in_dir's buffer is reused by check_save */
    snprintf(path, sizeof path, "%s", in_dir("words.ck"));
    owned src = make(config(MINRNN_LSTM, MINRNN_TANH, 5, 4, 3, 1, 0.0f), MINRNN_UTF8, 0, 0, NULL);
    int32_t *own = src.ck.vocab;
    src.ck.vocab = (int32_t *)good;
    src.ck.encoding = MINRNN_WORDS;
    src.ck.vocab_length = N + 1;
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "words: save");
    minrnn_checkpoint peeked;
    CHECK(minrnn_checkpoint_peek(path, &peeked) == MINRNN_OK && peeked.vocab_length == N + 1 &&
              peeked.encoding == MINRNN_WORDS, "words: peek gives the length and the encoding");
    owned dst = alloc_for(&peeked, 1);
    CHECK(minrnn_checkpoint_load(path, &dst.ck) == MINRNN_OK && !memcmp(dst.ck.vocab, good, 4 * (N + 1)),
          "words: the vocabulary loaded");
    release(&dst);

    /* the same length: each case saved, and written over the good file's vocabulary */
    size_t len = 0;
    unsigned char *image = slurp(path, &len), *b = malloc(len);
    owned dst2 = alloc_for(&peeked, 1);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        minrnn_checkpoint k = src.ck;
        const int32_t *v = cases[c].vocab;
        k.vocab = (int32_t *)v;
        check_save(cases[c].what, &k, cases[c].ok);
        memcpy(b, image, len);
        for (int i = 0; i < N + 1; i++) put_u32(b + HEADER + 4 * i, (uint32_t)v[i]);
        rechecksum(b, len);
        check_read(cases[c].what, b, len, cases[c].ok, &dst2.ck);
    }
    release(&dst2);

    /* the lengths the header allows */
    minrnn_checkpoint k = src.ck;
    k.vocab_length = 4;
    check_save("words: fewer entries than ids", &k, 0);
    k.vocab_length = 0;
    check_save("words: no length", &k, 0);

    /* a record model's markers; a seq2seq model needs them */
    static const int32_t framed[] = {T, 97, T, 98, T, ST, EN};
    k = src.ck;
    k.vocab = (int32_t *)framed, k.vocab_length = 7;
    check_save("words with markers", &k, 1);
    k.vocab_length = 6;
    check_save("words with the start marker alone", &k, 0);
    k.vocab_length = 7, k.config.task = MINRNN_TASK_SEQ2SEQ, k.config.attention = MINRNN_ATTENTION_DOT;
    k.params = calloc(minrnn_param_count(&k.config), sizeof(float));   /* the larger count of the two */
    check_save("seq2seq words with markers", &k, 1);
    float *params = k.params;
    k.config.vocab_size = 3, k.vocab_length = 5;
    check_save("seq2seq words without markers", &k, 0);
    free(params);

    /* a token of MINRNN_MAX_TOKEN_CHARS code points, and one more */
    int32_t longest[MINRNN_MAX_TOKEN_CHARS + 8];
    for (int extra = 0; extra <= 1; extra++) {
        int n = 0;
        longest[n++] = T;
        for (int i = 0; i < MINRNN_MAX_TOKEN_CHARS + extra; i++) longest[n++] = 'x';
        longest[n++] = T;
        k = src.ck;
        k.config = config(MINRNN_LSTM, MINRNN_TANH, 2, 4, 3, 1, 0.0f);
        k.params = calloc(minrnn_param_count(&k.config), sizeof(float));
        k.vocab = longest, k.vocab_length = n;
        check_save(extra ? "a token one code point too long" : "a token of the longest length", &k, !extra);
        free(k.params);
    }

    /* format 4 has no word vocabularies */
    memcpy(b, image, len);
    put_u32(b + O_VERSION, 4);
    rechecksum(b, len);
    spit(path, b, len);
    CHECK(peek_status(path) == MINRNN_ERR_CORRUPT, "words in a format-4 file");
    /* a character vocabulary's length is V; 0 is taken as V by save and load */
    owned chars = make(config(MINRNN_LSTM, MINRNN_TANH, 5, 4, 3, 1, 0.0f), MINRNN_UTF8, 0, 0, NULL);
    chars.ck.vocab_length = 6;
    check_save("characters: a length other than V", &chars.ck, 0);
    chars.ck.vocab_length = 0;
    check_save("characters: length 0", &chars.ck, 1);
    release(&chars);
    free(b);
    free(image);
    src.ck.vocab = own;
    release(&src);
}

static void test_vocab_rules(void)
{
    const char *path = in_dir("rules.ck");
    owned src = make(conditioned(config(MINRNN_GRU, MINRNN_TANH, 6, 2, 3, 1, 0.0f), MINRNN_COND_LABEL, 2),
                     MINRNN_UTF8, 0, 0, NULL);
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "save");
    size_t len = 0;
    unsigned char *image = slurp(path, &len), *b = malloc(len);
    enum { ST = MINRNN_START_SYMBOL, EN = MINRNN_END_SYMBOL };
    static const struct {
        int32_t vocab[6];
        int ok;
        const char *what;
    } cases[] = {
        {{10, 32, 97, 98, ST, EN}, 1, "markers at the end"},
        {{10, 32, 97, 98, 99, 100}, 1, "no markers"},
        {{ST, EN, 10, 32, 97, 98}, 0, "markers first"},
        {{10, 32, ST, EN, 97, 98}, 0, "markers in the middle"},
        {{10, 32, 97, 98, 99, ST}, 0, "START without END"},
        {{10, 32, 97, 98, 99, EN}, 0, "END without START"},
        {{10, 32, 97, 98, EN, ST}, 0, "END before START"},
        {{10, 32, 97, ST, 98, EN}, 0, "a symbol between START and END"},
        {{10, 32, 97, 98, ST, 99}, 0, "a symbol after START"},
        {{10, 32, 97, 98, ST, ST}, 0, "START twice"},
        {{10, 32, 97, 98, EN, EN}, 0, "END twice"},
        {{10, 32, 97, 98, -3, EN}, 0, "another negative symbol"},
        {{10, 32, 97, 98, ST, -3}, 0, "START, then another negative symbol"},
        {{10, 32, 97, 97, ST, EN}, 0, "markers after a repeated symbol"},
    };
    owned dst = alloc_for(&src.ck, 1);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        minrnn_checkpoint k = src.ck;
        k.vocab = (int32_t *)cases[c].vocab;
        check_save(cases[c].what, &k, cases[c].ok);
        memcpy(b, image, len);
        for (int i = 0; i < 6; i++) put_u32(b + HEADER + 4 * i, (uint32_t)cases[c].vocab[i]);
        rechecksum(b, len);
        check_read(cases[c].what, b, len, cases[c].ok, &dst.ck);
        CHECK(!cases[c].ok || !memcmp(dst.ck.vocab, cases[c].vocab, sizeof cases[c].vocab),
              "%s: the vocabulary loaded", cases[c].what);
    }
    release(&dst);
    free(b);
    free(image);
    release(&src);

    /* a vocabulary of the markers alone (no text symbol) is what the rule allows */
    owned two = with_markers(make(config(MINRNN_RNN, MINRNN_TANH, 2, 0, 3, 1, 0.0f), MINRNN_BYTES, 0, 0, NULL));
    check_save("only the markers", &two.ck, 1);
    release(&two);
}

static void test_cond_rules(void)
{
    const char *path = in_dir("rules.ck");
    owned src = vector_source();   /* C = 3 */
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "save");
    size_t len = 0;
    unsigned char *image = slurp(path, &len), *b = malloc(len);
    const uint64_t at = get_u64(image + O_TABLE + 16 * S_COND);
    CHECK(get_u64(image + O_TABLE + 16 * S_COND + 8) == 24, "the cond section: 2 x 3 floats");
    static const struct {
        int index;          /* 0..2: cond_shift, 3..5: cond_scale */
        uint32_t value;
        int ok;
        const char *what;
    } cases[] = {
        {0, 0x7FC00000, 0, "NaN in cond_shift"},
        {2, 0x7F800000, 0, "+inf in cond_shift"},
        {1, 0xFF800000, 0, "-inf in cond_shift"},
        {3, 0xFFC00001, 0, "a negative NaN with a payload in cond_scale"},
        {5, 0x7F800000, 0, "+inf in cond_scale"},
        {4, 0x7F7FFFFF, 1, "the largest float"},
        {0, 0x80000000, 1, "-0"},
        {5, 0x00000001, 1, "the smallest subnormal"},
    };
    owned dst = alloc_for(&src.ck, 1);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        float shift[3], scale[3];
        memcpy(shift, src.ck.cond_shift, sizeof shift);
        memcpy(scale, src.ck.cond_scale, sizeof scale);
        int i = cases[c].index;
        (i < 3 ? shift : scale)[i % 3] = from_bits(cases[c].value);
        minrnn_checkpoint k = src.ck;
        k.cond_shift = shift;
        k.cond_scale = scale;
        check_save(cases[c].what, &k, cases[c].ok);
        memcpy(b, image, len);
        put_u32(b + at + 4 * (size_t)i, cases[c].value);
        rechecksum(b, len);
        check_read(cases[c].what, b, len, cases[c].ok, &dst.ck);
        CHECK(!cases[c].ok || (!memcmp(dst.ck.cond_shift, shift, sizeof shift) &&
                               !memcmp(dst.ck.cond_scale, scale, sizeof scale)),
              "%s: the vector loaded", cases[c].what);
    }
    release(&dst);
    free(b);
    free(image);
    release(&src);
}

/* Every byte of the padding, format 4 (292..511), format 3 (284..511), format 2 (280..511; format 1's
 * is tested below). */
static void test_padding(void)
{
    const char *path = in_dir("rules.ck");
    owned src = small_source();
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "save");
    size_t len = 0;
    unsigned char *b = slurp(path, &len);
    static const struct {
        uint32_t version;
        int padding;
    } formats[] = {{4, O_PADDING}, {3, O_ATTENTION}, {2, O_PRECISION}};
    for (int f = 0; f < 3; f++) {
        put_u32(b + O_VERSION, formats[f].version);
        int bad = 0;
        for (int i = formats[f].padding; i < HEADER; i++) {
            b[i] = (unsigned char)(1 + i % 255);
            rechecksum(b, len);
            spit(path, b, len);
            int p = peek_status(path);
            if (p != MINRNN_ERR_CORRUPT && bad++ < 10)
                CHECK(0, "format %u, padding byte %d: peek %d", formats[f].version, i, p);
            b[i] = 0;
        }
        CHECK(bad == 0, "%d padding bytes of format %u not refused", bad, formats[f].version);
        checks += HEADER - formats[f].padding;
    }
    free(b);
    release(&src);
}

/* ---- format 1, as minrnn 0.1 and 0.2 wrote it */

/* o's checkpoint (whose config has format 1's defaults) as a format-1 file image, built here
 * from the layout at the top of checkpoint.c: a 256-byte header with six section pairs, the
 * sections, the FNV-1a trailer. */
static unsigned char *v1_image(const owned *o, size_t *len)
{
    const minrnn_checkpoint *ck = &o->ck;
    const minrnn_config *cfg = &ck->config;
    const minrnn_optimizer *opt = &ck->optimizer;
    int train = ck->has_train_state;
    const uint64_t size[SECTIONS_V1] = {4 * (uint64_t)cfg->vocab_size, 4 * (uint64_t)o->P,
                                        train ? 4 * (uint64_t)o->P : 0, train ? 4 * (uint64_t)o->P : 0,
                                        train ? 4 * (uint64_t)o->S : 0, ck->meta_size};
    const void *data[SECTIONS_V1] = {ck->vocab, ck->params, ck->m, ck->v, ck->state, ck->meta};
    *len = HEADER_V1 + TRAILER;
    for (int s = 0; s < SECTIONS_V1; s++) *len += (size_t)size[s];
    unsigned char *b = calloc(*len, 1);
    memcpy(b, "minrnnCK", 8);
    put_u32(b + O_VERSION, 1);
    put_u32(b + O_HEADER_SIZE, HEADER_V1);
    put_u32(b + O_CELL, (uint32_t)cfg->cell);
    put_u32(b + O_NONLIN, (uint32_t)cfg->nonlinearity);
    put_u32(b + O_V, (uint32_t)cfg->vocab_size);
    put_u32(b + O_E, (uint32_t)cfg->embed_size);
    put_u32(b + O_H, (uint32_t)cfg->hidden_size);
    put_u32(b + O_L, (uint32_t)cfg->num_layers);
    put_u32(b + O_DROPOUT, bits(cfg->dropout));
    put_u32(b + O_ENCODING, (uint32_t)ck->encoding);
    put_u32(b + O_HAS_TRAIN, (uint32_t)train);
    if (train) {
        put_u32(b + O_B, (uint32_t)ck->batch_size);
        put_u32(b + O_T, (uint32_t)ck->seq_len);
        put_u32(b + O_KIND, (uint32_t)opt->kind);
        const float hyper[8] = {opt->lr, opt->momentum, opt->alpha, opt->beta1, opt->beta2, opt->eps,
                                opt->clip_value, opt->clip_norm};
        for (int i = 0; i < 8; i++) put_u32(b + O_LR + 4 * i, bits(hyper[i]));
        put_u64(b + O_STEP, (uint64_t)opt->step);
        put_u64(b + O_EPOCH, (uint64_t)ck->epoch);
        put_u64(b + O_POSITION, (uint64_t)ck->position);
        put_u64(b + O_RNG, ck->rng_state);
    }
    size_t at = HEADER_V1;
    for (int s = 0; s < SECTIONS_V1; s++) {
        put_u64(b + O_TABLE + 16 * s, at);
        put_u64(b + O_TABLE + 16 * s + 8, size[s]);
        const unsigned char *p = data[s];
        if (s == S_META) {
            if (size[s]) memcpy(b + at, p, (size_t)size[s]);
        } else {
            for (size_t i = 0; i < size[s]; i += 4) {
                uint32_t word;
                memcpy(&word, p + i, 4);
                put_u32(b + at + i, word);
            }
        }
        at += (size_t)size[s];
    }
    rechecksum(b, *len);
    return b;
}

/* A format-1 file reads as the newer fields' defaults, with the same data; load, then save,
 * writes it as format 4. src is released here. */
static void format1_reads(const char *name, owned src)
{
    const char *path = in_dir(name);
    size_t len = 0;
    unsigned char *b = v1_image(&src, &len);
    spit(path, b, len);
    minrnn_checkpoint peeked;
    memset(&peeked, 0xAB, sizeof peeked);
    int st = minrnn_checkpoint_peek(path, &peeked);
    CHECK(st == MINRNN_OK, "%s: peek gave %d", name, st);
    const minrnn_config *c = &peeked.config;
    CHECK(c->task == MINRNN_TASK_LM && c->num_classes == 0 && c->cond == MINRNN_COND_NONE &&
              c->cond_size == 0 && c->one_bias == 0 && c->reduction == MINRNN_MEAN && peeked.labels_size == 0,
          "%s: the fields format 1 lacks have their defaults", name);
    CHECK(same_scalars(&peeked, &src.ck), "%s: peek's scalars differ", name);
    CHECK(!peeked.vocab && !peeked.params && !peeked.meta && !peeked.labels && !peeked.cond_shift &&
              !peeked.cond_scale && !peeked.m && !peeked.v && !peeked.state,
          "%s: peek left a pointer", name);
    owned dst = alloc_for(&peeked, 1);
    st = minrnn_checkpoint_load(path, &dst.ck);
    CHECK(st == MINRNN_OK, "%s: load gave %d", name, st);
    CHECK(same_buffers(&src, &dst, 1), "%s: loaded data differ", name);
    minrnn_checkpoint other = dst.ck;
    other.config.one_bias = 1;
    CHECK(minrnn_checkpoint_load(path, &other) == MINRNN_ERR_MISMATCH, "%s: one_bias is 0 in format 1", name);

    /* saved again: the current format, the same checkpoint */
    const char *again = in_dir("again.ck");
    CHECK(minrnn_checkpoint_save(again, &dst.ck) == MINRNN_OK, "%s: save in the current format", name);
    size_t len2 = 0;
    unsigned char *b2 = slurp(again, &len2);
    CHECK(b2 && len2 == len + (HEADER - HEADER_V1) && get_u32(b2 + O_VERSION) == MINRNN_CHECKPOINT_FORMAT &&
              !memcmp(b2 + HEADER, b + HEADER_V1, len - HEADER_V1 - TRAILER),
          "%s: the current format holds the same sections, 256 bytes later", name);
    owned dst2 = alloc_for(&peeked, 1);
    CHECK(minrnn_checkpoint_load(again, &dst2.ck) == MINRNN_OK && same_buffers(&src, &dst2, 1),
          "%s: the current format's copy loads", name);
    free(b2);
    release(&dst2);
    release(&dst);

    truncate_all(name, b, len);
    free(b);
    release(&src);
}

static void test_format1(void)
{
    format1_reads("v1-lstm.ck", make(config(MINRNN_LSTM, MINRNN_TANH, 7, 5, 6, 2, 0.2f), MINRNN_UTF8, 1, 3,
                                     "{\"args\": {\"hidden\": 6}}"));
    format1_reads("v1-gru.ck", make(config(MINRNN_GRU, MINRNN_TANH, 12, 0, 7, 3, 0.0f), MINRNN_BYTES, 0, 0,
                                    NULL));
    format1_reads("v1-rnn.ck", make(config(MINRNN_RNN, MINRNN_RELU, 256, 0, 4, 1, 0.5f), MINRNN_BYTES, 1, 1,
                                    "{}"));

    /* what format 1 cannot hold, or holds elsewhere */
    const char *path = in_dir("v1.ck");
    owned src = small_source();   /* vocab[0] = 9 at byte 256: format 2's task there would be 9 */
    size_t len = 0;
    unsigned char *orig = v1_image(&src, &len), *b = malloc(len);
    minrnn_checkpoint peeked;
    spit(path, orig, len);
    CHECK(minrnn_checkpoint_peek(path, &peeked) == MINRNN_OK, "format 1: bytes 256.. are sections");
    owned dst = alloc_for(&peeked, 1);
    int bad = 0;
    for (int i = O_PADDING_V1; i < HEADER_V1; i++) {
        memcpy(b, orig, len);
        b[i] = 1;
        rechecksum(b, len);
        spit(path, b, len);
        int p = peek_status(path);
        if (p != MINRNN_ERR_CORRUPT && bad++ < 10) CHECK(0, "format 1, padding byte %d: peek %d", i, p);
    }
    CHECK(bad == 0, "%d padding bytes of format 1 not refused", bad);
    checks += HEADER_V1 - O_PADDING_V1;
    for (int c = 0; c < 4; c++) {
        memcpy(b, orig, len);
        const char *what = "";
        switch (c) {
        case 0: put_u32(b + O_HEADER_SIZE, HEADER); what = "format 1 with header size 512"; break;
        case 1: put_u32(b + O_VERSION, 2); what = "format 1's bytes as version 2"; break;
        case 2:   /* START, END: only formats 2 to 4 have them */
            put_u32(b + HEADER_V1 + 4 * 3, (uint32_t)MINRNN_START_SYMBOL);
            put_u32(b + HEADER_V1 + 4 * 4, (uint32_t)MINRNN_END_SYMBOL);
            what = "markers in format 1";
            break;
        case 3: put_u32(b + HEADER_V1 + 4 * 4, (uint32_t)MINRNN_START_SYMBOL); what = "START in format 1"; break;
        }
        rechecksum(b, len);
        spit(path, b, len);
        int p = peek_status(path), l = minrnn_checkpoint_load(path, &dst.ck);
        CHECK((p == MINRNN_ERR_CORRUPT || p == MINRNN_ERR_TRUNCATED) && l == p, "%s: peek %d, load %d", what,
              p, l);
    }
    /* and a format-4 file labelled version 1 */
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "save");
    size_t len2 = 0;
    unsigned char *b2 = slurp(path, &len2);
    put_u32(b2 + O_VERSION, 1);
    rechecksum(b2, len2);
    spit(path, b2, len2);
    CHECK(peek_status(path) == MINRNN_ERR_CORRUPT, "format 4's bytes as version 1");
    free(b2);
    /* the same vocabulary with markers is fine in format 4 */
    owned marked = with_markers(small_source());
    CHECK(minrnn_checkpoint_save(path, &marked.ck) == MINRNN_OK && peek_status(path) == MINRNN_OK,
          "markers in format 4");
    release(&marked);
    free(b);
    free(orig);
    release(&dst);
    release(&src);
}

/* ---- formats 2 and 3, the formats before bfloat16 and before seq2seq */

/* src (not a seq2seq model) saved, then read as format version (2 or 3): the same bytes with that
 * version. The attention fields of any other model are 0, format 3's padding there, and a float32
 * checkpoint's precision field is 0, format 2's padding there. It reads as attention
 * MINRNN_ATTENTION_NONE and attention_size 0 (and, as format 2, precision MINRNN_FLOAT32) with the
 * same data, and saved again is format 4's file. src is released here. */
static void older_reads(const char *name, owned src, uint32_t version)
{
    const char *path = in_dir(name);
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "%s: save", name);
    size_t len = 0;
    unsigned char *b4 = slurp(path, &len), *b = malloc(len);
    memcpy(b, b4, len);
    put_u32(b + O_VERSION, version);
    rechecksum(b, len);
    spit(path, b, len);
    minrnn_checkpoint peeked;
    memset(&peeked, 0xAB, sizeof peeked);
    int st = minrnn_checkpoint_peek(path, &peeked);
    CHECK(st == MINRNN_OK && peeked.config.attention == MINRNN_ATTENTION_NONE &&
              peeked.config.attention_size == 0 && (version > 2 || peeked.precision == MINRNN_FLOAT32),
          "%s: peek gave %d, attention %d, attention_size %d, precision %d", name, st, peeked.config.attention,
          peeked.config.attention_size, peeked.precision);
    CHECK(same_scalars(&peeked, &src.ck), "%s: peek's scalars differ", name);
    owned dst = alloc_for(&peeked, 1);
    st = minrnn_checkpoint_load(path, &dst.ck);
    CHECK(st == MINRNN_OK && same_buffers(&src, &dst, 1), "%s: load gave %d, or other data", name, st);

    const char *again = in_dir("again.ck");
    CHECK(minrnn_checkpoint_save(again, &dst.ck) == MINRNN_OK, "%s: save in the current format", name);
    size_t len2 = 0;
    unsigned char *b2 = slurp(again, &len2);
    CHECK(b2 && len2 == len && !memcmp(b2, b4, len), "%s: saved again, the format-4 file", name);
    free(b2);
    release(&dst);

    truncate_all(name, b, len);
    free(b);
    free(b4);
    release(&src);
}

static void test_format2(void)
{
    older_reads("v2-lstm.ck", small_source(), 2);
    older_reads("v2-labels.ck", labelled_source(), 2);
    older_reads("v2-vector.ck", vector_source(), 2);

    /* a bfloat16 file labelled version 2: its precision is in format 2's padding */
    const char *path = in_dir("v2.ck");
    owned src = bf16_source();
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "save");
    size_t len = 0;
    unsigned char *b = slurp(path, &len);
    put_u32(b + O_VERSION, 2);
    rechecksum(b, len);
    owned dst = alloc_for(&src.ck, 1);
    check_read("bfloat16 as format 2", b, len, 0, &dst.ck);
    release(&dst);
    free(b);
    release(&src);
}

static void test_format3(void)
{
    older_reads("v3-lstm.ck", small_source(), 3);
    older_reads("v3-labels.ck", labelled_source(), 3);
    older_reads("v3-vector.ck", vector_source(), 3);
    older_reads("v3-bf16.ck", bf16_source(), 3);

    /* a seq2seq file labelled version 3: format 3 holds none, not even without attention (where
     * the attention fields, 0, are format 3's padding) */
    char path[256];
    snprintf(path, sizeof path, "%s", in_dir("v3.ck"));   /* in_dir has one result at a time */
    for (int a = MINRNN_ATTENTION_NONE; a <= MINRNN_ATTENTION_ADDITIVE; a++) {
        owned src = seq2seq_source(a, 1);
        CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "save");
        size_t len = 0;
        unsigned char *b = slurp(path, &len);
        put_u32(b + O_VERSION, 3);
        rechecksum(b, len);
        owned dst = alloc_for(&src.ck, 1);
        char what[64];
        snprintf(what, sizeof what, "seq2seq with attention %d as format 3", a);
        check_read(what, b, len, 0, &dst.ck);
        release(&dst);
        free(b);
        release(&src);
    }
}

/* ---- seq2seq models, format 4's: the attention fields, START and END, no labels, no bare encoder */

/* The parameters of a seq2seq model, counted here from minrnn.h's description of its block: the
 * encoder and the decoder (each a model without an output layer), the attention's own tensors,
 * combine (with attention), out. */
static uint64_t seq2seq_params(const minrnn_config *c)
{
    uint64_t G = c->cell == MINRNN_LSTM ? 4 : c->cell == MINRNN_GRU ? 3 : 1, H = (uint64_t)c->hidden_size;
    uint64_t V = (uint64_t)c->vocab_size, E = (uint64_t)c->embed_size, A = (uint64_t)c->attention_size;
    uint64_t model = V * E;
    for (int l = 0; l < c->num_layers; l++) model += G * H * ((l ? H : E ? E : V) + H) + 2 * G * H;
    uint64_t attention = c->attention == MINRNN_ATTENTION_GENERAL ? H * H
                       : c->attention == MINRNN_ATTENTION_ADDITIVE ? 2 * A * H + A : 0;
    uint64_t combine = c->attention != MINRNN_ATTENTION_NONE ? 2 * H * H + H : 0;
    return 2 * model + attention + combine + V * H + V;
}

/* Bitwise round trips of each attention kind: with a training state, without, and in bfloat16. */
static void test_seq2seq_round_trips(void)
{
    static const char *const kinds[] = {"none", "dot", "general", "additive"};
    const minrnn_config models[] = {config(MINRNN_LSTM, MINRNN_TANH, 9, 4, 5, 2, 0.2f),
                                    config(MINRNN_GRU, MINRNN_TANH, 8, 0, 6, 1, 0.0f),
                                    config(MINRNN_RNN, MINRNN_RELU, 10, 3, 4, 3, 0.1f),
                                    config(MINRNN_LSTM, MINRNN_TANH, 6, 2, 3, 1, 0.0f)};
    for (int a = MINRNN_ATTENTION_NONE; a <= MINRNN_ATTENTION_ADDITIVE; a++) {
        minrnn_config cfg = seq2seq(models[a], a, a == MINRNN_ATTENTION_ADDITIVE ? 7 : 0);
        CHECK((uint64_t)minrnn_param_count(&cfg) == seq2seq_params(&cfg), "%s: %zu parameters, the header's %llu",
              kinds[a], minrnn_param_count(&cfg), (unsigned long long)seq2seq_params(&cfg));
        size_t S = (size_t)cfg.num_layers * (cfg.cell == MINRNN_LSTM ? 2 : 1) * 3 * (size_t)cfg.hidden_size;
        CHECK(minrnn_state_size(&cfg, 3) == S, "%s: a state of %zu floats, not %zu", kinds[a],
              minrnn_state_size(&cfg, 3), S);
        char name[64];
        snprintf(name, sizeof name, "seq2seq-%s.ck", kinds[a]);
        round_trip(name, with_markers(make(cfg, MINRNN_UTF8, 1, 3, "{\"task\": \"seq2seq\"}")));
        snprintf(name, sizeof name, "seq2seq-%s-nt.ck", kinds[a]);
        round_trip(name, with_markers(make(cfg, MINRNN_UTF8, 0, 0, NULL)));
        snprintf(name, sizeof name, "seq2seq-%s-bf16.ck", kinds[a]);
        round_trip(name, in_bf16(with_markers(make(cfg, MINRNN_UTF8, 0, 0, "{}"))));
    }
    /* every byte and both markers, with A > H; the smallest vocabulary: one symbol and the markers */
    round_trip("seq2seq-bytes.ck",
               with_markers(make(seq2seq(config(MINRNN_GRU, MINRNN_TANH, 258, 8, 5, 1, 0.0f),
                                         MINRNN_ATTENTION_ADDITIVE, 12), MINRNN_BYTES, 1, 2, NULL)));
    round_trip("seq2seq-three.ck",
               with_markers(make(seq2seq(config(MINRNN_RNN, MINRNN_TANH, 3, 0, 2, 1, 0.0f), MINRNN_ATTENTION_DOT, 0),
                                 MINRNN_UTF8, 1, 1, NULL)));
}

/* The saved image (no training state, no meta, no labels, no condition) of a model with cfg's
 * cell and sizes, made to describe cfg: its task, classes, one_bias and attention fields written,
 * the table set as the format requires, the file cut or padded with zeros to the length that
 * implies, the checksum recomputed. Returns a new image of *n bytes. */
static unsigned char *described_as(const unsigned char *image, size_t len, const minrnn_config *cfg, size_t *n)
{
    *n = HEADER + 4 * (size_t)cfg->vocab_size + 4 * minrnn_param_count(cfg) + TRAILER;
    unsigned char *b = calloc(*n, 1);
    memcpy(b, image, len < *n ? len : *n);
    put_u32(b + O_TASK, (uint32_t)cfg->task);
    put_u32(b + O_CLASSES, (uint32_t)cfg->num_classes);
    put_u32(b + O_ONE_BIAS, (uint32_t)cfg->one_bias);
    put_u32(b + O_ATTENTION, (uint32_t)cfg->attention);
    put_u32(b + O_ATTENTION_SIZE, (uint32_t)cfg->attention_size);
    set_table(b, cfg, 0, 0, 0, 0);
    rechecksum(b, *n);
    return b;
}

static void test_seq2seq_rules(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s", in_dir("seq2seq.ck"));   /* in_dir has one result at a time */
    owned src = seq2seq_source(MINRNN_ATTENTION_ADDITIVE, 1), lm = small_source(), cls = labelled_source();

    /* save: an invalid configuration gives minrnn_config_check's status; the rules of checkpoints, ARG */
    minrnn_config encoder = lm.ck.config;
    encoder.task = MINRNN_TASK_ENCODE;
    CHECK(minrnn_config_check(&encoder) == MINRNN_OK, "a bare encoder is a valid configuration");
    for (int c = 0; c < 12; c++) {
        minrnn_checkpoint k = c < 7 ? src.ck : c < 10 ? lm.ck : cls.ck;
        int expect = MINRNN_ERR_CONFIG;
        switch (c) {
        case 0: k.config.attention = 4; break;
        case 1: k.config.attention = -1; break;
        case 2: k.config.attention_size = 0; break;   /* additive without its size */
        case 3: k.config.attention_size = MINRNN_MAX_HIDDEN + 1; break;
        case 4: k.config.attention = MINRNN_ATTENTION_DOT; break;   /* a size without additive */
        case 5: k.config.cond = MINRNN_COND_LABEL; k.config.cond_size = 2; break;   /* no condition */
        case 6: k.labels = (char *)"a\n"; k.labels_size = 2; expect = MINRNN_ERR_ARG; break;   /* no names */
        case 7: k.config.attention = MINRNN_ATTENTION_DOT; break;   /* attention on a language model */
        case 8: k.config.attention_size = 3; break;
        case 9: k.config.task = MINRNN_TASK_ENCODE; expect = MINRNN_ERR_ARG; break;   /* a bare encoder */
        case 10: k.config.attention = MINRNN_ATTENTION_GENERAL; break;   /* attention on a classifier */
        case 11: k.config.attention = MINRNN_ATTENTION_ADDITIVE; k.config.attention_size = 2; break;
        }
        int st = minrnn_checkpoint_save(path, &k);
        CHECK(st == expect, "seq2seq case %d: save gave %d, expected %d", c, st, expect);
        CHECK(access(path, F_OK) != 0, "seq2seq case %d: a file was written", c);
        unlink(path);
    }

    /* the readers: every field in a file that save refuses is CORRUPT */
    const owned *sources[3] = {&src, &lm, &cls};
    unsigned char *images[3];
    size_t lens[3];
    owned dsts[3];
    for (int i = 0; i < 3; i++) {
        CHECK(minrnn_checkpoint_save(path, &sources[i]->ck) == MINRNN_OK, "save source %d", i);
        images[i] = slurp(path, &lens[i]);
        dsts[i] = alloc_for(&sources[i]->ck, 1);
    }
    static const struct {
        int source;                  /* 0: seq2seq, additive with A = 3; 1: language model; 2: classifier */
        uint32_t attention, size;
        const char *what;
    } heads[] = {
        {0, MINRNN_ATTENTION_ADDITIVE, 3, "the file as saved"},
        {0, 4, 3, "attention kind 4"},
        {0, 0xFFFFFFFF, 3, "attention kind -1"},
        {0, MINRNN_ATTENTION_ADDITIVE, 0, "additive with attention_size 0"},
        {0, MINRNN_ATTENTION_ADDITIVE, MINRNN_MAX_HIDDEN + 1, "attention_size over the limit"},
        {0, MINRNN_ATTENTION_ADDITIVE, 0x80000000, "a negative attention_size"},
        {0, MINRNN_ATTENTION_DOT, 3, "dot with an attention_size"},
        {0, MINRNN_ATTENTION_NONE, 3, "no attention with an attention_size"},
        {1, MINRNN_ATTENTION_DOT, 0, "attention on a language model"},
        {1, MINRNN_ATTENTION_ADDITIVE, 2, "additive attention on a language model"},
        {1, MINRNN_ATTENTION_NONE, 1, "an attention_size on a language model"},
        {2, MINRNN_ATTENTION_GENERAL, 0, "attention on a classifier"},
    };
    for (size_t c = 0; c < sizeof heads / sizeof *heads; c++) {
        int i = heads[c].source;
        unsigned char *b = malloc(lens[i]);
        memcpy(b, images[i], lens[i]);
        put_u32(b + O_ATTENTION, heads[c].attention);
        put_u32(b + O_ATTENTION_SIZE, heads[c].size);
        rechecksum(b, lens[i]);
        check_read(heads[c].what, b, lens[i], c == 0, &dsts[i].ck);
        free(b);
    }
    /* a seq2seq file with another task, a condition, label names */
    for (int c = 0; c < 4; c++) {
        unsigned char *b = malloc(lens[0]);
        memcpy(b, images[0], lens[0]);
        size_t n = lens[0];
        const char *what = "";
        switch (c) {
        case 0: put_u32(b + O_TASK, MINRNN_TASK_LM); what = "a language model with attention"; break;
        case 1: put_u32(b + O_TASK, MINRNN_TASK_ENCODE); what = "an encoder with attention"; break;
        case 2:
            put_u32(b + O_COND, MINRNN_COND_VECTOR);
            put_u32(b + O_COND_SIZE, 2);
            what = "seq2seq with a condition";
            break;
        case 3: {
            unsigned char *spliced = splice(b, n, S_LABELS, "a\n", 2, &n);
            free(b);
            b = spliced;
            what = "seq2seq with a label name";
            break;
        }
        }
        rechecksum(b, n);
        check_read(what, b, n, 0, &dsts[0].ck);
        free(b);
    }

    /* the attention fields are scalar fields like the others: another value is a MISMATCH */
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "save");
    for (int c = 0; c < 3; c++) {
        minrnn_checkpoint k = dsts[0].ck;
        if (c == 0) k.config.attention_size = 4;
        if (c == 1) k.config.attention = MINRNN_ATTENTION_GENERAL, k.config.attention_size = 0;
        int st = minrnn_checkpoint_load(path, &k);
        CHECK(st == (c == 2 ? MINRNN_OK : MINRNN_ERR_MISMATCH), "mismatch case %d: load gave %d", c, st);
    }
    CHECK(same_buffers(&src, &dsts[0], 1), "the seq2seq model's data");

    /* files whose table fits their header, so that the rule, not the layout, is what refuses: a
     * language model's image with START and END, made to describe other models */
    owned marked = with_markers(make(config(MINRNN_GRU, MINRNN_TANH, 7, 3, 4, 2, 0.1f), MINRNN_UTF8, 0, 0, NULL));
    owned plain = make(marked.ck.config, MINRNN_UTF8, 0, 0, NULL);
    const owned *bases[2] = {&marked, &plain};
    unsigned char *base_images[2];
    size_t base_lens[2];
    for (int i = 0; i < 2; i++) {
        CHECK(minrnn_checkpoint_save(path, &bases[i]->ck) == MINRNN_OK, "save base %d", i);
        base_images[i] = slurp(path, &base_lens[i]);
    }
    const minrnn_config m = marked.ck.config;
    minrnn_config one_bias = m, bare = m;
    one_bias.one_bias = 1;
    bare.task = MINRNN_TASK_ENCODE;
    const struct {
        int base;                    /* 0: with START and END; 1: without */
        minrnn_config cfg;
        int version;
        int ok;
        const char *what;
    } shapes[] = {
        {0, one_bias, 4, 1, "a language model of one bias (the construction works)"},
        {0, seq2seq(m, MINRNN_ATTENTION_NONE, 0), 4, 1, "seq2seq without attention"},
        {0, seq2seq(m, MINRNN_ATTENTION_GENERAL, 0), 4, 1, "seq2seq, general attention"},
        {0, seq2seq(m, MINRNN_ATTENTION_ADDITIVE, 5), 4, 1, "seq2seq, additive attention"},
        {1, seq2seq(m, MINRNN_ATTENTION_DOT, 0), 4, 0, "seq2seq without START and END"},
        {0, seq2seq(m, MINRNN_ATTENTION_NONE, 0), 3, 0, "seq2seq in format 3"},
        {0, bare, 4, 0, "a bare encoder"},
        {1, bare, 4, 0, "a bare encoder without START and END"},
    };
    for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
        size_t n = 0;
        unsigned char *b = described_as(base_images[shapes[c].base], base_lens[shapes[c].base], &shapes[c].cfg, &n);
        put_u32(b + O_VERSION, (uint32_t)shapes[c].version);
        rechecksum(b, n);
        spit(path, b, n);
        minrnn_checkpoint peeked;
        int p = minrnn_checkpoint_peek(path, &peeked);
        CHECK(p == (shapes[c].ok ? MINRNN_OK : MINRNN_ERR_CORRUPT), "%s: peek gave %d", shapes[c].what, p);
        if (p == MINRNN_OK) {
            CHECK(peeked.config.task == shapes[c].cfg.task && peeked.config.attention == shapes[c].cfg.attention &&
                      peeked.config.attention_size == shapes[c].cfg.attention_size, "%s: the fields", shapes[c].what);
            owned dst = alloc_for(&peeked, 1);
            CHECK(minrnn_checkpoint_load(path, &dst.ck) == MINRNN_OK, "%s: load", shapes[c].what);
            release(&dst);
        } else {
            owned dst = alloc_for(&bases[shapes[c].base]->ck, 1);
            CHECK(minrnn_checkpoint_load(path, &dst.ck) == MINRNN_ERR_CORRUPT, "%s: load", shapes[c].what);
            release(&dst);
        }
        free(b);
    }

    /* START and END: required for seq2seq, by save (ARG) and by the readers (CORRUPT) */
    enum { ST = MINRNN_START_SYMBOL, EN = MINRNN_END_SYMBOL };
    static const struct {
        int32_t vocab[7];
        int ok;
        const char *what;
    } vocabs[] = {
        {{10, 32, 97, 98, 99, ST, EN}, 1, "seq2seq: START and END at the end"},
        {{10, 32, 97, 98, 99, 100, 101}, 0, "seq2seq: no markers"},
        {{ST, EN, 10, 32, 97, 98, 99}, 0, "seq2seq: markers first"},
        {{10, 32, 97, 98, ST, EN, 99}, 0, "seq2seq: a symbol after the markers"},
        {{10, 32, 97, 98, 99, 100, EN}, 0, "seq2seq: END without START"},
        {{10, 32, 97, 98, 99, ST, 100}, 0, "seq2seq: START, then a symbol"},
        {{10, 32, 97, 98, 99, EN, ST}, 0, "seq2seq: END before START"},
        {{10, 32, 97, 98, 99, -3, EN}, 0, "seq2seq: another negative symbol"},
    };
    for (size_t c = 0; c < sizeof vocabs / sizeof *vocabs; c++) {
        minrnn_checkpoint k = src.ck;
        k.vocab = (int32_t *)vocabs[c].vocab;
        check_save(vocabs[c].what, &k, vocabs[c].ok);
        unsigned char *b = malloc(lens[0]);
        memcpy(b, images[0], lens[0]);
        for (int i = 0; i < 7; i++) put_u32(b + HEADER + 4 * i, (uint32_t)vocabs[c].vocab[i]);
        rechecksum(b, lens[0]);
        check_read(vocabs[c].what, b, lens[0], vocabs[c].ok, &dsts[0].ck);
        CHECK(!vocabs[c].ok || !memcmp(dsts[0].ck.vocab, vocabs[c].vocab, sizeof vocabs[c].vocab),
              "%s: the vocabulary loaded", vocabs[c].what);
        free(b);
    }

    for (int i = 0; i < 2; i++) free(base_images[i]);
    for (int i = 0; i < 3; i++) {
        free(images[i]);
        release(&dsts[i]);
    }
    CHECK(count_temp_files(dir) == 0, "temporary file left");
    release(&marked);
    release(&plain);
    release(&src);
    release(&lm);
    release(&cls);
}

/* ---- bfloat16 parameters: rounded as save writes them, widened exactly by load; inference only */

static void test_bfloat16(void)
{
    char path[256], path32[256], again[256];   /* in_dir has one result at a time */
    snprintf(path, sizeof path, "%s", in_dir("bf16.ck"));
    snprintf(path32, sizeof path32, "%s", in_dir("f32.ck"));
    snprintf(again, sizeof again, "%s", in_dir("again.ck"));
    enum { CHUNK = 64 * 1024 / 2 };   /* bfloat16 values in one of the readers' and writers' chunks */
    owned src = make(config(MINRNN_LSTM, MINRNN_TANH, 60, 16, 96, 2, 0.0f), MINRNN_UTF8, 0, 0, "{\"a\": 1}");
    CHECK(src.P > 2 * CHUNK, "the parameters span three chunks: %zu", src.P);
    static const struct {
        uint32_t in;
        uint16_t out;
        const char *what;
    } known[] = {
        {0x3F80A000, 0x3F81, "1 + 2^-8 + 2^-10 rounds up"},
        {0xBF80A000, 0xBF81, "-(1 + 2^-8 + 2^-10) rounds away from 0 too"},
        {0x3F807FFF, 0x3F80, "just under half an ulp over 1 rounds down"},
        {0x3F808000, 0x3F80, "1 + 2^-8, a tie, rounds to even: down"},
        {0x3F818000, 0x3F82, "1 + 2^-7 + 2^-8, a tie, rounds to even: up"},
        {0x3F7FFFFF, 0x3F80, "the largest float under 1 rounds to 1 (a carry into the exponent)"},
        {0x7F7FFFFF, 0x7F80, "the largest float rounds to infinity"},
        {0xFF800000, 0xFF80, "-inf"},
        {0x80000000, 0x8000, "-0"},
        {0x00000001, 0x0000, "the smallest subnormal rounds to 0"},
        {0x7F800001, 0x7FC0, "a signaling NaN, quieted"},
        {0xFFC12345, 0xFFC1, "a negative NaN with a payload"},
    };
    enum { KNOWN = sizeof known / sizeof *known };
    /* the known values first and across the first chunk boundary; random bit patterns elsewhere */
    const size_t at[2] = {0, CHUNK - KNOWN / 2};
    for (int j = 0; j < 2; j++)
        for (int k = 0; k < KNOWN; k++) src.ck.params[at[j] + k] = from_bits(known[k].in);
    for (int k = 0; k < KNOWN; k++)
        CHECK(bf16_of(from_bits(known[k].in)) == known[k].out, "%s: the test's own rounding", known[k].what);
    float *orig = malloc(sizeof(float) * src.P);
    memcpy(orig, src.ck.params, sizeof(float) * src.P);
    CHECK(minrnn_checkpoint_save(path32, &src.ck) == MINRNN_OK, "save at float32");
    src.ck.precision = MINRNN_BFLOAT16;
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "save at bfloat16");
    CHECK(!memcmp(src.ck.params, orig, sizeof(float) * src.P), "save changed the caller's parameters");

    /* the file: each parameter a little-endian u16, 2 bytes fewer than at float32 */
    size_t len = 0, len32 = 0;
    unsigned char *b = slurp(path, &len), *b32 = slurp(path32, &len32);
    CHECK(len32 - len == 2 * src.P, "bfloat16 file of %zu bytes, float32 of %zu, %zu parameters", len, len32,
          src.P);
    CHECK(get_u32(b + O_VERSION) == MINRNN_CHECKPOINT_FORMAT && get_u32(b + O_PRECISION) == MINRNN_BFLOAT16 &&
              get_u32(b32 + O_PRECISION) == MINRNN_FLOAT32, "the precision fields");
    const unsigned char *stored = b + get_u64(b + O_TABLE + 16 * S_PARAMS);
    int bad = 0;
    for (size_t i = 0; i < src.P; i++) {
        uint16_t h = (uint16_t)(stored[2 * i] | stored[2 * i + 1] << 8);
        if (h != bf16_of(orig[i]) && bad++ < 10)
            CHECK(0, "parameter %zu (%08x) stored as %04x, not %04x", i, bits(orig[i]), h, bf16_of(orig[i]));
    }
    CHECK(bad == 0, "%d parameters stored otherwise", bad);

    /* peek and load: the rounded values, widened exactly */
    minrnn_checkpoint peeked;
    memset(&peeked, 0xAB, sizeof peeked);
    CHECK(minrnn_checkpoint_peek(path, &peeked) == MINRNN_OK && peeked.precision == MINRNN_BFLOAT16,
          "peek: precision %d", peeked.precision);
    CHECK(same_scalars(&peeked, &src.ck), "peek's scalars differ");
    owned dst = alloc_for(&peeked, 1);
    CHECK(minrnn_checkpoint_load(path, &dst.ck) == MINRNN_OK, "load");
    bad = 0;
    for (size_t i = 0; i < src.P; i++)
        if (bits(dst.ck.params[i]) != (uint32_t)bf16_of(orig[i]) << 16 && bad++ < 10)
            CHECK(0, "parameter %zu (%08x) loaded as %08x", i, bits(orig[i]), bits(dst.ck.params[i]));
    CHECK(bad == 0, "%d parameters loaded otherwise", bad);
    for (int j = 0; j < 2; j++)
        for (int k = 0; k < KNOWN; k++)
            CHECK(bits(dst.ck.params[at[j] + k]) == (uint32_t)known[k].out << 16, "%s: loaded as %08x",
                  known[k].what, bits(dst.ck.params[at[j] + k]));
    for (size_t i = 0; i < src.P; i++) src.ck.params[i] = widened(bf16_of(orig[i]));
    CHECK(same_buffers(&src, &dst, 1), "the other sections");
    /* saved again: the same file (a widened value rounds to itself) */
    CHECK(minrnn_checkpoint_save(again, &dst.ck) == MINRNN_OK, "save what was loaded");
    size_t len2 = 0;
    unsigned char *b2 = slurp(again, &len2);
    CHECK(b2 && len2 == len && !memcmp(b2, b, len), "saved again: the same file");
    free(b2);

    /* the precision is a scalar field like the others: another one is a MISMATCH */
    dst.ck.precision = MINRNN_FLOAT32;
    CHECK(minrnn_checkpoint_load(path, &dst.ck) == MINRNN_ERR_MISMATCH, "the bfloat16 file as float32");
    CHECK(minrnn_checkpoint_load(path32, &dst.ck) == MINRNN_OK &&
              !memcmp(dst.ck.params, orig, sizeof(float) * src.P), "the float32 file, exact");
    dst.ck.precision = MINRNN_BFLOAT16;
    CHECK(minrnn_checkpoint_load(path32, &dst.ck) == MINRNN_ERR_MISMATCH, "the float32 file as bfloat16");

    /* inference only, and no other precision: save refuses (ARG, no file) */
    owned train = small_source();
    train.ck.precision = MINRNN_BFLOAT16;
    check_save("bfloat16 with a training state", &train.ck, 0);
    const int32_t unknown[] = {3, -1, INT32_MAX};
    for (int i = 0; i < 3; i++) {
        minrnn_checkpoint k = src.ck;
        k.precision = unknown[i];
        char what[64];
        snprintf(what, sizeof what, "precision %d", unknown[i]);
        check_save(what, &k, 0);
    }

    /* and the readers refuse them (CORRUPT), with a valid checksum and a table that fits */
    unsigned char *c = malloc(len32);
    for (int i = 0; i < 3; i++) {
        memcpy(c, b32, len32);
        put_u32(c + O_PRECISION, (uint32_t)unknown[i]);
        rechecksum(c, len32);
        char what[64];
        snprintf(what, sizeof what, "precision %d in a file", unknown[i]);
        check_read(what, c, len32, 0, &dst.ck);
    }
    free(c);
    memcpy(b2 = malloc(len), b, len);
    put_u32(b2 + O_PRECISION, MINRNN_FLOAT32);
    rechecksum(b2, len);
    check_read("a bfloat16 file that says float32", b2, len, 0, &dst.ck);
    free(b2);
    /* the float32 file made bfloat16 by hand is the bfloat16 file: the way of the next case works */
    unsigned char *made = splice(b32, len32, S_PARAMS, stored, 2 * src.P, &len2);
    put_u32(made + O_PRECISION, MINRNN_BFLOAT16);
    rechecksum(made, len2);
    CHECK(len2 == len && !memcmp(made, b, len), "the float32 file with bfloat16 parameters");
    free(made);
    /* a training state made bfloat16 the same way: the rule is what refuses it */
    train.ck.precision = MINRNN_FLOAT32;
    CHECK(minrnn_checkpoint_save(path32, &train.ck) == MINRNN_OK, "save with a training state");
    free(b32);
    b32 = slurp(path32, &len32);
    unsigned char *halves = calloc(train.P, 2);
    made = splice(b32, len32, S_PARAMS, halves, 2 * train.P, &len2);
    put_u32(made + O_PRECISION, MINRNN_BFLOAT16);
    rechecksum(made, len2);
    owned tdst = alloc_for(&train.ck, 1);
    check_read("bfloat16 with a training state, in a file", made, len2, 0, &tdst.ck);
    release(&tdst);
    free(made);
    free(halves);

    free(b32);
    free(b);
    free(orig);
    release(&dst);
    release(&train);
    release(&src);
}

static void test_not_checkpoint_and_version(void)
{
    const char *path = in_dir("other");
    spit(path, "hello, world: this is a text file and not a checkpoint at all.\n", 64);
    CHECK(peek_status(path) == MINRNN_ERR_NOT_CHECKPOINT, "text");
    spit(path, "minrnnCX", 8);
    CHECK(peek_status(path) == MINRNN_ERR_NOT_CHECKPOINT, "magic off by one byte");
    spit(path, "x", 1);
    CHECK(peek_status(path) == MINRNN_ERR_NOT_CHECKPOINT, "one byte");
    spit(path, "min", 3);
    CHECK(peek_status(path) == MINRNN_ERR_TRUNCATED, "prefix of the magic");
    spit(path, "", 0);
    CHECK(peek_status(path) == MINRNN_ERR_TRUNCATED, "empty file");

    owned src = small_source();
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "save");
    size_t len = 0;
    unsigned char *b = slurp(path, &len);
    minrnn_checkpoint peeked;
    CHECK(minrnn_checkpoint_peek(path, &peeked) == MINRNN_OK, "peek");
    owned dst = alloc_for(&peeked, 1);
    size_t len1 = 0;
    unsigned char *b1 = v1_image(&src, &len1);
    const uint32_t versions[] = {0, 8, 0x01000000, 0x00000400, 0xFFFFFFFF};
    for (int i = 0; i < 5; i++) {
        put_u32(b + O_VERSION, versions[i]);
        rechecksum(b, len);
        spit(path, b, len);
        int p = peek_status(path), l = minrnn_checkpoint_load(path, &dst.ck);
        CHECK(p == MINRNN_ERR_VERSION && l == MINRNN_ERR_VERSION, "version %u: peek %d, load %d",
              versions[i], p, l);
        spit(path, b, 12);   /* even a stub with only magic and version */
        CHECK(peek_status(path) == MINRNN_ERR_VERSION, "version %u in 12 bytes", versions[i]);
        put_u32(b1 + O_VERSION, versions[i]);   /* a format-1 file's bytes */
        rechecksum(b1, len1);
        spit(path, b1, len1);
        CHECK(peek_status(path) == MINRNN_ERR_VERSION, "version %u on format 1's bytes", versions[i]);
    }
    /* the versions read here, as stubs: too short for their headers */
    for (uint32_t v = 1; v <= 7; v++) {
        put_u32(b + O_VERSION, v);
        spit(path, b, 12);
        CHECK(peek_status(path) == MINRNN_ERR_TRUNCATED, "version %u in 12 bytes", v);
    }
    CHECK(strstr(minrnn_strerror(MINRNN_ERR_VERSION), "1 to 7") != NULL,
          "the message names the formats read: %s", minrnn_strerror(MINRNN_ERR_VERSION));
    free(b1);
    free(b);
    release(&dst);
    release(&src);
}

static void test_io(void)
{
    minrnn_checkpoint c;
    errno = 0;
    CHECK(minrnn_checkpoint_peek(in_dir("missing.ck"), &c) == MINRNN_ERR_OPEN && errno == ENOENT, "missing: peek");
    owned src = small_source();
    owned dst = small_source();
    CHECK(minrnn_checkpoint_load(in_dir("missing.ck"), &dst.ck) == MINRNN_ERR_OPEN && errno == ENOENT,
          "missing: load");
    CHECK(minrnn_checkpoint_peek(dir, &c) == MINRNN_ERR_NOT_FILE, "a folder: peek");
    /* a FIFO is refused at once (not waited on for a writer) */
    mkfifo(in_dir("fifo"), 0644);
    CHECK(minrnn_checkpoint_peek(in_dir("fifo"), &c) == MINRNN_ERR_NOT_FILE, "a FIFO: peek");
    unlink(in_dir("fifo"));

    /* a folder that does not exist, a "folder" that is a file: creating the file fails */
    errno = 0;
    CHECK(minrnn_checkpoint_save(in_dir("nope/x.ck"), &src.ck) == MINRNN_ERR_OPEN && errno == ENOENT,
          "no such folder");
    spit(in_dir("plain"), "x", 1);
    errno = 0;
    CHECK(minrnn_checkpoint_save(in_dir("plain/x.ck"), &src.ck) == MINRNN_ERR_OPEN && errno == ENOTDIR,
          "file as folder");

    /* the rename fails (path is a non-empty folder): the temporary file must go */
    mkdir(in_dir("taken"), 0755);
    spit(in_dir("taken/f"), "x", 1);
    errno = 0;
    CHECK(minrnn_checkpoint_save(in_dir("taken"), &src.ck) == MINRNN_ERR_RENAME && errno == EISDIR,
          "path is a folder: %s", strerror(errno));
    CHECK(count_temp_files(dir) == 0, "temporary file left after a failed rename");

    /* writing fails (here: over the file size limit, EFBIG; a full disk gives ENOSPC the same way):
     * the status says so, errno why, the temporary file goes and the old file stays */
    CHECK(minrnn_checkpoint_save(in_dir("limited.ck"), &src.ck) == MINRNN_OK, "save before the limit");
    struct rlimit old_limit, small = {100, 0};
    getrlimit(RLIMIT_FSIZE, &old_limit);
    small.rlim_max = old_limit.rlim_max;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);   /* a write past the limit fails instead */
    setrlimit(RLIMIT_FSIZE, &small);
    errno = 0;
    int written = minrnn_checkpoint_save(in_dir("limited.ck"), &src.ck);
    int write_errno = errno;
    setrlimit(RLIMIT_FSIZE, &old_limit);
    signal(SIGXFSZ, old_handler);
    CHECK(written == MINRNN_ERR_WRITE && write_errno == EFBIG, "write past the size limit gave %d, %s",
          written, strerror(write_errno));
    CHECK(count_temp_files(dir) == 0, "temporary file left after a failed write");
    CHECK(peek_status(in_dir("limited.ck")) == MINRNN_OK, "the old file is intact");

    /* an unwritable folder (root may write anyway: then only what happened is checked) */
    char ro[128];
    snprintf(ro, sizeof ro, "%s/readonly", dir);
    mkdir(ro, 0755);
    chmod(ro, 0555);
    char target[160];
    snprintf(target, sizeof target, "%s/x.ck", ro);
    int st = minrnn_checkpoint_save(target, &src.ck);
    if (access(ro, W_OK) != 0) {
        CHECK(st == MINRNN_ERR_OPEN, "unwritable folder: save gave %d", st);
        CHECK(access(target, F_OK) != 0, "unwritable folder: a file appeared");
    } else {
        printf("note: running as a user who can write to a 0555 folder; "
               "the unwritable-folder case only checks for leftovers\n");
        CHECK(st == MINRNN_OK, "writable anyway: save gave %d", st);
    }
    CHECK(count_temp_files(ro) == 0, "temporary file left in the read-only folder");
    chmod(ro, 0755);
    CHECK(count_temp_files(dir) == 0, "temporary file left");
    release(&dst);
    release(&src);
}

/* peek and load on one descriptor read one file even when the path is replaced in between, as
 * training replaces a checkpoint that sample is reading; by path, the load sees the new file. */
static void test_replaced_while_reading(void)
{
    const char *path = in_dir("replaced.ck");
    owned a = make(config(MINRNN_LSTM, MINRNN_TANH, 9, 3, 5, 2, 0.1f), MINRNN_UTF8, 1, 2, "{\"a\": 1}");
    owned b = make(config(MINRNN_GRU, MINRNN_TANH, 11, 0, 4, 1, 0.0f), MINRNN_UTF8, 1, 3, "{\"b\": 22}");
    CHECK(minrnn_checkpoint_save(path, &a.ck) == MINRNN_OK, "save a");
    int fd = open(path, O_RDONLY);
    minrnn_checkpoint peeked;
    CHECK(minrnn_checkpoint_peek_fd(fd, &peeked) == MINRNN_OK, "peek_fd");
    CHECK(minrnn_checkpoint_save(path, &b.ck) == MINRNN_OK, "save b over a");
    owned got = alloc_for(&peeked, 1);
    CHECK(minrnn_checkpoint_load_fd(fd, &got.ck) == MINRNN_OK, "load_fd after the path was replaced");
    CHECK(same_scalars(&got.ck, &a.ck) && same_buffers(&got, &a, 1), "load_fd read a, all of it");
    close(fd);
    release(&got);

    CHECK(minrnn_checkpoint_save(path, &a.ck) == MINRNN_OK, "save a again");
    CHECK(minrnn_checkpoint_peek(path, &peeked) == MINRNN_OK, "peek by path");
    CHECK(minrnn_checkpoint_save(path, &b.ck) == MINRNN_OK, "save b over a again");
    got = alloc_for(&peeked, 1);
    CHECK(minrnn_checkpoint_load(path, &got.ck) == MINRNN_ERR_MISMATCH, "load by path sees b");
    release(&got);
    CHECK(minrnn_checkpoint_peek_fd(-1, &peeked) == MINRNN_ERR_ARG, "a negative descriptor");
    release(&a);
    release(&b);
}

static void test_overwrite(void)
{
    const char *path = in_dir("over.ck");
    owned a = small_source();
    owned b = make(config(MINRNN_GRU, MINRNN_TANH, 12, 0, 7, 3, 0.0f), MINRNN_BYTES, 0, 0,
                   "{\"second\": true}");
    CHECK(minrnn_checkpoint_save(path, &a.ck) == MINRNN_OK, "first save");
    CHECK(minrnn_checkpoint_save(path, &b.ck) == MINRNN_OK, "second save");
    minrnn_checkpoint peeked;
    CHECK(minrnn_checkpoint_peek(path, &peeked) == MINRNN_OK, "peek");
    CHECK(same_scalars(&peeked, &b.ck), "the second checkpoint's fields");
    owned dst = alloc_for(&peeked, 1);
    CHECK(minrnn_checkpoint_load(path, &dst.ck) == MINRNN_OK, "load");
    CHECK(same_buffers(&b, &dst, 1), "the second checkpoint's data");
    release(&dst);

    /* a failed save leaves the old file as it was */
    size_t n1 = 0, n2 = 0;
    unsigned char *before = slurp(path, &n1);
    minrnn_checkpoint bad = a.ck;
    bad.rng_state = 0;
    CHECK(minrnn_checkpoint_save(path, &bad) == MINRNN_ERR_ARG, "invalid save");
    unsigned char *after = slurp(path, &n2);
    CHECK(n1 == n2 && !memcmp(before, after, n1), "a failed save changed the file");
    free(before);
    free(after);
    CHECK(count_temp_files(dir) == 0, "temporary file left");
    release(&a);
    release(&b);
}

static void test_save_arguments(void)
{
    const char *path = in_dir("args.ck");
    owned o = small_source();
    owned bytes = make(config(MINRNN_RNN, MINRNN_RELU, 256, 0, 3, 1, 0.5f), MINRNN_BYTES, 0, 0, NULL);
    for (int c = 0; c < 27; c++) {
        minrnn_checkpoint k = c < 20 || c == 26 ? o.ck : bytes.ck;
        int32_t vocab[300] = {0};
        memcpy(vocab, k.vocab, sizeof(int32_t) * (size_t)k.config.vocab_size);
        k.vocab = vocab;
        int expect = MINRNN_ERR_ARG;
        switch (c) {
        case 0: k.config.cell = 7; expect = MINRNN_ERR_CONFIG; break;
        case 1: k.config.dropout = 1.0f; expect = MINRNN_ERR_CONFIG; break;
        case 2: k.encoding = 2; break;
        case 3: k.has_train_state = 2; break;
        case 4: vocab[1] = vocab[0]; break;
        case 5: vocab[0] = -1; break;
        case 6: vocab[4] = 0xDFFF; break;
        case 7: vocab[4] = 0x110000; break;
        case 8: k.batch_size = 0; break;
        case 9: k.seq_len = -3; break;
        case 10: k.optimizer.kind = 4; break;
        case 11: k.optimizer.momentum = from_bits(0x7FC00000); break;
        case 12: k.optimizer.clip_norm = from_bits(0xFF800000); break;
        case 13: k.optimizer.step = -1; break;
        case 14: k.epoch = -1; break;
        case 15: k.position = -1; break;
        case 16: k.rng_state = 0; break;
        case 17: k.state = NULL; break;
        case 18: k.meta = NULL; break;
        case 19: k.meta_size = UINT64_MAX; break;   /* the file could not describe it */
        case 26: k.meta_size = (uint64_t)INT64_MAX - 300; break;   /* nor a file this long */
        case 20: vocab[255] = 256; break;
        case 21: k.config.vocab_size = 259; break;   /* 256 bytes and two markers at most */
        case 22: k.vocab = NULL; break;
        case 23: k.params = NULL; break;
        case 24: vocab[3] = 2; break;
        case 25: expect = MINRNN_OK; break;   /* the BYTES checkpoint itself */
        }
        int st = minrnn_checkpoint_save(path, &k);
        CHECK(st == expect, "case %d: save gave %d, expected %d", c, st, expect);
        CHECK(expect == MINRNN_OK || access(path, F_OK) != 0, "case %d: a file was written", c);
        unlink(path);
    }
    /* format 2's fields and buffers */
    owned labelled = labelled_source(), vector = vector_source();
    for (int c = 0; c < 14; c++) {
        minrnn_checkpoint k = c < 8 ? labelled.ck : vector.ck;
        int expect = MINRNN_ERR_CONFIG;
        switch (c) {
        case 0: k.config.task = 4; break;   /* no such task */
        case 1: k.config.num_classes = 1; break;
        case 2: k.config.num_classes = MINRNN_MAX_CLASSES + 1; break;
        case 3: k.config.cond = 3; break;
        case 4: k.config.cond_size = 0; break;
        case 5: k.config.one_bias = 2; break;
        case 6: k.config.reduction = -1; break;
        case 7: k.labels = NULL; expect = MINRNN_ERR_ARG; break;
        case 8: k.cond_shift = NULL; expect = MINRNN_ERR_ARG; break;
        case 9: k.cond_scale = NULL; expect = MINRNN_ERR_ARG; break;
        case 10: k.labels_size = 2; k.labels = (char *)"a\n"; expect = MINRNN_ERR_ARG; break;
        case 11: k.config.cond_size = 0; break;
        case 12: k.config.num_classes = 2; break;   /* K for a language model */
        case 13: expect = MINRNN_OK; break;
        }
        int st = minrnn_checkpoint_save(path, &k);
        CHECK(st == expect, "format 2 case %d: save gave %d, expected %d", c, st, expect);
        CHECK(expect == MINRNN_OK || access(path, F_OK) != 0, "format 2 case %d: a file was written", c);
        unlink(path);
    }
    release(&labelled);
    release(&vector);

    CHECK(minrnn_checkpoint_save(NULL, &o.ck) == MINRNN_ERR_ARG, "NULL path");
    CHECK(minrnn_checkpoint_save(path, NULL) == MINRNN_ERR_ARG, "NULL ck");

    /* without a train state, whatever the training fields hold is written as zeros */
    minrnn_checkpoint k = o.ck;
    k.has_train_state = 0;
    k.m = k.v = k.state = NULL;
    k.optimizer.lr = from_bits(0x7FC00000);
    k.batch_size = -5;
    CHECK(minrnn_checkpoint_save(path, &k) == MINRNN_OK, "save without a train state");
    minrnn_checkpoint peeked;
    CHECK(minrnn_checkpoint_peek(path, &peeked) == MINRNN_OK, "peek");
    CHECK(peeked.batch_size == 0 && bits(peeked.optimizer.lr) == 0 && peeked.rng_state == 0 &&
              peeked.optimizer.step == 0 && peeked.epoch == 0, "training fields are zero");
    CHECK(count_temp_files(dir) == 0, "temporary file left");
    release(&o);
    release(&bytes);
}

/* ---- int8 parameters: each row a scale and its q, quantized as save writes it; load gives the
 * block's exact values, which quantize back to the same bytes; a reader takes only what save writes */

/* Byte offset, within the int8 params section, of row `row` of tensor `index`. */
static size_t int8_row_at(const minrnn_config *cfg, int index, int row)
{
    minrnn_tensor t;
    size_t at = 0;
    for (int i = 0; i < index; i++) {
        minrnn_tensor_info(cfg, i, &t);
        at += (size_t)t.rows * (4 + (size_t)t.cols);
    }
    minrnn_tensor_info(cfg, index, &t);
    return at + (size_t)row * (4 + (size_t)t.cols);
}

static void test_int8(void)
{
    char path[256], again[256];
    snprintf(path, sizeof path, "%s", in_dir("int8.ck"));
    snprintf(again, sizeof again, "%s", in_dir("int8-again.ck"));
    owned src = make(config(MINRNN_LSTM, MINRNN_TANH, 60, 16, 96, 2, 0.0f), MINRNN_UTF8, 0, 0, "{\"a\": 1}");
    minrnn_config cfg = src.ck.config;
    minrnn_init_params(&cfg, src.ck.params, 5, MINRNN_INIT_DEFAULT);   /* finite: random bits are not */
    /* rows at the edges of the rule: all zeros, one subnormal, exactly 127 times a power of two,
     * just over it, and a bias of -0 */
    for (int k = 0; k < 16; k++) src.ck.params[k] = 0.0f, src.ck.params[16 + k] = 0.0f, src.ck.params[32 + k] = 0.25f;
    src.ck.params[16 + 3] = from_bits(1);
    src.ck.params[32 + 5] = 127.0f * 0.5f, src.ck.params[48] = nextafterf(127.0f * 0.5f, 100.0f);
    minrnn_tensor bias;
    minrnn_tensor_info(&cfg, 3, &bias);   /* encoder, weight_ih_l0, weight_hh_l0, bias_ih_l0 */
    CHECK(bias.ndim == 1, "tensor 3 is a bias");
    src.ck.params[bias.offset] = -0.0f;
    float *orig = malloc(sizeof(float) * src.P), *want = malloc(sizeof(float) * src.P);
    memcpy(orig, src.ck.params, sizeof(float) * src.P);
    size_t bytes = minrnn_params_size(&cfg, MINRNN_INT8);
    unsigned char *block = malloc(bytes);
    CHECK(minrnn_params_compact(&cfg, orig, MINRNN_INT8, block) == MINRNN_OK &&
              minrnn_params_expand(&cfg, MINRNN_INT8, block, want) == MINRNN_OK, "the block's values");
    src.ck.precision = MINRNN_INT8;
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "save at int8");
    CHECK(!memcmp(src.ck.params, orig, sizeof(float) * src.P), "save changed the caller's parameters");

    /* the file: a scale and cols bytes per row */
    size_t len = 0, rows = 0;
    unsigned char *b = slurp(path, &len);
    for (int i = 0; i < minrnn_tensor_count(&cfg); i++) {
        minrnn_tensor t;
        minrnn_tensor_info(&cfg, i, &t);
        rows += (size_t)t.rows;
    }
    CHECK(b && get_u64(b + O_TABLE + 16 * S_PARAMS + 8) == src.P + 4 * rows && get_u32(b + O_PRECISION) == MINRNN_INT8,
          "int8 params section of %llu bytes", (unsigned long long)get_u64(b + O_TABLE + 16 * S_PARAMS + 8));
    const unsigned char *stored = b + get_u64(b + O_TABLE + 16 * S_PARAMS);
    CHECK(get_u32(stored) == bits(0x1p-126f) && get_u32(stored + 20) == bits(0x1p-126f) && (int8_t)stored[20 + 4 + 3] == 0,
          "a zero row and a subnormal one: the least scale, and q 0");
    CHECK(get_u32(stored + 40) == bits(0.5f) && (int8_t)stored[40 + 4 + 5] == 127 && (int8_t)stored[40 + 4] == 0,
          "127 * 2^-1: scale 2^-1 and q 127; 0.25 / 2^-1 = 0.5, a tie, rounds to even: q 0");
    CHECK(get_u32(stored + 60) == bits(1.0f), "just over 127 * 2^-1: scale 1");
    size_t at = int8_row_at(&cfg, 3, 0);
    CHECK(get_u32(stored + at) == bits(-0.0f) && stored[at + 4] == 1, "a bias: its value as the scale, q 1");

    /* peek and load: the block's values, exactly; saved again, the same file */
    minrnn_checkpoint peeked;
    CHECK(minrnn_checkpoint_peek(path, &peeked) == MINRNN_OK && peeked.precision == MINRNN_INT8, "peek");
    owned dst = alloc_for(&peeked, 1);
    CHECK(minrnn_checkpoint_load(path, &dst.ck) == MINRNN_OK, "load");
    CHECK(!memcmp(dst.ck.params, want, sizeof(float) * src.P), "loaded: not the block's values");
    CHECK(minrnn_checkpoint_save(again, &dst.ck) == MINRNN_OK, "save what was loaded");
    size_t len2 = 0;
    unsigned char *b2 = slurp(again, &len2);
    CHECK(b2 && len2 == len && !memcmp(b2, b, len), "saved again: the same file");
    free(b2);

    /* what save never writes, with a valid checksum: refused */
    size_t p0 = get_u64(b + O_TABLE + 16 * S_PARAMS), row1 = p0 + int8_row_at(&cfg, 1, 0);
    minrnn_tensor w;
    minrnn_tensor_info(&cfg, 1, &w);
    for (int c = 0; c < 6; c++) {
        unsigned char *m = malloc(len);
        memcpy(m, b, len);
        const char *what = "";
        switch (c) {
        case 0: put_u32(m + row1, bits(3.0f)), what = "a scale not a power of two"; break;
        case 1: put_u32(m + row1, bits(0x1p101f)), what = "a scale over 2^100"; break;
        case 2: m[row1 + 4] = 0x80, what = "q = -128"; break;
        case 3: memset(m + row1 + 4, 1, (size_t)w.cols), what = "a row whose largest |q| is under 64"; break;
        case 4: m[p0 + at + 4] = 2, what = "a bias with q 2"; break;
        default: put_u32(m + p0 + at, bits(INFINITY)), what = "an infinite bias"; break;
        }
        rechecksum(m, len);
        check_read(what, m, len, 0, &dst.ck);
        free(m);
    }
    /* and what it never saves: a parameter that is not finite, or a training state */
    for (int c = 0; c < 2; c++) {
        minrnn_checkpoint k = src.ck;
        float *p = malloc(sizeof(float) * src.P);
        memcpy(p, orig, sizeof(float) * src.P);
        p[100] = c ? NAN : 0x1p120f;
        k.params = p;
        check_save(c ? "int8 of a NaN" : "int8 of 2^120", &k, 0);
        free(p);
    }
    owned train = small_source();
    train.ck.precision = MINRNN_INT8;
    check_save("int8 with a training state", &train.ck, 0);
    release(&train);
    free(b), free(orig), free(want), free(block);
    release(&dst);
    release(&src);
}

int main(void)
{
    /* In memory where there is a tmpfs: on ext4, a file truncated and then closed is written back
     * at once (its replace-by-truncate heuristic), and the truncation test cuts files ~20,000 times. */
    snprintf(dir, sizeof dir, "%s/minrnn-test-checkpoint-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    /* bitwise round trips: LSTM with a train state, GRU without, RNN relu over bytes, and a model
     * large enough that every section spans several 64 KiB chunks */
    test_round_trip("lstm.ck", config(MINRNN_LSTM, MINRNN_TANH, 7, 5, 6, 2, 0.2f), MINRNN_UTF8, 1, 3,
                    "{\"args\": {\"hidden\": 6}, \"text\": \"\xe4\xb8\xad\xf0\x9f\x98\x80\"}");
    test_round_trip("gru.ck", config(MINRNN_GRU, MINRNN_TANH, 15, 0, 5, 3, 0.0f), MINRNN_UTF8, 0, 0,
                    NULL);
    test_round_trip("rnn.ck", config(MINRNN_RNN, MINRNN_RELU, 256, 0, 4, 1, 0.5f), MINRNN_BYTES, 1, 1,
                    "{}");
    {
        static char meta[100001];
        for (size_t i = 0; i < sizeof meta - 1; i++) meta[i] = (char)('a' + i % 26);
        test_round_trip("big.ck", config(MINRNN_LSTM, MINRNN_TANH, 60, 16, 64, 2, 0.3f),
                        MINRNN_UTF8, 1, 5, meta);
    }
    /* format 2's models: classifiers and their label names, conditions, record vocabularies,
     * min-char-rnn's one bias and summed loss; with and without a training state */
    const minrnn_config lstm = config(MINRNN_LSTM, MINRNN_TANH, 7, 5, 6, 2, 0.2f);
    const minrnn_config gru = config(MINRNN_GRU, MINRNN_TANH, 10, 4, 5, 1, 0.1f);
    const minrnn_config rnn = config(MINRNN_RNN, MINRNN_TANH, 9, 0, 8, 1, 0.0f);
    test_round_trip("classifier.ck", classifier(lstm, 4), MINRNN_UTF8, 1, 3, "{\"task\": \"classify\"}");
    test_round_trip("classifier-nt.ck", classifier(lstm, 4), MINRNN_UTF8, 0, 0, NULL);
    round_trip("records.ck", with_markers(make(conditioned(gru, MINRNN_COND_LABEL, 3), MINRNN_UTF8, 1, 2, "{}")));
    round_trip("records-nt.ck", with_markers(make(conditioned(gru, MINRNN_COND_LABEL, 3), MINRNN_UTF8, 0, 0,
                                                  NULL)));
    round_trip("bytes-records.ck",   /* every byte and both markers */
               with_markers(make(config(MINRNN_RNN, MINRNN_RELU, 258, 0, 4, 1, 0.0f), MINRNN_BYTES, 1, 2, NULL)));
    test_round_trip("vector.ck", min_char_rnn(conditioned(rnn, MINRNN_COND_VECTOR, 5)), MINRNN_UTF8, 1, 4,
                    "{\"x\": 1}");
    test_round_trip("vector-nt.ck", min_char_rnn(conditioned(rnn, MINRNN_COND_VECTOR, 5)), MINRNN_UTF8, 0, 0,
                    NULL);
    test_round_trip("min-char-rnn.ck", min_char_rnn(rnn), MINRNN_UTF8, 1, 1, NULL);
    test_round_trip("classes-and-labels.ck", min_char_rnn(conditioned(classifier(lstm, 3), MINRNN_COND_LABEL, 2)),
                    MINRNN_UTF8, 1, 2, NULL);
    test_round_trip("classes-and-vector.ck", conditioned(classifier(gru, 2), MINRNN_COND_VECTOR, 3), MINRNN_BYTES,
                    0, 0, "{}");
    /* sections of several 64 KiB chunks: 20000 names, a vector of 20000, 17000 symbols and markers */
    test_round_trip("big-labels.ck",
                    conditioned(classifier(config(MINRNN_GRU, MINRNN_TANH, 30, 8, 8, 1, 0.0f), 20000),
                                MINRNN_COND_VECTOR, 20000), MINRNN_UTF8, 1, 2, NULL);
    round_trip("big-records.ck", with_markers(make(config(MINRNN_RNN, MINRNN_TANH, 17000, 4, 4, 1, 0.0f),
                                                   MINRNN_UTF8, 0, 0, NULL)));
    /* bfloat16 parameters (format 3's), already rounded so that the round trip is bitwise */
    round_trip("bf16.ck", bf16_source());
    round_trip("bf16-records.ck", in_bf16(with_markers(make(conditioned(gru, MINRNN_COND_LABEL, 3), MINRNN_UTF8,
                                                            0, 0, "{}"))));
    test_mismatch();
    test_truncation();
    test_flips();
    test_hostile();
    test_label_rules();
    test_vocab_rules();
    test_word_vocab_rules();
    test_cond_rules();
    test_padding();
    test_format1();
    test_format2();
    test_format3();
    test_weight_decay();
    test_seq2seq_round_trips();
    test_seq2seq_rules();
    test_bfloat16();
    test_int8();
    test_not_checkpoint_and_version();
    test_io();
    test_replaced_while_reading();
    test_overwrite();
    test_save_arguments();

    CHECK(count_temp_files(dir) == 0, "temporary files left at the end");
    remove_tree(dir);
    CHECK(access(dir, F_OK) != 0, "test folder not removed");
    printf("test_checkpoint: %d checks, %d failures\n", checks, failures);
    return failures != 0;
}
