/* cells.c: the cells. One time step of each, for a range of hidden units [j0, j1) of B streams,
 * forward and backward: the gate nonlinearities and the state update fused in one pass. The
 * equations are minrnn/reference/cells.py (the same function names); the products around them
 * are in model.c, which knows a cell only through its cell_kind below.
 *
 * A row whose record has ended (row_done) is skipped; model.c deals with it.
 *
 * Shapes, for one step (row b is stream b); see cell_step in internal.h:
 *   a        (B, G*H)    in: x W_ih^T + b_ih + b_hh (b_hh only for the folded gates); forward
 *                        overwrites it with the gate activations
 *   hp       (B, G*Hp)   h_prev W_hh^T, gate blocks at a stride of Hp >= H
 *   prev[s], next[s], dy, dstate[s]   (B, H)
 *   saved    (B, H)      per saved vector: what backward needs besides states and activations
 *   dgx, dgh (B, G*H)    gradients of the input and recurrent parts of the preactivations (the
 *                        same but in the separate gates); dgx may be `a` itself: each unit's
 *                        activations are read before its gradients are written, so model.c keeps
 *                        them in one buffer
 *   db_ih, db_hh (G*H)   bias gradients: the sums of dgx (dgh) over streams and steps, added here
 *
 * The loops over units are `omp simd` and the exponential below has no calls or branches, so they
 * vectorize; on x86 with GCC each function is also compiled for AVX2 and AVX-512, chosen at load
 * time (WIDE_CLONES: no reductions here, so every width gives the same bits).
 *
 * Adding a cell: write its step_forward and step_backward here, add its row to cell_kinds at the
 * end (and its minrnn_config values to minrnn.h), and its twin to minrnn/reference/cells.py.
 */
#include <stdint.h>
#include <string.h>

#include "internal.h"

/* Bit patterns (bits_, float_: internal.h): comparing them as integers keeps these loops free of
 * float compares, which GCC will not turn into vector selects under -ftrapping-math (the default,
 * kept: no fast-math). */

/* x > 0 (and not -0, not a negative NaN) */
static inline int positive_(float x) { return (int32_t)bits_(x) > 0; }

/* exp_ (internal.h): Cephes' expf polynomial, branch-free, so these loops vectorize. */
static inline float sigmoid_(float x) { return 1.0f / (1.0f + exp_(-x)); }

/* tanh_: internal.h. */


/* ---- vanilla RNN: h = act(a + hp); act = tanh or relu. No saved vectors; dh has no bypass. */

static inline void rnn_step_forward(const cell_step *s, int j0, int j1, int relu) {
    int H = s->H, Hp = s->Hp;
    for (int b = 0; b < s->B; b++) {
        if (row_done(s, b)) continue;
        float *ab = s->a + (size_t)b * H, *hb = s->next[0] + (size_t)b * H;
        const float *pb = s->hp + (size_t)b * Hp;
        if (relu) {
            #pragma omp simd
            for (int j = j0; j < j1; j++) {
                float pre = ab[j] + pb[j];
                hb[j] = ab[j] = positive_(pre) ? pre : 0.0f;
            }
        } else {
            #pragma omp simd
            for (int j = j0; j < j1; j++) hb[j] = ab[j] = tanh_(ab[j] + pb[j]);
        }
    }
}

static inline void rnn_step_backward(const cell_step *s, int j0, int j1, int relu) {
    int H = s->H;
    float *db_ih = s->db_ih, *db_hh = s->db_hh;
    for (int b = 0; b < s->B; b++) {
        if (row_done(s, b)) continue;
        const float *hb = s->next[0] + (size_t)b * H, *dyb = s->dy + (size_t)b * H;
        float *dhb = s->dstate[0] + (size_t)b * H, *dgxb = s->dgx + (size_t)b * H;
        if (relu) {   /* relu' = 1 where h > 0, else 0 */
            #pragma omp simd
            for (int j = j0; j < j1; j++)   /* a select, as bits (see bits_) */
                dgxb[j] = float_(bits_(dyb[j] + dhb[j]) & (0u - (uint32_t)positive_(hb[j])));
        } else {      /* tanh' = 1 - h^2 */
            #pragma omp simd
            for (int j = j0; j < j1; j++) dgxb[j] = (dyb[j] + dhb[j]) * (1.0f - hb[j] * hb[j]);
        }
        #pragma omp simd
        for (int j = j0; j < j1; j++) {
            db_ih[j] += dgxb[j];
            db_hh[j] += dgxb[j];
            dhb[j] = 0.0f;   /* all of dh_prev goes through W_hh */
        }
    }
}

WIDE_CLONES static void rnn_tanh_step_forward(const cell_step *s, int j0, int j1) { rnn_step_forward(s, j0, j1, 0); }
WIDE_CLONES static void rnn_relu_step_forward(const cell_step *s, int j0, int j1) { rnn_step_forward(s, j0, j1, 1); }
WIDE_CLONES static void rnn_tanh_step_backward(const cell_step *s, int j0, int j1) { rnn_step_backward(s, j0, j1, 0); }
WIDE_CLONES static void rnn_relu_step_backward(const cell_step *s, int j0, int j1) { rnn_step_backward(s, j0, j1, 1); }

/* ---- LSTM, gates i, f, g, o: c = f c_prev + i g; h = o tanh(c). States h, c; nothing saved. */

WIDE_CLONES
static void lstm_step_forward(const cell_step *s, int j0, int j1) {
    int H = s->H, Hp = s->Hp;
    for (int b = 0; b < s->B; b++) {
        if (row_done(s, b)) continue;
        float *ab = s->a + (size_t)b * 4 * H;
        float *hb = s->next[0] + (size_t)b * H, *cb = s->next[1] + (size_t)b * H;
        const float *pb = s->hp + (size_t)b * 4 * Hp, *cpb = s->prev[1] + (size_t)b * H;
        #pragma omp simd
        for (int j = j0; j < j1; j++) {
            float i = sigmoid_(ab[j] + pb[j]);
            float f = sigmoid_(ab[H + j] + pb[Hp + j]);
            float g = tanh_(ab[2 * H + j] + pb[2 * Hp + j]);
            float o = sigmoid_(ab[3 * H + j] + pb[3 * Hp + j]);
            ab[j] = i, ab[H + j] = f, ab[2 * H + j] = g, ab[3 * H + j] = o;
            cb[j] = f * cpb[j] + i * g;
            hb[j] = o * tanh_(cb[j]);
        }
    }
}

/* dstate[1] (dc): in, the gradient from step t+1; out, the gradient with respect to c_prev. */
WIDE_CLONES
static void lstm_step_backward(const cell_step *s, int j0, int j1) {
    int H = s->H;
    float *db_ih = s->db_ih, *db_hh = s->db_hh;
    for (int b = 0; b < s->B; b++) {
        if (row_done(s, b)) continue;
        const float *ab = s->a + (size_t)b * 4 * H;
        const float *cpb = s->prev[1] + (size_t)b * H, *cb = s->next[1] + (size_t)b * H;
        const float *dyb = s->dy + (size_t)b * H;
        float *dhb = s->dstate[0] + (size_t)b * H, *dcb = s->dstate[1] + (size_t)b * H;
        float *dgxb = s->dgx + (size_t)b * 4 * H;
        #pragma omp simd
        for (int j = j0; j < j1; j++) {
            float i = ab[j], f = ab[H + j], g = ab[2 * H + j], o = ab[3 * H + j];
            float dh = dyb[j] + dhb[j], tanh_c = tanh_(cb[j]);
            float dc = dcb[j] + dh * o * (1.0f - tanh_c * tanh_c);
            /* gradients of the preactivations: through sigmoid' = s (1 - s), tanh' = 1 - t^2 */
            float dai = dc * g * i * (1.0f - i), daf = dc * cpb[j] * f * (1.0f - f);
            float dag = dc * i * (1.0f - g * g), dao = dh * tanh_c * o * (1.0f - o);
            dgxb[j] = dai, dgxb[H + j] = daf, dgxb[2 * H + j] = dag, dgxb[3 * H + j] = dao;
            db_ih[j] += dai, db_ih[H + j] += daf, db_ih[2 * H + j] += dag, db_ih[3 * H + j] += dao;
            db_hh[j] += dai, db_hh[H + j] += daf, db_hh[2 * H + j] += dag, db_hh[3 * H + j] += dao;
            dhb[j] = 0.0f;   /* all of dh_prev goes through W_hh */
            dcb[j] = dc * f;
        }
    }
}

/* ---- GRU, gates r, z, n: n = tanh(a_n + r hn), hn = W_hn h_prev + b_hn (b_hn added here, as r
 * gates it: n is the separate gate); h = (1 - z) n + z h_prev. Saves hn. */

WIDE_CLONES
static void gru_step_forward(const cell_step *s, int j0, int j1) {
    int H = s->H, Hp = s->Hp;
    const float *b_hn = s->b_hh + 2 * H;
    for (int b = 0; b < s->B; b++) {
        if (row_done(s, b)) continue;
        float *ab = s->a + (size_t)b * 3 * H, *hnb = s->saved + (size_t)b * H, *hb = s->next[0] + (size_t)b * H;
        const float *pb = s->hp + (size_t)b * 3 * Hp, *hpb = s->prev[0] + (size_t)b * H;
        #pragma omp simd
        for (int j = j0; j < j1; j++) {
            float r = sigmoid_(ab[j] + pb[j]);
            float z = sigmoid_(ab[H + j] + pb[Hp + j]);
            hnb[j] = pb[2 * Hp + j] + b_hn[j];
            float n = tanh_(ab[2 * H + j] + r * hnb[j]);
            ab[j] = r, ab[H + j] = z, ab[2 * H + j] = n;
            hb[j] = (1.0f - z) * n + z * hpb[j];
        }
    }
}

/* dstate[0] (dh): in, the gradient from step t+1; out, the part of dh_prev that bypasses W_hh (dh z). */
WIDE_CLONES
static void gru_step_backward(const cell_step *s, int j0, int j1) {
    int H = s->H;
    float *db_ih = s->db_ih, *db_hh = s->db_hh;
    for (int b = 0; b < s->B; b++) {
        if (row_done(s, b)) continue;
        const float *ab = s->a + (size_t)b * 3 * H, *hpb = s->prev[0] + (size_t)b * H;
        const float *hnb = s->saved + (size_t)b * H, *dyb = s->dy + (size_t)b * H;
        float *dhb = s->dstate[0] + (size_t)b * H;
        float *dgxb = s->dgx + (size_t)b * 3 * H, *dghb = s->dgh + (size_t)b * 3 * H;
        #pragma omp simd
        for (int j = j0; j < j1; j++) {
            float r = ab[j], z = ab[H + j], n = ab[2 * H + j];
            float dh = dyb[j] + dhb[j];
            float dan = dh * (1.0f - z) * (1.0f - n * n);
            float dar = dan * hnb[j] * r * (1.0f - r);
            float daz = dh * (hpb[j] - n) * z * (1.0f - z);
            dgxb[j] = dghb[j] = dar;
            dgxb[H + j] = dghb[H + j] = daz;
            dgxb[2 * H + j] = dan;
            dghb[2 * H + j] = dan * r;
            db_ih[j] += dar, db_ih[H + j] += daz, db_ih[2 * H + j] += dan;
            db_hh[j] += dar, db_hh[H + j] += daz, db_hh[2 * H + j] += dan * r;
            dhb[j] = dh * z;
        }
    }
}

/* ---- the table: every cell minrnn runs, in the order minrnn_cell_info lists them. The names are
 * PyTorch's RNN modes (RNN_TANH, RNN_RELU, LSTM, GRU) in lower case, the keys of the reference's
 * CELLS. */

static const cell_kind cell_kinds[] = {
    /* name        config cell  nonlinearity  G  S  separate saved */
    {"lstm", MINRNN_LSTM, MINRNN_TANH, 4, 2, 0, 0, lstm_step_forward, lstm_step_backward},
    {"gru", MINRNN_GRU, MINRNN_TANH, 3, 1, 1, 1, gru_step_forward, gru_step_backward},
    {"rnn_tanh", MINRNN_RNN, MINRNN_TANH, 1, 1, 0, 0, rnn_tanh_step_forward, rnn_tanh_step_backward},
    {"rnn_relu", MINRNN_RNN, MINRNN_RELU, 1, 1, 0, 0, rnn_relu_step_forward, rnn_relu_step_backward},
};

#define NUM_CELL_KINDS ((int)(sizeof cell_kinds / sizeof cell_kinds[0]))

const cell_kind *cell_kind_of(const minrnn_config *cfg) {
    for (int i = 0; i < NUM_CELL_KINDS; i++)
        if (cell_kinds[i].cell == cfg->cell && cell_kinds[i].nonlinearity == cfg->nonlinearity)
            return &cell_kinds[i];
    return NULL;
}

int minrnn_cell_info(int index, minrnn_cell *out) {
    if (index < 0 || index >= NUM_CELL_KINDS || !out) return MINRNN_ERR_ARG;
    const cell_kind *k = &cell_kinds[index];
    memset(out, 0, sizeof *out);
    strncpy(out->name, k->name, sizeof out->name - 1);
    out->cell = k->cell, out->nonlinearity = k->nonlinearity;
    out->gates = k->gates, out->states = k->states;
    return MINRNN_OK;
}
