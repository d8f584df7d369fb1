"""Gradient clipping and optimizer updates on the flat parameter block (lists of floats, in place)."""

import math
from dataclasses import dataclass, field


def clip_by_value(grads, limit):
    """min-char-rnn's clip: every element into [-limit, limit]."""
    for j, g in enumerate(grads):
        grads[j] = min(max(g, -limit), limit)


def global_norm(grads):
    return math.sqrt(sum(g * g for g in grads))


def clip_by_norm(grads, max_norm):
    """PyTorch's clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is < 1.
    Returns the norm before clipping."""
    norm = global_norm(grads)
    scale = max_norm / (norm + 1e-6)
    if scale < 1.0:
        for j, g in enumerate(grads):
            grads[j] = g * scale
    return norm


# ---- update rules; m and v are the optimizer's moment arrays, the same length as params

def decay_weights(params, lr, weight_decay):
    """Decoupled weight decay (Loshchilov & Hutter's AdamW, for every rule), before the rule's
    update: p *= 1 - lr weight_decay."""
    factor = 1.0 - lr * weight_decay
    for j, p in enumerate(params):
        params[j] = p * factor


def sgd_update(params, grads, m, lr, momentum):
    """PyTorch's SGD with momentum: m = momentum m + g; p -= lr m."""
    for j, g in enumerate(grads):
        m[j] = momentum * m[j] + g
        params[j] -= lr * m[j]


def adagrad_update(params, grads, m, lr, eps):
    """min-char-rnn's Adagrad: m += g^2; p -= lr g / sqrt(m + eps)."""
    for j, g in enumerate(grads):
        m[j] += g * g
        params[j] -= lr * g / math.sqrt(m[j] + eps)


def rmsprop_update(params, grads, m, lr, alpha, eps):
    """char-rnn's RMSprop (torch optim.rmsprop): m = alpha m + (1 - alpha) g^2; p -= lr g / (sqrt(m) + eps)."""
    for j, g in enumerate(grads):
        m[j] = alpha * m[j] + (1.0 - alpha) * g * g
        params[j] -= lr * g / (math.sqrt(m[j]) + eps)


def adam_update(params, grads, m, v, step, lr, beta1, beta2, eps):
    """Adam (Kingma & Ba 2015, Algorithm 1); step counts from 1."""
    c1 = 1.0 - beta1 ** step
    c2 = 1.0 - beta2 ** step
    for j, g in enumerate(grads):
        m[j] = beta1 * m[j] + (1.0 - beta1) * g
        v[j] = beta2 * v[j] + (1.0 - beta2) * g * g
        params[j] -= lr * (m[j] / c1) / (math.sqrt(v[j] / c2) + eps)


# Every update rule with its hyperparameters' defaults: SGD with momentum and Adagrad as
# min-char-rnn, RMSprop as char-rnn (decay 0.95); Adam's lr a little above the usual 1e-3 to 2e-3,
# which trains these models faster (on tinyshakespeare, 3e-3 reached 1.68 nats/char in 139 s where
# 2e-3 needed 175 s for 1.73). The C core, the trainer and the command line take theirs from here.
OPTIMIZERS = {
    "adam": dict(lr=3e-3, beta1=0.9, beta2=0.999, eps=1e-8),
    "rmsprop": dict(lr=2e-3, alpha=0.95, eps=1e-8),
    "adagrad": dict(lr=0.1, eps=1e-8),
    "sgd": dict(lr=0.1, momentum=0.9),
}
HYPERPARAMETERS = ("lr", "momentum", "alpha", "beta1", "beta2", "eps", "weight_decay")   # weight_decay: 0 by default


def hyperparameters(kind, **given):
    """All of HYPERPARAMETERS for the rule `kind`: the values given (None = the default), the
    defaults for the rest, and 0 for those the rule does not use."""
    if kind not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {kind!r}")
    unknown = set(given) - set(HYPERPARAMETERS)
    if unknown:
        raise TypeError(f"unknown hyperparameters: {', '.join(sorted(unknown))}")
    return {name: given[name] if given.get(name) is not None else OPTIMIZERS[kind].get(name, 0.0)
            for name in HYPERPARAMETERS}


@dataclass
class Optimizer:
    """An update rule, its hyperparameters (None = OPTIMIZERS' default) and its state (moments m, v
    and the step count)."""
    kind: str                 # a key of OPTIMIZERS
    size: int                 # length of the parameter block
    lr: float = None
    momentum: float = None    # sgd
    alpha: float = None       # rmsprop's decay of the mean square
    beta1: float = None       # adam
    beta2: float = None       # adam
    eps: float = None
    weight_decay: float = None   # every rule: decay_weights before the update
    step: int = 0
    m: list = field(default=None, repr=False)
    v: list = field(default=None, repr=False)

    def __post_init__(self):
        given = {name: getattr(self, name) for name in HYPERPARAMETERS}
        for name, value in hyperparameters(self.kind, **given).items():
            setattr(self, name, value)
        self.m = [0.0] * self.size if self.m is None else self.m
        self.v = [0.0] * self.size if self.v is None else self.v

    def update(self, params, grads):
        self.step += 1
        if self.weight_decay:
            decay_weights(params, self.lr, self.weight_decay)
        if self.kind == "sgd":
            sgd_update(params, grads, self.m, self.lr, self.momentum)
        elif self.kind == "adagrad":
            adagrad_update(params, grads, self.m, self.lr, self.eps)
        elif self.kind == "rmsprop":
            rmsprop_update(params, grads, self.m, self.lr, self.alpha, self.eps)
        else:
            adam_update(params, grads, self.m, self.v, self.step, self.lr, self.beta1, self.beta2, self.eps)
