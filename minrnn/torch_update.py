"""minrnn's gradient clipping and update rules (cext/optim.c, minrnn/reference/optim.py) on a torch
module's parameters: what the torch engine steps with, so that it makes the C engine's steps to
float32 round-off (torch.optim's Adam divides by sqrt(v / c2) + eps in another order, and has no
min-char-rnn Adagrad).

Optional, as minrnn.torch: this module needs torch. The moments live beside each parameter in the
module's own layout; the update is elementwise, so the layout changes no value. A frozen parameter
(one bias's zero bias_hh) has no gradient: it counts as zero, which moves neither it nor its moments.
"""

import math

import torch

from minrnn.reference.optim import hyperparameters


class Update:
    """The update rule `kind` ("adam", "rmsprop", "adagrad", "sgd") with its hyperparameters (None:
    minrnn's defaults), clip_value and clip_norm (0: off), over `params` (tensors with .grad)."""

    def __init__(self, params, kind, clip_value=0.0, clip_norm=0.0, **given):
        self.params = list(params)
        self.kind, self.clip_value, self.clip_norm = kind, float(clip_value), float(clip_norm)
        self.h = hyperparameters(kind, **given)
        self.step_count = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self, loss):
        """Clip, then update, as the C engine's training step ends: nothing changes (and False is
        returned) when the loss or the gradient's norm is not finite. The norm (before clipping) is
        summed in double, as the core sums it; returns (True, norm) or (False, norm)."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        if self.clip_value > 0:
            for g in grads:
                g.clamp_(-self.clip_value, self.clip_value)
        norm = math.sqrt(sum(float(g.double().square().sum()) for g in grads))
        if not (math.isfinite(float(loss)) and math.isfinite(norm)):
            return False, norm
        if self.clip_norm > 0:
            scale = self.clip_norm / (norm + 1e-6)
            if scale < 1.0:
                for g in grads:
                    g.mul_(scale)   # a float32 multiply by the float32 scale, as the core's
        self.step_count += 1
        h, t = self.h, self.step_count
        lr, wd = (torch.tensor(h[name], dtype=torch.float32) for name in ("lr", "weight_decay"))
        # decoupled, in double as the core; None without it: as the core, no pass over the weights
        decay = torch.tensor(1.0 - float(lr) * float(wd), dtype=torch.float32) if float(wd) > 0 else None
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            if decay is not None:
                p.mul_(decay)
            if self.kind == "sgd":        # m = momentum m + g; p -= lr m
                m.mul_(h["momentum"]).add_(g)
                p.sub_(lr * m)
            elif self.kind == "adagrad":  # m += g^2; p -= lr g / sqrt(m + eps)
                m.add_(g * g)
                p.sub_(lr * g / torch.sqrt(m + h["eps"]))
            elif self.kind == "rmsprop":  # m = alpha m + (1 - alpha) g^2; p -= lr g / (sqrt(m) + eps)
                m.mul_(h["alpha"]).add_((1.0 - h["alpha"]) * g * g)
                p.sub_(lr * g / (torch.sqrt(m) + h["eps"]))
            else:                         # Kingma & Ba, Algorithm 1: c1 = 1 - beta1^t, c2 = 1 - beta2^t
                c1 = torch.tensor(1.0 - h["beta1"] ** t, dtype=torch.float32)
                c2 = torch.tensor(1.0 - h["beta2"] ** t, dtype=torch.float32)
                m.mul_(h["beta1"]).add_((1.0 - h["beta1"]) * g)
                v.mul_(h["beta2"]).add_((1.0 - h["beta2"]) * g * g)
                p.sub_(lr * (m / c1) / (torch.sqrt(v / c2) + h["eps"]))
        return True, norm
