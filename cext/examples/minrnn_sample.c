/* minrnn_sample: text from a minrnn checkpoint, using only libminrnn.
 *
 *   minrnn_sample CHECKPOINT [-n LENGTH] [-t TEMPERATURE] [--top-k K] [--top-p P] [-p PRIME] [-s SEED]
 *                 [--num N] [-c LABEL] [-v NUMBERS] [--precision float32|bfloat16|int8]
 *   minrnn_sample CHECKPOINT TEXT... [--beam K] [--max-length N] [-t TEMPERATURE] [-s SEED]
 *                 [--precision float32|bfloat16|int8]      (a seq2seq checkpoint: translations)
 *   minrnn_sample CHECKPOINT --grid GRID.npy [--row I] [--beam K] [--max-length N] [-t TEMPERATURE]
 *                 [-s SEED] [--precision float32|bfloat16|int8]      (a captioner: captions)
 *
 * The same checkpoint, options and seed give the same bytes as `python -m minrnn sample` (its
 * --length, --temperature, --top-k, --top-p, --prime, --seed, --num, --condition, --vector,
 * --precision): both run the library's one generation loop (minrnn_generate_start and
 * minrnn_generate_next, cext/generate.c) on the same streams. The prime understands \n, \t and
 * \\ as the Python command does. N samples are generated together as one batch of N streams,
 * drawing their tokens in stream order from one generator at each step.
 *
 *   A stream model, one sample: the prime is fed through the model and printed; then LENGTH
 *   characters are sampled and printed one at a time. Without a prime, generation starts from a
 *   newline (or the first symbol if the vocabulary has no newline), which is not printed.
 *   A stream model, N > 1 samples: the same for every stream; the N texts (each the prime and its
 *   LENGTH characters) are printed separated by a blank line, and ended by a newline.
 *   A record model (its vocabulary ends with MINRNN_START_SYMBOL and MINRNN_END_SYMBOL): every
 *   stream is fed the start token, then the prime. The start token is never drawn; a stream that
 *   draws the end token has finished its record, and generation stops when every stream has, or
 *   after LENGTH characters. Each record is printed as the prime, its characters and a newline.
 *   A conditioned model needs its condition, the same for every stream: -c LABEL (one of the
 *   label names the checkpoint holds) for a model trained with --labels, or -v "x1 x2 ..." (its
 *   C numbers, separated by spaces or commas, which the checkpoint's shift and scale standardize)
 *   for one trained with --features.
 *
 * A seq2seq checkpoint (trained with --task seq2seq) translates each TEXT instead, as
 * `python -m minrnn translate` does (cmd_translate): one line per text, greedy by default, beam
 * search with --beam, or drawn at -t TEMPERATURE from one generator seeded by -s for all texts;
 * at most --max-length characters (default 200).
 *
 * A captioner (trained with --grid) captions each row of GRID.npy (or row I), as `python -m minrnn
 * caption` does (cmd_caption): the grids are a little-endian float32 or float64 .npy of shape
 * (N, L, D) or (N, Hg, Wg, D), each number standardized with the checkpoint's input shift and
 * scale (in double, as numpy computes it, then rounded to float), one caption per line.
 *
 * A model of words (trained with --tokens words) reads a prime or text cut into words by
 * minrnn.text.split_words's rule (word_end below), a word outside its vocabulary as the unknown
 * word, and writes each word's text (the unknown word as "<unk>"); "characters" above then means
 * words.
 *
 * The weights are stepped as the checkpoint stores them (an exported bfloat16 checkpoint:
 * minrnn_step_compact streams half the bytes; an int8 one, a quarter, with integer products), or
 * as --precision asks: bfloat16 rounds them, int8 quantizes them.
 *
 * The checkpoint is read through one open file, so a training run may replace it meanwhile.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "minrnn.h"

#define MAX_SAMPLES 65536   /* --num, as python -m minrnn sample takes it */

static void usage(void) {
    fprintf(stderr, "usage: minrnn_sample CHECKPOINT [-n LENGTH] [-t TEMPERATURE] [--top-k K] [--top-p P]"
                    " [-p PRIME] [-s SEED] [--num N] [-c LABEL] [-v NUMBERS] [--precision float32|bfloat16|int8]\n"
                    "       minrnn_sample SEQ2SEQ-CHECKPOINT TEXT... [--beam K] [--max-length N] [-t TEMPERATURE]"
                    " [-s SEED] [--precision float32|bfloat16|int8]\n"
                    "       minrnn_sample CAPTIONER-CHECKPOINT --grid GRID.npy [--row I] [--beam K] [--max-length N]"
                    " [-t TEMPERATURE] [-s SEED] [--precision float32|bfloat16|int8]\n");
}

/* What the command line asks for. */
typedef struct {
    const char *path, *prime;
    const char *label, *vector;   /* the condition, or NULL */
    double length, temperature, top_k, top_p, num;
    double beam, max_length;      /* a seq2seq checkpoint's translations */
    const char *grid;             /* a captioner's grids (--grid), or NULL */
    double row;                   /* --row, or -1: every row */
    int temperature_given;        /* -t: a seq2seq checkpoint then samples (its default is greedy) */
    char **texts;                 /* the TEXT arguments after CHECKPOINT (pointers into argv) */
    int n_texts;
    unsigned long long seed;
    int precision;                /* MINRNN_FLOAT32, MINRNN_BFLOAT16, MINRNN_INT8, or -1: the checkpoint's */
    const char *sampling_option;  /* the first option given that only sampling takes (-n, -p, ...) */
    const char *translating_option;   /* ... that only translation takes (--beam, --max-length) */
    long skipped;                 /* characters of the prime or texts outside the vocabulary */
} options;

/* The message, and 0: what the helpers below return on failure (1 on success). */
static int out_of_memory(void) {
    fprintf(stderr, "minrnn_sample: out of memory\n");
    return 0;
}

/* A status of the library on stderr, with errno's reason after a file error. */
static void report(const char *path, int status) {
    int file = status == MINRNN_ERR_OPEN || status == MINRNN_ERR_READ;
    const char *why = file ? strerror(errno) : "";
    fprintf(stderr, "minrnn_sample: %s: %s%s%s%s\n", path, minrnn_strerror(status), file ? " (" : "", why, file ? ")" : "");
}

/* ---- the command line */

static int parse_number(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || *end || !(x >= lo && x <= hi)) return 0;
    *out = x;
    return 1;
}

static int parse_seed(const char *s, unsigned long long *out) {
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return !errno && end != s && !*end && s[0] != '-';
}

/* Fill o from argv: 0 on success, otherwise the exit status (a message is printed). */
static int parse_options(int argc, char **argv, options *o) {
    *o = (options){.prime = "", .length = 200, .temperature = 1.0, .top_p = 1.0, .num = 1, .precision = -1,
                   .beam = 1, .max_length = 200, .row = -1, .texts = argv};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (a[0] != '-') {   /* the checkpoint, then texts (kept in argv's own slots, in order) */
            if (o->path) o->texts[o->n_texts++] = argv[i];
            else o->path = a;
            continue;
        }
        static const char *const known[] = {"-n", "-t", "-s", "-p", "-c", "--condition", "-v", "--vector", "--top-k",
                                            "--top-p", "--num", "--beam", "--max-length", "--precision", "--grid",
                                            "--row"};
        size_t at = 0;
        while (at < sizeof known / sizeof *known && strcmp(a, known[at])) at++;
        if (at == sizeof known / sizeof *known || !v) {
            fprintf(stderr, at == sizeof known / sizeof *known ? "minrnn_sample: unknown option %s\n"
                                                               : "minrnn_sample: %s needs a value\n", a);
            usage();
            return 2;
        }
        static const char *const sampling[] = {"-n", "--top-k", "--top-p", "--num", "-p", "-c", "--condition", "-v",
                                               "--vector"};
        for (size_t k = 0; k < sizeof sampling / sizeof *sampling; k++)
            if (!strcmp(a, sampling[k]) && !o->sampling_option) o->sampling_option = sampling[k];
        if ((!strcmp(a, "--beam") || !strcmp(a, "--max-length")) && !o->translating_option) o->translating_option = a;
        if (!strcmp(a, "-n")) ok = parse_number(v, 0, 1e12, &o->length);
        else if (!strcmp(a, "-t")) ok = parse_number(v, 0, 1e6, &o->temperature), o->temperature_given = 1;
        else if (!strcmp(a, "--beam")) ok = parse_number(v, 1, 4096, &o->beam) && o->beam == floor(o->beam);
        else if (!strcmp(a, "--max-length"))
            ok = parse_number(v, 1, 100000, &o->max_length) && o->max_length == floor(o->max_length);
        else if (!strcmp(a, "--top-k")) ok = parse_number(v, 0, 1e9, &o->top_k);
        else if (!strcmp(a, "--top-p")) ok = parse_number(v, 1e-9, 1, &o->top_p);
        else if (!strcmp(a, "--num")) ok = parse_number(v, 1, MAX_SAMPLES, &o->num) && o->num == floor(o->num);
        else if (!strcmp(a, "-s")) ok = parse_seed(v, &o->seed);
        else if (!strcmp(a, "-p")) o->prime = v;
        else if (!strcmp(a, "-c") || !strcmp(a, "--condition")) o->label = v;
        else if (!strcmp(a, "-v") || !strcmp(a, "--vector")) o->vector = v;
        else if (!strcmp(a, "--grid")) o->grid = v;
        else if (!strcmp(a, "--row")) ok = parse_number(v, 0, 2147483647.0, &o->row) && o->row == floor(o->row);
        else   /* --precision */
            ok = (o->precision = !strcmp(v, "float32")  ? MINRNN_FLOAT32
                                 : !strcmp(v, "bfloat16") ? MINRNN_BFLOAT16
                                 : !strcmp(v, "int8")     ? MINRNN_INT8 : -1) >= 0;
        if (!ok) { fprintf(stderr, "minrnn_sample: bad value for %s: %s\n", a, v); return 2; }
        i++;
    }
    if (!o->path) { usage(); return 2; }
    return 0;
}

/* ---- the checkpoint */

/* Peek at path, allocate every section but the training state, and load it: 1 on success,
 * otherwise 0 with a message. ck's buffers are for free_checkpoint either way. */
static int load_checkpoint(const char *path, minrnn_checkpoint *ck) {
    *ck = (minrnn_checkpoint){0};
    int fd = open(path, O_RDONLY | O_NONBLOCK);   /* O_NONBLOCK: a FIFO is refused, not waited on */
    int status = fd < 0 ? MINRNN_ERR_OPEN : minrnn_checkpoint_peek_fd(fd, ck);
    if (status != MINRNN_OK) {
        report(path, status);   /* before close, which may change errno */
        if (fd >= 0) close(fd);
        return 0;
    }
    const minrnn_config *cfg = &ck->config;
    size_t C = cfg->cond == MINRNN_COND_VECTOR ? (size_t)cfg->cond_size : 0;
    ck->vocab = malloc((size_t)ck->vocab_length * sizeof(int32_t) + 1);   /* + 1: a model of vectors has none */
    ck->params = malloc(minrnn_param_count(cfg) * sizeof(float));
    ck->meta = malloc(ck->meta_size + 1);
    ck->labels = malloc(ck->labels_size + 1);
    ck->cond_shift = C ? malloc(C * sizeof(float)) : NULL;
    ck->cond_scale = C ? malloc(C * sizeof(float)) : NULL;
    size_t D = (size_t)cfg->input_size;   /* a model of vectors: loaded whole, then refused by run */
    ck->input_shift = D ? malloc(D * sizeof(float)) : NULL;
    ck->input_scale = D ? malloc(D * sizeof(float)) : NULL;
    ck->m = ck->v = ck->state = NULL;   /* the training state is not needed to sample */
    if (!ck->vocab || !ck->params || !ck->meta || !ck->labels || (C && (!ck->cond_shift || !ck->cond_scale)) ||
        (D && (!ck->input_shift || !ck->input_scale))) {
        close(fd);
        return out_of_memory();
    }
    status = minrnn_checkpoint_load_fd(fd, ck);
    if (status != MINRNN_OK) report(path, status);   /* before close, which may change errno */
    close(fd);
    ck->labels[ck->labels_size] = '\0';   /* names ended by '\n' (the library checked), then a NUL */
    ck->meta[ck->meta_size] = '\0';       /* JSON, read by max_source */
    return status == MINRNN_OK;
}

static void free_checkpoint(minrnn_checkpoint *ck) {
    free(ck->vocab), free(ck->params), free(ck->meta), free(ck->labels), free(ck->cond_shift), free(ck->cond_scale);
    free(ck->input_shift), free(ck->input_scale);
}

/* A record model's vocabulary ends with the start and the end token. */
static int is_framed(const minrnn_checkpoint *ck) {
    int64_t n = ck->vocab_length;
    return n >= 2 && ck->vocab[n - 2] == MINRNN_START_SYMBOL && ck->vocab[n - 1] == MINRNN_END_SYMBOL;
}

/* ---- text */

/* Decode one UTF-8 sequence at s (n bytes left): the code point, or -1 if invalid. */
static long utf8_next(const unsigned char *s, size_t n, size_t *used) {
    static const long min_of_length[5] = {0, 0, 0x80, 0x800, 0x10000};
    int len = s[0] < 0x80 ? 1 : (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3 : (s[0] >> 3) == 30 ? 4 : 0;
    if (len == 0 || (size_t)len > n) return -1;
    long cp = len == 1 ? s[0] : s[0] & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return -1;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min_of_length[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    *used = (size_t)len;
    return cp;
}

static void put_symbol(int32_t symbol, int encoding) {
    unsigned char out[4];
    int n;
    if (encoding == MINRNN_BYTES || symbol < 0x80) {
        out[0] = (unsigned char)symbol, n = 1;
    } else if (symbol < 0x800) {
        out[0] = (unsigned char)(0xC0 | (symbol >> 6)), out[1] = (unsigned char)(0x80 | (symbol & 0x3F)), n = 2;
    } else if (symbol < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (symbol >> 12)), out[1] = (unsigned char)(0x80 | ((symbol >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (symbol & 0x3F)), n = 3;
    } else {
        out[0] = (unsigned char)(0xF0 | (symbol >> 18)), out[1] = (unsigned char)(0x80 | ((symbol >> 12) & 0x3F));
        out[2] = (unsigned char)(0x80 | ((symbol >> 6) & 0x3F)), out[3] = (unsigned char)(0x80 | (symbol & 0x3F)), n = 4;
    }
    fwrite(out, 1, (size_t)n, stdout);
}

/* The id of a symbol (binary search in the sorted symbols vocab[0..n)), or -1. */
static int find(const int32_t *vocab, int n, long symbol) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (vocab[mid] == symbol) return mid;
        if (vocab[mid] < symbol) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
}

/* ---- the vocabulary: the text of each id, and the ids of a text (minrnn/text.py) */

typedef struct {
    int encoding;
    int32_t symbols;   /* ids that stand for text: V, less the start and end tokens of a record model */
    const int32_t *vocab;
    int64_t *start;    /* MINRNN_WORDS: word i is the code points vocab[start[i] .. start[i + 1] - 1) */
} lexicon;

/* The lexicon of a loaded checkpoint: 1, or 0 out of memory. */
static int make_lexicon(const minrnn_checkpoint *ck, lexicon *lex) {
    *lex = (lexicon){ck->encoding, ck->config.vocab_size - (is_framed(ck) ? 2 : 0), ck->vocab, NULL};
    if (ck->encoding != MINRNN_WORDS) return 1;
    if (!(lex->start = malloc(((size_t)lex->symbols + 1) * sizeof(int64_t)))) return 0;
    int64_t at = 0;
    for (int32_t i = 0; i < lex->symbols; i++) {   /* the library checked: each word ends */
        lex->start[i] = at;
        while (ck->vocab[at] != MINRNN_TOKEN_END) at++;
        at++;
    }
    lex->start[lex->symbols] = at;
    return 1;
}

/* Write id's text: its symbol, or its word ("<unk>" for the unknown word, id 0); the start and end
 * tokens have none. */
static void put_id(const lexicon *lex, int32_t id) {
    if (id >= lex->symbols) return;
    if (lex->encoding != MINRNN_WORDS) {
        put_symbol(lex->vocab[id], lex->encoding);
        return;
    }
    int64_t a = lex->start[id], b = lex->start[id + 1] - 1;   /* without its end */
    if (a == b) fputs("<unk>", stdout);
    for (int64_t k = a; k < b; k++) put_symbol(lex->vocab[k], MINRNN_UTF8);
}

/* The id of the word of the n code points at w (binary search: the words are in code point
 * order, a prefix first), or -1. */
static int32_t find_word(const lexicon *lex, const int32_t *w, int64_t n) {
    int32_t lo = 0, hi = lex->symbols - 1;
    while (lo <= hi) {
        int32_t mid = lo + (hi - lo) / 2;
        const int32_t *t = lex->vocab + lex->start[mid];
        int64_t m = lex->start[mid + 1] - lex->start[mid] - 1, k = 0;
        while (k < n && k < m && w[k] == t[k]) k++;
        int order = k < n && k < m ? (w[k] < t[k] ? -1 : 1) : (n < m ? -1 : n > m);
        if (order == 0) return mid;
        if (order < 0) hi = mid - 1; else lo = mid + 1;
    }
    return -1;
}

/* The id of the one symbol or word made of code point c, or -1. */
static int32_t find_symbol(const lexicon *lex, int32_t c) {
    return lex->encoding == MINRNN_WORDS ? find_word(lex, &c, 1) : find(lex->vocab, lex->symbols, c);
}

/* minrnn.text's classes of code points, which cut a text into words. */
static int is_space(int32_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static int is_punctuation(int32_t c) {
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E) || (c >= 0xA0 && c <= 0xBF) || (c >= 0x2000 && c <= 0x206F) ||
           (c >= 0x3000 && c <= 0x303F);
}

/* Where the word at c[i] (of the n code points c) ends, as minrnn.text.split_words cuts: letters
 * (at most MINRNN_MAX_TOKEN_CHARS - 1) or one punctuation mark, each with the one space before
 * it, or any one whitespace character. */
static int64_t word_end(const int32_t *c, int64_t n, int64_t i) {
    int64_t j = i + (c[i] == ' ' && i + 1 < n);
    if (is_punctuation(c[j])) return j + 1;
    if (is_space(c[j])) return i + 1;   /* (j == i: a whitespace character, alone) */
    int64_t end = j;
    while (end < n && end - j < MINRNN_MAX_TOKEN_CHARS - 1 && !is_space(c[end]) && !is_punctuation(c[end])) end++;
    return end;
}

/* \n, \t and \\ in s as a newline, a tab and a backslash (minrnn.text.unescape), in place. */
static void unescape(char *s) {
    char *out = s;
    for (; *s; s++) {
        if (s[0] == '\\' && (s[1] == 'n' || s[1] == 't' || s[1] == '\\')) {
            s++;
            *out++ = *s == 'n' ? '\n' : *s == 't' ? '\t' : '\\';
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

/* The ids of prime, which `what` names in a message (ids has room for strlen(prime)): their
 * count, or -1 with a message if it is not UTF-8 for a model of UTF-8. A character outside the
 * vocabulary is skipped, a word outside it is the unknown word (id 0), as python -m minrnn does:
 * *skipped counts them, for the note at the end. */
static long encode_text(const lexicon *lex, const char *prime, int32_t *ids, const char *what, long *skipped) {
    size_t count = 0, at = 0, len = strlen(prime);
    while (at < len) {   /* the symbols, as code points (or bytes) in ids */
        size_t used = 1;
        long symbol = lex->encoding == MINRNN_BYTES ? (unsigned char)prime[at]
                                                    : utf8_next((const unsigned char *)prime + at, len - at, &used);
        if (symbol < 0) {
            fprintf(stderr, "minrnn_sample: %s: invalid UTF-8 at byte offset %zu, and this model reads UTF-8 text; "
                            "give UTF-8\n", what, at);
            return -1;
        }
        ids[count++] = (int32_t)symbol;
        at += used;
    }
    size_t n = count;
    count = 0;
    for (int64_t i = 0, end; i < (int64_t)n; i = end) {   /* then each symbol or word as its id, in place */
        end = lex->encoding == MINRNN_WORDS ? word_end(ids, (int64_t)n, i) : i + 1;
        int32_t id = lex->encoding == MINRNN_WORDS ? find_word(lex, ids + i, end - i) : find_symbol(lex, ids[i]);
        if (id < 0) ++*skipped;
        if (id >= 0 || lex->encoding == MINRNN_WORDS) ids[count++] = id < 0 ? 0 : id;
    }
    return (long)count;
}

/* ---- the condition */

/* The index of name among the n names in list ('\n'-ended, back to back), or -1. */
static long find_name(const char *list, long n, const char *name) {
    size_t len = strlen(name);
    for (long i = 0; i < n; i++) {
        const char *end = strchr(list, '\n');
        if ((size_t)(end - list) == len && !memcmp(list, name, len)) return i;
        list = end + 1;
    }
    return -1;
}

/* "minrnn_sample: " + what + the n names of list separated by ", ", as one line on stderr. */
static void report_names(const char *what, const char *list, long n) {
    fprintf(stderr, "minrnn_sample: %s", what);
    for (long i = 0; i < n; i++) {
        const char *end = strchr(list, '\n');
        fprintf(stderr, "%s%.*s", i ? ", " : "", (int)(end - list), list);
        list = end + 1;
    }
    fputc('\n', stderr);
}

/* The label id of -c name, its index among the condition's label names (minrnn.cli.condition): 1
 * on success, otherwise 0 with a message. */
static int read_label(const minrnn_checkpoint *ck, const char *name, int32_t *label) {
    const char *names = ck->labels;   /* only the condition's: a classifier, whose class names
                                       * would come first, was refused before */
    long C = ck->config.cond_size, id = name ? find_name(names, C, name) : -1;
    if (id >= 0) {
        *label = (int32_t)id;
        return 1;
    }
    char what[320];
    if (name) snprintf(what, sizeof what, "-c '%.200s' is not one of this model's labels: ", name);
    else snprintf(what, sizeof what, "this model is conditioned on a label: give -c LABEL, one of ");
    report_names(what, names, C);
    return 0;
}

static const char SPACES[] = " \t\n\v\f\r";

/* The numbers of -v text (separated by spaces or commas, as Python's
 * re.split(r"[\s,]+", text.strip()) splits them, each a whole finite number), standardized as
 * the model reads them: float((x - shift) * scale) in double, as numpy computes
 * ((v - shift) * scale).astype(float32) for float64 v and float32 shift and scale. The C
 * floats go to vector; 1 on success, otherwise 0 with a message. */
static int read_vector(const minrnn_checkpoint *ck, const char *text, float *vector) {
    int C = ck->config.cond_size, n = 0, ok = 1;
    size_t len = strlen(text);
    while (len > 0 && strchr(SPACES, text[len - 1])) len--;
    const char *s = text + strspn(text, SPACES), *stop = text + len;
    while (ok && s < stop) {
        char *end;
        errno = 0;
        double x = strtod(s, &end);
        size_t piece = strcspn(s, " \t\n\v\f\r,");
        ok = !errno && end == s + piece && piece > 0 && !memchr(s, 'x', piece) && !memchr(s, 'X', piece) &&
             isfinite(x) && n < C;   /* hexadecimal, which Python's float() refuses, too */
        if (!ok) break;
        vector[n] = (float)((x - (double)ck->cond_shift[n]) * (double)ck->cond_scale[n]);
        n++;
        s = end + strspn(end, " \t\n\v\f\r,");
        ok = s < stop || end == stop;   /* a trailing comma would leave an empty number after it */
    }
    if (ok && n == C) return 1;
    fprintf(stderr, "minrnn_sample: -v '%.200s': give %d finite numbers separated by spaces or commas\n", text, C);
    return 0;
}

/* The condition of the N streams as minrnn_batch takes it: the same label (N) or standardized
 * vector (N, C) for each, allocated into *labels or *vectors; both NULL for a model without
 * one. 1 on success, otherwise 0 with a message. */
static int read_condition(const minrnn_checkpoint *ck, const options *o, int N, int32_t **labels, float **vectors) {
    int cond = ck->config.cond;
    size_t C = (size_t)ck->config.cond_size;
    *labels = NULL, *vectors = NULL;
    if (cond == MINRNN_COND_NONE) {
        if (!o->label && !o->vector) return 1;
        fprintf(stderr, "minrnn_sample: this model has no condition; drop %s\n", o->label ? "-c" : "-v");
        return 0;
    }
    if (cond == MINRNN_COND_LABEL) {
        int32_t label;
        if (o->vector) {
            fprintf(stderr, "minrnn_sample: this model is conditioned on a label: give -c LABEL, not -v\n");
            return 0;
        }
        if (!read_label(ck, o->label, &label)) return 0;
        if (!(*labels = malloc((size_t)N * sizeof(int32_t)))) return out_of_memory();
        for (int b = 0; b < N; b++) (*labels)[b] = label;
        return 1;
    }
    if (o->label || !o->vector) {
        fprintf(stderr, "minrnn_sample: this model is conditioned on %zu features: give -v \"x1 x2 ...\"%s\n", C,
                o->label ? ", not -c" : "");
        return 0;
    }
    if (!(*vectors = malloc((size_t)N * C * sizeof(float)))) return out_of_memory();
    if (!read_vector(ck, o->vector, *vectors)) return 0;
    for (int b = 1; b < N; b++) memcpy(*vectors + (size_t)b * C, *vectors, C * sizeof(float));
    return 1;
}

/* The N texts in text (N, length), count[b] ids of stream b, each printed as the prime and its
 * characters, with `between` between two and `after` after each. */
static void print_texts(const lexicon *lex, const char *prime, int N, long long length, const int32_t *text,
                        const long long *count, const char *between, const char *after) {
    for (int b = 0; b < N; b++) {
        fputs(b ? between : "", stdout);
        fputs(prime, stdout);
        for (long long n = 0; n < count[b]; n++)
            put_id(lex, text[(size_t)b * (size_t)length + (size_t)n]);
        fputs(after, stdout);
    }
}

/* ---- generation: the library's one loop (minrnn_generate_start, minrnn_generate_next) */

/* The samples of a language model, as `python -m minrnn sample` prints them: one sample of a
 * stream model as it is drawn, after the prime; N of them each as the prime and its characters,
 * separated by a blank line and ended by a newline; a record model's each as the prime, its
 * characters and a newline. Every stream is fed ids[0..n_ids) (the start token and the prime, or
 * the prime, or what stands in for an empty one) and has the condition labels or vectors (N rows).
 * 1 on success, otherwise 0 with a message. */
static int generate(const minrnn_checkpoint *ck, const lexicon *lex, const options *o, const char *prime,
                    const int32_t *ids, long n_ids, const int32_t *labels, const float *vectors, int framed) {
    const minrnn_config *cfg = &ck->config;
    int N = (int)o->num, V = cfg->vocab_size, precision = o->precision >= 0 ? o->precision : ck->precision;
    long long length = (long long)o->length;
    int as_drawn = !framed && N == 1;
    minrnn_sampler sampler = {.temperature = o->temperature, .top_k = (int32_t)o->top_k, .top_p = o->top_p};
    minrnn_rng_seed(&sampler.rng, (uint64_t)o->seed);
    minrnn_generation g = {.B = N, .prime = ids, .prime_length = (int32_t)n_ids, .end_id = framed ? V - 1 : -1,
                           .banned_id = framed ? V - 2 : -1, .max_length = length, .labels = labels,
                           .vectors = vectors, .samplers = &sampler, .num_samplers = 1};
    size_t bytes = minrnn_generate_workspace_size(cfg, precision, &g);
    void *params = malloc(minrnn_params_size(cfg, precision)), *work = malloc(bytes ? bytes : 1);
    int32_t *drawn = malloc((size_t)N * sizeof(int32_t));
    int32_t *text = as_drawn ? NULL : malloc((size_t)N * (size_t)length * sizeof(int32_t) + 1);   /* (N, length) */
    long long *count = calloc((size_t)N, sizeof(long long));
    int status = MINRNN_OK;
    if (!params || !work || !drawn || (!as_drawn && !text) || !count) {
        status = -1;
    } else {
        status = minrnn_params_compact(cfg, ck->params, precision, params);
        if (status == MINRNN_OK && as_drawn) fputs(prime, stdout);
        if (status == MINRNN_OK) status = minrnn_generate_start(cfg, precision, params, &g, work, 0);
        int64_t steps = 1;
        while (status == MINRNN_OK && steps == 1) {
            status = minrnn_generate_next(cfg, precision, params, &g, work, 1, drawn, &steps, 0);
            for (int b = 0; status == MINRNN_OK && b < N * (int)steps; b++) {
                if (drawn[b] < 0) continue;
                if (as_drawn) put_id(lex, drawn[b]), fflush(stdout);
                else text[(size_t)b * (size_t)length + (size_t)count[b]++] = drawn[b];
            }
        }
        if (status == MINRNN_OK && framed) print_texts(lex, prime, N, length, text, count, "", "\n");
        if (status == MINRNN_OK && !framed && !as_drawn) print_texts(lex, prime, N, length, text, count, "\n\n", ""),
            putchar('\n');
    }
    free(params), free(work), free(drawn), free(text), free(count);
    if (status == -1) return out_of_memory();
    if (status != MINRNN_OK) fprintf(stderr, "minrnn_sample: %s\n", minrnn_strerror(status));
    return status == MINRNN_OK;
}

/* ---- translations (minrnn.cli.cmd_translate) */

/* A whole number the checkpoint's metadata holds under key (json.dumps' own spacing: "key": N), or
 * -1 if it holds none. */
static long meta_number(const minrnn_checkpoint *ck, const char *key) {
    char quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\": ", key);
    const char *at = strstr(ck->meta, quoted);
    if (!at) return -1;
    char *end;
    long n = strtol(at + strlen(quoted), &end, 10);
    return end == at + strlen(quoted) ? -1 : n;
}

/* The longest source the model's run trained for (its --max-source, in the run's settings). */
static long max_source(const minrnn_checkpoint *ck) { return meta_number(ck, "max_source"); }

/* Each text's translation on its own line, flushed as it is done (an empty text's is empty). 1 on
 * success, else 0 with a message. */
static int translate(const minrnn_checkpoint *ck, const lexicon *lex, options *o) {
    const minrnn_config *cfg = &ck->config;
    int precision = o->precision >= 0 ? o->precision : ck->precision, beam = (int)o->beam, M = (int)o->max_length;
    double temperature = o->temperature_given ? o->temperature : 0.0;
    long limit = max_source(ck);
    if (o->sampling_option) {
        fprintf(stderr, "minrnn_sample: %s is for sampling; this checkpoint translates\n", o->sampling_option);
        return 0;
    }
    if (o->n_texts == 0) {
        fprintf(stderr, "minrnn_sample: this checkpoint translates: give the texts after it\n");
        return 0;
    }
    if (temperature > 0 && beam != 1) {
        fprintf(stderr, "minrnn_sample: -t draws one translation at a time; drop --beam\n");
        return 0;
    }
    size_t longest = 0;
    for (int i = 0; i < o->n_texts; i++) longest = strlen(o->texts[i]) > longest ? strlen(o->texts[i]) : longest;
    void *params = malloc(minrnn_params_size(cfg, precision)), *work = NULL;
    int32_t *source = malloc((longest + 1) * sizeof(int32_t)), *out = malloc((size_t)M * sizeof(int32_t));
    int ok = params && source && out, status = MINRNN_OK;
    if (!ok) out_of_memory();
    else if ((status = minrnn_params_compact(cfg, ck->params, precision, params)) != MINRNN_OK)
        fprintf(stderr, "minrnn_sample: %s\n", minrnn_strerror(status)), ok = 0;
    minrnn_rng rng;
    minrnn_rng_seed(&rng, (uint64_t)o->seed);
    long *skipped = &o->skipped;
    for (int i = 0; ok && i < o->n_texts; i++) {
        char what[32];
        snprintf(what, sizeof what, "text %d", i + 1);
        long n = encode_text(lex, o->texts[i], source, what, skipped);   /* -1: said why */
        if (n == 0 && o->texts[i][0]) fprintf(stderr, "minrnn_sample: %s: none of its characters is in the model's "
                                                      "vocabulary\n", what);
        if (n > limit && limit >= 0)
            fprintf(stderr, "minrnn_sample: %s has %ld characters; this model reads sources of at most %ld\n", what, n,
                    limit);
        ok = n > 0 || (n == 0 && !o->texts[i][0]);
        ok = ok && !(n > limit && limit >= 0);
        if (!ok) break;
        if (n == 0) {   /* an empty text */
            putchar('\n');
            continue;
        }
        free(work);
        work = malloc(minrnn_seq2seq_translate_size(cfg, (int)n, beam, M));
        minrnn_translation result;
        status = !work ? MINRNN_ERR_ARG
               : minrnn_seq2seq_translate(cfg, precision, params, source, (int)n, beam, M, temperature, &rng, out,
                                          &result, NULL, work, 0);
        if (!work) ok = out_of_memory();
        else if (status != MINRNN_OK) fprintf(stderr, "minrnn_sample: %s: %s\n", what, minrnn_strerror(status)), ok = 0;
        if (!ok) break;
        for (int k = 0; k < result.length; k++) put_id(lex, out[k]);
        putchar('\n');
        fflush(stdout);
    }
    free(params), free(source), free(out), free(work);
    return ok;
}

/* ---- captions (minrnn.cli.cmd_caption) */

/* A .npy array of float32 or float64 (little-endian, C order): its shape (ndim up to 4) and its
 * values widened to double; 1 on success, else 0 with a message. */
static int read_npy(const char *path, int *ndim, long shape[4], double **values) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "minrnn_sample: %s: cannot open (%s)\n", path, strerror(errno));
        return 0;
    }
    unsigned char head[12];
    char *header = NULL;
    int ok = fread(head, 1, 10, f) == 10 && !memcmp(head, "\x93NUMPY", 6) && head[6] >= 1 && head[6] <= 3;
    size_t len = 0;
    if (ok && head[6] == 1) len = head[8] | (size_t)head[9] << 8;
    else if (ok) ok = fread(head + 10, 1, 2, f) == 2, len = head[8] | (size_t)head[9] << 8 | (size_t)head[10] << 16 |
                                                            (size_t)head[11] << 24;
    ok = ok && len < 65536 && (header = calloc(len + 1, 1)) && fread(header, 1, len, f) == len;
    const char *descr = ok ? strstr(header, "'descr': '") : NULL, *shp = ok ? strstr(header, "'shape': (") : NULL;
    const char *order = ok ? strstr(header, "'fortran_order': ") : NULL;
    int width = descr && !strncmp(descr + 10, "<f4'", 4) ? 4 : descr && !strncmp(descr + 10, "<f8'", 4) ? 8 : 0;
    ok = ok && width && order && !strncmp(order + 17, "False", 5) && shp;
    *ndim = 0;
    size_t count = 1;
    for (const char *at = ok ? shp + 10 : ""; ok && *at != ')';) {   /* each size at most 2^40, and their product */
        char *end;
        long n = strtol(at, &end, 10);
        if (end == at || n < 0 || n > (1L << 40) || *ndim == 4 || (n && count > ((size_t)1 << 40) / (size_t)n)) {
            ok = 0;
            break;
        }
        shape[(*ndim)++] = n, count *= (size_t)n;
        at = end + strspn(end, ", ");
    }
    long here = ok ? ftell(f) : -1;   /* the data must be in the file before it is allocated for */
    ok = ok && here >= 0 && fseek(f, 0, SEEK_END) == 0 && ftell(f) - here >= (long)(count * (size_t)width)
         && fseek(f, here, SEEK_SET) == 0;
    *values = ok ? malloc((count ? count : 1) * sizeof(double)) : NULL;
    unsigned char *raw = ok ? malloc((count ? count : 1) * (size_t)width) : NULL;
    ok = ok && *values && raw && fread(raw, (size_t)width, count, f) == count;
    for (size_t i = 0; ok && i < count; i++) {   /* little-endian bytes, whatever the host */
        uint64_t u = 0;
        for (int k = width - 1; k >= 0; k--) u = u << 8 | raw[i * (size_t)width + (size_t)k];
        if (width == 4) {
            uint32_t u32 = (uint32_t)u;
            float x;
            memcpy(&x, &u32, 4);
            (*values)[i] = x;
        } else {
            memcpy(&(*values)[i], &u, 8);
        }
    }
    if (!ok) fprintf(stderr, "minrnn_sample: %s: not a whole .npy of float32 or float64 numbers (little-endian, C order, "
                             "at most 4 dimensions)\n", path);
    free(header), free(raw), fclose(f);
    if (!ok) free(*values), *values = NULL;
    return ok;
}

/* Each grid's caption on its own line, flushed as it is done. 1 on success, else 0 with a message. */
static int caption(const minrnn_checkpoint *ck, const lexicon *lex, options *o) {
    const minrnn_config *cfg = &ck->config;
    int precision = o->precision >= 0 ? o->precision : ck->precision, beam = (int)o->beam, M = (int)o->max_length;
    double temperature = o->temperature_given ? o->temperature : 0.0, *values = NULL;
    if (o->sampling_option || o->n_texts || !o->grid) {
        fprintf(stderr, "minrnn_sample: this checkpoint captions grids: give --grid GRID.npy (and no %s)\n",
                o->sampling_option ? o->sampling_option : "texts");
        return 0;
    }
    if (temperature > 0 && beam != 1) {
        fprintf(stderr, "minrnn_sample: -t draws one caption at a time; drop --beam\n");
        return 0;
    }
    int ndim;
    long shape[4];
    if (!read_npy(o->grid, &ndim, shape, &values)) return 0;
    enum { MAX_PLACES = 1000000 };   /* far more than any grid a captioner reads; keeps L * D small */
    long D = cfg->input_size, N = ndim ? shape[0] : 0;
    long L = ndim == 3 ? shape[1] : ndim == 4 && shape[1] <= MAX_PLACES && shape[2] <= MAX_PLACES ? shape[1] * shape[2] : 0;
    if ((ndim != 3 && ndim != 4) || shape[ndim - 1] != D || N == 0 || L == 0 || L > MAX_PLACES) {
        fprintf(stderr, "minrnn_sample: %s: give grids of shape (N, L, %ld) or (N, Hg, Wg, %ld)\n", o->grid, D, D);
        free(values);
        return 0;
    }
    long places = meta_number(ck, "grid_places");   /* the training grids', as python -m minrnn holds them */
    if (places >= 0 && L != places) {
        fprintf(stderr, "minrnn_sample: %s: grids of %ld places; this model was trained on grids of %ld\n", o->grid, L,
                places);
        free(values);
        return 0;
    }
    if (o->row >= (double)N) {
        fprintf(stderr, "minrnn_sample: --row %.0f: %s has %ld rows (0 to %ld)\n", o->row, o->grid, N, N - 1);
        free(values);
        return 0;
    }
    size_t per = (size_t)L * (size_t)D;
    void *params = malloc(minrnn_params_size(cfg, precision));
    void *work = malloc(minrnn_seq2seq_translate_size(cfg, (int)L, beam, M));
    float *grid = malloc(per * sizeof(float));
    int32_t *out = malloc((size_t)M * sizeof(int32_t));
    int ok = params && work && grid && out, status = MINRNN_OK;
    if (!ok) out_of_memory();
    else if ((status = minrnn_params_compact(cfg, ck->params, precision, params)) != MINRNN_OK)
        fprintf(stderr, "minrnn_sample: %s\n", minrnn_strerror(status)), ok = 0;
    minrnn_rng rng;
    minrnn_rng_seed(&rng, (uint64_t)o->seed);
    long first = o->row >= 0 ? (long)o->row : 0, last = o->row >= 0 ? first + 1 : N;
    for (long i = first; ok && i < last; i++) {
        for (size_t k = 0; k < per; k++) {
            double x = values[(size_t)i * per + k];
            if (!isfinite(x)) {
                fprintf(stderr, "minrnn_sample: %s: row %ld holds NaN or infinite values\n", o->grid, i);
                ok = 0;
                break;
            }
            grid[k] = (float)((x - (double)ck->input_shift[k % (size_t)D]) * (double)ck->input_scale[k % (size_t)D]);
        }
        minrnn_translation result;
        status = ok ? minrnn_seq2seq_caption(cfg, precision, params, grid, (int)L, beam, M, temperature, &rng, out,
                                             &result, NULL, work, 0) : MINRNN_OK;
        if (ok && status != MINRNN_OK) fprintf(stderr, "minrnn_sample: row %ld: %s\n", i, minrnn_strerror(status)), ok = 0;
        if (!ok) break;
        for (int k = 0; k < result.length; k++) put_id(lex, out[k]);
        putchar('\n');
        fflush(stdout);
    }
    free(values), free(params), free(work), free(grid), free(out);
    return ok;
}

/* Everything after loading: the prime, the condition, then the samples that the checkpoint's
 * kind of model makes (minrnn.cli.cmd_sample). 1 on success, otherwise 0 with a message. */
static int run(const minrnn_checkpoint *ck, const lexicon *lex, options *o) {
    const minrnn_config *cfg = &ck->config;
    if (cfg->task == MINRNN_TASK_SEQ2SEQ && cfg->input_size) return caption(ck, lex, o);
    if (o->grid) {
        fprintf(stderr, "minrnn_sample: --grid is for a captioner; this checkpoint does not caption grids\n");
        return 0;
    }
    if (cfg->task == MINRNN_TASK_SEQ2SEQ) return translate(ck, lex, o);
    if (o->translating_option) {
        fprintf(stderr, "minrnn_sample: %s is for translating; this checkpoint generates text\n", o->translating_option);
        return 0;
    }
    if (o->n_texts) {
        fprintf(stderr, "minrnn_sample: texts to translate need a seq2seq checkpoint; this one generates text\n");
        return 0;
    }
    if (cfg->input_size) {
        fprintf(stderr, "minrnn_sample: this checkpoint reads sequences of vectors, not text "
                        "(python -m minrnn predict); it does not generate text\n");
        return 0;
    }
    if (cfg->task == MINRNN_TASK_CLASSIFY) {
        fprintf(stderr, "minrnn_sample: this checkpoint is a classifier: it labels texts "
                        "(python -m minrnn classify), it does not generate them\n");
        return 0;
    }
    int framed = is_framed(ck), N = (int)o->num, V = cfg->vocab_size, ok = 0;
    char *prime = strdup(o->prime);
    int32_t *ids = malloc((strlen(o->prime) + 1) * sizeof(int32_t)), *labels = NULL;   /* the start, or one stand-in */
    float *vectors = NULL;
    if (!prime || !ids) {
        out_of_memory();
    } else {
        unescape(prime);
        long n = encode_text(lex, prime, framed ? ids + 1 : ids, "the prime", &o->skipped);
        if (n >= 0 && read_condition(ck, o, N, &labels, &vectors)) {
            if (framed) {   /* every record starts from the start token */
                ids[0] = V - 2, n++;
            } else if (n == 0) {   /* an empty prime: a newline, or the first symbol, is fed (not printed) */
                int32_t newline = find_symbol(lex, '\n');
                ids[n++] = newline >= 0 ? newline : 0;
            }
            ok = generate(ck, lex, o, prime, ids, n, labels, vectors, framed);
        }
    }
    free(prime), free(ids), free(labels), free(vectors);
    return ok;
}

int main(int argc, char **argv) {
    options o;
    int code = parse_options(argc, argv, &o);
    if (code != 0) return code;
    minrnn_checkpoint ck;
    lexicon lex = {0};
    int ok = load_checkpoint(o.path, &ck) && (make_lexicon(&ck, &lex) || out_of_memory()) && run(&ck, &lex, &o);
    if (ok && o.skipped)   /* as python -m minrnn says it */
        fprintf(stderr, "minrnn_sample: %ld %s\n", o.skipped, ck.encoding == MINRNN_WORDS
                ? "words outside the model's vocabulary were read as the unknown word"
                : "characters outside the model's vocabulary were skipped");
    free_checkpoint(&ck);
    free(lex.start);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "minrnn_sample: writing the output failed (%s)\n", strerror(errno));
        return 1;
    }
    return ok ? 0 : 1;
}
