"""Karpathy's min-char-rnn (min-char-rnn.py, 2015) as a class: the numpy baseline of tools/bench.py.

The same computation as the original script, step for step: float64, inputs as one-hot column
vectors (V, 1) multiplied densely by Wxh, a Python loop over the seq_length steps forward and back,
the loss summed (not averaged) over the steps, every gradient clipped elementwise to [-5, 5], and
Adagrad with eps inside the root, p -= lr g / sqrt(m + 1e-8). The hidden state hprev is carried from
one step to the next. Only the packaging differs: parameters live on an object, not in globals.

Shapes: Wxh (H, V), Whh (H, H), Why (V, H), bh (H, 1), by (V, 1), hidden states (H, 1).
"""

import numpy as np

NAMES = ("Wxh", "Whh", "Why", "bh", "by")


class MinCharRNN:
    def __init__(self, Wxh, Whh, Why, bh, by, lr=0.1):
        self.p = {name: np.array(a, dtype=np.float64) for name, a in zip(NAMES, (Wxh, Whh, Why, bh, by))}
        self.mem = {name: np.zeros_like(a) for name, a in self.p.items()}  # Adagrad's sums of g^2
        self.lr = lr
        self.hprev = np.zeros((self.p["Whh"].shape[0], 1))

    @classmethod
    def from_minrnn(cls, tensors, lr=0.1):
        """The same start as a minrnn (or PyTorch) 1-layer tanh RNN, from its named tensors.
        min-char-rnn has one hidden bias where PyTorch has two: bh = bias_ih + bias_hh (a minrnn
        model with --biases 1 has bias_ih only)."""
        bh = tensors["bias_ih_l0"].astype(np.float64) + tensors.get("bias_hh_l0", 0.0)
        return cls(tensors["weight_ih_l0"], tensors["weight_hh_l0"], tensors["decoder.weight"],
                   bh[:, None], tensors["decoder.bias"][:, None], lr)

    def loss_and_grads(self, inputs, targets, hprev):
        """inputs, targets: lists of seq_length token ids. Returns (summed loss, grads, last h)."""
        Wxh, Whh, Why, bh, by = (self.p[name] for name in NAMES)
        V = Why.shape[0]
        xs, hs, ps = {}, {-1: np.copy(hprev)}, {}
        loss = 0.0
        for t in range(len(inputs)):
            xs[t] = np.zeros((V, 1))  # one-hot
            xs[t][inputs[t]] = 1
            hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
            ys = np.dot(Why, hs[t]) + by  # unnormalized log-probabilities of the next char
            ps[t] = np.exp(ys) / np.sum(np.exp(ys))
            loss += -np.log(ps[t][targets[t], 0])
        g = {name: np.zeros_like(a) for name, a in self.p.items()}
        dhnext = np.zeros_like(hs[0])
        for t in reversed(range(len(inputs))):
            dy = np.copy(ps[t])
            dy[targets[t]] -= 1  # d loss / d ys = softmax - one-hot(target)
            g["Why"] += np.dot(dy, hs[t].T)
            g["by"] += dy
            dh = np.dot(Why.T, dy) + dhnext
            dhraw = (1 - hs[t] * hs[t]) * dh  # through tanh
            g["bh"] += dhraw
            g["Wxh"] += np.dot(dhraw, xs[t].T)
            g["Whh"] += np.dot(dhraw, hs[t - 1].T)
            dhnext = np.dot(Whh.T, dhraw)
        for dparam in g.values():
            np.clip(dparam, -5, 5, out=dparam)  # against exploding gradients
        return loss, g, hs[len(inputs) - 1]

    def step(self, inputs, targets):
        """One training step from the carried state; returns the summed loss."""
        loss, g, self.hprev = self.loss_and_grads(inputs, targets, self.hprev)
        for name, param in self.p.items():
            self.mem[name] += g[name] * g[name]
            param += -self.lr * g[name] / np.sqrt(self.mem[name] + 1e-8)  # Adagrad
        return loss
