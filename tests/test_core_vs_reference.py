"""The C core (float32) against the pure-Python reference (float64) on random small problems."""

import numpy as np
import pytest
from hypothesis import assume, example, given, settings, strategies as st

from minrnn import core
from minrnn import reference as R
from minrnn.reference import Config
from soak import examples
from refutil import KINDS, Problem, TermScales, at_logits, near_a_kink

# Tolerance for float32 against float64: REL relative to the largest magnitude in the compared
# array, plus ATOL. Inputs are rounded to float32 first, so only the core's arithmetic differs.
# float32's unit round-off is 6e-8; an output passes through at most T=5 steps x L=2 layers of dot
# products of length <= 40 and a few nonlinearities, ~300 roundings in the worst case: 2e-5.
# (Measured worst over 400 random problems: 2.3e-6.) ATOL covers sums that cancel: the decoder
# bias gradient adds (p - y) / N terms of both signs, each carrying round-off of its own size
# (~1e-8), into results as small as 1e-4; weights and states are O(1), so 1e-6 is ~16 ulp of 1.
REL = 2e-5
ATOL = 1e-6


def assert_close(c, ref, what, floor=1e-30):
    """floor: the scale of what produced ref, when that is larger than ref itself (clipped gradients
    carry the round-off of the unclipped ones; a sum carries its terms', refutil.TermScales)."""
    c, ref = np.asarray(c, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    scale = max(float(np.abs(ref).max(initial=0.0)), floor)
    err = float(np.abs(c - ref).max(initial=0.0))
    assert err <= REL * scale + ATOL, f"{what}: max error {err:.3g} at scale {scale:.3g}"


def f32(x):
    """Round nested lists of floats to float32 values (kept as Python floats for the reference)."""
    return np.asarray(x, dtype=np.float32).astype(np.float64).tolist()


def drawn_problem(kind, embed, layers, dropout, V, H, E, T, B, seed):
    cfg = Config(cell=kind, vocab_size=V, hidden_size=H, embed_size=E if embed else 0, num_layers=layers,
                     dropout=0.5 if dropout else 0.0)
    pb = Problem(cfg, T, B, seed)
    pb.flat, pb.state0 = f32(pb.flat), f32(pb.state0)
    return cfg, pb


problem_args = dict(kind=st.sampled_from(KINDS), embed=st.booleans(), layers=st.integers(1, 2),
                    dropout=st.booleans(), V=st.integers(1, 12), H=st.integers(1, 20), E=st.integers(1, 6),
                    T=st.integers(1, 5), B=st.integers(1, 10), seed=st.integers(0, 2**63))


# The draw make test-soak found at 0.97 of the tolerance on every recurrent gradient: rnn_relu states
# of 19, logits of 11, their round-off (7e-6) passed on by the softmax (refutil.at_logits)
@example(kind="rnn_relu", embed=True, layers=1, dropout=True, V=5, H=13, E=3, T=5, B=1, seed=848_718_765_876)
@settings(max_examples=examples(150), deadline=None)
@given(**problem_args)
def test_forward_and_backward_match_the_reference(kind, embed, layers, dropout, V, H, E, T, B, seed):
    cfg, pb = drawn_problem(kind, embed, layers, dropout, V, H, E, T, B, seed)
    params = R.unflatten(cfg, pb.flat)
    fwd = R.forward(cfg, params, pb.tokens, pb.targets, pb.state0, pb.masks)
    assume(not near_a_kink(cfg, params, fwd))

    model = core.Model(cfg, params=np.array(pb.flat), threads=1)
    masks = None if pb.masks is None else np.array(pb.masks)
    fwd_c = model.forward(pb.tokens, pb.targets, pb.state0, masks)
    dstate0_c, _ = model.backward(fwd_c)
    assert_close(fwd_c.loss, fwd.loss, "loss")
    assert_close(fwd_c.logits, fwd.logits, "logits")
    assert_close(fwd_c.final_state, fwd.final_state, "final state")
    with TermScales() as terms:   # the backward at the core's forward; gradients relative to their terms
        grads, dstate0, _ = R.backward(cfg, params, at_logits(fwd, fwd_c.logits))
    for name, ref in grads.items():
        assert_close(model.views(model.grads)[name], ref, f"gradient of {name}", floor=terms.scale(ref))
    assert_close(dstate0_c, dstate0, "gradient of the initial state")


@settings(max_examples=examples(60), deadline=None)
@given(**problem_args, clip_value=st.sampled_from([0.0, 0.01, 1.0]), clip_norm=st.sampled_from([0.0, 0.05, 10.0]),
       optimizer=st.sampled_from(["sgd", "adagrad", "rmsprop", "adam"]), weight_decay=st.sampled_from([0.0, 0.5]))
def test_training_step_matches_the_reference(kind, embed, layers, dropout, V, H, E, T, B, seed, clip_value,
                                             clip_norm, optimizer, weight_decay):
    # Two steps, so the optimizer's moments from the first are used by the second. The core draws
    # its dropout masks from the same generator the reference's masks come from.
    # Adagrad, RMSprop and Adam divide g by about |g|: a gradient that is zero up to round-off
    # (1e-9 in one, -1e-10 in the other) would move a parameter by a full step of lr in either
    # direction. eps = 1e-3 keeps such noise-sized gradients from being amplified, while every
    # gradient above 1e-3 still gets the rule's full nonlinear treatment.
    cfg, pb = drawn_problem(kind, embed, layers, dropout, V, H, E, T, B, seed)
    lr = {"sgd": 0.1, "adagrad": 0.1, "rmsprop": 0.01, "adam": 0.01}[optimizer]
    eps = 0.0 if optimizer == "sgd" else 1e-3
    # weight_decay 0.5 scales every parameter by 1 - lr 0.5 (0.95 to 0.995) before the rule's step:
    # one more float32 rounding of each parameter, within the comparison's tolerance
    opt = R.Optimizer(optimizer, R.param_count(cfg), lr=lr, eps=eps, weight_decay=weight_decay)
    params, state = R.unflatten(cfg, pb.flat), pb.state0
    ref_rng = R.Rng(seed)
    model = core.Model(cfg, params=np.array(pb.flat), threads=1)
    trainer = core.Trainer(model, B, T, optimizer=optimizer, lr=lr, eps=eps, weight_decay=weight_decay,
                           clip_value=clip_value, clip_norm=clip_norm, seed=seed)
    trainer.state[...] = np.array(pb.state0)
    # Each step is compared from the same state: after the first, the core continues from the
    # reference's parameters, moments and carried state (rounded to float32). Otherwise the second
    # step would compare two runs that drifted apart by the first one's round-off, and an
    # rnn_relu unit near 0 can switch in one and not the other (hypothesis found one: a gradient
    # 0.2% apart, from parameters 2e-6 apart).
    # The reference's update is taken at the core's logits (refutil.at_logits), found by the core's
    # forward of the same step.
    gmax = 0.0  # the largest unclipped gradient element: the scale of the moments' round-off
    squares = optimizer in ("adagrad", "rmsprop")  # their m sums g^2
    for _ in range(2):
        masks = R.dropout_masks(cfg, ref_rng, T, B) if cfg.dropout else None
        fwd = R.forward(cfg, params, pb.tokens, pb.targets, state, masks)
        assume(not near_a_kink(cfg, params, fwd))
        fwd = at_logits(fwd, model.forward(pb.tokens, pb.targets, trainer.state, None if masks is None else np.array(masks)).logits)
        raw, _, _ = R.backward(cfg, params, fwd)
        gmax = max([gmax] + [abs(x) for x in R.flatten(cfg, raw)])
        params, norm = R.update_step(cfg, params, opt, fwd, clip_value, clip_norm)
        loss, state = fwd.loss, fwd.final_state
        loss_c, norm_c = trainer.step(model.batch(pb.tokens, pb.targets))
        assert_close(loss_c, loss, "loss")
        assert_close(norm_c, norm, "gradient norm")
        assert_close(trainer.state, state, "carried state")
        assert_close(model.params, R.flatten(cfg, params), "parameters after an update")
        assert_close(trainer.m, opt.m, "first moments", floor=gmax ** 2 if squares else gmax)
        if optimizer == "adam":
            assert_close(trainer.v, opt.v, "second moments", floor=gmax ** 2)
        model.params[:] = R.flatten(cfg, params)
        trainer.m[:], trainer.v[:] = opt.m, opt.v
        trainer.state[...] = np.array(state)
    assert trainer.steps == opt.step == 2
    assert trainer.rng.state == ref_rng.state


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(st.floats(-20, 20, width=32), min_size=1, max_size=200), st.floats(0.001, 10.0))
def test_clipping_matches_the_reference(g, limit):
    g32 = np.array(g, dtype=np.float32)
    by_value, ref_value = g32.copy(), [float(x) for x in g32]
    core.lib.minrnn_clip_value(core._fptr(by_value), by_value.size, limit)
    R.clip_by_value(ref_value, float(np.float32(limit)))
    assert by_value.tolist() == ref_value  # min and max are exact
    by_norm, ref_norm = g32.copy(), [float(x) for x in g32]
    norm = core.ffi.new("float *")
    core.lib.minrnn_clip_norm(core._fptr(by_norm), by_norm.size, limit, norm, 0)
    ref = R.clip_by_norm(ref_norm, float(np.float32(limit)))
    assert norm[0] == pytest.approx(ref, rel=1e-6)  # the sum of squares is in double; one float rounding
    assert_close(by_norm, ref_norm, "clipped gradient")


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.floats(-30, 30, width=32), min_size=1, max_size=60), st.integers(0, 2**64 - 1),
       st.sampled_from([0.0, 0.1, 0.7, 1.0, 1.5]), st.integers(0, 8), st.sampled_from([1.0, 0.9, 0.5, 0.05]))
def test_sampling_chooses_exactly_what_the_reference_chooses(logits, seed, temperature, top_k, top_p):
    # The same double-precision steps in the same order: the same token, draw after draw.
    c_rng, ref_rng = core.Rng(seed), R.Rng(seed)
    for _ in range(10):
        got = core.sample(np.array(logits, dtype=np.float32), c_rng, temperature, top_k, top_p)
        assert got == R.sample(logits, ref_rng, temperature, top_k, top_p)
    assert c_rng.state == ref_rng.state


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.one_of(st.floats(-30, 30, width=32), st.just(-np.inf)), min_size=1, max_size=30),
       st.integers(0, 2**64 - 1), st.sampled_from([0.0, 0.5, 1.0, 2.0]), st.integers(0, 5),
       st.sampled_from([1.0, 0.8, 0.3]))
def test_sampling_with_ruled_out_tokens_matches_the_reference(logits, seed, temperature, top_k, top_p):
    # -inf gives a token probability 0 in both; with no finite logit, both refuse.
    c_rng, ref_rng = core.Rng(seed), R.Rng(seed)
    if all(x == -np.inf for x in logits):
        with pytest.raises(ValueError):
            R.sample(logits, ref_rng, temperature, top_k, top_p)
        with pytest.raises(core.MinrnnError, match="invalid argument"):
            core.sample(np.array(logits, dtype=np.float32), c_rng, temperature, top_k, top_p)
        return
    for _ in range(10):
        got = core.sample(np.array(logits, dtype=np.float32), c_rng, temperature, top_k, top_p)
        assert got == R.sample(logits, ref_rng, temperature, top_k, top_p) and logits[got] != -np.inf
    assert c_rng.state == ref_rng.state


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_sampling_refuses_nan_and_plus_infinity_in_both(bad, temperature):
    logits = [0.5, bad, -1.0]
    with pytest.raises(ValueError):
        R.sample(logits, R.Rng(1), temperature)
    with pytest.raises(core.MinrnnError, match="invalid argument"):
        core.sample(np.array(logits, dtype=np.float32), core.Rng(1), temperature)


@settings(max_examples=examples(50), deadline=None)
@given(st.integers(0, 2**64 - 1))
def test_rng_streams_are_identical(seed):
    c, ref = core.Rng(seed), R.Rng(seed)
    assert [c.next_u64() for _ in range(50)] == [ref.next_u64() for _ in range(50)]
    assert [c.uniform() for _ in range(50)] == [ref.uniform() for _ in range(50)]


def test_irnn_is_for_the_rnns_in_both():
    for kind in KINDS:
        cfg = Config(cell=kind, vocab_size=5, hidden_size=3)
        if R.CELLS[kind].gates == 1:
            continue
        with pytest.raises(ValueError, match="irnn"):
            R.init_params(cfg, 1, "irnn")
        with pytest.raises(core.MinrnnError, match="invalid argument"):
            core.Model(cfg, init="irnn")


@pytest.mark.parametrize("kind, scheme", [(kind, "default") for kind in KINDS] + [("rnn_relu", "irnn"),
                                                                                   ("rnn_tanh", "irnn")])
def test_initialization_is_the_reference_rounded_to_float32(kind, scheme):
    for embed in (0, 4):
        cfg = Config(cell=kind, vocab_size=11, hidden_size=7, embed_size=embed, num_layers=2)
        model = core.Model(cfg, seed=123, init=scheme)
        ref = np.array(R.flatten(cfg, R.init_params(cfg, 123, scheme)), dtype=np.float32)
        assert np.array_equal(model.params, ref)


# Any p in [0, 1), and the ones where a double and its float32 fall on either side of a possible
# draw (k / 2^24 + a little: the float32 rounds down onto the draw, the double stays above it).
# (Doubles just below 1 that round to 1.0 as a float32 are not a p: Config refuses them, tested below.)
dropout_p = st.one_of(st.floats(0.0, 1.0, exclude_max=True).filter(lambda p: np.float32(p) < 1.0),
                      st.integers(1, 2**24 - 1).map(lambda k: k / 2**24 + 2**-27))


@settings(max_examples=examples(60), deadline=None)
@given(st.sampled_from(KINDS), st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), dropout_p,
       st.integers(0, 2**63))
def test_dropout_masks_are_the_reference_masks(kind, L, T, B, p, seed):
    # Both decide with the float32 p the core's config holds, and compute the scale 1 / (1 - p) in
    # double: the core's masks are the reference's rounded to float32, every element.
    cfg = Config(cell=kind, vocab_size=3, hidden_size=5, num_layers=L, dropout=p)
    masks = core.Model(cfg).dropout_masks(core.Rng(seed), T, B)
    assert np.array_equal(masks, np.array(R.dropout_masks(cfg, R.Rng(seed), T, B), dtype=np.float32))


def test_dropout_decides_with_the_float32_p():
    # The draw u is below p as a double but equals float32(p), the p the core holds: both keep it.
    # (Before, the reference dropped what the core kept.)
    seed = next(s for s in range(100) if R.Rng(s).uniform() >= 0.25)
    u = R.Rng(seed).uniform()
    p = u + 2**-27
    assert p > u and np.float32(p) == u
    cfg = Config(vocab_size=3, hidden_size=4, dropout=p)
    c = core.Model(cfg).dropout_masks(core.Rng(seed), 1, 1)
    r = np.array(R.dropout_masks(cfg, R.Rng(seed), 1, 1), dtype=np.float32)
    assert c[0, 0, 0, 0] != 0 and np.array_equal(c, r)


def test_dropout_p_just_below_one_is_refused_by_both():
    # 1 - 2^-30 is below 1 as a double but rounds to 1.0 as a float32: no model can keep anything.
    with pytest.raises(ValueError, match="float32"):
        Config(vocab_size=3, hidden_size=2, dropout=1 - 2**-30)


def test_named_views_follow_pytorch_names_and_shapes():
    cfg = Config(cell="gru", vocab_size=10, hidden_size=6, embed_size=4, num_layers=2)
    model = core.Model(cfg)
    assert [(n, v.shape) for n, v in model.tensors.items()] == \
        [(n, s) for n, s in R.param_shapes(cfg)]
    model.tensors["decoder.bias"][:] = 7.0   # views, not copies
    assert np.all(model.params[-10:] == 7.0)


def test_errors_carry_the_library_message():
    cfg = Config(cell="lstm", vocab_size=5, hidden_size=3)
    model = core.Model(cfg)
    with pytest.raises(core.MinrnnError, match="invalid argument"):
        model.forward([[0, 9]], [[1, 1]])          # token 9 is outside the vocabulary of 5
    with pytest.raises(core.MinrnnError, match="invalid model configuration"):
        c = core.c_config(R.Config(vocab_size=5, hidden_size=3, cell="lstm"))
        c.nonlinearity = core.lib.MINRNN_RELU   # not a pair in the cell table
        core.check(core.lib.minrnn_config_check(c))
