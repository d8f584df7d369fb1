/* sample.c: choosing the next token from logits, as minrnn/reference/sampling.py. The same
 * double-precision operations in the same order, so the same token for the same logits and rng. */
#include <math.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

typedef struct {
    float logit;
    int32_t index;
} ranked;

/* best first; ties go to the lower index */
static int by_rank(const void *pa, const void *pb) {
    const ranked *a = pa, *b = pb;
    if (a->logit != b->logit) return a->logit > b->logit ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

size_t minrnn_sample_scratch_size(int V) {
    return V < 1 ? 0 : (size_t)V * (sizeof(double) + sizeof(ranked));
}

int minrnn_sample(const float *logits, int V, double temperature, int top_k, double top_p,
                  minrnn_rng *rng, void *scratch, int32_t *token) {
    if (!logits || V < 1 || !token || !(temperature >= 0.0) || top_k < 0 || !(top_p > 0.0 && top_p <= 1.0))
        return MINRNN_ERR_ARG;
    int best = 0;
    for (int v = 0; v < V; v++) {
        if (isnan(logits[v]) || logits[v] == INFINITY) return MINRNN_ERR_ARG;   /* -inf: probability 0 */
        if (logits[v] > logits[best]) best = v;
    }
    if (logits[best] == -INFINITY) return MINRNN_ERR_ARG;   /* no token has any probability */
    if (temperature == 0.0) {   /* argmax, lowest index on ties; no draw */
        *token = best;
        return MINRNN_OK;
    }
    if (!rng || !scratch || (uintptr_t)scratch % alignof(double) != 0) return MINRNN_ERR_ARG;
    double *w = scratch;                      /* (V) unnormalized probabilities */
    ranked *order = (ranked *)(w + V);        /* (V) candidates */
    double m = logits[best];
    for (int v = 0; v < V; v++) w[v] = exp(((double)logits[v] - m) / temperature);
    for (int v = 0; v < V; v++) order[v].logit = logits[v], order[v].index = v;
    int n = V;
    if (top_k > 0 || top_p < 1.0) {
        qsort(order, (size_t)V, sizeof *order, by_rank);
        if (top_k > 0 && top_k < n) n = top_k;
        if (top_p < 1.0) {   /* the shortest best-first prefix whose mass reaches top_p */
            double mass = 0.0;
            for (int i = 0; i < n; i++) mass += w[order[i].index];
            double need = top_p * mass, cum = 0.0;
            int k = 0;
            while (k < n && cum < need) cum += w[order[k++].index];
            n = k > 1 ? k : 1;
        }
    }
    double total = 0.0;
    for (int i = 0; i < n; i++) total += w[order[i].index];
    double u = (double)minrnn_rng_uniform(rng) * total, cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += w[order[i].index];
        if (u < cum) {
            *token = order[i].index;
            return MINRNN_OK;
        }
    }
    *token = order[n - 1].index;   /* only through round-off, when u is within an ulp of total */
    return MINRNN_OK;
}
