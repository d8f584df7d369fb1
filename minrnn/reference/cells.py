"""One time step of each recurrent cell, forward and backward, for a single stream.

The equations are PyTorch's (nn.RNN, nn.LSTM, nn.GRU). Every cell has the same interface:

    step_forward(x, state, p) -> (new_state, cache)
    step_backward(dstate, cache, p, g) -> (dx, dstate_prev)

x is the layer input (In); state is [h] for RNN and GRU, [h, c] for LSTM, each (H); p holds the
layer's weights w_ih (G*H, In), w_hh (G*H, H), b_ih, b_hh (G*H); g holds their gradients, which
backward adds into. dstate is the gradient of the loss with respect to new_state.

CELLS at the end lists every cell by name; nothing else in the reference names a cell. The C core
has the twin table (cell_kinds in cext/cells.c), with step functions of the same names.
"""

import math
from functools import partial
from typing import Callable, NamedTuple

from .tensor import add_into, add_outer, matvec, matvec_t, sigmoid, vsum


def add_layer_grads(g, dgx, x, dgh, h_prev):
    """Gradients of W_ih x + b_ih (given dgx, the gradient of that sum) and of W_hh h_prev + b_hh
    (given dgh). The two are the same except in gates that combine them nonlinearly (GRU's n)."""
    add_outer(g.w_ih, dgx, x)
    add_into(g.b_ih, dgx)
    add_outer(g.w_hh, dgh, h_prev)
    add_into(g.b_hh, dgh)


# ---- vanilla RNN: h = act(W_ih x + b_ih + W_hh h_prev + b_hh), act = tanh or relu

def rnn_step_forward(x, state, p, relu=False):
    (h_prev,) = state
    pre = vsum(matvec(p.w_ih, x), p.b_ih, matvec(p.w_hh, h_prev), p.b_hh)  # (H)
    h = [max(a, 0.0) for a in pre] if relu else [math.tanh(a) for a in pre]
    return [h], (x, h_prev, h)


def rnn_step_backward(dstate, cache, p, g, relu=False):
    (dh,) = dstate
    x, h_prev, h = cache
    if relu:  # relu'(a) = 1 where the output is positive, else 0 (PyTorch's choice at a = 0)
        dgx = [d if hj > 0.0 else 0.0 for d, hj in zip(dh, h)]
    else:     # tanh'(a) = 1 - tanh(a)^2
        dgx = [d * (1.0 - hj * hj) for d, hj in zip(dh, h)]
    add_layer_grads(g, dgx, x, dgx, h_prev)  # dgh = dgx: one sum of both parts
    return matvec_t(p.w_ih, dgx), [matvec_t(p.w_hh, dgx)]


# ---- LSTM, gates in PyTorch's order i, f, g, o:
#   [i, f, g, o] = [sigmoid, sigmoid, tanh, sigmoid](W_ih x + b_ih + W_hh h_prev + b_hh)
#   c = f * c_prev + i * g
#   h = o * tanh(c)

def lstm_step_forward(x, state, p):
    h_prev, c_prev = state
    H = len(h_prev)
    pre = vsum(matvec(p.w_ih, x), p.b_ih, matvec(p.w_hh, h_prev), p.b_hh)  # (4H)
    i = [sigmoid(a) for a in pre[0:H]]
    f = [sigmoid(a) for a in pre[H:2 * H]]
    g = [math.tanh(a) for a in pre[2 * H:3 * H]]
    o = [sigmoid(a) for a in pre[3 * H:4 * H]]
    c = [fj * cp + ij * gj for fj, cp, ij, gj in zip(f, c_prev, i, g)]
    tanh_c = [math.tanh(cj) for cj in c]
    h = [oj * tj for oj, tj in zip(o, tanh_c)]
    return [h, c], (x, h_prev, c_prev, i, f, g, o, tanh_c)


def lstm_step_backward(dstate, cache, p, grads):
    dh, dc_next = dstate
    x, h_prev, c_prev, i, f, g, o, tanh_c = cache
    # h = o * tanh(c): gradient to o, and to c on top of what flows in from the next step
    do = [d * t for d, t in zip(dh, tanh_c)]
    dc = [dcn + d * oj * (1.0 - t * t) for dcn, d, oj, t in zip(dc_next, dh, o, tanh_c)]
    # c = f * c_prev + i * g
    di = [d * gj for d, gj in zip(dc, g)]
    df = [d * cp for d, cp in zip(dc, c_prev)]
    dg = [d * ij for d, ij in zip(dc, i)]
    dc_prev = [d * fj for d, fj in zip(dc, f)]
    # through the gate nonlinearities: sigmoid' = s (1 - s), tanh' = 1 - t^2
    dgx = ([d * s * (1.0 - s) for d, s in zip(di, i)]
           + [d * s * (1.0 - s) for d, s in zip(df, f)]
           + [d * (1.0 - t * t) for d, t in zip(dg, g)]
           + [d * s * (1.0 - s) for d, s in zip(do, o)])  # (4H)
    add_layer_grads(grads, dgx, x, dgx, h_prev)  # dgh = dgx: one sum of both parts
    return matvec_t(p.w_ih, dgx), [matvec_t(p.w_hh, dgx), dc_prev]


# ---- GRU, gates in PyTorch's order r, z, n:
#   r = sigmoid(W_ir x + b_ir + W_hr h_prev + b_hr)
#   z = sigmoid(W_iz x + b_iz + W_hz h_prev + b_hz)
#   n = tanh(W_in x + b_in + r * (W_hn h_prev + b_hn))
#   h = (1 - z) * n + z * h_prev

def gru_step_forward(x, state, p):
    (h_prev,) = state
    H = len(h_prev)
    gx = vsum(matvec(p.w_ih, x), p.b_ih)        # (3H) input part
    gh = vsum(matvec(p.w_hh, h_prev), p.b_hh)   # (3H) recurrent part; its n-slice is gated by r
    r = [sigmoid(a + b) for a, b in zip(gx[0:H], gh[0:H])]
    z = [sigmoid(a + b) for a, b in zip(gx[H:2 * H], gh[H:2 * H])]
    hn = gh[2 * H:3 * H]
    n = [math.tanh(a + rj * b) for a, rj, b in zip(gx[2 * H:3 * H], r, hn)]
    h = [(1.0 - zj) * nj + zj * hp for zj, nj, hp in zip(z, n, h_prev)]
    return [h], (x, h_prev, r, z, n, hn)


def gru_step_backward(dstate, cache, p, grads):
    (dh,) = dstate
    x, h_prev, r, z, n, hn = cache
    # h = (1 - z) * n + z * h_prev
    dn = [d * (1.0 - zj) for d, zj in zip(dh, z)]
    dz = [d * (hp - nj) for d, hp, nj in zip(dh, h_prev, n)]
    dh_prev = [d * zj for d, zj in zip(dh, z)]
    # n = tanh(a_n), a_n = xn + r * hn
    dan = [d * (1.0 - nj * nj) for d, nj in zip(dn, n)]
    dr = [d * b for d, b in zip(dan, hn)]
    dhn = [d * rj for d, rj in zip(dan, r)]
    dar = [d * s * (1.0 - s) for d, s in zip(dr, r)]
    daz = [d * s * (1.0 - s) for d, s in zip(dz, z)]
    dgx = dar + daz + dan  # (3H) gradient of W_ih x + b_ih
    dgh = dar + daz + dhn  # (3H) gradient of W_hh h_prev + b_hh
    add_layer_grads(grads, dgx, x, dgh, h_prev)
    dh_prev = vsum(dh_prev, matvec_t(p.w_hh, dgh))
    return matvec_t(p.w_ih, dgx), [dh_prev]


class CellKind(NamedTuple):
    """What the model needs to know about a cell."""
    step_forward: Callable
    step_backward: Callable
    gates: int   # G: rows of weight_ih and weight_hh per hidden unit
    states: int  # S: state vectors per layer


# Every cell, by the name of its PyTorch RNN mode (RNN_TANH, RNN_RELU, LSTM, GRU) in lower case.
# Adding a cell: its two step functions above, a row here, and its twin in cext/cells.c.
CELLS = {
    "lstm": CellKind(lstm_step_forward, lstm_step_backward, 4, 2),
    "gru": CellKind(gru_step_forward, gru_step_backward, 3, 1),
    "rnn_tanh": CellKind(rnn_step_forward, rnn_step_backward, 1, 1),
    "rnn_relu": CellKind(partial(rnn_step_forward, relu=True), partial(rnn_step_backward, relu=True), 1, 1),
}
