"""One training step, composed from the pieces exactly as the C core's single call does it."""

from .model import backward, flatten, forward, unflatten
from .optim import clip_by_norm, clip_by_value, global_norm


def train_step(cfg, params, optimizer, tokens, targets, state0, masks=None, clip_value=0.0, clip_norm=0.0,
               lengths=None, cond=None):
    """Forward, then update_step. lengths and cond go to forward as they are (None: every stream
    runs T steps; no condition).
    Returns (new params, loss, final state, gradient norm after the value clip and before the norm clip)."""
    fwd = forward(cfg, params, tokens, targets, state0, masks, lengths, cond)
    new_params, norm = update_step(cfg, params, optimizer, fwd, clip_value, clip_norm)
    return new_params, fwd.loss, fwd.final_state, norm


def update_step(cfg, params, optimizer, fwd, clip_value=0.0, clip_norm=0.0):
    """Backward of the forward fwd, clip (by value, then by global norm; 0 = off), update.
    Returns (new params, gradient norm after the value clip and before the norm clip)."""
    grads, _, _ = backward(cfg, params, fwd)
    g = flatten(cfg, grads)
    if clip_value > 0.0:
        clip_by_value(g, clip_value)
    norm = clip_by_norm(g, clip_norm) if clip_norm > 0.0 else global_norm(g)
    p = flatten(cfg, params)
    optimizer.update(p, g)
    return unflatten(cfg, p), norm
