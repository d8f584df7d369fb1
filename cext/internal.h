/* internal.h: what the core's source files share (not installed). */
#ifndef MINRNN_INTERNAL_H
#define MINRNN_INTERNAL_H

#include "minrnn.h"

int cell_gates(const minrnn_config *cfg);                 /* G: 1, 4 or 3 */
int cell_states(const minrnn_config *cfg);                /* S: 2 for LSTM, else 1 */
int layer_input_size(const minrnn_config *cfg, int layer);
int resolve_threads(int num_threads);                     /* 0 -> OpenMP's default */

/* Vector loops are also compiled for AVX2 (with GCC on x86-64), chosen when the library loads. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_CLONES
#endif

/* Threads worth using for a loop of `work` simple operations: one below PAR_MIN_WORK, where
 * starting a team costs more than it saves. Results never depend on it. */
#define PAR_MIN_WORK 32768.0
static inline int threads_for(int nt, double work) { return work < PAR_MIN_WORK ? 1 : nt; }

/* The same for a product of (M, K) and (K, N): a vectorized multiply-add costs about a sixteenth
 * of one of those simple operations. */
static inline int gemm_threads(int nt, int M, int N, int K) { return threads_for(nt, (double)M * N * K / 8.0); }

/* Named pointers into the parameter block (or into a gradient block of the same layout). */
typedef struct {
    const float *w_ih, *w_hh, *b_ih, *b_hh;
} layer_view;

typedef struct {
    const float *encoder;                    /* (V, E) or NULL */
    layer_view layer[MINRNN_MAX_LAYERS];
    const float *dec_w, *dec_b;              /* (V, H), (V) */
} model_view;

model_view model_views(const minrnn_config *cfg, const float *params);

/* cells.c: one step for hidden units [j0, j1) of B streams; shapes there. */
void rnn_forward_units(int B, int H, int Hp, int j0, int j1, int relu, float *a, const float *hp, float *h);
void rnn_backward_units(int B, int H, int j0, int j1, int relu, const float *h, const float *dy,
                        const float *dh, float *dg, float *db_ih, float *db_hh);
void lstm_forward_units(int B, int H, int Hp, int j0, int j1, float *a, const float *hp,
                        const float *c_prev, float *c, float *h);
void lstm_backward_units(int B, int H, int j0, int j1, const float *a, const float *c_prev, const float *c,
                         const float *dy, const float *dh, float *dc, float *dg, float *db_ih, float *db_hh);
void gru_forward_units(int B, int H, int Hp, int j0, int j1, float *a, const float *hp, const float *b_hn,
                       const float *h_prev, float *hn, float *h);
void gru_backward_units(int B, int H, int j0, int j1, const float *a, const float *h_prev, const float *hn,
                        const float *dy, float *dh, float *dg, float *dgh, float *db_ih, float *db_hh);

#endif
