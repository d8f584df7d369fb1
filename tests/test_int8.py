"""int8 inference (cext/int8.c): the core's quantization and integer products against the reference's
(minrnn/reference/quantize.py), bit for bit; its logits within the stated bound of float32's; the
block, its checkpoint and its limits. (Same bits with VNNI and without, and for any thread count:
cext/tests/test_gemm.c and test_core.c; generation at int8: test_generate.py.)"""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minrnn import core
from minrnn import reference as R
from minrnn.reference import Config, quantize as Q
from refutil import KINDS, Problem
from soak import examples
from test_core_vs_reference import assert_close, f32


def f32_(x):
    """One float32 rounding of a Python float, as the core rounds each operation."""
    return float(np.float32(x))


def block_values(cfg, flat):
    """The reference's int8 parameters as float32 values: q times its row's scale, biases as they are."""
    out = []
    for name, t in R.unflatten(cfg, flat).items():
        out += [x for row in t for x in Q.expand(*Q.quantize(row))] if isinstance(t[0], list) else list(t)
    return np.array(out, np.float32)


# float32 numbers over a wide range of magnitudes, zeros and the least scale's neighbourhood included
magnitudes = st.tuples(st.floats(-1.0, 1.0, width=32), st.integers(-140, 40)).map(lambda p: math.ldexp(*p))
wide = st.one_of(st.just(0.0), magnitudes).map(f32_)


@settings(max_examples=examples(150), deadline=None)
@given(kind=st.sampled_from(KINDS), data=st.data())
def test_the_core_quantizes_each_weight_row_as_the_reference_does(kind, data):
    cfg = Config(cell=kind, vocab_size=3, hidden_size=2, embed_size=2)
    flat = data.draw(st.lists(wide, min_size=R.param_count(cfg), max_size=R.param_count(cfg)))
    model = core.Model(cfg, params=flat, threads=1)
    model.set_precision("int8")
    np.testing.assert_array_equal(model.params, block_values(cfg, flat))
    again = core.Model(cfg, params=model.params, threads=1)   # the values quantize to the same block
    again.set_precision("int8")
    assert again.block().tobytes() == model.block().tobytes()


def c_output(q_w, s_w, b, q_x, s_x):
    """One logit as the core computes it: the exact integer sum, then ((float)sum * s_w) * s_x, plus b."""
    dot = sum(a * c for a, c in zip(q_w, q_x))
    return f32_(b + f32_(f32_(f32_(float(dot)) * s_w) * s_x))


step_args = dict(kind=st.sampled_from(KINDS), embed=st.booleans(), V=st.integers(1, 12), H=st.integers(1, 16),
                 E=st.integers(1, 6), B=st.integers(1, 6), seed=st.integers(0, 2**63))


def int8_step(kind, embed, V, H, E, B, seed, scale=1.0):
    """A one-layer model's problem, and the core's int8 step from its state: (cfg, problem, flat,
    state after, logits)."""
    cfg = Config(cell=kind, vocab_size=V, hidden_size=H, embed_size=E if embed else 0)
    pb = Problem(cfg, 1, B, seed, scale=scale)
    flat, state0 = f32(pb.flat), f32(pb.state0)
    model = core.Model(cfg, params=flat, threads=1)
    model.set_precision("int8")
    state = np.array(state0, np.float32)
    logits = model.step(np.array(pb.tokens[0], np.int32), state)
    return cfg, pb, flat, state0, state, logits


@settings(max_examples=examples(80), deadline=None)
@given(**step_args)
def test_an_int8_step_matches_the_reference(kind, embed, V, H, E, B, seed):
    """One layer, so that every product reads the same numbers in both (state0, the embedding's int8
    values): the integer sums are equal, and the states differ by float32 round-off only (the
    tolerance of test_core_vs_reference). The logits from the core's own h: equal, bit for bit."""
    cfg, pb, flat, state0, state, logits = int8_step(kind, embed, V, H, E, B, seed)
    ref = R.forward(cfg, Q.quantized(cfg, R.unflatten(cfg, flat)), pb.tokens, None, state0)
    assert_close(state, ref.final_state, "states after the int8 step")
    tensors = R.unflatten(cfg, flat)
    decoder = [Q.quantize(row) for row in tensors["decoder.weight"]]
    for b in range(B):
        q_x, s_x = Q.quantize(state[0, 0, b].tolist())
        want = [c_output(q_w, s_w, bias, q_x, s_x) for (q_w, s_w), bias in zip(decoder, tensors["decoder.bias"])]
        np.testing.assert_array_equal(logits[b], np.array(want, np.float32))


@settings(max_examples=examples(80), deadline=None)
@given(**step_args, scale=st.sampled_from([0.05, 1.0, 4.0]))
def test_int8_logits_are_within_the_bound_of_float32s(kind, embed, V, H, E, B, seed, scale):
    """The README's bound: each logit of the int8 product from a hidden state h is within
        s_h / 2 sum |w| + s_w / 2 sum |h^|
    of the float32 weights' b + w . h (here in double), plus the core's two float32 roundings of
    the result (2^-24 of |y| each, with y the product and the logit)."""
    cfg, pb, flat, state0, state, logits = int8_step(kind, embed, V, H, E, B, seed, scale)
    tensors = R.unflatten(cfg, flat)
    for b in range(B):
        h = state[0, 0, b].astype(np.float64)
        for n, (w, bias) in enumerate(zip(tensors["decoder.weight"], tensors["decoder.bias"])):
            exact = bias + float(np.dot(w, h))
            y = float(logits[b, n]) - bias
            slack = 2.0 ** -24 * (abs(y) + abs(float(logits[b, n])))
            assert abs(float(logits[b, n]) - exact) <= Q.bound(w, h.tolist()) + slack


def test_a_step_and_a_forward_read_the_same_int8_block_for_any_thread_count():
    """Steps one at a time equal one forward over them (its loss too), on 1 and 2 threads; eval is that
    forward. H=256 and B=8: big enough for a team in the time loop (gemm_threads), whose threads
    quantize the state's rows and then multiply, after a barrier."""
    cfg = Config(cell="lstm", vocab_size=11, hidden_size=256, num_layers=2, embed_size=5)
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, 11, (6, 8)).astype(np.int32)
    targets = rng.integers(0, 11, (6, 8)).astype(np.int32)
    results = []
    for threads in (1, 2):
        model = core.Model(cfg, seed=4, threads=threads)
        model.set_precision("int8")
        state, steps = model.zero_state(8), []
        for t in range(6):
            steps.append(model.step(tokens[t], state))
        fwd = model.forward(tokens, targets)
        np.testing.assert_array_equal(fwd.logits, np.stack(steps))
        np.testing.assert_array_equal(fwd.final_state, state)
        results.append((fwd.logits, fwd.loss))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]


def test_an_int8_checkpoint_loads_as_the_block_it_was_saved_from(tmp_path):
    cfg = Config(cell="gru", vocab_size=7, hidden_size=12, num_layers=2)
    model = core.Model(cfg, seed=5)
    core.save_checkpoint(tmp_path / "m.ckpt", model, list(range(7)), precision="int8")
    model.set_precision("int8")
    back = core.load_checkpoint(tmp_path / "m.ckpt")
    assert back.precision == "int8" and back.model.precision == "int8" and back.trainer is None
    np.testing.assert_array_equal(back.model.params, model.params)
    assert back.model.block().tobytes() == model.block().tobytes()
    core.save_checkpoint(tmp_path / "f.ckpt", core.Model(cfg, seed=5), list(range(7)))
    # the file's params: a byte a weight and a 4-byte scale a row (an element of a bias), not 4 a weight
    rows = sum(shape[0] for _, shape in core.tensor_shapes(cfg))
    saved = (tmp_path / "f.ckpt").stat().st_size - (tmp_path / "m.ckpt").stat().st_size
    assert saved == 4 * model.param_count - (model.param_count + 4 * rows)


def test_an_int8_model_is_for_inference_only():
    cfg = Config(cell="lstm", vocab_size=5, hidden_size=4)
    model = core.Model(cfg, seed=1)
    model.set_precision("int8")
    trainer = core.Trainer(model, 2, 3)
    tokens = np.zeros((3, 2), np.int32)
    with pytest.raises(core.MinrnnError, match="training: it needs float32 or bfloat16 weights; this model is int8"):
        trainer.step(model.batch(tokens, tokens))
    with pytest.raises(core.MinrnnError, match="int8, which is for inference"):
        model.forward(tokens, tokens, masks=np.ones((1, 3, 2, 4), np.float32))


def test_a_model_with_rows_too_long_for_int8_is_refused_with_a_reason():
    """A product's integer sum must fit 32 bits: rows of at most 133,144 numbers (here a condition
    vector's)."""
    long_rows = core.Model(Config(cell="rnn_tanh", vocab_size=3, hidden_size=1, cond="vector", cond_size=133_145), seed=1)
    with pytest.raises(core.MinrnnError, match="int8 takes weight rows of at most 133,144 numbers"):
        long_rows.set_precision("int8")
    core.Model(Config(cell="rnn_tanh", vocab_size=3, hidden_size=1, cond="vector", cond_size=133_144),
               seed=1).set_precision("int8")


@pytest.mark.parametrize("bad", [np.nan, np.inf, 2.0 ** 110])
def test_weights_that_int8_cannot_hold_are_refused_with_a_reason(bad, tmp_path):
    cfg = Config(cell="rnn_tanh", vocab_size=5, hidden_size=4)
    model = core.Model(cfg, seed=1)
    model.params[3] = bad
    with pytest.raises(core.MinrnnError, match="cannot be stored as int8: a parameter is not finite or is beyond"):
        model.set_precision("int8")
    assert model.precision == "float32"
    with pytest.raises(core.MinrnnError, match="cannot be stored as int8"):
        core.save_checkpoint(tmp_path / "m.ckpt", model, list(range(5)), precision="int8")
    assert not (tmp_path / "m.ckpt").exists()
