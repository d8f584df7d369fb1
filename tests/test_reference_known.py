"""Known answers small enough to work out by hand, written here from the equations, not the code."""

import math

import pytest

from minrnn.reference import Config, Rng, backward, forward, splitmix64


def sigmoid(a):
    return 1.0 / (1.0 + math.exp(-a))


def test_one_step_tanh_rnn():
    # V = 2 (one-hot), H = 1. Token 0, target 1, h0 = 1.
    # pre = W_ih[0][0] + W_hh h0 + b_ih + b_hh = 0.5 + 0.5 + 0 + 0 = 1;  h = tanh(1)
    # logits = decoder.weight h + decoder.bias = [h, -h]
    # loss = log(e^h + e^-h) - (-h)
    cfg = Config(vocab_size=2, hidden_size=1, cell="rnn_tanh")
    params = {"weight_ih_l0": [[0.5, -3.0]], "weight_hh_l0": [[0.5]], "bias_ih_l0": [0.0], "bias_hh_l0": [0.0],
              "decoder.weight": [[1.0], [-1.0]], "decoder.bias": [0.0, 0.0]}
    fwd = forward(cfg, params, [[0]], [[1]], [[[[1.0]]]])
    h = math.tanh(1.0)
    assert fwd.final_state[0][0][0][0] == pytest.approx(h, rel=1e-15)
    assert fwd.logits[0][0] == pytest.approx([h, -h], rel=1e-15)
    assert fwd.loss == pytest.approx(math.log(math.exp(h) + math.exp(-h)) + h, rel=1e-14)

    # dloss/dlogits = softmax - onehot(1) = [s, -s], s = sigmoid(2h)
    # dh = 1 * s + (-1) * (-s) = 2s;  dpre = dh (1 - h^2)
    grads, dstate0, dcond = backward(cfg, params, fwd)
    assert dcond is None  # no condition
    s = sigmoid(2 * h)
    dpre = 2 * s * (1 - h * h)
    assert [row[0] for row in grads["decoder.weight"]] == pytest.approx([s * h, -s * h], rel=1e-14)
    assert grads["decoder.bias"] == pytest.approx([s, -s], rel=1e-14)
    assert grads["weight_ih_l0"][0] == pytest.approx([dpre, 0.0], rel=1e-14)  # the input is one-hot [1, 0]
    assert grads["weight_hh_l0"][0][0] == pytest.approx(dpre * 1.0, rel=1e-14)  # times h0 = 1
    assert grads["bias_ih_l0"] == grads["bias_hh_l0"] == pytest.approx([dpre], rel=1e-14)
    assert dstate0[0][0][0][0] == pytest.approx(dpre * 0.5, rel=1e-14)  # times W_hh


def test_lstm_with_one_unit():
    # V = 2 (one-hot), H = 1, input token 1, target 0, h0 = 0.5, c0 = 1.
    # Rows of W_ih are gates i, f, g, o. Every preactivation is W_ih[gate][1] + W_hh[gate] * 0.5:
    #   i: 0 + 0 = 0 -> 1/2      f: 1 - 1 = 0 -> 1/2      g: 0.25 + 0.5 * 0.5 = 0.5 -> tanh(0.5)
    #   o: ln 3 + 0 -> sigmoid(ln 3) = 3/4
    # c = f c0 + i g = 1/2 + tanh(0.5) / 2;  h = 3/4 tanh(c)
    cfg = Config(vocab_size=2, hidden_size=1, cell="lstm")
    params = {"weight_ih_l0": [[9.0, 0.0], [9.0, 1.0], [9.0, 0.25], [9.0, math.log(3.0)]],
              "weight_hh_l0": [[0.0], [-2.0], [0.5], [0.0]],
              "bias_ih_l0": [0.0] * 4, "bias_hh_l0": [0.0] * 4,
              "decoder.weight": [[2.0], [0.0]], "decoder.bias": [0.0, 0.0]}
    fwd = forward(cfg, params, [[1]], [[0]], [[[[0.5]], [[1.0]]]])
    g = math.tanh(0.5)
    c = 0.5 + 0.5 * g
    h = 0.75 * math.tanh(c)
    assert fwd.final_state[0][1][0][0] == pytest.approx(c, rel=1e-15)
    assert fwd.final_state[0][0][0][0] == pytest.approx(h, rel=1e-15)
    # logits [2h, 0], target 0: loss = log(e^{2h} + 1) - 2h
    assert fwd.loss == pytest.approx(math.log(math.exp(2 * h) + 1.0) - 2 * h, rel=1e-14)

    # dloss/dh = 2 (softmax_0 - 1) = -2 (1 - sigmoid(2h)); dc = dh * o * (1 - tanh(c)^2)
    # dc0 = dc * f; the forget gate's preactivation gradient dc * c0 * f (1 - f)
    grads, dstate0, dcond = backward(cfg, params, fwd)
    assert dcond is None  # no condition
    dh = -2.0 * (1.0 - sigmoid(2 * h))
    dc = dh * 0.75 * (1.0 - math.tanh(c) ** 2)
    assert dstate0[0][1][0][0] == pytest.approx(dc * 0.5, rel=1e-14)
    dpre_f = dc * 1.0 * 0.25
    dpre_o = dh * math.tanh(c) * 0.75 * 0.25
    assert grads["bias_ih_l0"][1] == pytest.approx(dpre_f, rel=1e-14)
    assert grads["bias_ih_l0"][3] == pytest.approx(dpre_o, rel=1e-14)
    assert grads["weight_hh_l0"][1][0] == pytest.approx(dpre_f * 0.5, rel=1e-14)  # times h0
    assert grads["weight_ih_l0"][1] == pytest.approx([0.0, dpre_f], rel=1e-14)     # one-hot input [0, 1]


def test_a_labelled_record_classified_with_one_bias():
    # rnn_tanh, V = 2 (one-hot), H = 1, one_bias (no bias_hh), label condition C = 3, K = 2.
    # One stream, T = 2 but a record of one step (lengths [1]); token 0, label 1, class 1, h0 = 1.
    # Step 0: pre = W_ih[0][0] + W_cond[0][1] + W_hh h0 + b_ih = 0.5 + 0.25 + 0.5 + 0 = 1.25; h = tanh(1.25)
    # Step 1 is past the record's end: no step (token 1 would give pre = -3 + 0.25 + 0.5 h).
    # The head reads h: logits [h, -h]; loss = log(e^h + e^-h) + h
    cfg = Config(vocab_size=2, hidden_size=1, cell="rnn_tanh", cond="label", cond_size=3, task="classify",
                 num_classes=2, one_bias=True)
    params = {"cond.weight": [[0.1, 0.25, -7.0]], "weight_ih_l0": [[0.5, -3.0]], "weight_hh_l0": [[0.5]],
              "bias_ih_l0": [0.0], "head.weight": [[1.0], [-1.0]], "head.bias": [0.0, 0.0]}
    fwd = forward(cfg, params, [[0], [1]], [1], [[[[1.0]]]], lengths=[1], cond=[1])
    h = math.tanh(1.25)
    assert fwd.final_state[0][0][0][0] == pytest.approx(h, rel=1e-15)
    assert fwd.outputs[1][0] == fwd.outputs[0][0] and fwd.caches[1][0] == [None]   # frozen
    assert fwd.logits[0] == pytest.approx([h, -h], rel=1e-15)
    assert fwd.loss == pytest.approx(math.log(math.exp(h) + math.exp(-h)) + h, rel=1e-14)

    # as in the one-step RNN above: s = sigmoid(2h), dpre = 2s (1 - h^2); the label's column of
    # cond.weight gets dpre, the other columns nothing
    grads, dstate0, dcond = backward(cfg, params, fwd)
    s = sigmoid(2 * h)
    dpre = 2 * s * (1 - h * h)
    assert set(grads) == set(params) and dcond is None   # no bias_hh gradient; labels have none
    assert [row[0] for row in grads["head.weight"]] == pytest.approx([s * h, -s * h], rel=1e-14)
    assert grads["head.bias"] == pytest.approx([s, -s], rel=1e-14)
    assert grads["cond.weight"][0] == pytest.approx([0.0, dpre, 0.0], rel=1e-14)
    assert grads["weight_ih_l0"][0] == pytest.approx([dpre, 0.0], rel=1e-14)
    assert grads["weight_hh_l0"][0][0] == grads["bias_ih_l0"][0] == pytest.approx(dpre, rel=1e-14)
    assert dstate0[0][0][0][0] == pytest.approx(dpre * 0.5, rel=1e-14)


def test_gru_condition_joins_the_input_part():
    # GRU, H = 1, everything zero but cond.weight and b_hn, so that with h0 = 0:
    #   r = sigmoid(W_cond,r v), z = sigmoid(0) = 1/2,
    #   n = tanh(W_cond,n v + r * b_hn)   (not tanh(r * (W_cond,n v + b_hn)): v is input, not recurrent)
    #   h = (1 - z) n + z h0 = n / 2
    # label 1 picks column 1: r = sigmoid(0) = 1/2, n = tanh(0.8 + 0.6 / 2) = tanh(1.1).
    # vector v = [0.5, 1]: W_cond,r v = 0.1, so r = sigmoid(0.1); W_cond,n v = 0.5 + 0.8 = 1.3.
    for cond, v, r in [("label", 1, 0.5), ("vector", [0.5, 1.0], sigmoid(0.1))]:
        cfg = Config(vocab_size=2, hidden_size=1, cell="gru", cond=cond, cond_size=2)
        params = {"cond.weight": [[0.2, 0.0], [0.0, 0.0], [1.0, 0.8]], "weight_ih_l0": [[0.0, 0.0]] * 3,
                  "weight_hh_l0": [[0.0]] * 3, "bias_ih_l0": [0.0] * 3, "bias_hh_l0": [0.0, 0.0, 0.6],
                  "decoder.weight": [[0.0], [0.0]], "decoder.bias": [0.0, 0.0]}
        fwd = forward(cfg, params, [[0]], [[0]], [[[[0.0]]]], cond=[v])
        wv = 0.8 if cond == "label" else 1.3
        assert fwd.final_state[0][0][0][0] == pytest.approx(0.5 * math.tanh(wv + r * 0.6), rel=1e-15)


def test_splitmix64_and_xorshift64star_known_values():
    # splitmix64's first output from state 0 (Vigna's splitmix64.c).
    assert splitmix64(0) == 0xE220A8397B1DCDAF
    # xorshift64* by hand from that state: three xorshifts, then the multiply, modulo 2^64.
    x = 0xE220A8397B1DCDAF
    x ^= x >> 12
    x ^= (x << 25) & (2**64 - 1)
    x ^= x >> 27
    r = Rng(0)
    assert r.next_u64() == (x * 0x2545F4914F6CDD1D) % 2**64
    assert r.state == x
    # uniform is the top 24 bits scaled to [0, 1), exactly representable in float32
    first = Rng(0).next_u64()
    u = Rng(0).uniform()
    assert u == (first >> 40) / 2**24 and 0.0 <= u < 1.0


def unshift_right(y, k):
    """Invert y = x ^ (x >> k) on 64-bit words."""
    x = y
    for _ in range(64 // k + 1):
        x = y ^ (x >> k)
    return x


def test_the_seed_that_would_give_state_zero_is_replaced():
    # splitmix64 is a bijection, so exactly one seed maps to 0, xorshift's fixed point.
    # Run splitmix64 backwards from 0 to find it; Rng must replace that state.
    M = 2**64
    z = unshift_right(0, 31)
    z = unshift_right(z * pow(0x94D049BB133111EB, -1, M) % M, 27)
    z = unshift_right(z * pow(0xBF58476D1CE4E5B9, -1, M) % M, 30)
    seed = (z - 0x9E3779B97F4A7C15) % M
    assert splitmix64(seed) == 0
    r = Rng(seed)
    assert r.state == 0x9E3779B97F4A7C15
    assert r.next_u64() != 0
