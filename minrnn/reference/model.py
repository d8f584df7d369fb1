"""The whole model: configuration, parameters, forward and backward over B streams and T steps.

Shapes, row-major like PyTorch:
    tokens           (T, B) ints: tokens[t][b] is stream b's input at step t
    targets          lm: (T, B) ints, the next token at every step; classify: (B) class ids;
                     encode: None (no output layer, no loss: the top layer's outputs are the result)
    lengths          (B) ints in [1, T], or None: stream b is a record of lengths[b] steps
    cond             (B) labels in [0, C) for cond "label", (B, C) floats for "vector", or None
    state            (L, S, B, H): S = 1 ([h]) for RNN and GRU, 2 ([h, c]) for LSTM
    dropout masks    (L, T, B, H): the scale applied to layer l's output, 0 or 1 / (1 - p)
    logits           lm: (T, B, V); classify: (B, K); encode: None
    doutputs         (T, B, H): a gradient with respect to the top layer's outputs, from outside
Parameters are a dict of PyTorch-named tensors (see param_shapes) in the agreed block order.
"""

import math
from dataclasses import dataclass
from types import SimpleNamespace

from .cells import CELLS
from .rng import Rng
from .tensor import add_into, add_outer, float32, matvec, matvec_t, one_hot, vsum, zeros, zeros_matrix

TASKS = ("lm", "classify", "encode")       # what the top layer's output feeds: see Config.task
CONDITIONS = ("none", "label", "vector")   # what v, the condition added to layer 0's input, is
REDUCTIONS = ("mean", "sum")               # how the loss combines its cross-entropies
LOSSES = ("cross_entropy", "squared_error")   # what an output row's loss is: see Config.loss


@dataclass
class Config:
    vocab_size: int             # V
    hidden_size: int            # H
    cell: str = "lstm"          # a key of CELLS: "lstm", "gru", "rnn_tanh" or "rnn_relu"
    embed_size: int = 0         # E; 0 = one-hot input
    num_layers: int = 1         # L
    dropout: float = 0.0        # p, the chance of zeroing an element of a layer's output in training;
                                # used as a float32, as the C core and checkpoints hold it
    task: str = "lm"            # "lm": the decoder (V, H) predicts the next token at every step;
                                # "classify": the head (K, H) reads each stream's output at its last step;
                                # "encode": nothing does, the outputs themselves are the result (what a
                                # sequence-to-sequence model's encoder and decoder are)
    num_classes: int = 0        # K: >= 2 for "classify", 0 otherwise
    cond: str = "none"          # "label": v is the one-hot of a label in [0, C); "vector": v is C floats;
                                # layer 0 adds W_cond v to its input part at every step
    cond_size: int = 0          # C: >= 1 with a condition, 0 with "none"
    one_bias: bool = False      # True: bias_ih only, no bias_hh (min-char-rnn's single hidden bias)
    reduction: str = "mean"     # the loss is the "mean" or the "sum" of its cross-entropies
    input_size: int = 0         # D: 0 reads token ids; >= 1 reads D floats per step ("tokens" are then
                                # (T, B, D) vectors): a classifier of sequences of vectors (vocab_size 0),
                                # or task "lm" with an output of vocab_size classes or values per step
    loss: str = "cross_entropy"  # "squared_error" (models of vectors): the outputs are values, and a row's
                                # loss is sum_k (y_k - t_k)^2 against real targets; the mean divides by
                                # the rows and their values

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        if min(self.vocab_size or self.input_size, self.hidden_size, self.num_layers) < 1 or self.embed_size < 0:
            raise ValueError("vocab_size, hidden_size and num_layers must be >= 1, embed_size >= 0")
        if self.input_size < 0 or self.input_size and (self.embed_size or self.task not in ("classify", "lm") or
                                                       bool(self.vocab_size) != (self.task == "lm")):
            raise ValueError("input_size (vectors in) must be >= 0, and >= 1 only with embed_size 0 for a classifier "
                             "(vocab_size 0) or task lm (vocab_size: its outputs per step)")
        if self.loss not in LOSSES or self.loss == "squared_error" and not self.input_size:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, and squared_error is for models of vectors")
        if not (0.0 <= self.dropout < 1.0 and float32(self.dropout) < 1.0):
            raise ValueError("dropout must be in [0, 1) as a float32")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        if self.task == "classify" and self.num_classes < (1 if self.loss == "squared_error" else 2):
            raise ValueError(f"task classify needs num_classes >= 2, not {self.num_classes}")
        if self.task == "lm" and self.num_classes != 0:
            raise ValueError(f"task lm predicts tokens: num_classes must be 0, not {self.num_classes}")
        if self.task == "encode" and self.num_classes != 0:
            raise ValueError(f"task encode has no output layer: num_classes must be 0, not {self.num_classes}")
        if self.cond not in CONDITIONS:
            raise ValueError(f"cond must be one of {', '.join(CONDITIONS)}, not {self.cond!r}")
        if self.cond != "none" and self.cond_size < 1:
            raise ValueError(f"cond {self.cond} needs cond_size >= 1, not {self.cond_size}")
        if self.cond == "none" and self.cond_size != 0:
            raise ValueError(f"cond_size must be 0 without a condition (cond none), not {self.cond_size}")
        if not isinstance(self.one_bias, bool):
            raise ValueError(f"one_bias must be True or False, not {self.one_bias!r}")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, not {self.reduction!r}")

    @property
    def gates(self):
        return CELLS[self.cell].gates

    @property
    def num_states(self):
        return CELLS[self.cell].states

    def layer_input_size(self, layer):
        """In: the width of the layer's input, not counting the condition."""
        if layer > 0:
            return self.hidden_size
        return self.input_size or self.embed_size or self.vocab_size


# ---- parameters

def param_shapes(cfg):
    """[(name, shape)] in block order: encoder, condition, then per layer weight_ih, weight_hh,
    bias_ih, bias_hh (not with one_bias), then the decoder (lm) or the head (classify); encode has
    neither."""
    V, H, GH = cfg.vocab_size, cfg.hidden_size, cfg.gates * cfg.hidden_size
    shapes = [("encoder.weight", (V, cfg.embed_size))] if cfg.embed_size else []
    if cfg.cond != "none":
        shapes += [("cond.weight", (GH, cfg.cond_size))]
    for k in range(cfg.num_layers):
        shapes += [(f"weight_ih_l{k}", (GH, cfg.layer_input_size(k))), (f"weight_hh_l{k}", (GH, H)),
                   (f"bias_ih_l{k}", (GH,))]
        if not cfg.one_bias:
            shapes += [(f"bias_hh_l{k}", (GH,))]
    if cfg.task == "classify":
        return shapes + [("head.weight", (cfg.num_classes, H)), ("head.bias", (cfg.num_classes,))]
    if cfg.task == "encode":
        return shapes
    return shapes + [("decoder.weight", (V, H)), ("decoder.bias", (V,))]


def param_count(cfg):
    return sum(math.prod(shape) for _, shape in param_shapes(cfg))


def zeros_params(cfg):
    return zeros_tensors(param_shapes(cfg))


def flatten(cfg, tensors):
    """The parameter block: every tensor row-major, in block order."""
    return flatten_tensors(param_shapes(cfg), tensors)


def unflatten(cfg, flat):
    return unflatten_tensors(param_shapes(cfg), flat)


# The three above for any list of (name, shape): the sequence-to-sequence model's block uses them too.

def zeros_tensors(shapes):
    return {name: zeros_matrix(*shape) if len(shape) == 2 else zeros(shape[0]) for name, shape in shapes}


def flatten_tensors(shapes, tensors):
    flat = []
    for name, shape in shapes:
        flat += [x for row in tensors[name] for x in row] if len(shape) == 2 else tensors[name]
    return flat


def unflatten_tensors(shapes, flat):
    tensors, at = {}, 0
    for name, shape in shapes:
        if len(shape) == 2:
            rows, cols = shape
            tensors[name] = [list(flat[at + r * cols:at + (r + 1) * cols]) for r in range(rows)]
        else:
            tensors[name] = list(flat[at:at + shape[0]])
        at += math.prod(shape)
    return tensors


def layer_view(cfg, tensors, k):
    """Layer k's four tensors under the cells' short names: the same lists, not copies, except two
    that let the cells run unchanged:
      - with a condition, layer 0's w_ih is a new matrix [W_ih | W_cond] (each row the two rows
        joined) for the input x ++ v, so that the one product W_ih x + W_cond v joins the input part
        of every gate (for GRU's n gate too, outside r's reach);
      - with one_bias, b_hh is a new zero vector: adding 0.0 changes nothing, and it is no parameter.
    On a gradient dict the two are scratch buffers: fold_cond_grad splits the first back into
    weight_ih_l0 and cond.weight; the second is dropped, as no bias_hh exists to receive it."""
    w_ih = tensors[f"weight_ih_l{k}"]
    if k == 0 and cfg.cond != "none":
        w_ih = [row + cond_row for row, cond_row in zip(w_ih, tensors["cond.weight"])]
    b_hh = zeros(cfg.gates * cfg.hidden_size) if cfg.one_bias else tensors[f"bias_hh_l{k}"]
    return SimpleNamespace(w_ih=w_ih, w_hh=tensors[f"weight_hh_l{k}"], b_ih=tensors[f"bias_ih_l{k}"], b_hh=b_hh)


def fold_cond_grad(cfg, g0, grads):
    """Split the gradient of layer 0's joined [W_ih | W_cond] into weight_ih_l0 and cond.weight."""
    if cfg.cond == "none":
        return  # g0.w_ih is grads["weight_ih_l0"] itself
    In = cfg.layer_input_size(0)
    for row, g_ih, g_cond in zip(g0.w_ih, grads["weight_ih_l0"], grads["cond.weight"]):
        g_ih[:] = row[:In]
        g_cond[:] = row[In:]


IRNN_INPUT_BOUND = 0.001 * math.sqrt(3.0)  # uniform with standard deviation 0.001 (Le et al. 2015)
NORMAL_STD = 0.01                          # min-char-rnn's np.random.randn(...) * 0.01
INIT_SCHEMES = ("default", "irnn", "normal")
OUTPUT_LAYERS = ("decoder", "head")        # the Linear after the recurrent layers: lm's or classify's


def init_rule(cfg, name, scheme):
    """How one tensor starts: ("uniform", bound), ("normal", std), ("identity",) or ("zeros",).

    "default" is PyTorch's: weights and biases of nn.RNN/LSTM/GRU and of the nn.Linear decoder or
    head (fan-in H) uniform(-1/sqrt(H), 1/sqrt(H)), cond.weight too (it is part of layer 0's input
    weights); the embedding uniform(-sqrt(3), sqrt(3)), the unit variance of PyTorch's N(0, 1)
    embedding from our uniform generator.
    "irnn" (Le, Jaitly, Hinton 2015) changes the recurrent layers: weight_hh identity, biases zero,
    the input weights (weight_ih and cond.weight) small.
    "normal" is min-char-rnn's: every weight matrix N(0, 0.01^2), every bias zero.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init scheme must be one of {', '.join(INIT_SCHEMES)}, not {scheme!r}")
    if scheme == "irnn" and cfg.gates != 1:
        raise ValueError(f"irnn (an identity weight_hh) is for the RNNs, not {cfg.cell}")
    is_bias = "bias" in name  # bias_ih_l{k}, bias_hh_l{k}, decoder.bias, head.bias
    if scheme == "normal":
        return ("zeros",) if is_bias else ("normal", NORMAL_STD)
    if name == "encoder.weight":
        return ("uniform", math.sqrt(3.0))
    if scheme == "irnn" and not name.startswith(OUTPUT_LAYERS):
        if name.startswith("weight_hh"):
            return ("identity",)
        if is_bias:
            return ("zeros",)
        return ("uniform", IRNN_INPUT_BOUND)
    return ("uniform", 1.0 / math.sqrt(cfg.hidden_size))


def normal_draw(rng):
    """A N(0, 1) number by Box and Muller from two uniforms, u1 then u2, in double, the expression
    evaluated as written. u1 < 1, so log(1 - u1) is finite. init_params multiplies it by 0.01 after,
    0.01 * (sqrt(...) * cos(...)), as the C core does before it rounds once to float32."""
    u1 = rng.uniform()
    u2 = rng.uniform()
    return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)


def init_params(cfg, seed, scheme="default"):
    """Fresh parameters from a seed. Tensors are filled in block order, elements row-major: a uniform
    element draws one number, w = (2u - 1) * bound; a normal one two (normal_draw); constant tensors
    draw nothing."""
    rng = Rng(seed)
    flat = []
    for name, shape in param_shapes(cfg):
        rule = init_rule(cfg, name, scheme)
        n = math.prod(shape)
        if rule[0] == "uniform":
            flat += [(2.0 * rng.uniform() - 1.0) * rule[1] for _ in range(n)]
        elif rule[0] == "normal":
            flat += [rule[1] * normal_draw(rng) for _ in range(n)]
        elif rule[0] == "identity":  # weight_hh of an RNN is square (H, H)
            flat += [1.0 if r == c else 0.0 for r in range(shape[0]) for c in range(shape[1])]
        else:
            flat += [0.0] * n
    return unflatten(cfg, flat)


# ---- dropout, loss

def dropout_masks(cfg, rng, T, B):
    """Inverted dropout masks (L, T, B, H), drawn in that order: an element is kept, scaled by
    1 / (1 - p), when its uniform draw is >= p, and zeroed otherwise. p is the float32 value of
    cfg.dropout (what the core's config holds), so that both make the same decision for every p."""
    p, H = float32(cfg.dropout), cfg.hidden_size
    keep = 1.0 / (1.0 - p)
    return [[[[keep if rng.uniform() >= p else 0.0 for _ in range(H)]
              for _ in range(B)] for _ in range(T)] for _ in range(cfg.num_layers)]


def softmax(logits):
    m = max(logits)
    e = [math.exp(a - m) for a in logits]
    s = sum(e)
    return [x / s for x in e]


def cross_entropy(logits, target):
    """-log softmax(logits)[target], in nats."""
    m = max(logits)
    return m + math.log(sum(math.exp(a - m) for a in logits)) - logits[target]


def cross_entropy_grad(logits, target, divisor):
    """d cross_entropy(logits, target) / d logits = softmax(logits) - one_hot(target), over divisor."""
    d = softmax(logits)
    d[target] -= 1.0
    return [x / divisor for x in d]


def squared_error(y, t):
    """sum_k (y_k - t_k)^2: a row's loss when its outputs are values."""
    return sum((a - b) ** 2 for a, b in zip(y, t))


def squared_error_grad(y, t, divisor):
    """d squared_error(y, t) / d y = 2 (y - t), over divisor."""
    return [2.0 * (a - b) / divisor for a, b in zip(y, t)]


def row_loss(cfg, logits, target):
    return squared_error(logits, target) if cfg.loss == "squared_error" else cross_entropy(logits, target)


def row_loss_grad(cfg, logits, target, divisor):
    if cfg.loss == "squared_error":
        return squared_error_grad(logits, target, divisor)
    return cross_entropy_grad(logits, target, divisor)


def loss_divisor(cfg, T, B, lengths):
    """What the sum of the rows' losses is divided by: for "mean" their number (lm: the positions
    within their records, T*B without lengths; classify: the B streams), times the values of a row
    for squared_error; for "sum" 1."""
    if cfg.reduction == "sum":
        return 1
    values = (cfg.num_classes if cfg.task == "classify" else cfg.vocab_size) if cfg.loss == "squared_error" else 1
    if cfg.task == "classify":
        return B * values
    return (sum(lengths) if lengths is not None else T * B) * values


# ---- forward and backward

def running(lengths, t, b):
    """Whether stream b's record is still running at step t."""
    return lengths is None or t < lengths[b]


def last_step(lengths, T, b):
    """The step at which stream b's record ends: the one classify reads."""
    return (lengths[b] if lengths is not None else T) - 1


def layer0_input(cfg, params, token, cond, b):
    """x ++ v: the token's embedding or one-hot (In), or the input vector itself (a model of
    vectors: token is D floats), then stream b's condition (C) if there is one."""
    if cfg.input_size:
        x = list(token)
    else:
        x = params["encoder.weight"][token] if cfg.embed_size else one_hot(token, cfg.vocab_size)
    if cfg.cond == "label":
        return x + one_hot(cond[b], cfg.cond_size)
    if cfg.cond == "vector":
        return x + list(cond[b])
    return x


def dropout(h, masks, l, t, b):
    """Layer l's output at (t, b): h times its mask (h itself without dropout)."""
    return h if masks is None else [hj * mj for hj, mj in zip(h, masks[l][t][b])]


def linear_forward(params, name, x):
    """W x + b, with W = params[name + ".weight"], b = params[name + ".bias"]."""
    return vsum(matvec(params[f"{name}.weight"], x), params[f"{name}.bias"])


def linear_backward(params, grads, name, dout, x):
    """Adds dW = outer(dout, x) and db = dout into grads; returns dx = W^T dout."""
    add_outer(grads[f"{name}.weight"], dout, x)
    add_into(grads[f"{name}.bias"], dout)
    return matvec_t(params[f"{name}.weight"], dout)


def check_records(cfg, T, B, targets, lengths, cond):
    """The per-stream arguments, which would otherwise be misread without a word."""
    if lengths is not None and (len(lengths) != B or
                                not all(isinstance(n, int) and 1 <= n <= T for n in lengths)):
        raise ValueError(f"lengths must be None or {B} whole numbers in [1, {T}]")
    if (cond is None) != (cfg.cond == "none"):
        raise ValueError(f"cond must be given for cond {cfg.cond}" if cond is None else
                         "cond given, but the config has no condition (cond none)")
    if cond is not None and len(cond) != B:
        raise ValueError(f"cond must have one entry per stream ({B}), not {len(cond)}")
    if cfg.cond == "label" and not all(isinstance(c, int) and 0 <= c < cfg.cond_size for c in cond):
        raise ValueError(f"cond labels must be whole numbers in [0, {cfg.cond_size})")
    if cfg.cond == "vector" and not all(hasattr(v, "__len__") and len(v) == cfg.cond_size for v in cond):
        raise ValueError(f"cond vectors must have cond_size = {cfg.cond_size} elements")
    if cfg.task == "encode" and targets is not None:
        raise ValueError("task encode has no output layer and no loss: targets must be None")
    if cfg.task == "classify" and targets is not None and cfg.loss == "cross_entropy" and (
            len(targets) != B or not all(isinstance(k, int) and 0 <= k < cfg.num_classes for k in targets)):
        raise ValueError(f"classify targets must be {B} class ids in [0, {cfg.num_classes})")


@dataclass
class Forward:
    loss: float          # the mean (or sum, per cfg.reduction) of the cross-entropies; None without targets
    logits: list         # lm: (T, B, V); classify: (B, K); encode: None
    final_state: list    # (L, S, B, H): each stream's state after its own last step
    tokens: list
    targets: list        # lm: (T, B); classify: (B); or None
    masks: list          # (L, T, B, H) or None
    caches: list         # (T, B, L): each cell step's cache; None where a record has ended
    outputs: list        # (T, B, H): the top layer's output after dropout, what the decoder or head reads
                         # (encode: the result)
    lengths: list = None  # (B) or None
    cond: list = None     # (B) labels, (B, C) vectors, or None


def forward(cfg, params, tokens, targets, state0, masks=None, lengths=None, cond=None):
    """Run B streams for T steps from state0: tokens (T, B) ids, or (T, B, D) vectors for a model of
    vectors (cfg.input_size D). targets may be None (no loss), masks None (no dropout),
    lengths None (every stream runs T steps); cond is None, labels or vectors, as cfg.cond says.
    Past the end of its record (t >= lengths[b]) a stream takes no step: its state stays, its output
    is the frozen h (times that position's dropout mask), and no loss reads it. Task encode has no
    output layer: logits and loss are None, and targets must be None."""
    step_forward = CELLS[cfg.cell].step_forward
    L, S, T, B = cfg.num_layers, cfg.num_states, len(tokens), len(tokens[0])
    check_records(cfg, T, B, targets, lengths, cond)
    layers = [layer_view(cfg, params, k) for k in range(L)]
    state = [[[list(state0[l][s][b]) for s in range(S)] for b in range(B)] for l in range(L)]
    caches = [[[None] * L for _ in range(B)] for _ in range(T)]
    outputs = [[None] * B for _ in range(T)]
    for t in range(T):
        for b in range(B):
            if running(lengths, t, b):
                x = layer0_input(cfg, params, tokens[t][b], cond, b)
                for l in range(L):
                    state[l][b], caches[t][b][l] = step_forward(x, state[l][b], layers[l])
                    x = dropout(state[l][b][0], masks, l, t, b)
            else:
                x = dropout(state[L - 1][b][0], masks, L - 1, t, b)
            outputs[t][b] = x
    final_state = [[[state[l][b][s] for b in range(B)] for s in range(S)] for l in range(L)]
    total = 0.0
    if cfg.task == "encode":
        logits = None
    elif cfg.task == "classify":
        logits = [linear_forward(params, "head", outputs[last_step(lengths, T, b)][b]) for b in range(B)]
        if targets is not None:
            for b in range(B):
                total += row_loss(cfg, logits[b], targets[b])
    else:
        logits = [[linear_forward(params, "decoder", outputs[t][b]) for b in range(B)] for t in range(T)]
        if targets is not None:
            for t in range(T):
                for b in range(B):
                    if running(lengths, t, b):
                        total += row_loss(cfg, logits[t][b], targets[t][b])
    loss = total / loss_divisor(cfg, T, B, lengths) if targets is not None else None
    return Forward(loss, logits, final_state, tokens, targets, masks, caches, outputs, lengths, cond)


def output_grad(cfg, params, fwd, grads, t, b, divisor):
    """The loss's gradient with respect to the top layer's output at (t, b), adding the decoder's or
    head's gradients into grads on the way; zeros where no loss reads that output."""
    if fwd.targets is None:
        return zeros(cfg.hidden_size)
    if cfg.task == "classify":
        if t != last_step(fwd.lengths, len(fwd.tokens), b):
            return zeros(cfg.hidden_size)
        dlogits = row_loss_grad(cfg, fwd.logits[b], fwd.targets[b], divisor)
        return linear_backward(params, grads, "head", dlogits, fwd.outputs[t][b])
    dlogits = row_loss_grad(cfg, fwd.logits[t][b], fwd.targets[t][b], divisor)
    return linear_backward(params, grads, "decoder", dlogits, fwd.outputs[t][b])


def backward(cfg, params, fwd, dfinal=None, doutputs=None, grads=None):
    """Gradients of [fwd.loss, if forward had targets] + [sum(dfinal * final_state), if dfinal
    (L, S, B, H) is given: what a decoder sends back to its encoder] + [the sum of doutputs[t][b] .
    outputs[t][b] over the (t, b) where a step ran, if doutputs (T, B, H) is given: what the attention
    over an encoder's outputs, or what reads a decoder's, sends back; past a record's end no step ran
    and doutputs is not read]. Returns (grads, dstate0, dcond):
    grads shaped like params, summed over time and streams; dstate0 (L, S, B, H), the gradient with
    respect to the initial state; dcond (B, C), that with respect to the condition vectors for cond
    "vector", None otherwise. Without dfinal the final state gets no gradient from outside
    (truncated backpropagation through time). grads, a dict shaped like params, is added into and
    returned when given (a decoder run a step at a time sums its steps' gradients there)."""
    if fwd.targets is None and dfinal is None and doutputs is None:
        raise ValueError("backward needs something to differentiate: a loss (a forward with targets), "
                         "dfinal or doutputs")
    step_backward = CELLS[cfg.cell].step_backward
    L, S, H, In = cfg.num_layers, cfg.num_states, cfg.hidden_size, cfg.layer_input_size(0)
    T, B = len(fwd.tokens), len(fwd.tokens[0])
    if doutputs is not None and (len(doutputs) != T or any(len(row) != B for row in doutputs)):
        raise ValueError(f"doutputs must be (T, B, H) = ({T}, {B}, {H}), as forward's outputs")
    divisor = loss_divisor(cfg, T, B, fwd.lengths)
    layers = [layer_view(cfg, params, k) for k in range(L)]
    grads = zeros_params(cfg) if grads is None else grads
    glayers = [layer_view(cfg, grads, k) for k in range(L)]   # a condition's joined rows start from grads
    dcond = zeros_matrix(B, cfg.cond_size) if cfg.cond == "vector" else None
    # dstate[l][b]: the gradient with respect to stream b's layer-l state after step t, from step t+1
    # on; at t = T-1 that is dfinal (or zero)
    dstate = [[[list(dfinal[l][s][b]) if dfinal is not None else zeros(H) for s in range(S)]
               for b in range(B)] for l in range(L)]
    for t in reversed(range(T)):
        for b in range(B):
            if not running(fwd.lengths, t, b):
                continue  # no step ran, the state after t is the state after t-1: dstate passes through
            dy = output_grad(cfg, params, fwd, grads, t, b, divisor)
            if doutputs is not None:
                dy = vsum(dy, doutputs[t][b])
            for l in reversed(range(L)):
                if fwd.masks is not None:
                    dy = [d * m for d, m in zip(dy, fwd.masks[l][t][b])]
                dh = vsum(dstate[l][b][0], dy)
                dy, dstate[l][b] = step_backward([dh] + dstate[l][b][1:], fwd.caches[t][b][l],
                                                 layers[l], glayers[l])
            # dy is now the gradient of layer 0's input x ++ v
            if cfg.embed_size:
                add_into(grads["encoder.weight"][fwd.tokens[t][b]], dy[:In])
            if dcond is not None:
                add_into(dcond[b], dy[In:])
    fold_cond_grad(cfg, glayers[0], grads)
    dstate0 = [[[dstate[l][b][s] for b in range(B)] for s in range(S)] for l in range(L)]
    return grads, dstate0, dcond


def zero_state(cfg, B):
    return [[zeros_matrix(B, cfg.hidden_size) for _ in range(cfg.num_states)]
            for _ in range(cfg.num_layers)]
