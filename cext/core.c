/* core.c: version and errors, configuration and sizes, the parameter layout, random numbers,
 * initialization and dropout masks. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"   /* and omp.h, in a build with OpenMP */

int resolve_threads(int num_threads) {
#ifdef _OPENMP
    return num_threads > 0 ? num_threads : omp_get_max_threads();
#else
    (void)num_threads;
    return 1;
#endif
}

/* ---- version and errors */

const char *minrnn_version(void) { return MINRNN_VERSION_STRING; }

const char *minrnn_strerror(int status) {
    switch (status) {
    case MINRNN_OK: return "success";
    case MINRNN_ERR_ARG: return "invalid argument";
    case MINRNN_ERR_CONFIG: return "invalid model configuration";
    case MINRNN_ERR_OPEN: return "file could not be opened";
    case MINRNN_ERR_NOT_CHECKPOINT: return "not a minrnn checkpoint";
    case MINRNN_ERR_VERSION: return "unsupported checkpoint format version (this library reads formats 1 to 7)";
    case MINRNN_ERR_TRUNCATED: return "checkpoint is truncated";
    case MINRNN_ERR_CORRUPT: return "checkpoint is corrupt (checksum, sizes or contents do not match)";
    case MINRNN_ERR_MISMATCH: return "buffers do not match the checkpoint";
    case MINRNN_ERR_NONFINITE: return "loss or gradient is not finite";
    case MINRNN_ERR_READ: return "file could not be read";
    case MINRNN_ERR_WRITE: return "file could not be written";
    case MINRNN_ERR_RENAME: return "written file could not be renamed into place";
    case MINRNN_ERR_NO_FORWARD: return "backward without its forward pass (run forward with the same "
                                       "arguments on this workspace just before)";
    case MINRNN_ERR_NOT_FILE: return "not a regular file (a folder, a device or a pipe)";
    default: return "unknown status";
    }
}

/* ---- configuration and sizes */

/* A seq2seq model's own checks: one vocabulary with start and end, a plain mean loss, the
 * attention's kind and size, a dot attention's memory as wide as the state, and input feeding only
 * with attention. (input_size, the grid's D, was checked with the other fields.) */
static int seq2seq_check(const minrnn_config *cfg) {
    int additive = cfg->attention == MINRNN_ATTENTION_ADDITIVE;
    return cfg->vocab_size >= 3 && cfg->cond == MINRNN_COND_NONE && cfg->one_bias == 0
        && cfg->reduction == MINRNN_MEAN && cfg->loss == MINRNN_CROSS_ENTROPY
        && cfg->attention >= MINRNN_ATTENTION_NONE && cfg->attention <= MINRNN_ATTENTION_ADDITIVE
        && (additive ? cfg->attention_size >= 1 && cfg->attention_size <= MINRNN_MAX_HIDDEN
                     : cfg->attention_size == 0)
        && (cfg->attention != MINRNN_ATTENTION_DOT || memory_size(cfg) == cfg->hidden_size)
        && (cfg->input_feeding == 0 || (cfg->input_feeding == 1 && cfg->attention != MINRNN_ATTENTION_NONE));
}

int memory_size(const minrnn_config *cfg) { return cfg->input_size ? cfg->input_size : cfg->hidden_size; }

int minrnn_config_check(const minrnn_config *cfg) {
    if (!cfg) return MINRNN_ERR_ARG;
    int classify = cfg->task == MINRNN_TASK_CLASSIFY, conditioned = cfg->cond != MINRNN_COND_NONE;
    int seq2seq = cfg->task == MINRNN_TASK_SEQ2SEQ;
    int ok = cell_kind_of(cfg) != NULL
          && cfg->input_size >= 0 && cfg->input_size <= MINRNN_MAX_HIDDEN
          && (cfg->input_size && !seq2seq ? cfg->embed_size == 0 && (classify ? cfg->vocab_size == 0
                                                                  : cfg->task == MINRNN_TASK_LM && cfg->vocab_size >= 1)
                                          : cfg->vocab_size >= 1)
          && cfg->vocab_size <= MINRNN_MAX_VOCAB
          && (cfg->loss == MINRNN_CROSS_ENTROPY || (cfg->loss == MINRNN_SQUARED_ERROR && cfg->input_size > 0))
          && cfg->embed_size >= 0 && cfg->embed_size <= MINRNN_MAX_HIDDEN
          && cfg->hidden_size >= 1 && cfg->hidden_size <= MINRNN_MAX_HIDDEN
          && cfg->num_layers >= 1 && cfg->num_layers <= MINRNN_MAX_LAYERS
          && cfg->dropout >= 0.0f && cfg->dropout < 1.0f   /* false for NaN */
          && cfg->task >= MINRNN_TASK_LM && cfg->task <= MINRNN_TASK_SEQ2SEQ
          && (classify ? cfg->num_classes >= (cfg->loss ? 1 : 2) && cfg->num_classes <= MINRNN_MAX_CLASSES
                       : cfg->num_classes == 0)
          && cfg->cond >= MINRNN_COND_NONE && cfg->cond <= MINRNN_COND_VECTOR
          && (conditioned ? cfg->cond_size >= 1 && cfg->cond_size <= MINRNN_MAX_CLASSES : cfg->cond_size == 0)
          && (cfg->one_bias == 0 || cfg->one_bias == 1)
          && (cfg->reduction == MINRNN_MEAN || cfg->reduction == MINRNN_SUM)
          && (seq2seq ? seq2seq_check(cfg) : cfg->attention == 0 && cfg->attention_size == 0 && cfg->input_feeding == 0);
    return ok ? MINRNN_OK : MINRNN_ERR_CONFIG;
}

minrnn_config encoder_part(const minrnn_config *cfg) {
    minrnn_config part = *cfg;
    part.task = MINRNN_TASK_ENCODE, part.attention = 0, part.attention_size = 0;
    part.input_size = 0, part.input_feeding = 0;
    return part;
}

int decoder_cond_size(const minrnn_config *cfg) {
    return cfg->input_size + (cfg->input_feeding ? memory_size(cfg) : 0);
}

minrnn_config decoder_part(const minrnn_config *cfg) {
    minrnn_config part = encoder_part(cfg);
    part.cond_size = decoder_cond_size(cfg);
    part.cond = part.cond_size ? MINRNN_COND_VECTOR : MINRNN_COND_NONE;
    return part;
}

size_t encoder_param_count(const minrnn_config *cfg) {
    minrnn_config part = encoder_part(cfg);
    return cfg->input_size ? 0 : minrnn_param_count(&part);
}

size_t models_param_count(const minrnn_config *cfg) {
    minrnn_config part = decoder_part(cfg);
    return encoder_param_count(cfg) + minrnn_param_count(&part);
}

int layer_input_size(const minrnn_config *cfg, int layer) {
    if (layer > 0) return cfg->hidden_size;
    return cfg->input_size ? cfg->input_size : cfg->embed_size ? cfg->embed_size : cfg->vocab_size;
}

/* The parameter block, in order: its tensors' roles. The layer roles repeat for every layer. */
enum { ENCODER, COND, W_IH, W_HH, B_IH, B_HH, OUT_W, OUT_B, NUM_ROLES };

static int layer_tensors(const minrnn_config *cfg) { return cfg->one_bias ? 3 : 4; }

/* ---- a seq2seq model's block: the encoder's tensors, the decoder's, then these, in order */
typedef struct {
    const char *name;
    int attention;     /* the one kind that has it; -1: every kind but NONE; 0 (NONE): every kind */
    int rows, cols;    /* in units: 'H', 'A' (attention_size), 'V', 'M' (memory_size), 'C' (M + H), or 1 */
    int fan_in;        /* PyTorch's nn.Linear bound 1/sqrt(fan_in), in the same units */
} seq2seq_tensor;

static const seq2seq_tensor SEQ2SEQ_TENSORS[] = {
    {"attn.weight", MINRNN_ATTENTION_GENERAL, 'H', 'M', 'M'},
    {"attn.query", MINRNN_ATTENTION_ADDITIVE, 'A', 'H', 'H'},
    {"attn.key", MINRNN_ATTENTION_ADDITIVE, 'A', 'M', 'M'},
    {"attn.v", MINRNN_ATTENTION_ADDITIVE, 'A', 1, 'A'},
    {"combine.weight", -1, 'H', 'C', 'C'},
    {"combine.bias", -1, 'H', 1, 'C'},
    {"out.weight", 0, 'V', 'H', 'H'},
    {"out.bias", 0, 'V', 1, 'H'},
};
#define NUM_SEQ2SEQ_TENSORS ((int)(sizeof SEQ2SEQ_TENSORS / sizeof SEQ2SEQ_TENSORS[0]))

static int seq2seq_has(const minrnn_config *cfg, const seq2seq_tensor *t) {
    return t->attention == 0 || (t->attention < 0 ? cfg->attention != MINRNN_ATTENTION_NONE
                                                  : cfg->attention == t->attention);
}

static int32_t seq2seq_size(const minrnn_config *cfg, int unit) {
    switch (unit) {
    case 'H': return cfg->hidden_size;
    case 'A': return cfg->attention_size;
    case 'V': return cfg->vocab_size;
    case 'M': return memory_size(cfg);
    case 'C': return memory_size(cfg) + cfg->hidden_size;
    default: return 1;
    }
}

/* The i-th of a seq2seq model's own tensors (after the two models) that it has, or NULL. */
static const seq2seq_tensor *seq2seq_tensor_at(const minrnn_config *cfg, int i) {
    for (int k = 0; k < NUM_SEQ2SEQ_TENSORS; k++)
        if (seq2seq_has(cfg, &SEQ2SEQ_TENSORS[k]) && i-- == 0) return &SEQ2SEQ_TENSORS[k];
    return NULL;
}

/* The encoder's tensors (none for a grid), then the decoder's. */
static int models_tensor_count(const minrnn_config *cfg, int *encoder) {
    minrnn_config enc = encoder_part(cfg), dec = decoder_part(cfg);
    *encoder = cfg->input_size ? 0 : minrnn_tensor_count(&enc);
    return *encoder + minrnn_tensor_count(&dec);
}

static int seq2seq_tensor_count(const minrnn_config *cfg) {
    int n = 0, encoder;
    while (seq2seq_tensor_at(cfg, n)) n++;
    return models_tensor_count(cfg, &encoder) + n;
}

/* Tensor `index` of a seq2seq block; the limits keep every offset far below 2^63. */
static void seq2seq_tensor_info(const minrnn_config *cfg, int index, minrnn_tensor *out) {
    int encoder, models = models_tensor_count(cfg, &encoder);
    if (index < models) {
        int enc = index < encoder;
        minrnn_config part = enc ? encoder_part(cfg) : decoder_part(cfg);
        minrnn_tensor t;
        minrnn_tensor_info(&part, enc ? index : index - encoder, &t);
        *out = t;
        out->offset += enc ? 0 : (int64_t)encoder_param_count(cfg);
        snprintf(out->name, sizeof out->name, "%s.%.19s", enc ? "enc" : "dec", t.name);   /* names are short */
        return;
    }
    int64_t offset = (int64_t)models_param_count(cfg);
    for (int i = 0; i <= index - models; i++) {
        const seq2seq_tensor *t = seq2seq_tensor_at(cfg, i);
        out->rows = seq2seq_size(cfg, t->rows), out->cols = seq2seq_size(cfg, t->cols);
        out->ndim = t->cols == 1 ? 1 : 2;
        out->offset = offset;
        snprintf(out->name, sizeof out->name, "%s", t->name);
        offset += (int64_t)out->rows * out->cols;
    }
}

int minrnn_tensor_count(const minrnn_config *cfg) {
    if (minrnn_config_check(cfg) != MINRNN_OK) return 0;
    if (cfg->task == MINRNN_TASK_SEQ2SEQ) return seq2seq_tensor_count(cfg);
    int outputs = cfg->task == MINRNN_TASK_ENCODE ? 0 : 2;
    return (cfg->embed_size ? 1 : 0) + (cfg->cond ? 1 : 0) + layer_tensors(cfg) * cfg->num_layers + outputs;
}

/* Tensor i in block order: its shape, its role and its layer (the name is made only on request). */
static void tensor_shape(const minrnn_config *cfg, int i, int *role, int *layer, int32_t *rows, int32_t *cols) {
    int32_t V = cfg->vocab_size, H = cfg->hidden_size, GH = cell_kind_of(cfg)->gates * H;
    int32_t out = cfg->task == MINRNN_TASK_CLASSIFY ? cfg->num_classes : V;
    int per_layer = layer_tensors(cfg), in_layers = per_layer * cfg->num_layers;
    *layer = 0;
    if (cfg->embed_size && i-- == 0) {
        *role = ENCODER, *rows = V, *cols = cfg->embed_size;
    } else if (cfg->cond && i-- == 0) {
        *role = COND, *rows = GH, *cols = cfg->cond_size;
    } else if (i < in_layers) {
        *role = W_IH + i % per_layer, *layer = i / per_layer, *rows = GH;
        *cols = *role == W_IH ? layer_input_size(cfg, *layer) : *role == W_HH ? H : 1;
    } else {
        *role = OUT_W + i - in_layers, *rows = out, *cols = *role == OUT_W ? H : 1;
    }
}

/* The limits in minrnn.h keep every product far below 2^63. */
int minrnn_tensor_info(const minrnn_config *cfg, int index, minrnn_tensor *out) {
    int n = minrnn_tensor_count(cfg);
    if (n == 0) return MINRNN_ERR_CONFIG;
    if (index < 0 || index >= n || !out) return MINRNN_ERR_ARG;
    static const char *const names[NUM_ROLES] = {"encoder.weight", "cond.weight", "weight_ih", "weight_hh",
                                                 "bias_ih", "bias_hh", "weight", "bias"};
    memset(out, 0, sizeof *out);
    if (cfg->task == MINRNN_TASK_SEQ2SEQ) {
        seq2seq_tensor_info(cfg, index, out);
        return MINRNN_OK;
    }
    int role, layer;
    for (int i = 0; i < index; i++) {   /* the offset: the sizes of the tensors before */
        tensor_shape(cfg, i, &role, &layer, &out->rows, &out->cols);
        out->offset += (int64_t)out->rows * out->cols;
    }
    tensor_shape(cfg, index, &role, &layer, &out->rows, &out->cols);
    out->ndim = role == B_IH || role == B_HH || role == OUT_B ? 1 : 2;
    if (role == OUT_W || role == OUT_B)
        snprintf(out->name, sizeof out->name, "%s.%s", cfg->task == MINRNN_TASK_CLASSIFY ? "head" : "decoder",
                 names[role]);
    else if (role == ENCODER || role == COND)
        snprintf(out->name, sizeof out->name, "%s", names[role]);
    else
        snprintf(out->name, sizeof out->name, "%s_l%d", names[role], layer);
    return MINRNN_OK;
}

size_t minrnn_param_count(const minrnn_config *cfg) {
    minrnn_tensor last;
    int n = minrnn_tensor_count(cfg);
    if (n == 0 || minrnn_tensor_info(cfg, n - 1, &last) != MINRNN_OK) return 0;
    return (size_t)(last.offset + (int64_t)last.rows * last.cols);
}

size_t minrnn_state_size(const minrnn_config *cfg, int B) {
    if (minrnn_config_check(cfg) != MINRNN_OK || B < 1) return 0;
    return (size_t)cfg->num_layers * cell_kind_of(cfg)->states * (size_t)B * cfg->hidden_size;
}

size_t minrnn_logits_size(const minrnn_config *cfg, int B, int T) {
    if (minrnn_config_check(cfg) != MINRNN_OK || B < 1 || T < 1) return 0;
    if (cfg->task == MINRNN_TASK_CLASSIFY) return (size_t)B * cfg->num_classes;
    if (cfg->task == MINRNN_TASK_ENCODE) return (size_t)T * B * cfg->hidden_size;   /* the outputs */
    return (size_t)T * B * cfg->vocab_size;
}

/* Where each tensor starts in a block at precision, in elements (in bytes for MINRNN_INT8: its
 * section), in one pass over the tensors (this runs at every call). */
model_offsets model_offsets_of(const minrnn_config *cfg, int precision) {
    model_offsets o;
    memset(&o, 0xFF, sizeof o);   /* every offset NO_TENSOR until found */
    size_t at = 0;
    for (int i = 0, n = minrnn_tensor_count(cfg); i < n; i++) {
        int role, layer;
        int32_t rows, cols;
        tensor_shape(cfg, i, &role, &layer, &rows, &cols);
        layer_offsets *l = &o.layer[layer];
        switch (role) {
        case ENCODER: o.encoder = at; break;
        case COND: o.cond = at; break;
        case W_IH: l->w_ih = at; break;
        case W_HH: l->w_hh = at; break;
        case B_IH: l->b_ih = at; break;
        case B_HH: l->b_hh = at; break;
        case OUT_W: o.out_w = at; break;
        default: o.out_b = at;
        }
        at = precision == MINRNN_INT8 ? int8_section_of(rows, cols, at).end : at + (size_t)rows * cols;
    }
    return o;
}

static const float *view_at(const float *params, size_t offset) {
    return offset == NO_TENSOR ? NULL : params + offset;
}

model_view model_views(const model_offsets *o, int num_layers, const float *params) {
    model_view m;
    memset(&m, 0, sizeof m);
    m.encoder = view_at(params, o->encoder), m.cond = view_at(params, o->cond);
    for (int l = 0; l < num_layers; l++) {
        const layer_offsets *lo = &o->layer[l];
        m.layer[l] = (layer_view){view_at(params, lo->w_ih), view_at(params, lo->w_hh),
                                  view_at(params, lo->b_ih), view_at(params, lo->b_hh)};
    }
    m.out_w = view_at(params, o->out_w), m.out_b = view_at(params, o->out_b);
    return m;
}

/* ---- random numbers: xorshift64* (Vigna 2014) seeded by splitmix64 */

static uint64_t splitmix64(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void minrnn_rng_seed(minrnn_rng *rng, uint64_t seed) {
    rng->state = splitmix64(seed);
    if (rng->state == 0) rng->state = 0x9E3779B97F4A7C15ull;
}

uint64_t minrnn_rng_next(minrnn_rng *rng) {
    uint64_t x = rng->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng->state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

float minrnn_rng_uniform(minrnn_rng *rng) {
    return (float)(minrnn_rng_next(rng) >> 40) * 0x1p-24f;   /* exact: 24 bits */
}

/* ---- initialization, as minrnn.reference.model.init_params: values computed in double, then
 * rounded once to float, so they equal float32(reference) exactly. */

/* N(0, 1) by Box and Muller from two uniforms, u1 then u2 (normal_draw in the reference). */
static double normal_draw(minrnn_rng *rng) {
    double u1 = (double)minrnn_rng_uniform(rng), u2 = (double)minrnn_rng_uniform(rng);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * 3.141592653589793 * u2);
}

/* A seq2seq block: the encoder from seed (none for a grid), the decoder from seed + 1 (each as a
 * model), then the remaining tensors in order from the generator of seed + 2, each uniform within
 * PyTorch's nn.Linear bound 1/sqrt(fan_in). */
static int seq2seq_init_params(const minrnn_config *cfg, float *params, uint64_t seed) {
    minrnn_config enc = encoder_part(cfg), dec = decoder_part(cfg);
    size_t encoder = encoder_param_count(cfg);
    if (encoder) minrnn_init_params(&enc, params, seed, MINRNN_INIT_DEFAULT);
    minrnn_init_params(&dec, params + encoder, seed + 1, MINRNN_INIT_DEFAULT);
    minrnn_rng rng;
    minrnn_rng_seed(&rng, seed + 2);
    float *p = params + models_param_count(cfg);
    for (int i = 0; seq2seq_tensor_at(cfg, i); i++) {
        const seq2seq_tensor *t = seq2seq_tensor_at(cfg, i);
        double bound = 1.0 / sqrt((double)seq2seq_size(cfg, t->fan_in));
        for (int64_t j = 0, n = (int64_t)seq2seq_size(cfg, t->rows) * seq2seq_size(cfg, t->cols); j < n; j++) {
            double u = (double)minrnn_rng_uniform(&rng);
            *p++ = (float)((2.0 * u - 1.0) * bound);
        }
    }
    return MINRNN_OK;
}

int minrnn_init_params(const minrnn_config *cfg, float *params, uint64_t seed, int scheme) {
    int status = minrnn_config_check(cfg);
    if (status != MINRNN_OK) return status;
    if (!params || scheme < MINRNN_INIT_DEFAULT || scheme > MINRNN_INIT_NORMAL) return MINRNN_ERR_ARG;
    if (cfg->task == MINRNN_TASK_SEQ2SEQ)
        return scheme == MINRNN_INIT_DEFAULT ? seq2seq_init_params(cfg, params, seed) : MINRNN_ERR_ARG;
    if (scheme == MINRNN_INIT_IRNN && cell_kind_of(cfg)->gates != 1) return MINRNN_ERR_ARG;
    minrnn_rng rng;
    minrnn_rng_seed(&rng, seed);
    const double irnn_input_bound = 0.001 * sqrt(3.0);   /* standard deviation 0.001 */
    for (int i = 0, n = minrnn_tensor_count(cfg); i < n; i++) {
        int role, layer;
        int32_t rows, cols;
        tensor_shape(cfg, i, &role, &layer, &rows, &cols);
        minrnn_tensor t;
        minrnn_tensor_info(cfg, i, &t);
        float *p = params + t.offset;
        int64_t size = (int64_t)rows * cols;
        int bias = role == B_IH || role == B_HH || role == OUT_B;
        if (scheme == MINRNN_INIT_NORMAL) {   /* min-char-rnn: weights N(0, 1) * 0.01, biases 0 */
            for (int64_t j = 0; j < size; j++) p[j] = bias ? 0.0f : (float)(0.01 * normal_draw(&rng));
            continue;
        }
        int irnn_layer = scheme == MINRNN_INIT_IRNN && role != ENCODER && role != OUT_W && role != OUT_B;
        if (irnn_layer && role == W_HH) {   /* identity */
            for (int64_t j = 0; j < size; j++) p[j] = (j / cols == j % cols) ? 1.0f : 0.0f;
            continue;
        }
        if (irnn_layer && bias) {           /* zeros */
            memset(p, 0, (size_t)size * sizeof(float));
            continue;
        }
        double bound = role == ENCODER ? sqrt(3.0) : irnn_layer ? irnn_input_bound   /* weight_ih, cond */
                                                   : 1.0 / sqrt((double)cfg->hidden_size);
        for (int64_t j = 0; j < size; j++) {
            double u = (double)minrnn_rng_uniform(&rng);
            p[j] = (float)((2.0 * u - 1.0) * bound);
        }
    }
    return MINRNN_OK;
}

int minrnn_dropout_masks(const minrnn_config *cfg, int B, int T, minrnn_rng *rng, float *masks) {
    int status = minrnn_config_check(cfg);
    if (status != MINRNN_OK) return status;
    if (B < 1 || T < 1 || !rng || !masks) return MINRNN_ERR_ARG;
    float p = cfg->dropout, keep = (float)(1.0 / (1.0 - (double)p));
    size_t n = (size_t)cfg->num_layers * T * B * cfg->hidden_size;
    for (size_t j = 0; j < n; j++) masks[j] = minrnn_rng_uniform(rng) >= p ? keep : 0.0f;
    return MINRNN_OK;
}
