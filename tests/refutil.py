"""Random small problems for tests: configurations, weights, tokens, states and masks from one seed."""

import dataclasses
import math

from minrnn.reference import CELLS, Rng, dropout_masks, forward, param_count, unflatten
from minrnn.reference import cells as reference_cells, model as reference_model, seq2seq as reference_seq2seq
from minrnn.reference.model import layer_view

KINDS = list(CELLS)


# ---- finite differences, in float64

STEP = 1e-4
# Relative error of an analytic gradient a against the numerical derivative n:
#     |a - n| / max(|a|, |n|, FLOOR)
# n is Richardson's extrapolation of two central differences, (4 D(STEP/2) - D(STEP)) / 3 (steps of
# 1e-4 and 5e-5): its truncation error is STEP^4 / 480 |f^(5)| ~ 2e-19 |f^(5)|, nothing here. Its
# round-off is at most (4 * 2 + 1) / 3 * delta / STEP = 3 delta / STEP, delta the error of one
# evaluation of f: f is a loss of order 1 to 10, off by a few ulp, so delta <~ 1e-15 and the
# round-off <~ 3e-11. Below FLOOR the denominator stops shrinking, and the check becomes
# |a - n| < 1e-10: a hard bound, 5 times the worst round-off seen, while a wrong or
# missing term moves a gradient by a part of its own size, far above 1e-6 of it. A plain central
# difference at 1e-5 would have a truncation error STEP^2 / 6 |f'''| ~ 2e-11 |f'''|: at the edge
# for a third derivative of 5 (test_reference_gradcheck.py saw it fail about one run in 40).
FLOOR = 1e-4
MAX_REL_ERROR = 1e-6


def rel_error(a, n):
    return abs(a - n) / max(abs(a), abs(n), FLOOR)


def central_difference(f, xs, i):
    """d f(xs) / d xs[i] by Richardson's extrapolation of central differences at STEP and STEP / 2."""
    def at(h):
        old = xs[i]
        xs[i] = old + h
        up = f(xs)
        xs[i] = old - h
        down = f(xs)
        xs[i] = old
        return (up - down) / (2 * h)
    return (4.0 * at(STEP / 2) - at(STEP)) / 3.0


class Problem:
    """Everything one forward/backward needs, drawn from `seed`, in this order:

        flat     the parameter block, uniform(-scale, scale), so that the nonlinearities work away
                 from their linear region
        tokens   (T, B) ids in [0, V); for a model of vectors (T, B, D) uniform(-1, 1)
        targets  lm: (T, B) ids in [0, V) (also at positions past a record's end, where forward does
                 not read them); classify: (B) class ids in [0, K); with loss squared_error values
                 uniform(-1, 1), (B, K) or (T, B, V)
        state0   (L, S, B, H) uniform(-1, 1), so gradients with respect to it are not trivially zero
        masks    (L, T, B, H) dropout masks, or None when cfg.dropout is 0
        cond     None (cond "none"), (B) labels in [0, C) ("label") or (B, C) vectors uniform(-1, 1)
                 ("vector"), as forward takes it
        dfinal   (L, S, B, H) uniform(-1, 1): a gradient for the final state, backward's dfinal
        lengths  None; with ragged=True (B) record lengths in [1, T], at least one of them below T
                 when T >= 2 (with T = 1 every length is 1)

    The order keeps what existed before (flat to masks) the same for a seed, and ragged changes only
    lengths: Problem(cfg, T, B, seed) and Problem(cfg, T, B, seed, ragged=True) differ in nothing else.
    Also cfg, T, B, and the helpers params and forward()."""

    def __init__(self, cfg, T, B, seed, scale=1.0, ragged=False):
        r = Rng(seed)
        V, H, L, S = cfg.vocab_size, cfg.hidden_size, cfg.num_layers, cfg.num_states
        self.cfg, self.T, self.B = cfg, T, B
        self.flat = [(2.0 * r.uniform() - 1.0) * scale for _ in range(param_count(cfg))]
        if cfg.input_size:   # a model of vectors: its inputs uniform(-1, 1)
            self.tokens = [[[2.0 * r.uniform() - 1.0 for _ in range(cfg.input_size)] for _ in range(B)]
                           for _ in range(T)]
        else:
            self.tokens = [[int(r.uniform() * V) for _ in range(B)] for _ in range(T)]
        if cfg.loss == "squared_error":   # values uniform(-1, 1), K a stream or V a step
            def values(n):
                return [2.0 * r.uniform() - 1.0 for _ in range(n)]
            self.targets = [values(cfg.num_classes) for _ in range(B)] if cfg.task == "classify" else \
                [[values(V) for _ in range(B)] for _ in range(T)]
        elif cfg.task == "classify":
            self.targets = [int(r.uniform() * cfg.num_classes) for _ in range(B)]
        else:
            self.targets = [[int(r.uniform() * V) for _ in range(B)] for _ in range(T)]
        self.state0 = random_state(r, L, S, B, H)
        self.masks = dropout_masks(cfg, r, T, B) if cfg.dropout > 0 else None
        C = cfg.cond_size
        if cfg.cond == "label":
            self.cond = [int(r.uniform() * C) for _ in range(B)]
        elif cfg.cond == "vector":
            self.cond = [[2.0 * r.uniform() - 1.0 for _ in range(C)] for _ in range(B)]
        else:
            self.cond = None
        self.dfinal = random_state(r, L, S, B, H)
        self.lengths = ragged_lengths(r, T, B) if ragged else None

    @property
    def params(self):
        return unflatten(self.cfg, self.flat)

    def forward(self, flat=None, state0=None, cond=None, with_targets=True):
        """The reference's forward on this problem; flat, state0 and cond replace the problem's own."""
        return forward(self.cfg, unflatten(self.cfg, self.flat if flat is None else flat),
                       self.tokens, self.targets if with_targets else None,
                       self.state0 if state0 is None else state0, self.masks, self.lengths,
                       self.cond if cond is None else cond)


def random_state(r, L, S, B, H):
    return [[[[2.0 * r.uniform() - 1.0 for _ in range(H)] for _ in range(B)] for _ in range(S)]
            for _ in range(L)]


def ragged_lengths(r, T, B):
    """B lengths uniform in [1, T]; then one stream, drawn, gets a length in [1, T - 1]."""
    lengths = [1 + int(r.uniform() * T) for _ in range(B)]
    short = int(r.uniform() * B)
    if T >= 2:
        lengths[short] = 1 + int(r.uniform() * (T - 1))
    return lengths


def flatten_state(state):
    return [x for layer in state for s in layer for row in s for x in row]


def unflatten_state(flat, L, S, B, H):
    it = iter(flat)
    return [[[[next(it) for _ in range(H)] for _ in range(B)] for _ in range(S)] for _ in range(L)]


# ---- comparing the core's float32 with the reference's float64

def at_logits(fwd, logits):
    """The reference's forward fwd with the core's logits in place of its own: the backward is
    compared at the forward the core took. The softmax turns the logits' absolute round-off into an
    error of the same size in dlogits, and so into a relative error of that size in every gradient:
    a draw of rnn_relu whose states grew to 19 had logits of 11, 7e-6 (7 ulp) apart, and every
    recurrent gradient 2e-5 apart (at the tolerance); with the core's logits the same gradients
    agree within 1e-7. That error is the forward's, and the forward is compared on its own."""
    return dataclasses.replace(fwd, logits=[[[float(z) for z in row] for row in step] for step in logits]
                               if len(logits.shape) == 3 else [[float(z) for z in row] for row in logits])


# An rnn_relu unit whose preactivation is within KINK_MARGIN of its terms' absolute sum of 0 can be on
# in float32 and off in float64: the two backward passes then take different branches of the kink
# and differ by that unit's whole gradient. The core's preactivations were within 8.9e-7 of the
# reference's (relative to that sum) over 1500 random rnn_relu problems, and a sum of up to 42 float32
# products is off by at most ~42 u = 2.5e-6 of it: 1e-5 is 11 times the worst seen and 4 times that
# bound. About 0.4% of rnn_relu draws (0.1% of all) have such a unit; they are left out.
KINK_MARGIN = 1e-5


def near_a_kink(cfg, params, fwd):
    """Whether a relu preactivation of the reference's forward fwd is within KINK_MARGIN of 0."""
    if cfg.cell != "rnn_relu":
        return False
    layers = [layer_view(cfg, params, l) for l in range(cfg.num_layers)]
    for step in fwd.caches:
        for stream in step:
            for p, cache in zip(layers, stream):
                if cache is None:   # past a record's end
                    continue
                x, h_prev, _ = cache
                for j in range(len(p.b_ih)):
                    parts = [w * v for w, v in zip(p.w_ih[j], x)] + [w * v for w, v in zip(p.w_hh[j], h_prev)] + \
                            [p.b_ih[j], p.b_hh[j]]
                    if abs(math.fsum(parts)) <= KINK_MARGIN * sum(abs(v) for v in parts):
                        return True
    return False


class TermScales:
    """The reference's gradients are sums over steps and streams (add_into, add_outer), and float32
    keeps each term to its own size, not to the sum's: where the terms cancel, the round-off is that
    of the terms. With this watching, the reference's calls record for each gradient entry the sum
    of its terms' magnitudes; scale(g) is the largest over g's entries, the scale a tolerance for g
    is relative to. (One draw's condition-vector gradient was 0.144 of terms summing to 2.37 in
    magnitude: the core's, 9.9e-6 off, was 7e-5 of the one and 4e-6 of the other.)"""

    MODULES = (reference_cells, reference_model, reference_seq2seq)   # where the sums are taken

    def __init__(self):
        self.sums = {}   # id(a row summed into) -> that row's sums of |term|
        self.rows = []   # every such row, held so that no other list takes its id meanwhile

    def __enter__(self):
        self.plain = reference_model.add_into, reference_model.add_outer
        for module in self.MODULES:
            module.add_into, module.add_outer = self.add_into, self.add_outer
        return self

    def __exit__(self, *_):
        for module in self.MODULES:
            module.add_into, module.add_outer = self.plain

    def row(self, g):
        if id(g) not in self.sums:
            self.sums[id(g)] = [0.0] * len(g)
            self.rows.append(g)
        return self.sums[id(g)]

    def add_into(self, g, a):
        sums = self.row(g)
        for i, x in enumerate(a):
            sums[i] += abs(x)
        return self.plain[0](g, a)

    def add_outer(self, G, a, b):
        for row, x in zip(G, a):
            sums = self.row(row)
            for j, y in enumerate(b):
                sums[j] += abs(x * y)
        return self.plain[1](G, a, b)

    def scale(self, g):
        rows = g if g and isinstance(g[0], list) else [g]
        return max((max(self.sums.get(id(row), [0.0]), default=0.0) for row in rows), default=0.0)
