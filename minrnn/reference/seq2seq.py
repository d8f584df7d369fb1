"""Sequence to sequence with attention: an encoder reads the source, a decoder writes the target from
the encoder's final state, and at every target step the decoder's output looks back at the encoder's
outputs (Luong, Pham, Manning 2015: global attention). Captioning is the same decoder over another
memory: a grid of vectors (one per place in an image) given with each record, no encoder.

The memory, what the attention reads: the encoder's outputs (M = H wide), or the grid (input_size
D: M = D). A captioning decoder starts from zeros, and every step's layer 0 adds W v for the
grid's mean vector v (the lectures' h = tanh(W_xh x + W_hh h + W_ih v)). With input feeding, the
context c of step t-1 (M) is part of layer 0's input at step t (zeros at t = 0), after the grid's
mean (Xu et al. 2015's "Show, Attend and Tell", where the lectures say the summary vector "gets fed
as an additional input at the next time step"; Luong et al. feed their combined o instead: c is
what the lectures and Xu et al. feed, and the output layer reads it through o in either case). The
decoder's layer-0 condition is then v_t = [mean ; c_{t-1}], C = D + M wide (what is present of it).

Shapes, time-major like the model's:
    src              (Ts, B) source ids in [0, V-2), padded: the encoder never reads START or END;
                     for a grid (input_size D), (Ts, B, D) floats: record b's vectors at s < src_lengths[b]
    src_lengths      (B) ints in [1, Ts]
    dec_in           (Td, B) ids: [START, y1..ym], padded
    targets          (Td, B) ids: [y1..ym, END], padded
    tgt_lengths      (B) ints m+1 in [1, Td]
    memory           (n, M): one record's encoder outputs e_s (M = H), or its grid (M = D), s < n
    keys             (n, H) for dot and general, (n, A) for additive: what each score reads of e_s
    logits           (Td, B, V); None past a record's end
    alignments       (Td, B) alpha (n_b): where step t of record b looked; None for "none" or past the end
    state            (L, S, B, H) in training, as the model's; (L, S, H) for the one record of inference
One vocabulary of V ids serves both sides: the symbols, then START = V-2 and END = V-1 (frame_pairs
lays a batch out). Padding is 0 and is never read: not by the models (no step runs past a record's
end), not by the attention (alpha covers s < src_lengths[b] only).
Parameters are a dict of named tensors in one block: "enc." + the encoder model's (none for a
grid), "dec." + the decoder model's, then the attention's, combine's and out's (see param_shapes).
"""

import math
from dataclasses import dataclass
from typing import ClassVar

from . import model
from .model import Config, cross_entropy, cross_entropy_grad, linear_backward, linear_forward, softmax
from .rng import Rng
from .sampling import argmax, sample
from .tensor import add_into, add_outer, matvec, matvec_t, zeros

ATTENTIONS = ("none", "dot", "general", "additive")   # how a decoder output h scores a source position
PAD = 0            # what frame_pairs puts past a record's end: any id would do, none is read
MAX_LEN = 100      # translate's default bound on the tokens it emits, END included


@dataclass
class Seq2seqConfig:
    vocab_size: int             # V: the symbols of both sides, then START (V-2) and END (V-1)
    hidden_size: int            # H, of the encoder and of the decoder
    cell: str = "lstm"          # a key of CELLS, for both
    embed_size: int = 0         # E; 0 = one-hot input; the encoder and the decoder embed on their own
    num_layers: int = 1         # L, of each
    dropout: float = 0.0        # p, inside each model (their masks, as the model applies them); none on o
    attention: str = "dot"      # a key of ATTENTIONS; "none": the decoder's output alone feeds out
    attention_size: int = 0     # A: >= 1 for "additive", 0 otherwise
    input_size: int = 0         # D: 0, the source is ids an encoder reads; >= 1, it is a grid of D-vectors
    input_feeding: bool = False   # the last step's context is part of layer 0's input (needs attention)
    # what a seq2seq model is not, in the terms of the model's Config (code that serves every kind
    # of checkpoint asks these)
    task: ClassVar[str] = "seq2seq"
    cond: ClassVar[str] = "none"

    def __post_init__(self):
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, not {self.attention!r}")
        if self.attention == "additive" and self.attention_size < 1:
            raise ValueError(f"attention additive needs attention_size >= 1, not {self.attention_size}")
        if self.attention != "additive" and self.attention_size != 0:
            raise ValueError(f"attention_size must be 0 for attention {self.attention}, not {self.attention_size}")
        if not isinstance(self.input_size, int) or self.input_size < 0:
            raise ValueError(f"input_size must be a whole number >= 0, not {self.input_size!r}")
        if self.attention == "dot" and self.memory_size != self.hidden_size:
            raise ValueError(f"attention dot scores h . e: the grid's vectors ({self.input_size}) must be as wide "
                             f"as the hidden state ({self.hidden_size}); use general or additive")
        if not isinstance(self.input_feeding, bool) or self.input_feeding and self.attention == "none":
            raise ValueError("input_feeding (True or False) feeds the attention's context: it needs attention")
        decoder_config(self)   # the model's checks of cell, sizes and dropout
        if self.vocab_size < 3:
            raise ValueError(f"vocab_size must be >= 3 (a symbol, START and END), not {self.vocab_size}")

    @property
    def num_states(self):
        """S: the state vectors per layer of the encoder, and of the decoder, which starts from them."""
        return encoder_config(self).num_states

    @property
    def memory_size(self):
        """M: the width of a memory row, the encoder's H or the grid's D."""
        return self.input_size or self.hidden_size

    @property
    def condition_size(self):
        """C: the decoder's layer-0 condition, [grid mean (D) ; last context (M)], what is present."""
        return self.input_size + (self.memory_size if self.input_feeding else 0)

    @property
    def start(self):
        return self.vocab_size - 2

    @property
    def end(self):
        return self.vocab_size - 1


def encoder_config(cfg):
    """The encoder: the model's Config with no output layer (task "encode")."""
    return Config(cfg.vocab_size, cfg.hidden_size, cfg.cell, cfg.embed_size, cfg.num_layers, cfg.dropout,
                  task="encode")


def decoder_config(cfg):
    """The decoder: the encoder's Config, with the condition v_t of cond_size C when there is one; its
    own tensors, started from the encoder's final state (zeros for a grid)."""
    C = cfg.condition_size
    return Config(cfg.vocab_size, cfg.hidden_size, cfg.cell, cfg.embed_size, cfg.num_layers, cfg.dropout,
                  task="encode", cond="vector" if C else "none", cond_size=C)


# ---- parameters

MODELS = ("enc.", "dec.")   # the prefixes of the two models' tensors (a grid's decoder has no encoder)


def param_shapes(cfg):
    """[(name, shape)] in block order: the encoder's tensors (not for a grid), the decoder's, then
    attn.weight (general) or attn.query, attn.key, attn.v (additive), then combine.weight and
    combine.bias (any attention but "none"), then out.weight and out.bias. M: memory_size."""
    V, H, A, M = cfg.vocab_size, cfg.hidden_size, cfg.attention_size, cfg.memory_size
    shapes = [] if cfg.input_size else [("enc." + name, shape) for name, shape in model.param_shapes(encoder_config(cfg))]
    shapes += [("dec." + name, shape) for name, shape in model.param_shapes(decoder_config(cfg))]
    if cfg.attention == "general":
        shapes += [("attn.weight", (H, M))]
    elif cfg.attention == "additive":
        shapes += [("attn.query", (A, H)), ("attn.key", (A, M)), ("attn.v", (A,))]
    if cfg.attention != "none":
        shapes += [("combine.weight", (H, M + H)), ("combine.bias", (H,))]
    return shapes + [("out.weight", (V, H)), ("out.bias", (V,))]


def param_count(cfg):
    return sum(math.prod(shape) for _, shape in param_shapes(cfg))


def zeros_params(cfg):
    return model.zeros_tensors(param_shapes(cfg))


def flatten(cfg, tensors):
    """The parameter block: every tensor row-major, in block order."""
    return model.flatten_tensors(param_shapes(cfg), tensors)


def unflatten(cfg, flat):
    return model.unflatten_tensors(param_shapes(cfg), flat)


def model_params(tensors, prefix):
    """The encoder's ("enc.") or the decoder's ("dec.") tensors under the model's own names: the same
    lists, not copies."""
    return {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}


def init_bound(cfg, name):
    """PyTorch's nn.Linear bound, 1/sqrt(fan_in), of a tensor after the two models."""
    H, A, M = cfg.hidden_size, cfg.attention_size, cfg.memory_size
    fan_in = {"attn.v": A, "attn.weight": M, "attn.key": M, "combine.weight": M + H, "combine.bias": M + H}.get(name, H)
    return 1.0 / math.sqrt(fan_in)


def init_params(cfg, seed):
    """Fresh parameters from one seed: the encoder's as the model's init_params(seed, "default") (none
    for a grid), the decoder's from seed + 1, then the rest in block order from Rng(seed + 2), element
    by element row-major, w = (2u - 1) * bound."""
    params = {} if cfg.input_size else {
        "enc." + name: t for name, t in model.init_params(encoder_config(cfg), seed, "default").items()}
    params.update(("dec." + name, t) for name, t in model.init_params(decoder_config(cfg), seed + 1).items())
    rng = Rng(seed + 2)
    rest = [(name, shape) for name, shape in param_shapes(cfg) if not name.startswith(MODELS)]
    flat = []
    for name, shape in rest:
        bound = init_bound(cfg, name)
        flat += [(2.0 * rng.uniform() - 1.0) * bound for _ in range(math.prod(shape))]
    params.update(model.unflatten_tensors(rest, flat))
    return params


# ---- attention over one record's memory, for one decoder output h (H)

def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def attention_keys(cfg, params, memory):
    """k_s for every source position: e_s itself (dot), W_a e_s (general), W_k e_s (additive); None
    for "none". Computed once per record, read at every target step."""
    if cfg.attention == "general":
        return [matvec(params["attn.weight"], e) for e in memory]
    if cfg.attention == "additive":
        return [matvec(params["attn.key"], e) for e in memory]
    return memory if cfg.attention == "dot" else None


def attention_scores(cfg, params, h, keys):
    """score_s = h . k_s (dot, general) or v . tanh(q + k_s) with q = W_q h (additive), (n); and
    additive's u_s = tanh(q + k_s) (n, A), which backward needs (None for the others)."""
    if cfg.attention != "additive":
        return [dot(h, k) for k in keys], None
    q = matvec(params["attn.query"], h)                                # (A)
    u = [[math.tanh(qa + ka) for qa, ka in zip(q, k)] for k in keys]   # (n, A)
    return [dot(params["attn.v"], us) for us in u], u


def context(alpha, memory):
    """c = sum_s alpha_s e_s (H), summed in the order of s."""
    c = zeros(len(memory[0]))
    for a, e in zip(alpha, memory):
        for j, ej in enumerate(e):
            c[j] += a * ej
    return c


def combine_forward(params, c, h):
    """o = tanh(W_c [c ; h] + b_c) (H): Luong's attentional hidden state, c first, then h."""
    return [math.tanh(a) for a in linear_forward(params, "combine", c + h)]


def attend(cfg, params, h, memory, keys):
    """What out reads at one target step, o (H), and attend_backward's cache (alpha, c, u); for "none"
    o is h itself and the cache None. alpha = softmax(scores) (max subtracted), over s < n only."""
    if cfg.attention == "none":
        return h, None
    scores, u = attention_scores(cfg, params, h, keys)
    alpha = softmax(scores)
    c = context(alpha, memory)
    return combine_forward(params, c, h), (alpha, c, u)


def combine_backward(params, grads, do, o, c, h):
    """Through o = tanh(W_c [c ; h] + b_c): adds into combine's gradients; returns (dc, dh), each (H)."""
    dpre = [d * (1.0 - oj * oj) for d, oj in zip(do, o)]
    dch = linear_backward(params, grads, "combine", dpre, c + h)   # (2H)
    return dch[:len(c)], dch[len(c):]


def context_backward(dc, alpha, memory, dmemory):
    """Through c = sum_s alpha_s e_s: adds alpha_s dc into de_s; returns dalpha_s = dc . e_s (n)."""
    for a, de in zip(alpha, dmemory):
        add_into(de, [a * d for d in dc])
    return [dot(dc, e) for e in memory]


def softmax_backward(alpha, dalpha):
    """dscore_s = alpha_s (dalpha_s - sum_r alpha_r dalpha_r) (n)."""
    mean = dot(alpha, dalpha)
    return [a * (d - mean) for a, d in zip(alpha, dalpha)]


def scores_backward(cfg, params, grads, dscore, h, memory, keys, u, dh, dmemory):
    """Through the scores: adds into dh (H), dmemory (n, H) and the attention's gradients, s in order.
        dot:      dh += dscore_s e_s;  de_s += dscore_s h
        general:  dh += dscore_s k_s;  dk_s = dscore_s h;  dW_a += dk_s e_s^T;  de_s += W_a^T dk_s
        additive: dv += dscore_s u_s;  dk_s = dscore_s v (1 - u_s^2);  dq = sum_s dk_s;
                  dW_k += dk_s e_s^T;  de_s += W_k^T dk_s;  then dW_q += dq h^T;  dh += W_q^T dq"""
    if cfg.attention == "dot":
        for ds, e, de in zip(dscore, memory, dmemory):
            add_into(dh, [ds * ej for ej in e])
            add_into(de, [ds * hj for hj in h])
    elif cfg.attention == "general":
        for ds, k, e, de in zip(dscore, keys, memory, dmemory):
            add_into(dh, [ds * kj for kj in k])
            dk = [ds * hj for hj in h]
            add_outer(grads["attn.weight"], dk, e)
            add_into(de, matvec_t(params["attn.weight"], dk))
    else:
        v = params["attn.v"]
        dq = zeros(len(v))
        for ds, us, e, de in zip(dscore, u, memory, dmemory):
            add_into(grads["attn.v"], [ds * ua for ua in us])
            dk = [ds * va * (1.0 - ua * ua) for va, ua in zip(v, us)]   # (A): d(q + k_s)
            add_into(dq, dk)
            add_outer(grads["attn.key"], dk, e)
            add_into(de, matvec_t(params["attn.key"], dk))
        add_outer(grads["attn.query"], dq, h)
        add_into(dh, matvec_t(params["attn.query"], dq))


def attend_backward(cfg, params, grads, do, h, o, cache, memory, keys, dmemory, dc_fed=None):
    """Through attend, given do = dloss/do and dc_fed, the gradient with respect to the context c that
    the next step read (input feeding), or None: returns dh (H), adding into dmemory (n, M) and the
    gradients of combine and attn."""
    if cfg.attention == "none":
        return do
    alpha, c, u = cache
    dc, dh = combine_backward(params, grads, do, o, c, h)
    if dc_fed is not None:
        add_into(dc, dc_fed)
    dalpha = context_backward(dc, alpha, memory, dmemory)
    dscore = softmax_backward(alpha, dalpha)
    scores_backward(cfg, params, grads, dscore, h, memory, keys, u, dh, dmemory)
    return dh


# ---- forward and backward over a batch

def check_lengths(name, lengths, T, B):
    if lengths is None or len(lengths) != B or not all(isinstance(n, int) and 1 <= n <= T for n in lengths):
        raise ValueError(f"{name} must be {B} whole numbers in [1, {T}]")


def check_ids(name, ids, lengths, limit):
    """ids (T, B) must be whole numbers in [0, limit) within each record; what lies past its end is not read."""
    if not all(isinstance(ids[t][b], int) and 0 <= ids[t][b] < limit for b, n in enumerate(lengths) for t in range(n)):
        raise ValueError(f"{name} must be ids in [0, {limit}) within each record")


def check_grid(cfg, grid, lengths):
    """grid (Ts, B, D) must hold D finite floats at every place s < lengths[b] of each record."""
    D = cfg.input_size
    if not all(len(grid[s][b]) == D and all(math.isfinite(x) for x in grid[s][b])
               for b, n in enumerate(lengths) for s in range(n)):
        raise ValueError(f"a grid holds {D} finite floats at each of a record's places")


def check_batch(cfg, src, src_lengths, dec_in, targets, tgt_lengths):
    B = len(src[0])
    if any(len(row) != B for row in src + dec_in) or (
            targets is not None and (len(targets) != len(dec_in) or any(len(row) != B for row in targets))):
        raise ValueError(f"src must be (Ts, B), dec_in and targets (Td, B), with the same B ({B})")
    check_lengths("src_lengths", src_lengths, len(src), B)
    check_lengths("tgt_lengths", tgt_lengths, len(dec_in), B)
    if cfg.input_size:
        check_grid(cfg, src, src_lengths)
    else:
        check_ids("source", src, src_lengths, cfg.start)   # no START, no END
    check_ids("dec_in", dec_in, tgt_lengths, cfg.vocab_size)
    if targets is not None:
        check_ids("targets", targets, tgt_lengths, cfg.vocab_size)


def mean_vector(memory):
    """v = (1/n) sum_s e_s (M), summed in the order of s: what a grid conditions every step on."""
    v = zeros(len(memory[0]))
    for e in memory:
        add_into(v, e)
    return [x / len(memory) for x in v]


def condition(cfg, mean, fed):
    """The decoder's layer-0 condition at one step, [mean (D) ; fed (M)] as present, or None."""
    v = (mean if cfg.input_size else []) + (fed if cfg.input_feeding else [])
    return v or None


@dataclass
class Seq2seqForward:
    loss: float          # the mean cross-entropy over the target positions within their records; None without targets
    logits: list         # (Td, B, V); None past a record's end
    alignments: list     # (Td, B): alpha (n_b) over record b's source positions; None for "none" or past the end
    enc: model.Forward   # the encoder's forward: outputs e (Ts, B, H), final state F; None for a grid
    steps: list          # (Td): the decoder's forward of each step, one step for all B from the last
    memories: list       # (B): record b's memory rows e_s for s < src_lengths[b], (n_b, M)
    means: list          # (B): a grid's mean row (M); None without a grid
    keys: list           # (B): record b's keys, (n_b, H) or (n_b, A); None for "none"
    attended: list       # (Td, B): o (H), what out read; None past a record's end
    caches: list         # (Td, B): attend's (alpha, c, u); None for "none" or past a record's end
    targets: list        # (Td, B) or None
    tgt_lengths: list    # (B)


def forward(cfg, params, src, src_lengths, dec_in, targets, tgt_lengths, enc_masks=None, dec_masks=None):
    """The encoder over src from a zero state (a grid is its own memory, and the decoder starts from
    zeros), then the decoder one step at a time: at step t every record's decoder reads dec_in[t] and
    its condition v_t (see condition), then within record b attention, out and the cross-entropy;
    c_t, the context, is what step t+1 is fed (zeros past a record's end, where nothing reads it).
    targets may be None (no loss); enc_masks (L, Ts, B, H) and dec_masks (L, Td, B, H) None (no
    dropout). The loss sums over t, then b within t, and divides by sum(tgt_lengths)."""
    check_batch(cfg, src, src_lengths, dec_in, targets, tgt_lengths)
    dec_cfg = decoder_config(cfg)
    Td, B = len(dec_in), len(dec_in[0])
    if cfg.input_size:
        enc, outputs, state = None, src, model.zero_state(dec_cfg, B)
    else:
        enc_cfg = encoder_config(cfg)
        enc = model.forward(enc_cfg, model_params(params, "enc."), src, None, model.zero_state(enc_cfg, B),
                            enc_masks, src_lengths)
        outputs, state = enc.outputs, enc.final_state
    memories = [[outputs[s][b] for s in range(n)] for b, n in enumerate(src_lengths)]
    means = [mean_vector(memory) for memory in memories] if cfg.input_size else None
    keys = [attention_keys(cfg, params, memory) for memory in memories]
    dec_params = model_params(params, "dec.")
    fed = [zeros(cfg.memory_size) for _ in range(B)]
    steps = []
    logits, alignments, attended, caches = ([[None] * B for _ in range(Td)] for _ in range(4))
    total = 0.0
    for t in range(Td):
        masks = [[dec_masks[l][t]] for l in range(cfg.num_layers)] if dec_masks is not None else None
        cond = [condition(cfg, means[b] if means else None, fed[b]) for b in range(B)]
        step = model.forward(dec_cfg, dec_params, [dec_in[t]], None, state, masks, None,
                             cond if dec_cfg.cond != "none" else None)
        steps.append(step)
        state = step.final_state
        for b in range(B):
            fed[b] = zeros(cfg.memory_size)
            if t >= tgt_lengths[b]:
                continue
            attended[t][b], caches[t][b] = attend(cfg, params, step.outputs[0][b], memories[b], keys[b])
            logits[t][b] = linear_forward(params, "out", attended[t][b])
            if caches[t][b] is not None:
                alignments[t][b], fed[b] = caches[t][b][0], caches[t][b][1]
            if targets is not None:
                total += cross_entropy(logits[t][b], targets[t][b])
    loss = total / sum(tgt_lengths) if targets is not None else None
    return Seq2seqForward(loss, logits, alignments, enc, steps, memories, means, keys, attended, caches, targets,
                          tgt_lengths)


def backward(cfg, params, fwd, dgrid=None):
    """Gradients of fwd.loss with respect to every parameter, a dict shaped like params; for a grid,
    also that with respect to the grid, added into dgrid (Ts, B, D) if given. Over t from the last
    step back: within each record dlogits -> out, do and the gradient of the context that step t+1
    read -> attention (dh, and de into the memory); then the decoder's step, from dh and the state
    gradient of step t+1, gives the gradients of step t's state and condition (the mean's part goes
    to every grid row, 1/n each; the fed context's to step t-1's attention). Last the encoder's
    backward with doutputs = de and dfinal = the decoder's dstate0."""
    if fwd.targets is None:
        raise ValueError("backward needs a loss: a forward with targets")
    M, D = cfg.memory_size, cfg.input_size
    Td, B = len(fwd.steps), len(fwd.memories)
    divisor = sum(fwd.tgt_lengths)
    dec_cfg, dec_params = decoder_config(cfg), model_params(params, "dec.")
    rest = [(name, shape) for name, shape in param_shapes(cfg) if not name.startswith(MODELS)]
    grads = model.zeros_tensors(rest)
    dec_grads = model.zeros_params(dec_cfg)
    dmemories = [[zeros(M) for _ in memory] for memory in fwd.memories]
    dmeans = [zeros(M) for _ in range(B)]
    dfed = [None] * B   # the gradient with respect to c_t, from step t+1's condition
    dstate = None
    for t in reversed(range(Td)):
        dh = [zeros(cfg.hidden_size) for _ in range(B)]
        for b in range(B):
            if t >= fwd.tgt_lengths[b]:
                continue
            dlogits = cross_entropy_grad(fwd.logits[t][b], fwd.targets[t][b], divisor)
            do = linear_backward(params, grads, "out", dlogits, fwd.attended[t][b])
            dh[b] = attend_backward(cfg, params, grads, do, fwd.steps[t].outputs[0][b], fwd.attended[t][b],
                                    fwd.caches[t][b], fwd.memories[b], fwd.keys[b], dmemories[b], dfed[b])
        _, dstate, dcond = model.backward(dec_cfg, dec_params, fwd.steps[t], dstate, [dh], dec_grads)
        for b in range(B):
            if D:
                add_into(dmeans[b], dcond[b][:D])
            dfed[b] = dcond[b][D:] if cfg.input_feeding else None
    for b, (dmemory, dmean) in enumerate(zip(dmemories, dmeans)):
        for de in dmemory if D else ():
            add_into(de, [x / len(dmemory) for x in dmean])
        for s, de in enumerate(dmemory):
            if dgrid is not None and D:
                add_into(dgrid[s][b], de)
    grads.update(("dec." + name, g) for name, g in dec_grads.items())
    if D:
        return grads
    de = [[dmemories[b][s] if s < len(dmemories[b]) else zeros(M) for b in range(B)] for s in range(len(fwd.enc.tokens))]
    enc_grads, _, _ = model.backward(encoder_config(cfg), model_params(params, "enc."), fwd.enc, dstate, de)
    grads.update(("enc." + name, g) for name, g in enc_grads.items())
    return grads


def frame_pairs(cfg, pairs):
    """A batch from (source ids, target ids) pairs, time-major and padded with PAD:
    (src (Ts, B), src_lengths, dec_in (Td, B) = [START, y...], targets (Td, B) = [y..., END], tgt_lengths),
    Ts the longest source, Td the longest target plus one. A source has at least one id; a target may
    be empty (then its record is END alone). Every id is a symbol, in [0, V-2). For a model of grids
    a source is its n >= 1 vectors (n, D), and src (Ts, B, D) is padded with vectors of zeros."""
    if not pairs:
        raise ValueError("frame_pairs needs at least one (source, target) pair")
    grid = bool(cfg.input_size)
    for source, target in pairs:
        if len(source) < 1:
            raise ValueError(f"a source needs at least one {'vector' if grid else 'id'}")
        if not all(isinstance(i, int) and 0 <= i < cfg.start for i in list(target) + ([] if grid else list(source))):
            raise ValueError(f"source and target ids must be symbols, in [0, {cfg.start})")
    src_lengths = [len(source) for source, _ in pairs]
    tgt_lengths = [len(target) + 1 for _, target in pairs]
    src = padded([list(source) for source, _ in pairs], max(src_lengths), zeros(cfg.input_size) if grid else PAD)
    dec_in = padded([[cfg.start] + list(target) for _, target in pairs], max(tgt_lengths))
    targets = padded([list(target) + [cfg.end] for _, target in pairs], max(tgt_lengths))
    return src, src_lengths, dec_in, targets, tgt_lengths


def padded(rows, T, pad=PAD):
    """B rows of ids (or vectors), each at most T long, as (T, B), pad after each row's end."""
    return [[row[t] if t < len(row) else pad for row in rows] for t in range(T)]


# ---- inference, one record at a time, without dropout

def batch_of_one(state):
    """(L, S, H) -> (L, S, 1, H), the model's state for one stream."""
    return [[[h] for h in layer] for layer in state]


def first_stream(state):
    """(L, S, 1, H) -> (L, S, H)."""
    return [[s[0] for s in layer] for layer in state]


@dataclass
class Memory:
    rows: list    # (n, M): the encoder's outputs, or the grid
    keys: list    # attention_keys of rows, or None
    mean: list    # (M): a grid's mean row; None without a grid


def encode(cfg, params, src):
    """One source's memory and the decoder's first state, (model state (L, S, H), fed context (M)):
    for ids, the encoder's outputs and final state; for a grid (n, D), the grid and zeros."""
    if cfg.input_size:
        check_grid(cfg, [[row] for row in src], [len(src)] if src else [0])
        if not src:
            raise ValueError("a grid has one or more places")
        rows, state = [list(row) for row in src], model.zero_state(decoder_config(cfg), 1)
    else:
        if not src or not all(isinstance(i, int) and 0 <= i < cfg.start for i in src):
            raise ValueError(f"a source is one or more symbols, ids in [0, {cfg.start})")
        enc_cfg = encoder_config(cfg)
        enc = model.forward(enc_cfg, model_params(params, "enc."), [[i] for i in src], None,
                            model.zero_state(enc_cfg, 1))
        rows, state = [row[0] for row in enc.outputs], enc.final_state
    memory = Memory(rows, attention_keys(cfg, params, rows), mean_vector(rows) if cfg.input_size else None)
    return memory, (first_stream(state), zeros(cfg.memory_size))


def decode_step(cfg, params, memory, state, token):
    """The decoder's step on token from state (its model state (L, S, H) and the context it is fed),
    then the attention over memory and out, as in training: (logits (V), the new state, alpha (n),
    None for "none")."""
    dec_cfg = decoder_config(cfg)
    cond = [condition(cfg, memory.mean, state[1])] if dec_cfg.cond != "none" else None
    dec = model.forward(dec_cfg, model_params(params, "dec."), [[token]], None, batch_of_one(state[0]), cond=cond)
    o, cache = attend(cfg, params, dec.outputs[0][0], memory.rows, memory.keys)
    fed = cache[1] if cache is not None else zeros(cfg.memory_size)
    return linear_forward(params, "out", o), (first_stream(dec.final_state), fed), cache[0] if cache is not None else None


def next_logprobs(cfg, logits):
    """log softmax(logits) over all V, in double: a - (m + log(sum_i exp(a_i - m))), the sum in the
    order of i; then START's is -inf, so that it is never emitted."""
    m = max(logits)
    total = 0.0
    for a in logits:
        total += math.exp(a - m)
    lse = m + math.log(total)
    logprobs = [a - lse for a in logits]
    logprobs[cfg.start] = -math.inf
    return logprobs


def extension_scores(score, logprobs):
    """The score of a hypothesis extended by each token: score + logprobs[i] (V), START's -inf."""
    return [score + lp for lp in logprobs]


@dataclass
class Hypothesis:
    ids: list       # the tokens emitted, END excluded
    score: float    # the sum of their log probabilities, END's included once it is emitted
    state: tuple    # the decoder's state before token is read: (L, S, H) and the context it is fed (M)
    token: int      # the next token the decoder reads: START, then the last one emitted
    alphas: list    # one alpha (or None for "none") per step taken


def extend(cfg, hyp, token, score, step):
    """hyp after emitting token, with the score score; step is decode_step's (logits, new state,
    alpha) for hyp."""
    _, state, alpha = step
    ids = hyp.ids if token == cfg.end else hyp.ids + [token]
    return Hypothesis(ids, score, state, token, hyp.alphas + [alpha])


def greedy_search(cfg, params, memory, state, max_len):
    """Greedy decoding: at each step the token of the highest extension score (lowest id on ties),
    until END or max_len steps. Returns (ids without END, log probability, alphas)."""
    ids, score, alphas, token = [], 0.0, [], cfg.start
    for _ in range(max_len):
        logits, state, alpha = decode_step(cfg, params, memory, state, token)
        scores = extension_scores(score, next_logprobs(cfg, logits))
        token = argmax(scores)
        score = scores[token]
        alphas.append(alpha)
        if token == cfg.end:
            break
        ids.append(token)
    return ids, score, alphas


def sample_search(cfg, params, memory, state, max_len, temperature, rng):
    """Ancestral sampling: each token drawn by sampling.sample from the logits at temperature, START's
    logit -inf, until END or max_len steps. The log probability is the model's (temperature 1)."""
    ids, score, alphas, token = [], 0.0, [], cfg.start
    for _ in range(max_len):
        logits, state, alpha = decode_step(cfg, params, memory, state, token)
        logprobs = next_logprobs(cfg, logits)
        token = sample([-math.inf if i == cfg.start else a for i, a in enumerate(logits)], rng, temperature)
        score = score + logprobs[token]
        alphas.append(alpha)
        if token == cfg.end:
            break
        ids.append(token)
    return ids, score, alphas


def beam_search(cfg, params, memory, state, beam, max_len):
    """Beam search of width beam, greedy's own hypothesis never pruned. Each step extends every live
    hypothesis by every token but START; the beam best candidates by score are kept (ties: lower live
    row, then lower token); a kept one that ends with END is finished, the others are the next live
    rows in rank order. Greedy's extension (the argmax of its row's scores), when not kept, is kept
    after them: the last live row, or the last finished one if it is END. Stop when none is live,
    when the best finished score is >= every live one (a log probability is <= 0: no live one can
    overtake it), or after max_len steps (the live ones then count as finished, in their order).
    Returns the finished hypothesis of the highest score, the first finished on ties, as
    (ids without END, log probability, alphas)."""
    live = [Hypothesis([], 0.0, state, cfg.start, [])]
    finished = []
    greedy = 0   # the live row that is greedy decoding's own hypothesis; None once that has finished
    for _ in range(max_len):
        steps = [decode_step(cfg, params, memory, hyp.state, hyp.token) for hyp in live]
        scores = [extension_scores(hyp.score, next_logprobs(cfg, logits)) for hyp, (logits, _, _) in zip(live, steps)]
        candidates = [(r, i) for r in range(len(live)) for i in range(cfg.vocab_size) if i != cfg.start]
        kept = sorted(candidates, key=lambda ri: (-scores[ri[0]][ri[1]], ri[0], ri[1]))[:beam]
        greedy_next = (greedy, argmax(scores[greedy])) if greedy is not None else None
        if greedy_next is not None and greedy_next not in kept:
            kept.append(greedy_next)
        next_live, greedy = [], None
        for r, i in kept:
            hyp = extend(cfg, live[r], i, scores[r][i], steps[r])
            if i == cfg.end:
                finished.append(hyp)
                continue
            if (r, i) == greedy_next:
                greedy = len(next_live)
            next_live.append(hyp)
        live = next_live
        if not live or (finished and best(finished).score >= max(hyp.score for hyp in live)):
            break
    else:
        finished += live
    result = best(finished)
    return result.ids, result.score, result.alphas


def best(hypotheses):
    """The one of the highest score; the first of them on ties."""
    top = hypotheses[0]
    for hyp in hypotheses[1:]:
        if hyp.score > top.score:
            top = hyp
    return top


def translate(cfg, params, src, beam=1, max_len=MAX_LEN, temperature=0.0, rng=None):
    """One source's translation (src: ids, or a grid (n, D): its caption): (ids without END, its log
    probability, alphas (one per step, END's included when emitted)). Greedy for beam 1, beam search for beam > 1; with temperature > 0 each
    token is drawn from rng instead (beam must be 1). At most max_len steps."""
    if not (isinstance(beam, int) and beam >= 1 and isinstance(max_len, int) and max_len >= 1):
        raise ValueError(f"beam and max_len must be whole numbers >= 1, not {beam} and {max_len}")
    if not temperature >= 0.0:
        raise ValueError(f"temperature must be >= 0, not {temperature}")
    if temperature > 0.0 and (beam != 1 or rng is None):
        raise ValueError("sampling (temperature > 0) draws one hypothesis: beam must be 1, and rng an Rng")
    memory, state = encode(cfg, params, src)
    if temperature > 0.0:
        return sample_search(cfg, params, memory, state, max_len, temperature, rng)
    if beam == 1:
        return greedy_search(cfg, params, memory, state, max_len)
    return beam_search(cfg, params, memory, state, beam, max_len)
