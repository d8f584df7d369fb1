"""Choosing the next token from logits: temperature, argmax, top-k, top-p.

The C core repeats these double-precision operations in the same order, so for the same float32
logits and RNG state both choose the same token, bit for bit.
"""

import math


def argmax(logits):
    """The index of the largest logit; the lowest index on ties."""
    best = 0
    for i, a in enumerate(logits):
        if a > logits[best]:
            best = i
    return best


def check_logits(logits):
    """A logit of -inf gives its token probability 0 (a token ruled out); NaN or +inf, or no finite
    logit at all, leave no distribution to sample from."""
    if any(math.isnan(a) or a == math.inf for a in logits):
        raise ValueError("logits must not be NaN or +inf")
    if max(logits) == -math.inf:
        raise ValueError("at least one logit must be finite")


def sample(logits, rng, temperature=1.0, top_k=0, top_p=1.0):
    """Draw a token from softmax(logits / temperature), restricted to the top_k largest logits
    (0 = all) and then to the smallest set of those whose probability mass reaches top_p.
    temperature 0 means argmax and draws no random number. Each draw uses one rng.uniform()."""
    check_logits(logits)
    if temperature == 0.0:
        return argmax(logits)
    m = max(logits)
    w = [math.exp((a - m) / temperature) for a in logits]  # unnormalized probabilities
    if top_k <= 0 and top_p >= 1.0:
        order = list(range(len(logits)))
    else:  # candidates best first; ties go to the lower index
        order = sorted(range(len(logits)), key=lambda i: (-logits[i], i))
        if top_k > 0:
            order = order[:top_k]
        if top_p < 1.0:
            mass = 0.0
            for i in order:
                mass += w[i]
            need, cum, n = top_p * mass, 0.0, 0
            while n < len(order) and cum < need:
                cum += w[order[n]]
                n += 1
            order = order[:max(n, 1)]
    total = 0.0
    for i in order:
        total += w[i]
    u = rng.uniform() * total
    cum = 0.0
    for i in order:
        cum += w[i]
        if u < cum:
            return i
    return order[-1]  # only reached through round-off when u is within an ulp of total
