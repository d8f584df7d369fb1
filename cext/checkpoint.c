/* checkpoint.c: minrnn_checkpoint_save / _peek / _load: checkpoint format 7, and formats 1 to 6
 * read.
 *
 * A checkpoint is one file, all little-endian whatever the host: a fixed header (512 bytes), then
 * the sections back to back in the order of the section table with no gaps, then an 8-byte trailer.
 *
 *   off  size  the header
 *   0    8     magic: the 8 bytes "minrnnCK"
 *   8    4     u32 format version = MINRNN_CHECKPOINT_FORMAT (7)
 *   12   4     u32 header size = 512
 *   16   112   the fields of HEADER_FIELDS below from cell to rng_state: the configuration's first
 *              fields, the encoding, has_train_state, then the training state (batch_size down to
 *              rng_state), every one of which is 0 when has_train_state = 0
 *   128  128   eight (u64 offset, u64 size) pairs, in bytes, for the sections:
 *              vocab, params, m, v, state, meta, labels, scaling
 *   256  52    the fields of HEADER_FIELDS from task to weight_decay (the optimizer's, 0 when
 *              has_train_state = 0)
 *   308  204   zero padding (must be zero)
 *   512  ...   sections: vocab (vocab_length x i32), params (param_count x f32, or x bf16 when
 *              precision = MINRNN_BFLOAT16, or int8 rows when precision = MINRNN_INT8: see below),
 *              m (param_count x f32), v (param_count x f32),
 *              state (state_size(cfg, B) x f32), meta (meta_size bytes of UTF-8 JSON),
 *              labels (labels_size bytes), scaling (2C + 2D x f32: cond_shift, cond_scale,
 *              input_shift, input_scale, each present when its size C or D is);
 *              m, v and state have size 0 when has_train_state = 0 (an empty section's offset
 *              is where it would start); C is cond_size with MINRNN_COND_VECTOR, else 0
 *   end-8 8    u64 checksum: FNV-1a 64-bit (offset basis 0xcbf29ce484222325,
 *              prime 0x100000001b3) of every byte before it
 *
 * HEADER_FIELDS is the one list of the header's fields: each field's offset, type, the
 * minrnn_checkpoint member it holds, the first format that has it (an older file reads it as 0)
 * and its rule. Writing, reading, checking and comparing headers all walk it.
 *
 * A bf16 is a u16, the high half of a float32's bits: save rounds each parameter to nearest, ties
 * to even, as it writes it (a NaN stays a NaN: its high half with the quiet bit 0x0040 set); load
 * widens each one exactly (the low half 0). In memory the parameters are float32 either way, and
 * the caller's buffer is never changed.
 *
 * int8 params (cext/int8.c's rule) are every row of every tensor in block order, each an f32
 * scale and then its cols int8 values q; a 1-D tensor's rows are its elements (cols 1). Save
 * quantizes each row as it writes it (MINRNN_ERR_ARG, before anything is written, if a parameter is
 * not finite or beyond 127 * 2^100, or a row is longer than int8 takes: minrnn_params_size); load
 * writes q times the scale, which is exact. A reader
 * accepts only what save writes, so the loaded floats quantize back to the same bytes: a 2-D row's
 * scale is 2^e, INT8_MIN_EXP <= e <= INT8_MAX_EXP, its q within [-127, 127], and its largest |q|
 * at least 64 unless e = INT8_MIN_EXP; a 1-D row is a finite scale and q = 1.
 *
 * Format 6 (the one before weight decay; read, never written) is format 7 without weight_decay:
 * 304..511 is zero padding, and a format-6 file reads as weight_decay 0.
 *
 * Format 5 (the one before captioning over a grid; read, never written) is format 6 without
 * input_feeding: 300..511 is zero padding, and a format-5 file reads as input_feeding 0.
 *
 * Format 4 (the one before word vocabularies and vector inputs; read, never written) is format 5
 * without input_size and loss: 292..511 is zero padding, a format-4 file reads as input_size 0 and
 * loss MINRNN_CROSS_ENTROPY, and its
 * encoding is never MINRNN_WORDS.
 *
 * Format 3 (the one before sequence to sequence; read, never written) is format 4 without the
 * attention fields: 284..511 is zero padding, a format-3 file reads as attention
 * MINRNN_ATTENTION_NONE and attention_size 0, and its task is never MINRNN_TASK_SEQ2SEQ.
 *
 * Format 2 (the one before bfloat16; read, never written) is format 3 without the precision
 * field: 280..511 is zero padding, and a format-2 file reads as precision MINRNN_FLOAT32.
 *
 * Format 1 (written by minrnn 0.1 and 0.2; read, never written) is the same up to byte 128, with
 * version 1 and header size 256. Its table has six pairs (vocab .. meta) at 128..223, 224..255 is
 * zero padding, and its sections start at 256. It has no field from byte 224 on: a format-1 file
 * reads as task MINRNN_TASK_LM, num_classes 0, cond MINRNN_COND_NONE, cond_size 0, one_bias 0,
 * reduction MINRNN_MEAN, precision MINRNN_FLOAT32, attention MINRNN_ATTENTION_NONE,
 * attention_size 0 (the defaults, all 0), labels_size 0, an empty scaling section, and its vocabulary has
 * no START/END markers.
 * (Where each format's fields end, and its padding begins, follows from HEADER_FIELDS and its
 * section table.)
 *
 * Rules shared by save (MINRNN_ERR_ARG when broken) and the readers (MINRNN_ERR_CORRUPT):
 *   - the config passes minrnn_config_check; encoding is UTF8, BYTES or WORDS (a model of vectors,
 *     input_size > 0 but not a seq2seq captioner of grids, has no vocabulary: UTF8); BYTES has V <= 258;
 *     vocab_length is V for UTF8 and BYTES, and for WORDS at least V and at most
 *     V * (MINRNN_MAX_TOKEN_CHARS + 1);
 *   - the task is not MINRNN_TASK_ENCODE: a bare encoder has no output layer, nothing samples or
 *     classifies with it, and a seq2seq checkpoint already holds its encoder;
 *   - precision is MINRNN_FLOAT32, MINRNN_BFLOAT16 or MINRNN_INT8, and only MINRNN_FLOAT32 has a
 *     training state (a compact checkpoint is for inference; an exact resume needs the float32
 *     parameters);
 *   - vocab: the text's symbols, strictly increasing, optionally followed by MINRNN_START_SYMBOL
 *     and MINRNN_END_SYMBOL (both or neither, the last two entries; never in format 1; always
 *     for MINRNN_TASK_SEQ2SEQ, whose last two ids are the start and the end token); UTF8
 *     symbols are Unicode scalar values (0..0x10FFFF without the surrogates 0xD800..0xDFFF),
 *     BYTES symbols are 0..255; a WORDS vocabulary holds V ids: tokens, each 0 to
 *     MINRNN_MAX_TOKEN_CHARS Unicode scalar values ended by MINRNN_TOKEN_END, strictly increasing
 *     (so the first, the unknown word, is the only empty one), then the markers as above;
 *   - labels: the names of the K classes (a classifier; a model of vectors with MINRNN_TASK_LM: of
 *     its V classes; none for values, MINRNN_SQUARED_ERROR), then of the C labels (MINRNN_COND_LABEL);
 *     labels_size is 0 if there are none, otherwise the section is exactly those names, each
 *     non-empty, ended by '\n', without '\t', '\r' or NUL, and valid UTF-8 (no overlong forms,
 *     surrogates, or code points over U+10FFFF);
 *   - scaling: every float of cond_shift, cond_scale, input_shift and input_scale is finite;
 *   - with a training state: B >= 1, T >= 1, optimizer kind 0..3, every optimizer float finite,
 *     step, epoch and position in [0, INT64_MAX) (training adds one to each), rng_state != 0.
 * (An invalid config makes save return minrnn_config_check's own status.)
 *
 * Writing is atomic: everything goes to "<path>.tmp-XXXXXX" in the same folder, which is
 * flushed, fsynced and renamed over path (a symlink at path is replaced, not followed); path
 * never holds half a checkpoint. Reading trusts nothing: every size is derived from the config,
 * checked for overflow and against the file length before anything is read, the checksum covers
 * the whole file, and nothing is allocated from what the file says. peek reads the whole file
 * once (header, the rules on contents, checksum); load does the same and then reads it a second
 * time into the caller's buffers, checking it all again. Both work on a file descriptor (the
 * path functions open one): peek and load on the same descriptor read the same file, whatever
 * happens to its path meanwhile. Only regular files are read (MINRNN_ERR_NOT_FILE otherwise).
 *
 * Errors from the system keep its errno: the status says which step failed (open, read, write,
 * rename) and errno why, as the failed call left it.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "internal.h"   /* minrnn.h, and bfloat16 rounding and widening */

_Static_assert(sizeof(float) == 4, "checkpoints store IEEE-754 binary32 floats");

#define HEADER_SIZE_MAX 512          /* the largest header of the formats read here */
#define TRAILER_SIZE 8
#define IO_CHUNK_BYTES (64 * 1024)   /* bytes converted or hashed at a time; a multiple of every
                                      * element's width (4, 2, 1) */
#define FNV_BASIS 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static const char MAGIC[8] = {'m', 'i', 'n', 'r', 'n', 'n', 'C', 'K'};

enum { OFF_MAGIC = 0, OFF_VERSION = 8, OFF_HEADER_SIZE = 12,
       OFF_TABLE = 128 };             /* section i: offset at 128 + 16 i, size at 136 + 16 i */

enum { SEC_VOCAB, SEC_PARAMS, SEC_M, SEC_V, SEC_STATE, SEC_META, SEC_LABELS, SEC_SCALING, NUM_SECTIONS };

/* ---- the header's fields, in one table */

enum { U32, I32, F32, I64, U64 };    /* a field's type: 4 bytes, or 8 from I64 on */
/* A field's rule, beyond minrnn_config_check's on the whole configuration (and the rules between
 * fields in check_scalars): ANY; FINITE (a float); POSITIVE (>= 1); COUNT (0 to INT64_MAX - 1: a
 * count that training increments, which must not overflow); NONZERO; UPTO (0 to the field's max). */
enum { ANY, FINITE, POSITIVE, COUNT, NONZERO, UPTO };

typedef struct {
    const char *name;
    uint16_t offset;
    uint8_t type;
    uint8_t format;                  /* the first format with this field; older files read it as 0 */
    uint8_t train;                   /* 1: part of the training state, 0 without one */
    uint8_t rule;
    uint8_t max;                     /* UPTO's bound */
    size_t member;                   /* where it lives in a minrnn_checkpoint */
} header_field;

#define FIELD(offset, name, type, format, train, rule, max, member) \
    {name, offset, type, format, train, rule, max, offsetof(minrnn_checkpoint, member)}

static const header_field HEADER_FIELDS[] = {
    /*    off  name              type fmt train rule     max  member */
    FIELD(16,  "cell",           I32, 1, 0, ANY,      0, config.cell),
    FIELD(20,  "nonlinearity",   I32, 1, 0, ANY,      0, config.nonlinearity),
    FIELD(24,  "vocab_size",     I32, 1, 0, ANY,      0, config.vocab_size),
    FIELD(28,  "embed_size",     I32, 1, 0, ANY,      0, config.embed_size),
    FIELD(32,  "hidden_size",    I32, 1, 0, ANY,      0, config.hidden_size),
    FIELD(36,  "num_layers",     I32, 1, 0, ANY,      0, config.num_layers),
    FIELD(40,  "dropout",        F32, 1, 0, ANY,      0, config.dropout),
    FIELD(44,  "encoding",       I32, 1, 0, UPTO,     MINRNN_WORDS, encoding),
    FIELD(48,  "has_train_state", I32, 1, 0, UPTO,    1, has_train_state),
    FIELD(52,  "batch_size",     I32, 1, 1, POSITIVE, 0, batch_size),
    FIELD(56,  "seq_len",        I32, 1, 1, POSITIVE, 0, seq_len),
    FIELD(60,  "optimizer",      I32, 1, 1, UPTO,     MINRNN_ADAM, optimizer.kind),
    FIELD(64,  "lr",             F32, 1, 1, FINITE,   0, optimizer.lr),
    FIELD(68,  "momentum",       F32, 1, 1, FINITE,   0, optimizer.momentum),
    FIELD(72,  "alpha",          F32, 1, 1, FINITE,   0, optimizer.alpha),
    FIELD(76,  "beta1",          F32, 1, 1, FINITE,   0, optimizer.beta1),
    FIELD(80,  "beta2",          F32, 1, 1, FINITE,   0, optimizer.beta2),
    FIELD(84,  "eps",            F32, 1, 1, FINITE,   0, optimizer.eps),
    FIELD(88,  "clip_value",     F32, 1, 1, FINITE,   0, optimizer.clip_value),
    FIELD(92,  "clip_norm",      F32, 1, 1, FINITE,   0, optimizer.clip_norm),
    FIELD(96,  "step",           I64, 1, 1, COUNT,    0, optimizer.step),
    FIELD(104, "epoch",          I64, 1, 1, COUNT,    0, epoch),
    FIELD(112, "position",       I64, 1, 1, COUNT,    0, position),
    FIELD(120, "rng_state",      U64, 1, 1, NONZERO,  0, rng_state),
    /* 128..255: the section table */
    FIELD(256, "task",           I32, 2, 0, ANY,      0, config.task),
    FIELD(260, "num_classes",    I32, 2, 0, ANY,      0, config.num_classes),
    FIELD(264, "cond",           I32, 2, 0, ANY,      0, config.cond),
    FIELD(268, "cond_size",      I32, 2, 0, ANY,      0, config.cond_size),
    FIELD(272, "one_bias",       I32, 2, 0, ANY,      0, config.one_bias),
    FIELD(276, "reduction",      I32, 2, 0, ANY,      0, config.reduction),
    FIELD(280, "precision",      I32, 3, 0, UPTO,     MINRNN_INT8, precision),
    FIELD(284, "attention",      I32, 4, 0, ANY,      0, config.attention),
    FIELD(288, "attention_size", I32, 4, 0, ANY,      0, config.attention_size),
    FIELD(292, "input_size",     I32, 5, 0, ANY,      0, config.input_size),
    FIELD(296, "loss",           I32, 5, 0, ANY,      0, config.loss),
    FIELD(300, "input_feeding",  I32, 6, 0, ANY,      0, config.input_feeding),
    FIELD(304, "weight_decay",   F32, 7, 1, FINITE,   0, optimizer.weight_decay),
};
#define NUM_HEADER_FIELDS ((int)(sizeof HEADER_FIELDS / sizeof HEADER_FIELDS[0]))

static int field_width(const header_field *f) { return f->type >= I64 ? 8 : 4; }

/* The field's bits as ck holds them (a 4-byte field in the low half). */
static uint64_t field_bits(const header_field *f, const minrnn_checkpoint *ck) {
    const unsigned char *p = (const unsigned char *)ck + f->member;
    if (field_width(f) == 8) {
        uint64_t u;
        memcpy(&u, p, 8);
        return u;
    }
    uint32_t u;
    memcpy(&u, p, 4);
    return u;
}

static void set_field_bits(const header_field *f, minrnn_checkpoint *ck, uint64_t bits) {
    unsigned char *p = (unsigned char *)ck + f->member;
    if (field_width(f) == 8) {
        memcpy(p, &bits, 8);
    } else {
        uint32_t u = (uint32_t)bits;
        memcpy(p, &u, 4);
    }
}

/* Whether the field's value in ck obeys its rule. */
static int field_ok(const header_field *f, const minrnn_checkpoint *ck) {
    uint64_t bits = field_bits(f, ck);
    uint32_t low = (uint32_t)bits;
    int64_t value = 0;   /* a whole number's value, signed as its type is */
    if (f->type == I32) {
        int32_t x;
        memcpy(&x, &low, 4);
        value = x;
    } else if (f->type == I64) {
        memcpy(&value, &bits, 8);
    } else if (f->type == U32) {
        value = low;
    }
    switch (f->rule) {
    case FINITE: {
        float x;
        memcpy(&x, &low, 4);
        return isfinite(x);
    }
    case POSITIVE: return value >= 1;
    case COUNT: return value >= 0 && value < INT64_MAX;
    case NONZERO: return bits != 0;
    case UPTO: return value >= 0 && value <= f->max;
    default: return 1;
    }
}

/* What the formats read here differ in: the header's size, the section table's length (the later
 * sections are empty in a shorter one), whether the vocabulary may end with the START/END
 * markers, whether the task may be MINRNN_TASK_SEQ2SEQ, and whether the vocabulary may be
 * MINRNN_WORDS (whose length the section table gives). The fields that a format has are
 * those of HEADER_FIELDS of its version or older. */
typedef struct {
    uint32_t version;
    uint32_t header_size;
    int sections;                    /* pairs in the section table */
    int markers;                     /* 1: the vocabulary may end with the START/END markers */
    int seq2seq;                     /* 1: the task may be MINRNN_TASK_SEQ2SEQ */
    int words;                       /* 1: the encoding may be MINRNN_WORDS */
} checkpoint_format;

static const checkpoint_format FORMATS[] = {
    {1, 256, SEC_LABELS, 0, 0, 0},
    {2, 512, NUM_SECTIONS, 1, 0, 0},
    {3, 512, NUM_SECTIONS, 1, 0, 0},
    {4, 512, NUM_SECTIONS, 1, 1, 0},
    {5, 512, NUM_SECTIONS, 1, 1, 1},
    {6, 512, NUM_SECTIONS, 1, 1, 1},
    {7, 512, NUM_SECTIONS, 1, 1, 1},
};

/* Where a format's fields end: past its last field and its section table; padding follows. */
static uint32_t fields_end(const checkpoint_format *format) {
    uint32_t end = OFF_TABLE + 16 * (uint32_t)format->sections;
    for (int i = 0; i < NUM_HEADER_FIELDS; i++) {
        const header_field *f = &HEADER_FIELDS[i];
        uint32_t f_end = f->offset + (uint32_t)field_width(f);
        if (f->format <= format->version && f_end > end) end = f_end;
    }
    return end;
}

/* The format of this version; NULL for one this library does not read. */
static const checkpoint_format *format_of(uint32_t version)
{
    for (size_t i = 0; i < sizeof FORMATS / sizeof *FORMATS; i++)
        if (FORMATS[i].version == version) return &FORMATS[i];
    return NULL;
}

/* Where each section lies, in bytes. */
typedef struct {
    const checkpoint_format *format;
    uint64_t offset[NUM_SECTIONS];
    uint64_t size[NUM_SECTIONS];
    uint64_t width[NUM_SECTIONS];    /* bytes per element: 4, 2 (bfloat16 params) or 1 */
    uint64_t file_size;              /* header + sections + trailer */
} layout;

/* ---- little-endian fields */

static void put_u16(unsigned char *p, uint16_t x)
{
    p[0] = (unsigned char)x;
    p[1] = (unsigned char)(x >> 8);
}

static void put_u32(unsigned char *p, uint32_t x)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(x >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t x)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(x >> (8 * i));
}


static uint16_t get_u16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
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

/* Two's complement reinterpretations, without implementation-defined conversions. */
static int32_t get_i32(const unsigned char *p)
{
    uint32_t u = get_u32(p);
    int32_t x;
    memcpy(&x, &u, 4);
    return x;
}

static float get_f32(const unsigned char *p)
{
    uint32_t u = get_u32(p);
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static uint64_t fnv1a(uint64_t hash, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) hash = (hash ^ p[i]) * FNV_PRIME;
    return hash;
}

/* ---- what a checkpoint may hold */

/* Whether ck is a model of vectors, which has no vocabulary (a captioner of grids reads vectors
 * and writes tokens: it has one). */
static int reads_vectors_only(const minrnn_config *cfg)
{
    return cfg->input_size && cfg->task != MINRNN_TASK_SEQ2SEQ;
}

/* The ids of ck's vocabulary: V, or none for a model of vectors (its V, if any, counts outputs). */
static int64_t vocab_ids(const minrnn_checkpoint *ck)
{
    return reads_vectors_only(&ck->config) ? 0 : ck->config.vocab_size;
}

/* The vocabulary, checked an entry at a time (so that a section read in chunks is checked whole):
 * V ids, each a symbol (UTF8, BYTES) or a token (WORDS: its code points, then MINRNN_TOKEN_END),
 * strictly increasing, then, if markers are allowed, either nothing or MINRNN_START_SYMBOL and
 * MINRNN_END_SYMBOL as the last two ids; a seq2seq model's vocabulary always ends with them. */
typedef struct {
    const minrnn_checkpoint *ck;
    int markers;                     /* whether the format allows the markers */
    int64_t ids;                     /* ids complete: symbols or tokens ended, and markers */
    int32_t prev;                    /* the last entry (0 before the first) */
    int32_t last[MINRNN_MAX_TOKEN_CHARS], now[MINRNN_MAX_TOKEN_CHARS];   /* WORDS: the last token */
    int last_len, now_len;           /* ... and the one in progress */
    int broken;
} vocab_check;

/* Whether code point sequence a (n of them) comes after b (m): at the first difference, or by
 * being longer. */
static int token_after(const int32_t *a, int n, const int32_t *b, int m)
{
    for (int k = 0; k < n && k < m; k++)
        if (a[k] != b[k]) return a[k] > b[k];
    return n > m;
}

static int symbol_ok(const minrnn_checkpoint *ck, int32_t symbol)
{
    if (ck->encoding == MINRNN_BYTES) return symbol >= 0 && symbol <= 255;
    return symbol >= 0 && symbol <= 0x10FFFF && (symbol < 0xD800 || symbol > 0xDFFF);
}

static void vocab_feed(vocab_check *c, int32_t x)
{
    const minrnn_checkpoint *ck = c->ck;
    int64_t V = vocab_ids(ck);
    int32_t prev = c->prev;
    int words = ck->encoding == MINRNN_WORDS;
    int64_t symbols = V - (ck->config.task == MINRNN_TASK_SEQ2SEQ ? 2 : 0);   /* ids before the markers */
    c->prev = x;
    if (c->broken) return;
    if (prev == MINRNN_START_SYMBOL) {   /* only the end marker follows the start marker, as the last id */
        c->broken = x != MINRNN_END_SYMBOL || c->ids != V - 1;
        c->ids++;
        return;
    }
    if (prev == MINRNN_END_SYMBOL || c->ids >= V) {   /* nothing after the last id */
        c->broken = 1;
        return;
    }
    if (x == MINRNN_START_SYMBOL) {
        c->broken = !c->markers || c->ids != V - 2 || (words && c->now_len > 0);
        c->ids++;
        return;
    }
    if (!words) {
        c->broken = !symbol_ok(ck, x) || c->ids >= symbols || (c->ids > 0 && x <= prev);
        c->ids++;
        return;
    }
    if (x == MINRNN_TOKEN_END) {   /* the first token is empty; every later one comes after the last */
        c->broken = c->ids >= symbols || (c->ids == 0 ? c->now_len != 0
                                                        : !token_after(c->now, c->now_len, c->last, c->last_len));
        memcpy(c->last, c->now, (size_t)c->now_len * sizeof *c->now);
        c->last_len = c->now_len, c->now_len = 0;
        c->ids++;
        return;
    }
    c->broken = !symbol_ok(ck, x) || c->now_len >= MINRNN_MAX_TOKEN_CHARS;
    if (!c->broken) c->now[c->now_len++] = x;
}

/* Whether the entries fed were the whole vocabulary. */
static int vocab_complete(const vocab_check *c)
{
    const minrnn_checkpoint *ck = c->ck;
    return !c->broken && c->ids == vocab_ids(ck) && c->now_len == 0 &&
           (ck->config.task != MINRNN_TASK_SEQ2SEQ || c->prev == MINRNN_END_SYMBOL);
}

/* How many names the labels section holds: the classes (a classifier's, or a tagger's of
 * vectors: a model of vectors with MINRNN_TASK_LM), then the condition's labels. */
static uint64_t label_count(const minrnn_config *cfg)
{
    int classes = cfg->loss == MINRNN_CROSS_ENTROPY;   /* values have no names */
    uint64_t out = cfg->task == MINRNN_TASK_CLASSIFY ? (uint64_t)cfg->num_classes
                 : cfg->task == MINRNN_TASK_LM && cfg->input_size ? (uint64_t)cfg->vocab_size : 0;
    return (classes ? out : 0) + (uint64_t)(cfg->cond == MINRNN_COND_LABEL ? cfg->cond_size : 0);
}

/* The label names, checked a byte at a time, so that a section read in chunks is checked whole:
 * each name non-empty, ended by '\n', without '\t', '\r' or NUL, in valid UTF-8. */
typedef struct {
    uint64_t names;                  /* names ended so far */
    uint64_t length;                 /* bytes of the name in progress */
    int need;                        /* continuation bytes still due in the UTF-8 sequence */
    unsigned char lo, hi;            /* the range of the next of them */
    int broken;
} names_check;

static void names_feed(names_check *c, const unsigned char *p, uint64_t n)
{
    for (uint64_t i = 0; i < n && !c->broken; i++) {
        unsigned char b = p[i];
        if (c->need > 0) {   /* a continuation byte ('\n' is never one) */
            c->broken = b < c->lo || b > c->hi;
            c->need--, c->lo = 0x80, c->hi = 0xBF;
        } else if (b == '\n') {
            c->broken = c->length == 0;
            c->names++, c->length = 0;
            continue;
        } else if (b == '\t' || b == '\r' || b == 0 || (b >= 0x80 && b < 0xC2) || b > 0xF4) {
            c->broken = 1;   /* C0 and C1 lead only overlong forms; F5.. lead over U+10FFFF */
        } else if (b >= 0xC2) {
            /* a lead byte; its first continuation's range excludes the overlong forms (E0, F0),
             * the surrogates (ED) and code points over U+10FFFF (F4) */
            c->need = b < 0xE0 ? 1 : b < 0xF0 ? 2 : 3;
            c->lo = b == 0xE0 ? 0xA0 : b == 0xF0 ? 0x90 : 0x80;
            c->hi = b == 0xED ? 0x9F : b == 0xF4 ? 0x8F : 0xBF;
        }
        c->length++;
    }
}

/* Whether the bytes fed were exactly count whole names (none at all when count is 0). */
static int names_complete(const names_check *c, uint64_t count)
{
    return !c->broken && c->length == 0 && c->names == count;   /* length 0: no sequence open */
}

/* MINRNN_OK if ck's scalar fields describe a checkpoint that the format can hold; otherwise the
 * config's own status if the config is invalid, MINRNN_ERR_ARG for anything else. */
static int check_scalars(const minrnn_checkpoint *ck)
{
    int status = minrnn_config_check(&ck->config);
    if (status != MINRNN_OK) return status;
    for (int i = 0; i < NUM_HEADER_FIELDS; i++) {   /* each field's own rule */
        const header_field *f = &HEADER_FIELDS[i];
        if ((!f->train || ck->has_train_state) && !field_ok(f, ck)) return MINRNN_ERR_ARG;
    }
    if (ck->config.task == MINRNN_TASK_ENCODE) return MINRNN_ERR_ARG;   /* a bare encoder */
    /* 256 bytes and the two markers; the vocabulary's own rule is the exact one */
    if (ck->encoding == MINRNN_BYTES && ck->config.vocab_size > 256 + 2) return MINRNN_ERR_ARG;
    if (reads_vectors_only(&ck->config) && ck->encoding != MINRNN_UTF8) return MINRNN_ERR_ARG;   /* no vocabulary */
    int64_t V = vocab_ids(ck);   /* WORDS: every token at most MINRNN_MAX_TOKEN_CHARS and its end */
    if (ck->encoding == MINRNN_WORDS ? ck->vocab_length < V || ck->vocab_length > V * (MINRNN_MAX_TOKEN_CHARS + 1)
                                     : ck->vocab_length != V)
        return MINRNN_ERR_ARG;
    /* a model without names has no labels section (said by the header, before any is read) */
    if (label_count(&ck->config) == 0 && ck->labels_size != 0) return MINRNN_ERR_ARG;
    /* rounded parameters are for inference: an exact resume needs the float32 ones */
    if (ck->precision != MINRNN_FLOAT32 && ck->has_train_state) return MINRNN_ERR_ARG;
    return MINRNN_OK;
}

/* Whether ck has every buffer that its scalar fields make necessary for save and load (the
 * training-state buffers are optional for load, so they are not checked here). */
static int has_buffers(const minrnn_checkpoint *ck)
{
    return (ck->vocab || vocab_ids(ck) == 0) && ck->params && (ck->meta_size == 0 || ck->meta) &&
           (ck->labels_size == 0 || ck->labels) &&
           (ck->config.cond != MINRNN_COND_VECTOR || (ck->cond_shift && ck->cond_scale)) &&
           (ck->config.input_size == 0 || (ck->input_shift && ck->input_scale));
}

/* The condition vector's size C, or 0. */
static uint64_t cond_floats(const minrnn_checkpoint *ck)
{
    return ck->config.cond == MINRNN_COND_VECTOR ? (uint64_t)ck->config.cond_size : 0;
}

/* The caller's buffers that hold section s of ck, in file order, with their sizes in elements
 * (bytes for a section of width 1), and how many: scaling is up to four arrays (C floats each of
 * cond_shift and cond_scale, D each of input_shift and input_scale); every other section is one,
 * of `whole` elements. */
static int section_buffers(const minrnn_checkpoint *ck, int s, uint64_t whole, void *buf[4], uint64_t size[4])
{
    void *const one[NUM_SECTIONS] = {ck->vocab, ck->params, ck->m, ck->v, ck->state,
                                     ck->meta, ck->labels, NULL};
    if (s != SEC_SCALING) {
        buf[0] = one[s], size[0] = whole;
        return 1;
    }
    uint64_t C = cond_floats(ck), D = (uint64_t)ck->config.input_size;
    float *const all[4] = {ck->cond_shift, ck->cond_scale, ck->input_shift, ck->input_scale};
    int n = 0;
    for (int k = 0; k < 4; k++)
        if ((k < 2 ? C : D) > 0) buf[n] = all[k], size[n++] = k < 2 ? C : D;
    return n;
}

/* ---- int8 params: a row at a time (cext/int8.c) */

/* Bytes of the int8 params section: every row's scale and q. */
static uint64_t int8_section_bytes(const minrnn_config *cfg)
{
    uint64_t bytes = 0;
    minrnn_tensor t;
    for (int i = 0, n = minrnn_tensor_count(cfg); i < n && minrnn_tensor_info(cfg, i, &t) == MINRNN_OK; i++)
        bytes += (uint64_t)t.rows * (4 + (uint64_t)t.cols);
    return bytes;
}

/* Where a reader is in the int8 params section: the tensor, its row, and the byte within the row. */
typedef struct {
    const minrnn_config *cfg;
    minrnn_tensor t;
    int tensor, count;       /* the tensor being read, of count */
    int64_t row, at;         /* at: 0..3 the scale's bytes, then 4 + k for q[k] */
    unsigned char sbytes[4];
    float scale;
    int maxq, broken;
} int8_reader;

/* Whether a row just read is what save writes (the rule at the top). */
static int int8_row_ok(const int8_reader *r)
{
    if (r->t.ndim == 1) return isfinite(r->scale) && r->maxq == 1 && !r->broken;
    int e;
    float f = frexpf(r->scale, &e);   /* scale = 0.5 2^e = 2^(e-1) when a power of two */
    return !r->broken && f == 0.5f && e - 1 >= INT8_MIN_EXP && e - 1 <= INT8_MAX_EXP &&
           (r->maxq >= 64 || e - 1 == INT8_MIN_EXP);
}

/* Read n bytes of the section; writes each value into out (param_count floats) unless it is NULL.
 * Returns 0 at the first byte that breaks the rule. */
static int int8_feed(int8_reader *r, const unsigned char *p, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++) {
        if (r->tensor >= r->count) return 0;   /* longer than the config's tensors */
        if (r->row == 0 && r->at == 0) minrnn_tensor_info(r->cfg, r->tensor, &r->t);
        if (r->at < 4) {
            r->sbytes[r->at++] = p[i];
            if (r->at == 4) r->scale = float_(get_u32(r->sbytes)), r->maxq = 0, r->broken = 0;
            continue;
        }
        int q = (int8_t)p[i], k = (int)(r->at++ - 4);
        if (q == -128 || (r->t.ndim == 1 && q != 1)) r->broken = 1;
        if (abs(q) > r->maxq) r->maxq = abs(q);
        if (out) out[r->t.offset + r->row * r->t.cols + k] = (float)q * r->scale;   /* exact */
        if (k + 1 < r->t.cols) continue;
        if (!int8_row_ok(r)) return 0;
        r->at = 0;
        if (++r->row == r->t.rows) r->row = 0, r->tensor++;
    }
    return 1;
}

/* Bytes per element of each section: 4 for int32 and float words, 1 for bytes; the params
 * section's is its precision's: 4, 2, or 1 for int8 rows (counted in bytes). */
static const uint64_t WIDTH[NUM_SECTIONS] = {4, 4, 4, 4, 4, 1, 1, 4};

/* The back-to-back layout in this format that ck's (checked) scalar fields imply. Returns 0 if a
 * size is not representable: over 64 bits, or a file longer than the largest off_t (INT64_MAX). */
static int compute_layout(const minrnn_checkpoint *ck, const checkpoint_format *format, layout *lay)
{
    uint64_t count[NUM_SECTIONS] = {0};   /* elements */
    size_t P = minrnn_param_count(&ck->config);
    if (P == 0) return 0;
    count[SEC_VOCAB] = (uint64_t)ck->vocab_length;
    count[SEC_PARAMS] = (uint64_t)P;
    if (ck->has_train_state) {
        size_t S = minrnn_state_size(&ck->config, ck->batch_size);
        if (S == 0) return 0;
        count[SEC_M] = count[SEC_V] = (uint64_t)P;
        count[SEC_STATE] = (uint64_t)S;
    }
    count[SEC_META] = ck->meta_size;
    count[SEC_LABELS] = ck->labels_size;
    count[SEC_SCALING] = 2 * cond_floats(ck) + 2 * (uint64_t)ck->config.input_size;
    lay->format = format;
    memcpy(lay->width, WIDTH, sizeof WIDTH);
    if (ck->precision == MINRNN_INT8) {
        if (minrnn_params_size(&ck->config, MINRNN_INT8) == 0) return 0;   /* rows too long for int8 */
        lay->width[SEC_PARAMS] = 1;
        count[SEC_PARAMS] = int8_section_bytes(&ck->config);
    } else {
        lay->width[SEC_PARAMS] = ck->precision == MINRNN_BFLOAT16 ? 2 : 4;
    }
    uint64_t at = format->header_size;
    for (int s = 0; s < NUM_SECTIONS; s++) {
        if (count[s] > (UINT64_MAX - at) / lay->width[s]) return 0;   /* at + count * width overflows */
        lay->offset[s] = at;
        lay->size[s] = count[s] * lay->width[s];
        at += lay->size[s];
    }
    if (at > (uint64_t)INT64_MAX - TRAILER_SIZE) return 0;
    lay->file_size = at + TRAILER_SIZE;
    return 1;
}

/* ---- the header */

static void encode_header(const minrnn_checkpoint *ck, const layout *lay, unsigned char *h)
{
    const checkpoint_format *format = lay->format;
    memset(h, 0, format->header_size);
    memcpy(h + OFF_MAGIC, MAGIC, sizeof MAGIC);
    put_u32(h + OFF_VERSION, format->version);
    put_u32(h + OFF_HEADER_SIZE, format->header_size);
    for (int i = 0; i < NUM_HEADER_FIELDS; i++) {
        const header_field *f = &HEADER_FIELDS[i];
        if (f->train && !ck->has_train_state) continue;   /* stays 0, whatever ck holds */
        if (field_width(f) == 8) put_u64(h + f->offset, field_bits(f, ck));
        else put_u32(h + f->offset, (uint32_t)field_bits(f, ck));
    }
    for (int s = 0; s < format->sections; s++) {
        put_u64(h + OFF_TABLE + 16 * s, lay->offset[s]);
        put_u64(h + OFF_TABLE + 16 * s + 8, lay->size[s]);
    }
}

/* Parse and check the first n bytes (n <= HEADER_SIZE_MAX) of a file of file_len bytes: magic,
 * version, length against the header, header size, padding, scalar fields, section table,
 * length against the sections. On MINRNN_OK, ck holds the scalar fields (pointers NULL) and lay
 * the section layout, which matches the file length exactly. */
static int parse_header(const unsigned char *h, size_t n, uint64_t file_len,
                        minrnn_checkpoint *ck, layout *lay)
{
    if (n < sizeof MAGIC || memcmp(h, MAGIC, sizeof MAGIC) != 0) {
        size_t m = n < sizeof MAGIC ? n : sizeof MAGIC;
        int prefix = n < sizeof MAGIC && memcmp(h, MAGIC, m) == 0;   /* true for an empty file */
        return prefix ? MINRNN_ERR_TRUNCATED : MINRNN_ERR_NOT_CHECKPOINT;
    }
    if (n < OFF_VERSION + 4) return MINRNN_ERR_TRUNCATED;
    const checkpoint_format *format = format_of(get_u32(h + OFF_VERSION));
    if (!format) return MINRNN_ERR_VERSION;
    if (file_len < format->header_size + TRAILER_SIZE) return MINRNN_ERR_TRUNCATED;
    /* from here on, n >= header_size */

    if (get_u32(h + OFF_HEADER_SIZE) != format->header_size) return MINRNN_ERR_CORRUPT;
    for (uint32_t i = fields_end(format); i < format->header_size; i++)
        if (h[i] != 0) return MINRNN_ERR_CORRUPT;
    memset(ck, 0, sizeof *ck);   /* the fields a format lacks keep their defaults: all 0 */
    for (int i = 0; i < NUM_HEADER_FIELDS; i++) {
        const header_field *f = &HEADER_FIELDS[i];
        if (f->format <= format->version)
            set_field_bits(f, ck, field_width(f) == 8 ? get_u64(h + f->offset) : get_u32(h + f->offset));
    }
    ck->meta_size = get_u64(h + OFF_TABLE + 16 * SEC_META + 8);
    if (format->sections > SEC_LABELS) ck->labels_size = get_u64(h + OFF_TABLE + 16 * SEC_LABELS + 8);
    uint64_t vocab_bytes = get_u64(h + OFF_TABLE + 16 * SEC_VOCAB + 8);   /* WORDS: its length; checked below */
    ck->vocab_length = ck->encoding == MINRNN_WORDS && vocab_bytes <= INT64_MAX ? (int64_t)(vocab_bytes / 4)
                                                                               : vocab_ids(ck);
    if (check_scalars(ck) != MINRNN_OK) return MINRNN_ERR_CORRUPT;
    if (ck->config.task == MINRNN_TASK_SEQ2SEQ && !format->seq2seq) return MINRNN_ERR_CORRUPT;
    if (ck->encoding == MINRNN_WORDS && !format->words) return MINRNN_ERR_CORRUPT;
    for (int i = 0; i < NUM_HEADER_FIELDS; i++)   /* without a training state, its fields are 0 */
        if (HEADER_FIELDS[i].train && !ck->has_train_state && field_bits(&HEADER_FIELDS[i], ck) != 0)
            return MINRNN_ERR_CORRUPT;   /* bits: -0.0f is not 0 */

    if (!compute_layout(ck, format, lay)) return MINRNN_ERR_CORRUPT;
    for (int s = 0; s < format->sections; s++)
        if (get_u64(h + OFF_TABLE + 16 * s) != lay->offset[s] ||
            get_u64(h + OFF_TABLE + 16 * s + 8) != lay->size[s])
            return MINRNN_ERR_CORRUPT;
    if (lay->file_size > file_len) return MINRNN_ERR_TRUNCATED;
    if (lay->file_size != file_len) return MINRNN_ERR_CORRUPT;
    return MINRNN_OK;
}

/* ck with vocab_length 0 taken as V for UTF8 and BYTES, whose vocabularies are V entries: what
 * save and load compare (so a caller that fills a checkpoint by hand need not set it). */
static minrnn_checkpoint with_length(const minrnn_checkpoint *ck)
{
    minrnn_checkpoint same = *ck;
    if (same.vocab_length == 0 && same.encoding != MINRNN_WORDS) same.vocab_length = vocab_ids(&same);
    return same;
}

/* Whether ck's scalar fields are exactly file's (floats compared bit for bit). */
static int same_scalars(const minrnn_checkpoint *ck, const minrnn_checkpoint *file)
{
    for (int i = 0; i < NUM_HEADER_FIELDS; i++)
        if (field_bits(&HEADER_FIELDS[i], ck) != field_bits(&HEADER_FIELDS[i], file)) return 0;
    return ck->meta_size == file->meta_size && ck->labels_size == file->labels_size &&
           ck->vocab_length == file->vocab_length;
}

/* ---- reading */

/* Read exactly n bytes: MINRNN_OK, MINRNN_ERR_TRUNCATED at the end of the file, MINRNN_ERR_READ. */
static int read_exact(FILE *f, void *p, size_t n)
{
    if (fread(p, 1, n, f) == n) return MINRNN_OK;
    return ferror(f) ? MINRNN_ERR_READ : MINRNN_ERR_TRUNCATED;
}

/* fclose without touching errno: for the paths that return an error errno explains. */
static void close_quietly(FILE *f)
{
    int saved = errno;
    fclose(f);
    errno = saved;
}

/* The rules on the sections' contents, checked as the sections stream by, a chunk at a time. */
typedef struct {
    const minrnn_checkpoint *ck;     /* the file's scalar fields */
    vocab_check vocab;
    names_check names;
} contents_check;

/* Check the n bytes at p, the next ones of section s (n a multiple of its width). */
static int contents_feed(contents_check *c, int s, const unsigned char *p, size_t n)
{
    if (s == SEC_VOCAB)
        for (size_t i = 0; i < n; i += 4) vocab_feed(&c->vocab, get_i32(p + i));
    if (s == SEC_LABELS) names_feed(&c->names, p, n);
    if (s == SEC_SCALING)
        for (size_t i = 0; i < n; i += 4)
            if (!isfinite(get_f32(p + i))) return 0;
    return !c->vocab.broken && !c->names.broken;
}

/* Read the whole file from its start as lay says: the header must still be hdr, the sections
 * must obey the rules on contents for ck's scalar fields (which are the file's), and the
 * checksum must match the trailer. Each section goes into ck's buffers for it that are not NULL
 * (peek passes a ck whose pointers are all NULL). */
static int scan_file(FILE *f, const unsigned char *hdr, const layout *lay, const minrnn_checkpoint *ck)
{
    unsigned char buf[IO_CHUNK_BYTES];
    uint32_t header_size = lay->format->header_size;
    if (fseeko(f, 0, SEEK_SET) != 0) return MINRNN_ERR_READ;
    int status = read_exact(f, buf, header_size);
    if (status != MINRNN_OK) return status;
    if (memcmp(buf, hdr, header_size) != 0) return MINRNN_ERR_CORRUPT;   /* changed meanwhile */
    uint64_t hash = fnv1a(FNV_BASIS, buf, header_size);
    contents_check check = {.vocab = {.ck = ck, .markers = lay->format->markers}};
    int8_reader q8 = {.cfg = &ck->config, .count = minrnn_tensor_count(&ck->config)};
    for (int s = 0; s < NUM_SECTIONS; s++) {
        void *dest[4];
        uint64_t count[4];
        int pieces = section_buffers(ck, s, lay->size[s] / lay->width[s], dest, count);
        for (int j = 0; j < pieces; j++) {
            unsigned char *out = dest[j];
            uint64_t piece_size = count[j] * lay->width[s];
            for (uint64_t done = 0; done < piece_size;) {
                uint64_t left = piece_size - done;
                size_t n = left < IO_CHUNK_BYTES ? (size_t)left : IO_CHUNK_BYTES;   /* a multiple of the width */
                status = read_exact(f, buf, n);
                if (status != MINRNN_OK) return status;
                hash = fnv1a(hash, buf, n);
                if (!contents_feed(&check, s, buf, n)) return MINRNN_ERR_CORRUPT;
                uint64_t width = lay->width[s];
                if (s == SEC_PARAMS && ck->precision == MINRNN_INT8) {   /* int8 rows, expanded exactly */
                    if (!int8_feed(&q8, buf, n, (float *)out)) return MINRNN_ERR_CORRUPT;
                } else if (out && width == 1) {
                    memcpy(out + done, buf, n);
                } else if (out && width == 2) {   /* bfloat16 params, widened exactly */
                    for (size_t i = 0; i < n; i += 2) {
                        float x = bf16_to_float(get_u16(buf + i));
                        memcpy(out + 2 * (done + i), &x, 4);   /* float (done + i) / 2 */
                    }
                } else if (out) {   /* int32 or float words, stored as their little-endian bits */
                    for (size_t i = 0; i < n; i += 4) {
                        uint32_t word = get_u32(buf + i);
                        memcpy(out + done + i, &word, 4);
                    }
                }
                done += n;
            }
        }
    }
    if (!vocab_complete(&check.vocab) || !names_complete(&check.names, label_count(&ck->config)))
        return MINRNN_ERR_CORRUPT;
    if (ck->precision == MINRNN_INT8 && q8.tensor != q8.count) return MINRNN_ERR_CORRUPT;
    status = read_exact(f, buf, TRAILER_SIZE);
    if (status != MINRNN_OK) return status;
    return get_u64(buf) == hash ? MINRNN_OK : MINRNN_ERR_CORRUPT;
}

/* Check all of the file open at fd (header, layout against the length, contents, checksum),
 * reading it through a stream of its own (fd stays open). On MINRNN_OK, *fp is that stream, hdr
 * the header, file its scalar fields (pointers NULL), lay its layout. */
static int open_checked(int fd, FILE **fp, unsigned char *hdr, minrnn_checkpoint *file, layout *lay)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return MINRNN_ERR_OPEN;
    if (!S_ISREG(st.st_mode) || st.st_size < 0) return MINRNN_ERR_NOT_FILE;
    int own = dup(fd);
    if (own < 0) return MINRNN_ERR_OPEN;
    FILE *f = fdopen(own, "rb");
    if (!f) {
        int saved = errno;
        close(own);
        errno = saved;
        return MINRNN_ERR_OPEN;
    }
    uint64_t len = (uint64_t)st.st_size;
    size_t n = len < HEADER_SIZE_MAX ? (size_t)len : HEADER_SIZE_MAX;
    memset(hdr, 0, HEADER_SIZE_MAX);
    int status = fseeko(f, 0, SEEK_SET) == 0 ? read_exact(f, hdr, n) : MINRNN_ERR_READ;
    if (status == MINRNN_OK) status = parse_header(hdr, n, len, file, lay);
    if (status == MINRNN_OK) status = scan_file(f, hdr, lay, file);
    if (status != MINRNN_OK) {
        close_quietly(f);
        return status;
    }
    *fp = f;
    return MINRNN_OK;
}

int minrnn_checkpoint_peek_fd(int fd, minrnn_checkpoint *ck)
{
    if (fd < 0 || !ck) return MINRNN_ERR_ARG;
    unsigned char hdr[HEADER_SIZE_MAX];
    minrnn_checkpoint file;
    layout lay;
    FILE *f;
    int status = open_checked(fd, &f, hdr, &file, &lay);
    if (status != MINRNN_OK) return status;
    fclose(f);
    *ck = file;   /* parse_header zeroed it: every pointer is NULL */
    return MINRNN_OK;
}

/* The buffers are checked before the file is read; ck's scalar fields (all of them, the training
 * ones too, which are 0 without a training state, as peek gives them) must equal the file's. On
 * an error, ck's buffers may have been partly written. */
int minrnn_checkpoint_load_fd(int fd, minrnn_checkpoint *ck)
{
    if (fd < 0 || !ck || !has_buffers(ck)) return MINRNN_ERR_ARG;
    unsigned char hdr[HEADER_SIZE_MAX];
    minrnn_checkpoint file;
    layout lay;
    FILE *f;
    int status = open_checked(fd, &f, hdr, &file, &lay);
    if (status != MINRNN_OK) return status;
    minrnn_checkpoint same = with_length(ck);
    if (!same_scalars(&same, &file))
        status = MINRNN_ERR_MISMATCH;
    else
        status = scan_file(f, hdr, &lay, ck);
    close_quietly(f);
    return status;
}

/* Open path for reading (non-blocking, so that a FIFO is refused rather than waited on), run
 * read_fd on it, close it. */
static int with_path(const char *path, minrnn_checkpoint *ck, int (*read_fd)(int, minrnn_checkpoint *))
{
    if (!path || !ck) return MINRNN_ERR_ARG;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return MINRNN_ERR_OPEN;
    int status = read_fd(fd, ck), saved = errno;
    close(fd);
    errno = saved;
    return status;
}

int minrnn_checkpoint_peek(const char *path, minrnn_checkpoint *ck)
{
    return with_path(path, ck, minrnn_checkpoint_peek_fd);
}

int minrnn_checkpoint_load(const char *path, minrnn_checkpoint *ck)
{
    return with_path(path, ck, minrnn_checkpoint_load_fd);
}

/* ---- writing */

/* Write n bytes and fold them into the checksum. */
static int write_bytes(FILE *f, const unsigned char *p, uint64_t n, uint64_t *hash)
{
    for (uint64_t done = 0; done < n;) {
        uint64_t left = n - done;
        size_t k = left < IO_CHUNK_BYTES ? (size_t)left : IO_CHUNK_BYTES;
        if (fwrite(p + done, 1, k, f) != k) return 0;
        *hash = fnv1a(*hash, p + done, k);
        done += k;
    }
    return 1;
}

/* Write count 4-byte words (int32 or float) from src, little-endian, converting through buf
 * (IO_CHUNK_BYTES bytes): as their bits when width is 4; when it is 2, as floats rounded to
 * bfloat16 (src is not changed). */
static int write_words(FILE *f, const void *src, uint64_t count, uint64_t width, unsigned char *buf,
                       uint64_t *hash)
{
    const unsigned char *p = src;
    for (uint64_t done = 0; done < count;) {
        uint64_t left = count - done;
        size_t k = left < IO_CHUNK_BYTES / width ? (size_t)left : IO_CHUNK_BYTES / width;
        for (size_t i = 0; i < k; i++) {
            uint32_t word;
            memcpy(&word, p + 4 * (done + i), 4);
            if (width == 4) {
                put_u32(buf + 4 * i, word);
            } else {
                put_u16(buf + 2 * i, float_to_bf16(float_(word)));
            }
        }
        if (!write_bytes(f, buf, width * k, hash)) return 0;   /* the bytes as written */
        done += k;
    }
    return 1;
}

/* Write params (float32) as the int8 params section; 0 on a write error. Rows were checked. */
static int write_int8_params(FILE *f, const minrnn_checkpoint *ck, unsigned char *buf, uint64_t *hash)
{
    minrnn_tensor t;
    for (int i = 0, n = minrnn_tensor_count(&ck->config); i < n; i++) {
        minrnn_tensor_info(&ck->config, i, &t);
        for (int64_t row = 0; row < t.rows; row++) {
            const float *x = ck->params + t.offset + row * t.cols;
            float scale = x[0];
            if (t.ndim == 2) row_scale(x, t.cols, &scale);
            put_u32(buf, bits_(scale));
            if (!write_bytes(f, buf, 4, hash)) return 0;
            for (int64_t k = 0; k < t.cols; k += IO_CHUNK_BYTES) {
                int piece = t.cols - k < IO_CHUNK_BYTES ? (int)(t.cols - k) : IO_CHUNK_BYTES;
                if (t.ndim == 2) quantize_with(x + k, piece, scale, (int8_t *)buf);
                else buf[0] = 1;
                if (!write_bytes(f, buf, (uint64_t)piece, hash)) return 0;
            }
        }
    }
    return 1;
}

/* Whether every row of params can be stored as int8: finite, and within 127 * 2^INT8_MAX_EXP. */
static int int8_storable(const minrnn_checkpoint *ck)
{
    minrnn_tensor t;
    for (int i = 0, n = minrnn_tensor_count(&ck->config); i < n; i++) {
        minrnn_tensor_info(&ck->config, i, &t);
        for (int64_t row = 0; row < t.rows; row++) {
            const float *x = ck->params + t.offset + row * t.cols;
            float scale;
            if (t.ndim == 2 ? row_scale(x, t.cols, &scale) != 0 : !isfinite(x[0])) return 0;
        }
    }
    return 1;
}

/* Write the header, the sections and the trailer. */
static int write_file(FILE *f, const unsigned char *hdr, const layout *lay,
                      const minrnn_checkpoint *ck)
{
    unsigned char buf[IO_CHUNK_BYTES];
    uint64_t hash = FNV_BASIS;
    if (!write_bytes(f, hdr, lay->format->header_size, &hash)) return 0;
    for (int s = 0; s < NUM_SECTIONS; s++) {   /* an empty section writes nothing */
        void *src[4];
        uint64_t count[4];
        int pieces = section_buffers(ck, s, lay->size[s] / lay->width[s], src, count);
        for (int j = 0; j < pieces; j++) {
            uint64_t width = lay->width[s], piece_size = count[j] * width;
            int ok = s == SEC_PARAMS && ck->precision == MINRNN_INT8 ? write_int8_params(f, ck, buf, &hash)
                   : width == 1 ? write_bytes(f, src[j], piece_size, &hash)
                                : write_words(f, src[j], piece_size / width, width, buf, &hash);
            if (!ok) return 0;
        }
    }
    unsigned char trailer[TRAILER_SIZE];
    put_u64(trailer, hash);
    return fwrite(trailer, 1, TRAILER_SIZE, f) == TRAILER_SIZE;
}

/* The process's umask. Linux (4.7 and later) shows it in /proc/self/status, which leaves it
 * untouched; elsewhere it is set and restored, which a file created by another thread at that
 * instant could notice. */
static mode_t current_umask(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        unsigned mask = 0;
        int found = 0;
        while (!found && fgets(line, sizeof line, f)) found = sscanf(line, "Umask: %o", &mask) == 1;
        fclose(f);
        if (found) return (mode_t)(mask & 0777);
    }
    mode_t mask = umask(022);
    umask(mask);
    return mask;
}

/* fsync the folder holding path, so that the rename survives a crash; best effort. buf has room
 * for path. */
static void sync_folder(const char *path, char *buf)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(buf, ".");
    } else if (slash == path) {
        strcpy(buf, "/");
    } else {
        memcpy(buf, path, (size_t)(slash - path));
        buf[slash - path] = '\0';
    }
    int fd = open(buf, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Whether ck's buffers obey the rules on contents (the readers check them as they read). */
static int contents_ok(const minrnn_checkpoint *ck, int markers)
{
    vocab_check vocab = {.ck = ck, .markers = markers};
    for (int64_t i = 0; i < ck->vocab_length; i++) vocab_feed(&vocab, ck->vocab[i]);
    if (!vocab_complete(&vocab)) return 0;
    names_check names = {0};
    names_feed(&names, (const unsigned char *)ck->labels, ck->labels_size);
    if (!names_complete(&names, label_count(&ck->config))) return 0;
    for (uint64_t i = 0; i < cond_floats(ck); i++)
        if (!isfinite(ck->cond_shift[i]) || !isfinite(ck->cond_scale[i])) return 0;
    for (int32_t i = 0; i < ck->config.input_size; i++)
        if (!isfinite(ck->input_shift[i]) || !isfinite(ck->input_scale[i])) return 0;
    return 1;
}

int minrnn_checkpoint_save(const char *path, const minrnn_checkpoint *given)
{
    if (!path || !given) return MINRNN_ERR_ARG;
    minrnn_checkpoint same = with_length(given);
    const minrnn_checkpoint *ck = &same;
    int status = check_scalars(ck);
    if (status != MINRNN_OK) return status;
    if (!has_buffers(ck)) return MINRNN_ERR_ARG;
    if (ck->has_train_state && (!ck->m || !ck->v || !ck->state)) return MINRNN_ERR_ARG;
    const checkpoint_format *format = format_of(MINRNN_CHECKPOINT_FORMAT);
    layout lay;
    if (!compute_layout(ck, format, &lay) || !contents_ok(ck, format->markers)) return MINRNN_ERR_ARG;
    if (ck->precision == MINRNN_INT8 && !int8_storable(ck)) return MINRNN_ERR_ARG;
    unsigned char hdr[HEADER_SIZE_MAX];
    encode_header(ck, &lay, hdr);

    const char suffix[] = ".tmp-XXXXXX";
    size_t len = strlen(path);
    char *tmp = malloc(len + sizeof suffix);
    if (!tmp) return MINRNN_ERR_OPEN;   /* errno: ENOMEM */
    memcpy(tmp, path, len);
    memcpy(tmp + len, suffix, sizeof suffix);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int saved = errno;
        free(tmp);
        errno = saved;
        return MINRNN_ERR_OPEN;
    }
    (void)fchmod(fd, 0644 & ~current_umask());   /* mkstemp gives 0600; best effort */
    int err = 0;
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        status = MINRNN_ERR_OPEN, err = errno;
        close(fd);
    } else {
        if (!write_file(f, hdr, &lay, ck) || fflush(f) != 0 || fsync(fileno(f)) != 0)
            status = MINRNN_ERR_WRITE, err = errno;
        if (fclose(f) != 0 && status == MINRNN_OK) status = MINRNN_ERR_WRITE, err = errno;
    }
    if (status == MINRNN_OK && rename(tmp, path) != 0) status = MINRNN_ERR_RENAME, err = errno;
    if (status == MINRNN_OK)
        sync_folder(path, tmp);
    else
        unlink(tmp);
    free(tmp);
    if (status != MINRNN_OK) errno = err;
    return status;
}
