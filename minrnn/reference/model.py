"""The whole model: configuration, parameters, forward and backward over B streams and T steps.

Shapes, row-major like PyTorch:
    tokens, targets  (T, B) ints: tokens[t][b] is stream b's input at step t
    state            (L, S, B, H): S = 1 ([h]) for RNN and GRU, 2 ([h, c]) for LSTM
    dropout masks    (L, T, B, H): the scale applied to layer l's output, 0 or 1 / (1 - p)
    logits           (T, B, V)
Parameters are a dict of PyTorch-named tensors (see param_shapes) in the agreed block order.
"""

import math
from dataclasses import dataclass
from types import SimpleNamespace

from .cells import CELLS
from .rng import Rng
from .tensor import add_into, add_outer, float32, matvec, matvec_t, one_hot, vsum, zeros, zeros_matrix


@dataclass
class Config:
    vocab_size: int             # V
    hidden_size: int            # H
    cell: str = "lstm"          # a key of CELLS: "lstm", "gru", "rnn_tanh" or "rnn_relu"
    embed_size: int = 0         # E; 0 = one-hot input
    num_layers: int = 1         # L
    dropout: float = 0.0        # p, the chance of zeroing an element of a layer's output in training;
                                # used as a float32, as the C core and checkpoints hold it

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        if min(self.vocab_size, self.hidden_size, self.num_layers) < 1 or self.embed_size < 0:
            raise ValueError("vocab_size, hidden_size and num_layers must be >= 1, embed_size >= 0")
        if not (0.0 <= self.dropout < 1.0 and float32(self.dropout) < 1.0):
            raise ValueError("dropout must be in [0, 1) as a float32")

    @property
    def gates(self):
        return CELLS[self.cell].gates

    @property
    def num_states(self):
        return CELLS[self.cell].states

    def input_size(self, layer):
        if layer > 0:
            return self.hidden_size
        return self.embed_size or self.vocab_size


# ---- parameters

def param_shapes(cfg):
    """[(name, shape)] in block order: encoder, then per layer weight_ih, weight_hh, bias_ih, bias_hh,
    then decoder."""
    V, H, GH = cfg.vocab_size, cfg.hidden_size, cfg.gates * cfg.hidden_size
    shapes = [("encoder.weight", (V, cfg.embed_size))] if cfg.embed_size else []
    for k in range(cfg.num_layers):
        shapes += [(f"weight_ih_l{k}", (GH, cfg.input_size(k))), (f"weight_hh_l{k}", (GH, H)),
                   (f"bias_ih_l{k}", (GH,)), (f"bias_hh_l{k}", (GH,))]
    return shapes + [("decoder.weight", (V, H)), ("decoder.bias", (V,))]


def param_count(cfg):
    return sum(math.prod(shape) for _, shape in param_shapes(cfg))


def zeros_params(cfg):
    return {name: zeros_matrix(*shape) if len(shape) == 2 else zeros(shape[0])
            for name, shape in param_shapes(cfg)}


def flatten(cfg, tensors):
    """The parameter block: every tensor row-major, in block order."""
    flat = []
    for name, shape in param_shapes(cfg):
        flat += [x for row in tensors[name] for x in row] if len(shape) == 2 else tensors[name]
    return flat


def unflatten(cfg, flat):
    tensors, at = {}, 0
    for name, shape in param_shapes(cfg):
        if len(shape) == 2:
            rows, cols = shape
            tensors[name] = [list(flat[at + r * cols:at + (r + 1) * cols]) for r in range(rows)]
        else:
            tensors[name] = list(flat[at:at + shape[0]])
        at += math.prod(shape)
    return tensors


def layer_view(tensors, k):
    """Layer k's four tensors (the same lists, not copies) under short names."""
    return SimpleNamespace(w_ih=tensors[f"weight_ih_l{k}"], w_hh=tensors[f"weight_hh_l{k}"],
                           b_ih=tensors[f"bias_ih_l{k}"], b_hh=tensors[f"bias_hh_l{k}"])


IRNN_INPUT_BOUND = 0.001 * math.sqrt(3.0)  # uniform with standard deviation 0.001 (Le et al. 2015)
INIT_SCHEMES = ("default", "irnn")


def init_rule(cfg, name, scheme):
    """How one tensor starts: ("uniform", bound), ("identity",) or ("zeros",).

    "default" is PyTorch's: weights and biases of nn.RNN/LSTM/GRU and of the nn.Linear decoder
    (fan-in H) uniform(-1/sqrt(H), 1/sqrt(H)); the embedding uniform(-sqrt(3), sqrt(3)), the unit
    variance of PyTorch's N(0, 1) embedding from our uniform generator.
    "irnn" (Le, Jaitly, Hinton 2015) changes the recurrent layers: weight_hh identity, biases zero,
    weight_ih small.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init scheme must be one of {', '.join(INIT_SCHEMES)}, not {scheme!r}")
    if scheme == "irnn" and cfg.gates != 1:
        raise ValueError(f"irnn (an identity weight_hh) is for the RNNs, not {cfg.cell}")
    if name == "encoder.weight":
        return ("uniform", math.sqrt(3.0))
    if scheme == "irnn" and not name.startswith("decoder"):
        if name.startswith("weight_hh"):
            return ("identity",)
        if name.startswith("bias"):
            return ("zeros",)
        return ("uniform", IRNN_INPUT_BOUND)
    return ("uniform", 1.0 / math.sqrt(cfg.hidden_size))


def init_params(cfg, seed, scheme="default"):
    """Fresh parameters from a seed. Tensors are filled in block order; a uniform tensor draws one
    number per element, row-major, w = (2u - 1) * bound; constant tensors draw nothing."""
    rng = Rng(seed)
    flat = []
    for name, shape in param_shapes(cfg):
        rule = init_rule(cfg, name, scheme)
        n = math.prod(shape)
        if rule[0] == "uniform":
            flat += [(2.0 * rng.uniform() - 1.0) * rule[1] for _ in range(n)]
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


# ---- forward and backward

def input_vector(cfg, params, token):
    if cfg.embed_size:
        return params["encoder.weight"][token]
    return one_hot(token, cfg.vocab_size)


@dataclass
class Forward:
    loss: float          # mean cross-entropy over the T*B positions (None without targets)
    logits: list         # (T, B, V)
    final_state: list    # (L, S, B, H)
    tokens: list
    targets: list
    masks: list          # (L, T, B, H) or None
    caches: list         # (T, B, L): each cell step's cache
    outputs: list        # (T, B, H): the top layer's output after dropout, the decoder's input


def forward(cfg, params, tokens, targets, state0, masks=None):
    """Run B streams for T steps from state0. targets may be None (no loss), masks None (no dropout)."""
    step_forward = CELLS[cfg.cell].step_forward
    L, S, T, B = cfg.num_layers, cfg.num_states, len(tokens), len(tokens[0])
    layers = [layer_view(params, k) for k in range(L)]
    state = [[[list(state0[l][s][b]) for s in range(S)] for b in range(B)] for l in range(L)]
    caches = [[[None] * L for _ in range(B)] for _ in range(T)]
    logits = [[None] * B for _ in range(T)]
    outputs = [[None] * B for _ in range(T)]
    total = 0.0
    for t in range(T):
        for b in range(B):
            x = input_vector(cfg, params, tokens[t][b])
            for l in range(L):
                state[l][b], caches[t][b][l] = step_forward(x, state[l][b], layers[l])
                x = state[l][b][0]
                if masks is not None:
                    x = [xj * mj for xj, mj in zip(x, masks[l][t][b])]
            outputs[t][b] = x
            logits[t][b] = vsum(matvec(params["decoder.weight"], x), params["decoder.bias"])
            if targets is not None:
                total += cross_entropy(logits[t][b], targets[t][b])
    final_state = [[[state[l][b][s] for b in range(B)] for s in range(S)] for l in range(L)]
    loss = total / (T * B) if targets is not None else None
    return Forward(loss, logits, final_state, tokens, targets, masks, caches, outputs)


def backward(cfg, params, fwd):
    """Gradients of fwd.loss: (grads, dstate0). grads is shaped like params, summed over time;
    dstate0 (L, S, B, H) is the gradient with respect to the initial state. The final state gets
    no gradient from outside (truncated backpropagation through time)."""
    step_backward = CELLS[cfg.cell].step_backward
    L, S, H = cfg.num_layers, cfg.num_states, cfg.hidden_size
    T, B = len(fwd.tokens), len(fwd.tokens[0])
    layers = [layer_view(params, k) for k in range(L)]
    grads = zeros_params(cfg)
    glayers = [layer_view(grads, k) for k in range(L)]
    dstate = [[[zeros(H) for _ in range(S)] for _ in range(B)] for _ in range(L)]  # from step t+1
    for t in reversed(range(T)):
        for b in range(B):
            # loss = mean of cross-entropies: dlogits = (softmax - onehot(target)) / (T B)
            dlogits = softmax(fwd.logits[t][b])
            dlogits[fwd.targets[t][b]] -= 1.0
            dlogits = [d / (T * B) for d in dlogits]
            add_outer(grads["decoder.weight"], dlogits, fwd.outputs[t][b])
            add_into(grads["decoder.bias"], dlogits)
            dy = matvec_t(params["decoder.weight"], dlogits)
            for l in reversed(range(L)):
                if fwd.masks is not None:
                    dy = [d * m for d, m in zip(dy, fwd.masks[l][t][b])]
                dh = vsum(dstate[l][b][0], dy)
                dy, dstate[l][b] = step_backward([dh] + dstate[l][b][1:], fwd.caches[t][b][l],
                                                 layers[l], glayers[l])
            if cfg.embed_size:
                add_into(grads["encoder.weight"][fwd.tokens[t][b]], dy)
    dstate0 = [[[dstate[l][b][s] for b in range(B)] for s in range(S)] for l in range(L)]
    return grads, dstate0


def zero_state(cfg, B):
    return [[zeros_matrix(B, cfg.hidden_size) for _ in range(cfg.num_states)]
            for _ in range(cfg.num_layers)]
