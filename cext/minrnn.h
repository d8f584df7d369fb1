/* minrnn.h: the one public header of minrnn's C core.
 *
 * Character-level recurrent networks (RNN tanh/relu, LSTM, GRU) in float32, for a batch of B
 * independent streams over T time steps, with the equations and parameter layout of PyTorch: a
 * language model (many to many), records of different lengths in one batch, a condition vector
 * that drives every step (one to many: captioning), and a classifier of each stream's last state
 * (many to one). Backward takes the gradient with respect to the final states and gives it with
 * respect to the initial states and the condition, so models compose (an encoder feeding a
 * decoder) with no other math.
 * The caller owns every buffer: size queries say how many floats to allocate. The library keeps no
 * global state, never exits and never prints; every call that can fail returns a minrnn_status,
 * explained by minrnn_strerror() (after the file errors, errno says why, as the failed system
 * call left it). num_threads is passed per call (0 = OpenMP's default), and
 * results are bitwise identical for every thread count.
 *
 * Layouts (row-major, like PyTorch):
 *   tokens           (T, B) int32, time-major: tokens[t * B + b] is stream b's input at step t;
 *                    or inputs (T, B, D) float32 for a model of vectors (input_size D)
 *   targets          language model (T, B) like tokens; classifier (B)
 *   state            (L, S, B, H): for each layer h, then c for LSTM (S = 2; S = 1 otherwise)
 *   dropout masks    (L, T, B, H): the scale applied to layer l's output, 0 or 1 / (1 - p)
 *   logits           language model (T, B, V); classifier (B, K)
 *   parameters       one block: encoder.weight (V, E) if E > 0; cond.weight (G*H, C) with a
 *                    condition; per layer weight_ih (G*H, In), weight_hh (G*H, H), bias_ih (G*H),
 *                    bias_hh (G*H) unless one_bias; then decoder.weight (V, H), decoder.bias (V)
 *                    for a language model, or head.weight (K, H), head.bias (K) for a classifier.
 *                    G = 1 (RNN), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n). Gradients and
 *                    optimizer moments have the same length and layout.
 *
 * The Python binding reads the declarations below the "cdef" marker with cffi, so Python and C
 * cannot drift apart. Below that marker: only integer #defines, enums, structs and prototypes.
 */
#ifndef MINRNN_H
#define MINRNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MINRNN_VERSION_STRING "0.11.0"

/* The library is built with hidden visibility: what this header declares is all it exports. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---- cdef: everything from here to the end marker is also read by cffi ---- */

#define MINRNN_VERSION_MAJOR 0
#define MINRNN_VERSION_MINOR 11
#define MINRNN_VERSION_PATCH 0
#define MINRNN_CHECKPOINT_FORMAT 7   /* the checkpoint format this library writes; it also reads 1 to 6 */

typedef enum {
    MINRNN_OK = 0,
    MINRNN_ERR_ARG = 1,            /* an argument is invalid: a size, a null buffer, a token id */
    MINRNN_ERR_CONFIG = 2,         /* the model configuration is invalid */
    MINRNN_ERR_OPEN = 3,           /* a file could not be opened or created (errno: why) */
    MINRNN_ERR_NOT_CHECKPOINT = 4, /* the file is not a minrnn checkpoint (wrong magic) */
    MINRNN_ERR_VERSION = 5,        /* the checkpoint's format version is not one of 1 to 6 */
    MINRNN_ERR_TRUNCATED = 6,      /* the checkpoint is shorter than its header says */
    MINRNN_ERR_CORRUPT = 7,        /* the checkpoint's checksum, sizes or contents are inconsistent */
    MINRNN_ERR_MISMATCH = 8,       /* the buffers given do not match the checkpoint (changed since peek?) */
    MINRNN_ERR_NONFINITE = 9,      /* the loss or gradient is NaN or infinite; nothing was updated */
    MINRNN_ERR_READ = 10,          /* reading a file failed (errno: why) */
    MINRNN_ERR_WRITE = 11,         /* writing or flushing a file failed (errno: why; ENOSPC: disk full) */
    MINRNN_ERR_RENAME = 12,        /* a written file could not be renamed into place (errno: why) */
    MINRNN_ERR_NO_FORWARD = 13,    /* backward needs the forward pass of the same arguments to be
                                    * the last thing run on that workspace */
    MINRNN_ERR_NOT_FILE = 14       /* the path is a folder, a device or a pipe, not a regular file */
} minrnn_status;

/* cell and nonlinearity, as in PyTorch's nn.RNN(nonlinearity=...), nn.LSTM, nn.GRU; the pairs the
 * library runs are listed by minrnn_cell_info */
enum { MINRNN_RNN = 0, MINRNN_LSTM = 1, MINRNN_GRU = 2 };       /* cell */
enum { MINRNN_TANH = 0, MINRNN_RELU = 1 };                      /* nonlinearity of MINRNN_RNN */
enum { MINRNN_INIT_DEFAULT = 0, MINRNN_INIT_IRNN = 1, MINRNN_INIT_NORMAL = 2 };   /* init scheme */
/* what the top layer feeds: a next-token decoder (LM), a classifier head (CLASSIFY), nothing (ENCODE:
 * the top layer's outputs are the result), or a sequence to sequence model (SEQ2SEQ: an encoder and
 * a decoder of this configuration's cell and sizes, with the attention below; see the seq2seq calls) */
enum { MINRNN_TASK_LM = 0, MINRNN_TASK_CLASSIFY = 1, MINRNN_TASK_ENCODE = 2, MINRNN_TASK_SEQ2SEQ = 3 };
/* How a seq2seq decoder looks at the source (Luong et al. 2015; Bahdanau et al. 2015): the score of
 * source position s for decoder output h is h.e_s (DOT), h.(W_a e_s) (GENERAL) or
 * v.tanh(W_q h + W_k e_s) (ADDITIVE); NONE: no attention, the decoder reads only the final states. */
enum { MINRNN_ATTENTION_NONE = 0, MINRNN_ATTENTION_DOT = 1, MINRNN_ATTENTION_GENERAL = 2,
       MINRNN_ATTENTION_ADDITIVE = 3 };
enum { MINRNN_COND_NONE = 0, MINRNN_COND_LABEL = 1, MINRNN_COND_VECTOR = 2 };   /* condition v */
enum { MINRNN_MEAN = 0, MINRNN_SUM = 1 };                       /* loss reduction */
enum { MINRNN_CROSS_ENTROPY = 0, MINRNN_SQUARED_ERROR = 1 };    /* loss */
enum { MINRNN_SGD = 0, MINRNN_ADAGRAD = 1, MINRNN_RMSPROP = 2, MINRNN_ADAM = 3 };
/* What a vocabulary's entries are: characters (Unicode code points), bytes, or words (tokens of
 * one or more code points, each stored as its code points and MINRNN_TOKEN_END; see vocab below) */
enum { MINRNN_UTF8 = 0, MINRNN_BYTES = 1, MINRNN_WORDS = 2 };
/* How a parameter block is stored. MINRNN_BFLOAT16: each float32 rounded to nearest (ties to
 * even) and kept as its high 16 bits, for inference; widening it back is exact. MINRNN_INT8: each
 * row of a weight matrix as int8 and a power-of-two scale, the biases exact (cext/int8.c), for
 * inference with integer products; expanding it back is exact. */
enum { MINRNN_FLOAT32 = 0, MINRNN_BFLOAT16 = 1, MINRNN_INT8 = 2 };
/* Reserved ids of a record model: in a checkpoint's vocabulary, after the text's symbols, these
 * stand for the start and the end token (never a character of the text). */
enum { MINRNN_START_SYMBOL = -1, MINRNN_END_SYMBOL = -2 };
enum { MINRNN_TOKEN_END = -3 };       /* ends each token of a MINRNN_WORDS vocabulary */

/* Limits that keep every size computation far from overflow. */
#define MINRNN_MAX_VOCAB 1114112      /* every Unicode code point */
#define MINRNN_MAX_HIDDEN 65536       /* also the largest embedding size */
#define MINRNN_MAX_LAYERS 64
#define MINRNN_MAX_CLASSES 1048576    /* K, and C: labels or condition size */
#define MINRNN_MAX_BATCH_ROWS 1073741824   /* B * T, 2^30 */
#define MINRNN_MAX_TOKEN_CHARS 64     /* code points of a word token (a longer word is cut into tokens) */

typedef struct {
    int32_t cell;          /* MINRNN_RNN, MINRNN_LSTM or MINRNN_GRU */
    int32_t nonlinearity;  /* MINRNN_TANH or MINRNN_RELU for MINRNN_RNN; MINRNN_TANH otherwise */
    int32_t vocab_size;    /* V >= 1 */
    int32_t embed_size;    /* E >= 0; 0 = one-hot input */
    int32_t hidden_size;   /* H >= 1 */
    int32_t num_layers;    /* L >= 1 */
    float dropout;         /* p in [0, 1): chance of zeroing a layer output element in training */
    int32_t task;          /* MINRNN_TASK_LM: a decoder predicts the next token at every step;
                            * MINRNN_TASK_CLASSIFY: a head classifies each stream from the top
                            * layer's output at its last step */
    int32_t num_classes;   /* K >= 2 for a classifier; 0 for a language model */
    int32_t cond;          /* MINRNN_COND_NONE; MINRNN_COND_LABEL: v is the one-hot of a label,
                            * so W_cond v is a column of W_cond; MINRNN_COND_VECTOR: v is C floats.
                            * Layer 0's input preactivations (every gate) get W_cond v at every step */
    int32_t cond_size;     /* C: labels or floats of v; 0 with MINRNN_COND_NONE */
    int32_t one_bias;      /* 0: bias_ih and bias_hh per layer (PyTorch); 1: bias_ih only, as
                            * min-char-rnn's one hidden bias (bias_hh acts as zero) */
    int32_t reduction;     /* the loss over the positions (or streams) that have one: MINRNN_MEAN
                            * or MINRNN_SUM (min-char-rnn) */
    int32_t attention;     /* MINRNN_TASK_SEQ2SEQ: a MINRNN_ATTENTION_ kind; 0 for the other tasks */
    int32_t attention_size;   /* A >= 1: the additive attention's hidden size; 0 otherwise */
    int32_t input_size;    /* D >= 0. 0: layer 0 reads token ids (one-hot, or an embedding);
                            * D >= 1: it reads D floats per step, minrnn_batch.inputs, through
                            * weight_ih_l0 (G*H, D), with embed_size 0 and no vocabulary: a
                            * classifier (vocab_size 0), or with MINRNN_TASK_LM an output per step
                            * of vocab_size classes (a tagger) or values */
    int32_t loss;          /* MINRNN_CROSS_ENTROPY: the outputs are logits of classes (ids in
                            * targets); MINRNN_SQUARED_ERROR (models of vectors only): they are
                            * values, compared with minrnn_batch.values by (y - t)^2, summed over
                            * a row's values, and a mean over rows and values with MINRNN_MEAN */
    int32_t input_feeding; /* MINRNN_TASK_SEQ2SEQ with attention: 1 feeds each step's context c to
                            * the decoder's next step (layer 0's condition), 0 does not; 0 for
                            * the other tasks */
} minrnn_config;

/* One batch: what the model reads and what its loss compares with. Fields the configuration does
 * not use must be NULL. */
typedef struct {
    int32_t B, T;
    const int32_t *tokens;     /* (T, B) ids in [0, V), padding included */
    const int32_t *targets;    /* language model (T, B) ids, read within lengths only; classifier
                                * (B) classes in [0, K); NULL: no loss */
    const int32_t *lengths;    /* (B) in [1, T]: stream b is a record of lengths[b] steps; at later
                                * steps nothing happens to it (no state change, no loss, no
                                * gradient), so its final state is the state after its last step.
                                * NULL: every stream runs T steps */
    const int32_t *labels;     /* MINRNN_COND_LABEL: (B) labels in [0, C) */
    const float *vectors;      /* MINRNN_COND_VECTOR: (B, C) finite floats */
    const float *inputs;       /* input_size D >= 1: (T, B, D) finite floats, time-major, padding
                                * included, and tokens NULL */
    const float *values;       /* MINRNN_SQUARED_ERROR, instead of targets: the outputs' targets,
                                * classifier (B, K), language model (T, B, V), finite where read
                                * (within lengths); NULL: no loss */
} minrnn_batch;

/* One cell the library runs: a valid (cell, nonlinearity) pair of minrnn_config. */
typedef struct {
    char name[16];         /* "rnn_tanh", "rnn_relu", "lstm", "gru": PyTorch's RNN modes */
    int32_t cell, nonlinearity;
    int32_t gates;         /* G: rows of weight_ih and weight_hh per hidden unit */
    int32_t states;        /* S: state vectors per layer (h; h and c for LSTM) */
} minrnn_cell;

typedef struct {
    char name[24];         /* PyTorch's name: "weight_ih_l0", "decoder.bias", ... */
    int64_t offset;        /* first float in the parameter block */
    int32_t ndim;          /* 2: a matrix (rows, cols); 1: a vector (rows), and cols = 1 */
    int32_t rows, cols;
} minrnn_tensor;

/* xorshift64* seeded with splitmix64(seed); a zero state is replaced by 0x9E3779B97F4A7C15.
 * uniform = (next >> 40) * 2^-24. The same numbers as minrnn.reference.rng.Rng. */
typedef struct {
    uint64_t state;
} minrnn_rng;

/* An update rule with its hyperparameters, its clipping and its step count. */
typedef struct {
    int32_t kind;          /* MINRNN_SGD, MINRNN_ADAGRAD, MINRNN_RMSPROP or MINRNN_ADAM */
    float lr;
    float momentum;        /* SGD: m = momentum m + g; p -= lr m */
    float alpha;           /* RMSprop: m = alpha m + (1 - alpha) g^2; p -= lr g / (sqrt(m) + eps) */
    float beta1, beta2;    /* Adam */
    float eps;             /* Adagrad: p -= lr g / sqrt(m + eps); RMSprop, Adam: added to the root */
    float clip_value;      /* > 0: clip every gradient element into [-clip_value, clip_value] */
    float clip_norm;       /* > 0: then scale the gradient by clip_norm / (norm + 1e-6) if that is < 1 */
    int64_t step;          /* updates done so far, in [0, INT64_MAX); an update first increments it (Adam's t) */
    float weight_decay;    /* >= 0, decoupled (AdamW's, for every rule): p *= 1 - lr weight_decay, in
                            * float32, before the rule's update; 0 changes nothing. Last, so that an
                            * initializer written before it existed leaves it 0 */
} minrnn_optimizer;

/* A checkpoint in memory. peek fills the scalar fields from a file; the caller then allocates the
 * buffers (sizes below) and calls load. save writes what the fields describe. */
typedef struct {
    minrnn_config config;
    int32_t encoding;            /* MINRNN_UTF8 (symbols are code points), MINRNN_BYTES (0..255) or
                                  * MINRNN_WORDS (tokens) */
    int64_t vocab_length;        /* entries of vocab: V for UTF8 and BYTES (0 is taken as V by save);
                                  * for WORDS the tokens' code points and ends, then the markers */
    int32_t has_train_state;     /* 1: the fields below the line are present */
    uint64_t meta_size;          /* bytes of UTF-8 JSON metadata */
    uint64_t labels_size;        /* bytes of label names */
    int32_t precision;           /* how the file stores params: MINRNN_FLOAT32, or MINRNN_BFLOAT16
                                  * (inference only: has_train_state must be 0). params in memory
                                  * are float32 either way: load widens exactly, save rounds */
    int32_t *vocab;              /* (vocab_length): UTF8, BYTES: V symbols, strictly increasing;
                                  * WORDS: each token's code points then MINRNN_TOKEN_END, the
                                  * tokens in strictly increasing order (compared code point by
                                  * code point, a prefix first), the first one empty: id 0 is the
                                  * unknown word. Then MINRNN_START_SYMBOL and MINRNN_END_SYMBOL
                                  * for a record model (always for seq2seq), each one id */
    float *params;               /* (param_count) */
    char *meta;                  /* (meta_size) bytes, not NUL-terminated */
    char *labels;                /* (labels_size) bytes: the K class names (classifier), then the C
                                  * label names (MINRNN_COND_LABEL), each non-empty, ended by '\n',
                                  * valid UTF-8 without '\t', '\r' or NUL; labels_size 0 otherwise
                                  * (seq2seq: always 0) */
    float *cond_shift, *cond_scale;   /* MINRNN_COND_VECTOR: (C) finite floats each; the model reads
                                  * (v - cond_shift) * cond_scale, the standardized vector */
    float *input_shift, *input_scale;   /* input_size D >= 1: (D) finite floats each, likewise for
                                  * the inputs (what the caller applies before minrnn_batch.inputs) */
    /* ---- training state, for an exact resume ---- */
    minrnn_optimizer optimizer;
    uint64_t rng_state;          /* the dropout generator */
    int32_t batch_size;          /* B of the carried state */
    int32_t seq_len;             /* T */
    int64_t epoch;               /* the epoch in progress */
    int64_t position;            /* the next batch within it */
    float *m, *v;                /* (param_count) each: the optimizer's moments */
    float *state;                /* (state_size(B)): the carried hidden states */
} minrnn_checkpoint;

/* ---- version and errors */
const char *minrnn_version(void);                 /* "MAJOR.MINOR.PATCH" */
const char *minrnn_strerror(int status);

/* ---- cells: index 0, 1, ... until MINRNN_ERR_ARG */
int minrnn_cell_info(int index, minrnn_cell *out);

/* ---- configuration and sizes (in floats). Sizes are 0 for an invalid configuration. */
int minrnn_config_check(const minrnn_config *cfg);
size_t minrnn_param_count(const minrnn_config *cfg);
int minrnn_tensor_count(const minrnn_config *cfg);
int minrnn_tensor_info(const minrnn_config *cfg, int index, minrnn_tensor *out);
size_t minrnn_state_size(const minrnn_config *cfg, int B);
/* The logits of B streams over T steps: T * B * V for a language model, B * K for a classifier. */
size_t minrnn_logits_size(const minrnn_config *cfg, int B, int T);
/* Enough for minrnn_forward, minrnn_backward and minrnn_train_step with these B and T, and for
 * minrnn_step with this B. */
size_t minrnn_workspace_size(const minrnn_config *cfg, int B, int T);

/* ---- random numbers */
void minrnn_rng_seed(minrnn_rng *rng, uint64_t seed);
uint64_t minrnn_rng_next(minrnn_rng *rng);
float minrnn_rng_uniform(minrnn_rng *rng);

/* ---- model */
/* Fresh parameters: see minrnn.reference.model.init_params for the schemes. MINRNN_INIT_IRNN (an
 * identity weight_hh) is for the cells of one gate, the RNNs; MINRNN_ERR_ARG for the others.
 * MINRNN_INIT_NORMAL is min-char-rnn's: weights N(0, 1) * 0.01, biases zero. */
int minrnn_init_params(const minrnn_config *cfg, float *params, uint64_t seed, int scheme);
/* Inverted dropout masks (L, T, B, H) drawn from rng in that order: keep when the uniform draw is
 * >= p (the float in the config), with the scale 1 / (1 - p) computed in double and rounded once. */
int minrnn_dropout_masks(const minrnn_config *cfg, int B, int T, minrnn_rng *rng, float *masks);
/* Run the batch from state0: B streams, T steps. state_out (the final states), masks (dropout),
 * logits and loss may each be NULL; state_out may equal state0. loss is the mean or the sum (per
 * cfg->reduction) of the cross-entropies, and needs targets. The workspace keeps what backward
 * needs, stamped with a hash of what it was computed from. */
int minrnn_forward(const minrnn_config *cfg, const float *params, const minrnn_batch *batch,
                   const float *state0, float *state_out, const float *masks, float *logits,
                   float *loss, float *workspace, int num_threads);
/* The gradient of the last minrnn_forward on this workspace, of [its loss, if the batch has
 * targets] + [sum of dfinal * final states, if dfinal (L, S, B, H) is not NULL: what a decoder
 * sends back to its encoder]: adds into grads; writes the gradient with respect to state0 into
 * dstate0 (L, S, B, H) and with respect to the batch's vectors into dvectors (B, C) unless NULL
 * (dvectors only with MINRNN_COND_VECTOR). That forward must have had the same config, params,
 * batch (the same values: the stamp holds a hash of them) and masks, with no other call on the
 * workspace since; otherwise nothing is written and the result is MINRNN_ERR_NO_FORWARD.
 * Backward uses up the forward pass: a second backward needs a new forward. */
int minrnn_backward(const minrnn_config *cfg, const float *params, const minrnn_batch *batch,
                    const float *masks, const float *dfinal, float *workspace, float *grads,
                    float *dstate0, float *dvectors, int num_threads);
/* Clipping in place; minrnn_clip_norm writes the norm before clipping to *norm unless NULL. */
void minrnn_clip_value(float *grads, size_t n, float limit);
void minrnn_clip_norm(float *grads, size_t n, float max_norm, float *norm, int num_threads);
/* One update of params from grads; m and v are the moments (v is used by Adam only). */
int minrnn_optimizer_update(minrnn_optimizer *opt, float *params, const float *grads, float *m, float *v,
                            size_t n, int num_threads);
/* A whole training step in one call: dropout masks from rng, forward, zeroed grads and backward,
 * clipping, the update and the carried state (state in: initial, out: final). On
 * MINRNN_ERR_NONFINITE nothing but rng and grads has changed. loss and grad_norm may be NULL;
 * grad_norm is measured after clip_value and before clip_norm. The batch needs targets. */
int minrnn_train_step(const minrnn_config *cfg, float *params, float *grads, float *m, float *v,
                      minrnn_optimizer *opt, minrnn_rng *rng, const minrnn_batch *batch,
                      float *state, float *loss, float *grad_norm, float *workspace,
                      int num_threads);
/* One token for each of B streams (batch->T = 1, no targets, no lengths): logits (B, V) or (B, K)
 * and the state moves on. */
int minrnn_step(const minrnn_config *cfg, const float *params, const minrnn_batch *batch,
                float *state, float *logits, float *workspace, int num_threads);

/* ---- sequence to sequence (cfg->task MINRNN_TASK_SEQ2SEQ): pairs of a source and a target over
 * one vocabulary whose last two ids are the start (V-2) and the end (V-1) token. The source is ids
 * (translation), or with input_size D >= 1 a grid of D-vectors (captioning: one vector per place
 * in an image; no encoder). The memory, what the attention reads, is M = H (encoder) or D wide.
 *   encoder   a MINRNN_TASK_ENCODE model of cfg's cell and sizes reads each source: outputs e_s;
 *             a grid is its own memory, e_s its vectors
 *   decoder   another, from the encoder's final states (zeros for a grid), reads [start, target]
 *             with outputs h_t; its layer 0 adds W_cond v_t for v_t = [mean ; c_{t-1}], what of it
 *             is present: a grid's mean vector (every step, as a conditioned record), and with
 *             input_feeding the last step's context (zeros at t = 0)
 *   attention at decoder step t of pair b, over its source positions s < source_lengths[b]:
 *             alpha = softmax(score_s), c = sum_s alpha_s e_s, o = tanh(W_c [c; h_t] + b_c)
 *             (Luong's attentional state); MINRNN_ATTENTION_NONE: o = h_t. Without input
 *             feeding the decoder runs the model's own loop and the attention of all its steps
 *             runs after it, batched; with it the decoder runs a step at a time, each step's
 *             attention before the next (the keys are still projected once, for every row)
 *   output    logits = W_out o + b_out, predicting [target, end]; the loss is the mean
 *             cross-entropy over the target positions
 * Parameters: "enc." + the encoder's tensors (not for a grid), "dec." + the decoder's (with
 * cond.weight (G*H, C) when v_t is present), then attn.weight (H, M) (GENERAL) or attn.query
 * (A, H), attn.key (A, M), attn.v (A) (ADDITIVE); with attention combine.weight (H, M + H),
 * combine.bias (H); then out.weight (V, H), out.bias (V).
 * Dropout masks (inside the two models): (L, Ts, B, H) for the encoder (none for a grid), then
 * (L, Td, B, H). */
typedef struct {
    int32_t B, Ts, Td;
    const int32_t *source;           /* (Ts, B) ids in [0, V - 2): never start or end */
    const int32_t *source_lengths;   /* (B) in [1, Ts] */
    const int32_t *inputs;           /* (Td, B): start, then the target's ids */
    const int32_t *targets;          /* (Td, B): the target's ids, then end; NULL: no loss */
    const int32_t *target_lengths;   /* (B) in [1, Td]: the target's length + 1 */
    const float *grid;               /* input_size D >= 1: (Ts, B, D) finite floats (source NULL),
                                      * pair b's places s < source_lengths[b]; NULL otherwise */
} minrnn_pairs;

/* Enough for minrnn_seq2seq_forward, _backward and _train_step with these sizes. */
size_t minrnn_seq2seq_workspace_size(const minrnn_config *cfg, int B, int Ts, int Td);
/* Run the pairs. masks (dropout), logits (Td, B, V), alignments (Td, B, Ts): each step's alpha,
 * zero past the source's length; zero without attention) and loss (needs targets) may each be
 * NULL. Positions past a target's length have no loss; their logits and alignments are those of
 * the decoder's output frozen there. The workspace keeps what backward needs, stamped as
 * minrnn_forward's is. */
int minrnn_seq2seq_forward(const minrnn_config *cfg, const float *params, const minrnn_pairs *pairs,
                           const float *masks, float *logits, float *alignments, float *loss,
                           float *workspace, int num_threads);
/* The gradient of the last minrnn_seq2seq_forward's loss on this workspace (same arguments),
 * added into grads; MINRNN_ERR_NO_FORWARD otherwise. */
int minrnn_seq2seq_backward(const minrnn_config *cfg, const float *params, const minrnn_pairs *pairs,
                            const float *masks, float *workspace, float *grads, int num_threads);
/* minrnn_train_step for pairs: masks from rng, forward, zeroed grads, backward, clipping, update. */
int minrnn_seq2seq_train_step(const minrnn_config *cfg, float *params, float *grads, float *m, float *v,
                              minrnn_optimizer *opt, minrnn_rng *rng, const minrnn_pairs *pairs,
                              float *loss, float *grad_norm, float *workspace, int num_threads);

/* Translation of one source (minrnn/reference/seq2seq.py's translate, step for step):
 *   greedy     beam 1, temperature 0: the most probable token at each step (lowest id on ties)
 *   sampling   beam 1, temperature > 0: each token drawn from rng as minrnn_sample draws it
 *   beam       beam K >= 2: the K best extensions of the live hypotheses by log probability (ties:
 *              the lower hypothesis, then the lower id), those ending with end finished; greedy's
 *              own hypothesis is never pruned (an extra row when it is not among the K), so the
 *              result is never less probable than greedy's, and K = 1 is greedy exactly. It stops
 *              when no hypothesis is live, when the best finished one is at least as probable as
 *              every live one, or after max_length steps (the live ones then count as finished).
 * The start token is never emitted. params is the block at precision (minrnn_params_compact); a
 * compact block gives bit for bit the float32 result of its rounded values. out gets up to
 * max_length ids (end excluded); alignments, unless NULL, (max_length, n): alpha over the source at
 * each step taken (zeros without attention). workspace: minrnn_seq2seq_translate_size bytes. */
typedef struct {
    int32_t length;    /* ids written to out */
    int32_t steps;     /* decoder steps taken by that hypothesis: length, + 1 if it ended with end */
    double logprob;    /* its log probability under the model (natural log; end's included) */
} minrnn_translation;

/* Bytes of workspace for a source of n ids, beam in [1, 4096] and max_length steps; 0 if out of range. */
size_t minrnn_seq2seq_translate_size(const minrnn_config *cfg, int n, int beam, int max_length);
int minrnn_seq2seq_translate(const minrnn_config *cfg, int precision, const void *params,
                             const int32_t *source, int n, int beam, int max_length, double temperature,
                             minrnn_rng *rng, int32_t *out, minrnn_translation *result, float *alignments,
                             void *workspace, int num_threads);
/* The same search for a model of grids (input_size D): the caption of one grid of n places,
 * grid (n, D) finite floats (standardized as the checkpoint's input_shift and input_scale say);
 * the workspace is minrnn_seq2seq_translate_size's for n. */
int minrnn_seq2seq_caption(const minrnn_config *cfg, int precision, const void *params,
                           const float *grid, int n, int beam, int max_length, double temperature,
                           minrnn_rng *rng, int32_t *out, minrnn_translation *result, float *alignments,
                           void *workspace, int num_threads);

/* ---- compact weights, for inference: a half or a quarter of the bytes to stream per token */
/* Bytes of cfg's parameter block at this precision; 0 for an unknown precision or a bad config,
 * and for MINRNN_INT8 when a weight matrix has rows of more than 133,144 numbers (products of rows
 * that long could leave int32). */
size_t minrnn_params_size(const minrnn_config *cfg, int precision);
/* out (minrnn_params_size bytes, aligned for a float) = cfg's params at precision: MINRNN_FLOAT32
 * copies, MINRNN_BFLOAT16 rounds to nearest, ties to even, MINRNN_INT8 quantizes each weight row
 * (MINRNN_ERR_ARG if a parameter is not finite or is beyond 127 * 2^100). */
int minrnn_params_compact(const minrnn_config *cfg, const float *params, int precision, void *out);
/* out (minrnn_param_count floats) = the values a block at precision holds, exactly: a block's
 * expansion compacts back to the same block, bit for bit. */
int minrnn_params_expand(const minrnn_config *cfg, int precision, const void *block, float *out);
/* minrnn_step with the parameter block stored at precision (minrnn_params_compact).
 * MINRNN_BFLOAT16: the products widen each weight exactly and then run as in float32, so the result
 * is bit for bit minrnn_step's on the float32 block that holds the rounded values. MINRNN_INT8: each
 * product quantizes its input rows as the weights' rows are, and multiplies them in integers
 * (cext/int8.c): within a bound of the float32 product (README, "int8"), the same bits on every
 * CPU and thread count. */
int minrnn_step_compact(const minrnn_config *cfg, int precision, const void *params,
                        const minrnn_batch *batch, float *state, float *logits, float *workspace,
                        int num_threads);
/* minrnn_forward for inference at precision: the loss (if the batch has targets), logits and
 * final states of B streams over T steps, computed as minrnn_step_compact computes each step. No
 * backward pass can follow it (its workspace holds no stamp). */
int minrnn_forward_compact(const minrnn_config *cfg, int precision, const void *params,
                           const minrnn_batch *batch, const float *state0, float *state_out, float *logits,
                           float *loss, float *workspace, int num_threads);

/* ---- sampling: see minrnn.reference.sampling.sample; the same double-precision steps, so the same
 * token for the same logits and rng. temperature 0 = argmax (draws nothing); top_k 0 = off;
 * top_p 1 = off. A logit of -inf means probability 0; NaN, +inf, or no finite logit at all is
 * MINRNN_ERR_ARG. scratch holds minrnn_sample_scratch_size(V) bytes aligned for a double (as
 * malloc gives them; MINRNN_ERR_ARG otherwise). */
size_t minrnn_sample_scratch_size(int V);
int minrnn_sample(const float *logits, int V, double temperature, int top_k, double top_p,
                  minrnn_rng *rng, void *scratch, int32_t *token);

/* ---- generation: the one loop that samples text (cext/generate.c). B streams start from zero
 * states (and each its condition), are fed the prime, then draw a token at each step and are fed
 * it: at each step the streams still running draw in stream order, from samplers[0] for all when
 * num_samplers is 1, or each from its own (samplers[b]). A stream ends when it draws end_id (which
 * is not output), when its draws end with the stop ids (which are), or after max_length draws.
 * banned_id is never drawn. */

/* How the next token is drawn, with the generator it draws from (llama2.c's Sampler). */
typedef struct {
    double temperature;        /* >= 0; 0: the likeliest token (lowest id on ties), drawing nothing */
    int32_t top_k;             /* > 0: only among the k likeliest; 0: off */
    double top_p;              /* in (0, 1]: only among the likeliest holding this much probability */
    minrnn_rng rng;
} minrnn_sampler;

#define MINRNN_MAX_STOP 4096   /* ids in a stop sequence */

/* What to generate; the same struct (and samplers, which the draws move on) for every call of
 * one generation. */
typedef struct {
    int32_t B;                 /* streams, >= 1 */
    const int32_t *prime;      /* (prime_length >= 1) ids fed to every stream before its first draw */
    int32_t prime_length;
    int32_t end_id;            /* drawing it ends a stream; -1: none (a record model: its end token) */
    int32_t banned_id;         /* never drawn; -1: none (a record model: its start token) */
    const int32_t *stop;       /* (stop_length <= MINRNN_MAX_STOP) ids, or NULL with stop_length 0 */
    int32_t stop_length;
    int64_t max_length;        /* draws per stream at most, >= 0 */
    const int32_t *labels;     /* the condition of each stream, as minrnn_batch's: (B) labels or */
    const float *vectors;      /* (B, C) standardized vectors; NULL for a model without one */
    minrnn_sampler *samplers;  /* (num_samplers): 1, or B */
    int32_t num_samplers;
} minrnn_generation;

/* Bytes of workspace for a generation at precision (it holds the states, the progress, and for up
 * to 2 streams a copy of the weights, int8's only on a CPU without VNNI, that start lays out for
 * their steps: the same results, read as one stream of memory); 0 if g does not fit the model (a
 * language model: MINRNN_TASK_LM), its sizes are out of range or the precision is unknown. The
 * size holds for this precision and g only (2 streams can need more than 3). */
size_t minrnn_generate_workspace_size(const minrnn_config *cfg, int precision, const minrnn_generation *g);
/* Start: zero states, the prime fed. params is the block at precision (minrnn_params_compact);
 * next steps with what start copied of it, so the block must stay where it is, unchanged (next
 * refuses another address). */
int minrnn_generate_start(const minrnn_config *cfg, int precision, const void *params, const minrnn_generation *g,
                          void *workspace, int num_threads);
/* Take up to max_steps steps: tokens (max_steps, B) gets what each stream drew at each step taken,
 * -1 where it drew nothing (it had ended, or it drew end_id); *steps the steps taken, fewer than
 * max_steps only when the generation is over (0 once it was). The same arguments as start (the
 * prime's ids aside, which only start reads; others are refused), and the workspace untouched
 * since; after an error in a step or a draw, the generation cannot go on (MINRNN_ERR_ARG). */
int minrnn_generate_next(const minrnn_config *cfg, int precision, const void *params, const minrnn_generation *g,
                         void *workspace, int64_t max_steps, int32_t *tokens, int64_t *steps, int num_threads);

/* ---- streams that join a batch at any step and leave it when they end (continuous batching, as
 * python -m minrnn serve does): each is a generation of one stream, drawing exactly what
 * minrnn_generate draws for B = 1 with the same fields, whatever else the batch holds (a row of a
 * step depends on its own inputs alone). From a zero state, a stream is fed its ids one a step,
 * then draws one a step by the generation loop's rule, fed back the id it writes. */
typedef struct {
    const int32_t *fed;        /* (fed_length >= 1) ids fed before the first draw */
    int32_t fed_length;
    int32_t end_id;            /* drawing it ends the stream, unwritten; -1: none */
    int32_t banned_id;         /* never drawn; -1: none */
    const int32_t *stop;       /* (stop_length <= MINRNN_MAX_STOP) ids whose drawing in a row ends it */
    int32_t stop_length;
    int32_t *tail;             /* (stop_length) the caller's memory, where the last draws are kept */
    int64_t max_length;        /* draws at most, >= 0 */
    minrnn_sampler sampler;
    /* where it is: zeros to start; minrnn_streams_step moves them on */
    int32_t read;              /* fed ids stepped */
    int32_t last;              /* the last id written: the next input once all are fed */
    int64_t draws;             /* draws taken (the end id's included) */
    int32_t ended;             /* 1 once it has ended: it draws no more (remove it from the batch) */
    int32_t status;            /* MINRNN_OK, or the error its draw met (it has ended then: logits
                                  that are not finite, say); the other streams go on */
} minrnn_stream;

/* One step of B streams: streams[b] is row b of state (L, S, B, H) and of the condition (labels (B)
 * or vectors (B, C) standardized, as minrnn_batch's; NULL for a model without one). Each stream is
 * fed its next id (an ended one its last, and nothing is drawn for it); each that has then read all
 * of its fed ids draws. tokens (B): the id each wrote, -1 if none. A draw that fails ends its stream
 * alone (its status says why). logits: (B, V) floats;
 * workspace: minrnn_workspace_size(cfg, B, 1) floats; scratch: minrnn_sample_scratch_size(V) bytes
 * aligned for a double. params is the block at precision (minrnn_params_compact). */
int minrnn_streams_step(const minrnn_config *cfg, int precision, const void *params, minrnn_stream *const *streams,
                        int B, const int32_t *labels, const float *vectors, float *state, float *logits,
                        float *workspace, void *scratch, int32_t *tokens, int num_threads);

/* ---- checkpoints (format MINRNN_CHECKPOINT_FORMAT; little-endian; see checkpoint.c) */
/* Write ck to path atomically: a temporary file "<path>.tmp-XXXXXX" in the same folder, then a
 * rename; on an error the temporary file is removed (a killed process can leave one behind). */
int minrnn_checkpoint_save(const char *path, const minrnn_checkpoint *ck);
/* Check the whole file (sizes, offsets, checksum) and fill ck's scalar fields; pointers are NULLed. */
int minrnn_checkpoint_peek(const char *path, minrnn_checkpoint *ck);
/* Read the file into ck's buffers; ck's scalar fields must be those peek gave (MINRNN_ERR_MISMATCH
 * otherwise). vocab, params, meta, and labels (labels_size > 0) and cond_shift, cond_scale
 * (MINRNN_COND_VECTOR) are required (MINRNN_ERR_ARG otherwise), for save too. The training-state
 * buffers are filled when has_train_state and they are not NULL. Format-1 files load as a
 * language model with the defaults of the newer fields; format-1 and format-2 files have
 * precision MINRNN_FLOAT32; files of formats 1 to 3 have attention MINRNN_ATTENTION_NONE and
 * attention_size 0, and hold no seq2seq model. No checkpoint holds a MINRNN_TASK_ENCODE model
 * (save: MINRNN_ERR_ARG). */
int minrnn_checkpoint_load(const char *path, minrnn_checkpoint *ck);
/* The same from a file descriptor open for reading (left open; read from its start). peek and
 * load on one descriptor read one file even if another process replaces the path meanwhile (as
 * training does with its checkpoints): use these to read a checkpoint that may be rewritten. */
int minrnn_checkpoint_peek_fd(int fd, minrnn_checkpoint *ck);
int minrnn_checkpoint_load_fd(int fd, minrnn_checkpoint *ck);

/* ---- end of cdef ---- */

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* MINRNN_H */
