/* test_checkpoint.c: minrnn_checkpoint_save / _peek / _load, format 1, through the public API only.
 *
 * Round trips (bitwise, NaN payloads included), changed fields (MISMATCH), every truncation,
 * every header bit flipped, random byte flips, hostile headers with a valid checksum, other
 * versions, non-checkpoints, I/O failures (which step failed, errno kept, no temporary file left
 * behind), reading through one descriptor while the path is replaced, overwriting, and the
 * argument checks of save. Files go to a fresh mkdtemp folder in /tmp, removed at the end.
 *
 *   gcc -std=c11 -O1 -g -Wall -Wextra -fsanitize=address,undefined \
 *       cext/checkpoint.c cext/core.c cext/tests/test_checkpoint.c -Icext -lm -o /tmp/tc && /tmp/tc
 *
 * It needs only minrnn_config_check, minrnn_param_count and minrnn_state_size besides the
 * checkpoint calls. Exit status 0 when every check passes; each failure is printed. Run as root,
 * the unwritable-folder case cannot happen (root writes to a 0555 folder) and says so.
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
    HEADER = 256, TRAILER = 8,
    O_VERSION = 8, O_HEADER_SIZE = 12, O_CELL = 16, O_NONLIN = 20, O_V = 24, O_E = 28, O_H = 32,
    O_L = 36, O_DROPOUT = 40, O_ENCODING = 44, O_HAS_TRAIN = 48, O_B = 52, O_T = 56, O_KIND = 60,
    O_LR = 64, O_EPS = 84, O_STEP = 96, O_EPOCH = 104, O_POSITION = 112, O_RNG = 120,
    O_TABLE = 128, O_PADDING = 224
};
enum { S_VOCAB, S_PARAMS, S_M, S_V, S_STATE, S_META };

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

static minrnn_config config(int cell, int nonlin, int V, int E, int H, int L, float dropout)
{
    minrnn_config c = {cell, nonlin, V, E, H, L, dropout};
    return c;
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

/* Buffers for what peek found (m, v, state when train). */
static owned alloc_for(const minrnn_checkpoint *peeked, int train_buffers)
{
    owned o;
    memset(&o, 0, sizeof o);
    o.ck = *peeked;
    o.P = minrnn_param_count(&peeked->config);
    o.ck.vocab = calloc((size_t)peeked->config.vocab_size, sizeof(int32_t));
    o.ck.params = calloc(o.P, sizeof(float));
    o.ck.meta = peeked->meta_size ? calloc(peeked->meta_size, 1) : NULL;
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
           bits(a->config.dropout) == bits(b->config.dropout) && a->encoding == b->encoding &&
           a->has_train_state == b->has_train_state && a->meta_size == b->meta_size &&
           p->kind == q->kind && bits(p->lr) == bits(q->lr) &&
           bits(p->momentum) == bits(q->momentum) && bits(p->alpha) == bits(q->alpha) &&
           bits(p->beta1) == bits(q->beta1) && bits(p->beta2) == bits(q->beta2) &&
           bits(p->eps) == bits(q->eps) && bits(p->clip_value) == bits(q->clip_value) &&
           bits(p->clip_norm) == bits(q->clip_norm) && p->step == q->step &&
           a->rng_state == b->rng_state && a->batch_size == b->batch_size &&
           a->seq_len == b->seq_len && a->epoch == b->epoch && a->position == b->position;
}

static int same_buffers(const owned *a, const owned *b, int train_buffers)
{
    const minrnn_checkpoint *x = &a->ck, *y = &b->ck;
    int ok = !memcmp(x->vocab, y->vocab, sizeof(int32_t) * (size_t)x->config.vocab_size) &&
             !memcmp(x->params, y->params, sizeof(float) * a->P) &&
             (x->meta_size == 0 || !memcmp(x->meta, y->meta, x->meta_size));
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

static void test_round_trip(const char *name, minrnn_config cfg, int encoding, int train, int B,
                            const char *meta)
{
    const char *path = in_dir(name);
    owned src = make(cfg, encoding, train, B, meta);
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
    CHECK(!peeked.vocab && !peeked.params && !peeked.meta && !peeked.m && !peeked.v &&
              !peeked.state, "%s: peek left a pointer", name);

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
    uint64_t expect = HEADER + 4 * (uint64_t)cfg.vocab_size + 4 * (uint64_t)src.P +
                      (train ? 8 * (uint64_t)src.P + 4 * (uint64_t)src.S : 0) +
                      src.ck.meta_size + TRAILER;
    CHECK(b && len == expect, "%s: length %zu, expected %llu", name, len, (unsigned long long)expect);
    CHECK(b && !memcmp(b, "minrnnCK", 8) && b[8] == 1 && b[12] == 0 && b[13] == 1,
          "%s: header start", name);
    free(b);
    CHECK(count_temp_files(dir) == 0, "%s: temporary file left", name);
    release(&src);
}

/* Change one scalar field after peek: load must refuse with MISMATCH. */
static void test_mismatch(void)
{
    const char *path = in_dir("mismatch.ck");
    owned src = make(config(MINRNN_LSTM, MINRNN_TANH, 6, 3, 4, 2, 0.25f), MINRNN_UTF8, 1, 2,
                     "{\"a\": 1}");
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "save");
    minrnn_checkpoint peeked;
    CHECK(minrnn_checkpoint_peek(path, &peeked) == MINRNN_OK, "peek");
    owned dst = alloc_for(&peeked, 1);
    for (int field = 0; field < 20; field++) {
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
    CHECK(minrnn_checkpoint_load(path, NULL) == MINRNN_ERR_ARG, "load NULL ck");
    CHECK(minrnn_checkpoint_peek(NULL, &c) == MINRNN_ERR_ARG, "peek NULL path");
    release(&dst);
    release(&src);
}

/* The small valid checkpoint the corruption tests start from. */
static owned small_source(void)
{
    return make(config(MINRNN_LSTM, MINRNN_TANH, 5, 3, 4, 2, 0.1f), MINRNN_UTF8, 1, 2,
                "{\"loss\": 1.5, \"text\": \"h\xc3\xa9\"}");
}

static void test_truncation(void)
{
    const char *path = in_dir("trunc.ck");
    owned src = small_source();
    CHECK(minrnn_checkpoint_save(path, &src.ck) == MINRNN_OK, "save");
    size_t len = 0;
    unsigned char *b = slurp(path, &len);
    minrnn_checkpoint peeked;
    CHECK(minrnn_checkpoint_peek(path, &peeked) == MINRNN_OK, "peek");
    owned dst = alloc_for(&peeked, 1);
    int bad = 0;
    for (size_t n = len; n-- > 0;) {
        if (truncate(path, (off_t)n) != 0) {
            perror("truncate");
            exit(2);
        }
        int p = peek_status(path), l = minrnn_checkpoint_load(path, &dst.ck);
        if (p != MINRNN_ERR_TRUNCATED || l != MINRNN_ERR_TRUNCATED) {
            if (bad++ < 10) CHECK(0, "truncated to %zu of %zu: peek %d, load %d", n, len, p, l);
        }
    }
    CHECK(bad == 0, "%d of %zu truncations not reported as TRUNCATED", bad, len);
    checks += (int)len;

    /* a truncated file that is no prefix of the magic is not a checkpoint */
    spit(path, "minrnX", 6);
    CHECK(peek_status(path) == MINRNN_ERR_NOT_CHECKPOINT, "6 bytes, not a prefix");
    spit(path, b, 10);   /* magic and half the version */
    CHECK(peek_status(path) == MINRNN_ERR_TRUNCATED, "10 bytes");
    free(b);
    release(&dst);
    release(&src);
}

static void test_flips(void)
{
    const char *path = in_dir("flip.ck");
    owned src = small_source();
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

/* Rewrite the section table as the format requires for these fields. */
static void set_table(unsigned char *b, const minrnn_config *cfg, int train, int B, uint64_t meta)
{
    uint64_t P = minrnn_param_count(cfg), S = train ? minrnn_state_size(cfg, B) : 0;
    uint64_t size[6] = {4 * (uint64_t)cfg->vocab_size, 4 * P, train ? 4 * P : 0,
                        train ? 4 * P : 0, 4 * S, meta};
    uint64_t at = HEADER;
    for (int s = 0; s < 6; s++) {
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

    for (int c = 0; c < 64; c++) {
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
            set_table(b, &cfg, 1, 2, src.ck.meta_size);
            expect = MINRNN_ERR_TRUNCATED;
            break;
        case 4:
            put_u32(b + O_B, 0x7FFFFFFF);
            set_table(b, &cfg, 1, 0x7FFFFFFF, src.ck.meta_size);
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
        case 9:   /* the largest file an off_t can describe */
            put_u64(b + O_TABLE + 16 * S_META + 8, (uint64_t)INT64_MAX - 8 - meta_off);
            expect = MINRNN_ERR_TRUNCATED;
            break;
        case 10: put_u64(b + O_TABLE + 16 * S_META + 8, src.ck.meta_size + 4); expect = MINRNN_ERR_TRUNCATED; break;
        case 11: put_u64(b + O_TABLE + 16 * S_META + 8, src.ck.meta_size - 1); expect = MINRNN_ERR_CORRUPT; break;
        case 12: put_u64(b + O_TABLE + 16 * S_PARAMS, HEADER); expect = MINRNN_ERR_CORRUPT; break;   /* overlaps vocab */
        case 13: put_u64(b + O_TABLE + 16 * S_M, get_u64(b + O_TABLE + 16 * S_PARAMS)); expect = MINRNN_ERR_CORRUPT; break;
        case 14: put_u64(b + O_TABLE + 16 * S_VOCAB, UINT64_MAX); expect = MINRNN_ERR_CORRUPT; break;
        case 15: put_u64(b + O_TABLE + 16 * S_STATE, (uint64_t)1 << 62); expect = MINRNN_ERR_CORRUPT; break;
        case 16: put_u64(b + O_TABLE + 16 * S_PARAMS + 8, UINT64_MAX - 3); expect = MINRNN_ERR_CORRUPT; break;
        case 17: put_u64(b + O_TABLE + 16 * S_STATE + 8, 0); expect = MINRNN_ERR_CORRUPT; break;
        case 18: put_u64(b + O_TABLE + 16 * S_VOCAB, 0); expect = MINRNN_ERR_CORRUPT; break;
        case 19: put_u32(b + O_HEADER_SIZE, 512); expect = MINRNN_ERR_CORRUPT; break;
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
            set_table(b, &cfg, 1, 2, src.ck.meta_size);
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
            set_table(b, &cfg, 1, 2, src.ck.meta_size);
            expect = MINRNN_ERR_CORRUPT;
            break;
        case 56:   /* no train state: consistent table, zeroed fields, but the file is longer */
            memset(b + O_B, 0, O_TABLE - O_B);
            put_u32(b + O_HAS_TRAIN, 0);
            set_table(b, &cfg, 0, 0, src.ck.meta_size);
            expect = MINRNN_ERR_CORRUPT;
            break;
        case 57:   /* the same, with the file cut to the length it implies: a valid checkpoint */
            memset(b + O_B, 0, O_TABLE - O_B);
            put_u32(b + O_HAS_TRAIN, 0);
            set_table(b, &cfg, 0, 0, 0);
            n = HEADER + 4 * 5 + 4 * src.P + TRAILER;
            expect = MINRNN_OK;
            break;
        case 58:   /* that valid file with a training field that should be zero */
        case 59:
        case 60:
            memset(b + O_B, 0, O_TABLE - O_B);
            put_u32(b + O_HAS_TRAIN, 0);
            set_table(b, &cfg, 0, 0, 0);
            n = HEADER + 4 * 5 + 4 * src.P + TRAILER;
            if (c == 58) put_u32(b + O_B, 1);
            if (c == 59) put_u32(b + O_LR, 0x80000000);   /* -0.0 */
            if (c == 60) b[O_RNG + 7] = 1;
            expect = MINRNN_ERR_CORRUPT;
            break;
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
    const uint32_t versions[] = {0, 2, 0x01000000, 0xFFFFFFFF};
    for (int i = 0; i < 4; i++) {
        put_u32(b + O_VERSION, versions[i]);
        rechecksum(b, len);
        spit(path, b, len);
        int p = peek_status(path), l = minrnn_checkpoint_load(path, &dst.ck);
        CHECK(p == MINRNN_ERR_VERSION && l == MINRNN_ERR_VERSION, "version %u: peek %d, load %d",
              versions[i], p, l);
        spit(path, b, 12);   /* even a stub with only magic and version */
        CHECK(peek_status(path) == MINRNN_ERR_VERSION, "version %u in 12 bytes", versions[i]);
    }
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
        int32_t vocab[300];
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
        case 21: k.config.vocab_size = 257; break;
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

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/minrnn-test-checkpoint-XXXXXX");
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
    test_mismatch();
    test_truncation();
    test_flips();
    test_hostile();
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
