"""Random small problems for tests: configurations, weights, tokens, states and masks from one seed."""

from minrnn.reference import CELLS, Rng, dropout_masks, param_count

KINDS = list(CELLS)


class Problem:
    """Everything one forward/backward needs, drawn from `seed`.
    Weights uniform(-scale, scale) so that the nonlinearities work away from their linear region;
    initial states uniform(-1, 1), so gradients with respect to them are not trivially zero."""

    def __init__(self, cfg, T, B, seed, scale=1.0):
        r = Rng(seed)
        V, H, L, S = cfg.vocab_size, cfg.hidden_size, cfg.num_layers, cfg.num_states
        self.cfg, self.T, self.B = cfg, T, B
        self.flat = [(2.0 * r.uniform() - 1.0) * scale for _ in range(param_count(cfg))]
        self.tokens = [[int(r.uniform() * V) for _ in range(B)] for _ in range(T)]
        self.targets = [[int(r.uniform() * V) for _ in range(B)] for _ in range(T)]
        self.state0 = [[[[2.0 * r.uniform() - 1.0 for _ in range(H)] for _ in range(B)] for _ in range(S)]
                       for _ in range(L)]
        self.masks = dropout_masks(cfg, r, T, B) if cfg.dropout > 0 else None


def flatten_state(state):
    return [x for layer in state for s in layer for row in s for x in row]


def unflatten_state(flat, L, S, B, H):
    it = iter(flat)
    return [[[[next(it) for _ in range(H)] for _ in range(B)] for _ in range(S)] for _ in range(L)]
