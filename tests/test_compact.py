"""Compact (bfloat16) weights for inference: the rounding, the compact step against the float32 step
of the rounded weights (bit for bit, any thread count), the error against the float32 weights
within its first-order bound, and checkpoints that store them."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minrnn import core
from minrnn.reference import Config
from soak import examples
from refutil import KINDS


def bf16_reference(x):
    """Round-to-nearest-even to the high 16 bits, in numpy's integers, as float32 values."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint32)
    return (rounded << 16).view(np.float32)


def compact_copy(model):
    twin = core.Model(model.config, params=model.params, threads=model.threads)
    twin.set_precision("bfloat16")
    return twin


def test_rounding_is_to_nearest_with_ties_to_even():
    one = np.float32(1.0)
    ulp = 2.0 ** -7   # of bfloat16 at 1
    values = np.array([1 + ulp / 2,            # a tie: to even, 1
                       1 + 3 * ulp / 2,        # a tie: to even, 1 + 2 ulp
                       1 + ulp / 2 + 2 ** -20,  # just above the tie: up
                       1 + ulp / 2 - 2 ** -20,  # just below: down
                       -(1 + 3 * ulp / 2), 3.0e38, -0.0, 1e-40, np.inf, -np.inf], dtype=np.float32)
    model = core.Model(Config(vocab_size=2, hidden_size=1, cell="rnn_tanh"), params=np.zeros(9, np.float32))
    model.params[:] = values[:9]
    model.set_precision("bfloat16")
    expected = [one, 1 + 2 * ulp, 1 + ulp, one, -(1 + 2 * ulp), 3.0e38, -0.0, 1e-40, np.inf]
    assert model.params[:5].tolist() == [float(np.float32(e)) for e in expected[:5]]
    assert np.array_equal(model.params, bf16_reference(values[:9]))
    assert np.signbit(model.params[6]) and model.params[5] == bf16_reference(3.0e38)[()]
    rng = np.random.default_rng(1)
    many = (rng.standard_normal(10000) * 10.0 ** rng.integers(-20, 20, 10000)).astype(np.float32)
    big = core.Model(Config(vocab_size=2, hidden_size=1, cell="rnn_tanh"), params=np.zeros(9, np.float32))
    for chunk in many.reshape(-1, 8):
        big.params[:8] = chunk
        big.set_precision("bfloat16")
        assert np.array_equal(big.params[:8], bf16_reference(chunk))


@settings(max_examples=examples(40), deadline=None)
@given(kind=st.sampled_from(KINDS), task=st.sampled_from(["lm", "classify"]),
       cond=st.sampled_from(["none", "label", "vector"]), one_bias=st.booleans(), embed=st.sampled_from([0, 5]),
       layers=st.integers(1, 2), H=st.integers(1, 40), V=st.integers(2, 12), B=st.integers(1, 12),
       threads=st.sampled_from([1, 2, 3]), seed=st.integers(0, 2**32 - 1))
def test_compact_step_is_the_float32_step_of_the_rounded_weights(kind, task, cond, one_bias, embed, layers, H, V, B,
                                                                threads, seed):
    cfg = Config(cell=kind, vocab_size=V, hidden_size=H, embed_size=embed, num_layers=layers, task=task,
                 num_classes=3 if task == "classify" else 0, cond=cond, cond_size=0 if cond == "none" else 3,
                 one_bias=one_bias)
    compact = core.Model(cfg, seed=seed, threads=threads)
    compact.params *= 3   # weights of a trained model's size, so that rounding matters
    compact.set_precision("bfloat16")
    rounded = core.Model(cfg, params=compact.params, threads=1)   # float32 block, bfloat16 values
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, B).astype(np.int32)
    condition = {"none": None, "label": labels, "vector": rng.standard_normal((B, 3)).astype(np.float32)}[cond]
    s_compact, s_rounded = compact.zero_state(B), rounded.zero_state(B)
    for _ in range(3):
        tokens = rng.integers(0, V, B).astype(np.int32)
        a = compact.step(tokens, s_compact, cond=condition)
        b = rounded.step(tokens, s_rounded, cond=condition)
        assert np.array_equal(a, b) and np.array_equal(s_compact, s_rounded)


def test_compact_step_streams_half_the_bytes_of_the_same_model():
    """What makes it fast: the block step reads is uint16, not a float32 copy."""
    model = compact_copy(core.Model(Config(vocab_size=9, hidden_size=8, cell="lstm"), seed=1))
    assert model.precision == "bfloat16" and model.block().nbytes * 2 == model.params.nbytes


@pytest.mark.parametrize("seed", range(6))
def test_one_step_stays_within_the_first_order_bound_of_rounding(seed):
    """One step of a one-layer tanh RNN from the same state, float32 weights against bfloat16:
    every weight moves by at most u = 2^-9 of itself, so a preactivation moves by at most
    u (|b_ih| + |b_hh| + |W_ih[:, x]| + |W_hh| |h|), h (tanh is 1-Lipschitz) by as much, and a logit
    by u (|b| + |W| |h'|) + |W| |dh'|. Float32 round-off, the same operations on both sides,
    adds a few 2^-24 of those sums: u is taken as 2^-9 + 2^-16."""
    V, H, B = 11, 64, 5
    model = core.Model(Config(vocab_size=V, hidden_size=H, cell="rnn_tanh"), seed=seed)
    model.params *= 4
    rng = np.random.default_rng(seed)
    state = np.tanh(rng.standard_normal(model.state_shape(B))).astype(np.float32)
    tokens = rng.integers(0, V, B).astype(np.int32)
    compact = compact_copy(model)
    s32, s16 = state.copy(), state.copy()
    z32, z16 = model.step(tokens, s32), compact.step(tokens, s16)
    t = {k: np.abs(v.astype(np.float64)) for k, v in model.tensors.items()}
    u = 2.0 ** -9 + 2.0 ** -16
    h0 = np.abs(state[0, 0].astype(np.float64))                     # (B, H)
    dpre = u * (t["bias_ih_l0"] + t["bias_hh_l0"] + t["weight_ih_l0"][:, tokens].T + h0 @ t["weight_hh_l0"].T)
    dh = np.abs(s32[0, 0].astype(np.float64) - s16[0, 0])
    assert np.all(dh <= dpre)
    h1 = np.abs(s32[0, 0].astype(np.float64))
    bound = u * (t["decoder.bias"] + h1 @ t["decoder.weight"].T) + dpre @ t["decoder.weight"].T
    assert np.all(np.abs(z32.astype(np.float64) - z16) <= bound)
    assert np.abs(z32 - z16).max() > 0   # the weights did change


def test_an_exported_checkpoint_loads_compact(tmp_path):
    cfg = Config(vocab_size=7, hidden_size=12, cell="gru", num_layers=2, embed_size=4)
    model = core.Model(cfg, seed=5)
    trainer = core.Trainer(model, 2, 3)
    full, small = tmp_path / "full.ckpt", tmp_path / "small.ckpt"
    core.save_checkpoint(full, model, list(range(7)), trainer=trainer)
    core.save_checkpoint(small, model, list(range(7)), precision="bfloat16")
    back = core.load_checkpoint(small)
    assert back.precision == "bfloat16" and back.model.precision == "bfloat16" and back.trainer is None
    assert np.array_equal(back.model.params, bf16_reference(model.params))
    assert small.stat().st_size < full.stat().st_size / 4   # 2 bytes per parameter against 12 (p, m, v)
    expected = compact_copy(model)
    s1, s2 = expected.zero_state(2), back.model.zero_state(2)
    tokens = np.array([1, 6], np.int32)
    assert np.array_equal(expected.step(tokens, s1), back.model.step(tokens, s2))
    with pytest.raises(core.MinrnnError):   # exact resume needs float32: no compact training state
        core.save_checkpoint(tmp_path / "no.ckpt", model, list(range(7)), trainer=trainer, precision="bfloat16")
    assert not (tmp_path / "no.ckpt").exists()
