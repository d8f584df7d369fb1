/* minrnn_sample: stream text from a minrnn checkpoint, using only libminrnn.
 *
 *   minrnn_sample CHECKPOINT [-n LENGTH] [-t TEMPERATURE] [--top-k K] [--top-p P] [-p PRIME] [-s SEED]
 *
 * The prime is fed through the model first and printed; then LENGTH characters are sampled one at
 * a time. Without a prime, generation starts from a newline (or the first symbol if the vocabulary
 * has no newline), which is not printed. This is what minrnn.text.generate does, so the same
 * checkpoint and seed give the same bytes from Python and from this program. The checkpoint is read
 * through one open file, so a training run may replace it meanwhile.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "minrnn.h"

static void usage(void) {
    fprintf(stderr, "usage: minrnn_sample CHECKPOINT [-n LENGTH] [-t TEMPERATURE] [--top-k K] [--top-p P]"
                    " [-p PRIME] [-s SEED]\n");
}

/* A status of the library on stderr, with errno's reason after a file error. */
static void report(const char *path, int status) {
    int file = status == MINRNN_ERR_OPEN || status == MINRNN_ERR_READ;
    const char *why = file ? strerror(errno) : "";
    fprintf(stderr, "minrnn_sample: %s: %s%s%s%s\n", path, minrnn_strerror(status), file ? " (" : "", why, file ? ")" : "");
}

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

/* The id of a symbol (binary search in the sorted vocabulary), or -1. */
static int find(const int32_t *vocab, int V, long symbol) {
    int lo = 0, hi = V - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (vocab[mid] == symbol) return mid;
        if (vocab[mid] < symbol) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
}

static int parse_number(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || *end || !(x >= lo && x <= hi)) return 0;
    *out = x;
    return 1;
}

int main(int argc, char **argv) {
    const char *path = NULL, *prime = "";
    double length = 200, temperature = 1.0, top_k = 0, top_p = 1.0;
    unsigned long long seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (a[0] != '-') { path = a; continue; }
        if (!v) { usage(); return 2; }
        if (!strcmp(a, "-n")) ok = parse_number(v, 0, 1e12, &length);
        else if (!strcmp(a, "-t")) ok = parse_number(v, 0, 1e6, &temperature);
        else if (!strcmp(a, "--top-k")) ok = parse_number(v, 0, 1e9, &top_k);
        else if (!strcmp(a, "--top-p")) ok = parse_number(v, 1e-9, 1, &top_p);
        else if (!strcmp(a, "-s")) {
            char *end;
            errno = 0;
            seed = strtoull(v, &end, 10);
            ok = !errno && end != v && !*end && v[0] != '-';
        }
        else if (!strcmp(a, "-p")) prime = v;
        else { usage(); return 2; }
        if (!ok) { fprintf(stderr, "minrnn_sample: bad value for %s: %s\n", a, v); return 2; }
        i++;
    }
    if (!path) { usage(); return 2; }

    minrnn_checkpoint ck;
    int fd = open(path, O_RDONLY | O_NONBLOCK);   /* O_NONBLOCK: a FIFO is refused, not waited on */
    int status = fd < 0 ? MINRNN_ERR_OPEN : minrnn_checkpoint_peek_fd(fd, &ck);
    if (status != MINRNN_OK) {
        report(path, status);
        return 1;
    }
    const minrnn_config *cfg = &ck.config;
    int V = cfg->vocab_size;
    size_t P = minrnn_param_count(cfg), S = minrnn_state_size(cfg, 1), W = minrnn_workspace_size(cfg, 1, 1);
    ck.vocab = malloc((size_t)V * sizeof(int32_t));
    ck.params = malloc(P * sizeof(float));
    ck.meta = malloc(ck.meta_size + 1);
    ck.m = ck.v = ck.state = NULL;   /* the training state is not needed to sample */
    float *state = calloc(S, sizeof(float)), *logits = malloc((size_t)V * sizeof(float));
    float *work = malloc(W * sizeof(float));
    void *scratch = malloc(minrnn_sample_scratch_size(V));
    int32_t *prime_ids = malloc((strlen(prime) + 1) * sizeof(int32_t));
    if (!ck.vocab || !ck.params || !ck.meta || !state || !logits || !work || !scratch || !prime_ids) {
        fprintf(stderr, "minrnn_sample: out of memory\n");
        return 1;
    }
    status = minrnn_checkpoint_load_fd(fd, &ck);
    if (status != MINRNN_OK) {
        report(path, status);   /* before close, which may change errno */
        return 1;
    }
    close(fd);

    /* the prime, as token ids */
    size_t n_prime = 0, at = 0, len = strlen(prime);
    while (at < len) {
        size_t used = 1;
        long symbol = ck.encoding == MINRNN_BYTES ? (unsigned char)prime[at]
                                                  : utf8_next((const unsigned char *)prime + at, len - at, &used);
        int id = symbol < 0 ? -1 : find(ck.vocab, V, symbol);
        if (id < 0) {
            fprintf(stderr, "minrnn_sample: the prime has a character outside the model's vocabulary (byte %zu)\n", at);
            return 1;
        }
        prime_ids[n_prime++] = id;
        at += used;
    }
    if (n_prime == 0) {   /* start from a newline, or the first symbol */
        int newline = find(ck.vocab, V, '\n');
        prime_ids[n_prime++] = newline >= 0 ? newline : 0;
    } else {
        fwrite(prime, 1, len, stdout);
    }

    minrnn_rng rng;
    minrnn_rng_seed(&rng, (uint64_t)seed);
    for (size_t i = 0; i < n_prime && status == MINRNN_OK; i++)
        status = minrnn_step(cfg, ck.params, 1, &prime_ids[i], state, logits, work, 0);
    for (long long n = 0; n < (long long)length && status == MINRNN_OK; n++) {
        int32_t token;
        status = minrnn_sample(logits, V, temperature, (int)top_k, top_p, &rng, scratch, &token);
        if (status != MINRNN_OK) break;
        put_symbol(ck.vocab[token], ck.encoding);
        fflush(stdout);
        if (n + 1 < (long long)length) status = minrnn_step(cfg, ck.params, 1, &token, state, logits, work, 0);
    }
    if (status != MINRNN_OK) {
        fprintf(stderr, "minrnn_sample: %s\n", minrnn_strerror(status));
        return 1;
    }
    free(ck.vocab), free(ck.params), free(ck.meta), free(state), free(logits), free(work), free(scratch), free(prime_ids);
    return 0;
}
