"""The generation loop written out in Python, a step and a draw at a time through the binding
(Model.step, core.sample): the specification that the library's one loop (minrnn_generate_*,
core.Generation) is held to, token for token."""

import numpy as np

from minrnn import core


def spec_generate(model, fed, num, length, seeds, temperature=1.0, top_k=0, top_p=1.0, end=None, banned=None,
                  stop=(), cond=None):
    """num streams from zero states, each fed `fed` (one step per id), then drawing up to `length`
    tokens each, in stream order at every step: from one generator (seeds an int) or each from its
    own (a list of num seeds). A stream ends when it draws `end` (not kept) or once its draws end
    with `stop` (kept); `banned` is never drawn; an ended stream is stepped with its last token (or
    `end`). Returns [the ids each stream drew]."""
    rngs = [core.Rng(s) for s in seeds] if isinstance(seeds, list) else [core.Rng(seeds)]
    state = model.zero_state(num)
    logits = None
    for token in fed:
        logits = model.step(np.full(num, token, dtype=np.int32), state, cond)
    out, running = [[] for _ in range(num)], [True] * num
    tokens = np.full(num, end if end is not None else fed[-1], dtype=np.int32)
    for n in range(length):
        if banned is not None:
            logits[:, banned] = -np.inf
        for b in range(num):
            if not running[b]:
                continue
            token = core.sample(logits[b], rngs[b if len(rngs) > 1 else 0], temperature, top_k, top_p)
            if token == end:
                running[b] = False
                continue
            out[b].append(token)
            tokens[b] = token
            if len(stop) and out[b][-len(stop):] == list(stop):
                running[b] = False
        if not any(running) or n + 1 == length:
            break
        logits = model.step(tokens, state, cond)
    return out
