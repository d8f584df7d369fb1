"""Finite-difference gradient checks of the reference, in float64, for every cell, input mode,
depth and dropout setting, on small shapes drawn by hypothesis."""

import pytest
from hypothesis import given, settings, strategies as st

from minrnn.reference import Config, backward, flatten, forward, unflatten
from refutil import KINDS, Problem, flatten_state, unflatten_state

STEP = 1e-5
# Relative error of an analytic gradient a against the central difference n:
#     |a - n| / max(|a|, |n|, FLOOR)
# Central differences in float64 have an absolute error of about eps*|loss|/STEP ~ 1e-10 from
# round-off, plus STEP^2 * |loss'''| / 6 ~ 1e-10 from truncation. Below FLOOR the denominator stops
# shrinking, so for tiny gradients the check becomes |a - n| < 1e-10: still a hard bound, and not
# one that noise in a 1e-12 gradient could fail.
FLOOR = 1e-4
MAX_REL_ERROR = 1e-6


def rel_error(a, n):
    return abs(a - n) / max(abs(a), abs(n), FLOOR)


def central_difference(loss_of, xs, i):
    old = xs[i]
    xs[i] = old + STEP
    up = loss_of(xs)
    xs[i] = old - STEP
    down = loss_of(xs)
    xs[i] = old
    return (up - down) / (2 * STEP)


@pytest.mark.parametrize("dropout", [0.0, 0.5])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("embed", [False, True])
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=15, deadline=None)
@given(V=st.integers(2, 5), H=st.integers(1, 4), E=st.integers(1, 3), T=st.integers(1, 3),
       B=st.integers(1, 2), seed=st.integers(0, 2**63))
def test_gradients_match_central_differences(kind, embed, layers, dropout, V, H, E, T, B, seed):
    cfg = Config(cell=kind, vocab_size=V, hidden_size=H, embed_size=E if embed else 0,
                     num_layers=layers, dropout=dropout)
    pb = Problem(cfg, T, B, seed)
    L, S = cfg.num_layers, cfg.num_states

    def loss_of_params(flat):
        return forward(cfg, unflatten(cfg, flat), pb.tokens, pb.targets, pb.state0, pb.masks).loss

    def loss_of_state(flat_state):
        state0 = unflatten_state(flat_state, L, S, B, H)
        return forward(cfg, unflatten(cfg, pb.flat), pb.tokens, pb.targets, state0, pb.masks).loss

    params = unflatten(cfg, pb.flat)
    grads, dstate0 = backward(cfg, params, forward(cfg, params, pb.tokens, pb.targets, pb.state0, pb.masks))
    analytic = flatten(cfg, grads)
    for i in range(len(pb.flat)):
        n = central_difference(loss_of_params, pb.flat, i)
        assert rel_error(analytic[i], n) < MAX_REL_ERROR, (i, analytic[i], n)
    state = flatten_state(pb.state0)
    analytic_state = flatten_state(dstate0)
    for i in range(len(state)):
        n = central_difference(loss_of_state, state, i)
        assert rel_error(analytic_state[i], n) < MAX_REL_ERROR, ("state", i, analytic_state[i], n)
