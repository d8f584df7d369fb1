"""The C core on its own: finite-difference gradient checks in float32, and results that do not
depend on the thread count."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minrnn import core
from minrnn.reference import Config
from soak import examples
from refutil import KINDS

ULP_32 = 2.0 ** -23


def random_problem(kind, V, H, E, L, dropout, T, B, seed):
    cfg = Config(cell=kind, vocab_size=V, hidden_size=H, embed_size=E, num_layers=L, dropout=dropout)
    r = np.random.default_rng(seed)
    model = core.Model(cfg, seed=seed)
    tokens = r.integers(0, V, (T, B))
    targets = r.integers(0, V, (T, B))
    state0 = r.uniform(-1, 1, model.state_shape(B)).astype(np.float32)
    masks = model.dropout_masks(core.Rng(seed), T, B) if dropout else None
    return model, tokens, targets, state0, masks, r


# Shapes are drawn past the core's thresholds: H > 16 splits units into several chunks, B >= 8
# takes the packed recurrent product, T*B >= 8 the packed projections.
shape_args = dict(kind=st.sampled_from(KINDS), V=st.integers(2, 30), H=st.integers(1, 48),
                  E=st.sampled_from([0, 0, 5, 16]), L=st.integers(1, 2), dropout=st.sampled_from([0.0, 0.5]),
                  T=st.integers(1, 10), B=st.integers(1, 10), seed=st.integers(0, 2**32))


@settings(max_examples=examples(40), deadline=None)
@given(**shape_args)
def test_gradients_match_central_differences_in_float32(kind, V, H, E, L, dropout, T, B, seed):
    """kann-style checks along directions: for each tensor (and the initial state) along its own
    gradient, where the signal is largest, and along random directions of the whole block, which
    catch errors orthogonal to the gradient."""
    model, tokens, targets, state0, masks, r = random_problem(kind, V, H, E, L, dropout, T, B, seed)
    fwd = model.forward(tokens, targets, state0, masks)
    loss = fwd.loss
    model.grads[:] = 0.0
    dstate0 = model.backward(fwd)[0].astype(np.float64)
    g = model.grads.astype(np.float64)
    p0 = model.params.copy()
    relu = kind == "rnn_relu"
    # Step: large enough that the loss change stands well above float32 round-off, small enough
    # that truncation (h^2 L''' / 6) stays below 1e-4 of the slope. relu has kinks that any step
    # crosses with some probability; a smaller step crosses fewer of them.
    h = 1e-3 if relu else 1e-2
    # Error allowed: a relative part (truncation, and for relu the kinks crossed: measured worst
    # 3.3% over 300 problems) plus the resolution at which float32 sees a loss change: a few ulp
    # of the loss divided by the step.
    rel = 0.1 if relu else 1e-2
    noise = 8 * ULP_32 * abs(loss) / (2 * h)

    def slope(direction, state_direction=None):
        def at(step):
            model.params[:] = p0 + step * direction
            s = state0 if state_direction is None else (state0 + step * state_direction).astype(np.float32)
            return model.forward(tokens, targets, s, masks, want_logits=False).loss
        try:
            return (at(h) - at(-h)) / (2 * h)
        finally:
            model.params[:] = p0

    zero = np.zeros_like(g)
    for name, grad in list(model.views(g).items()) + [("initial state", dstate0)]:
        size = np.linalg.norm(grad)
        if size < 1e-3:      # nothing to see above the noise
            continue
        if name == "initial state":
            numeric = slope(zero, grad / size)
        else:
            direction = zero.copy()
            model.views(direction)[name][...] = grad / size
            numeric = slope(direction)
        assert abs(numeric - size) <= rel * size + noise, (name, numeric, size)
    norm = np.sqrt(g @ g + (dstate0 * dstate0).sum())
    for _ in range(3):
        d = r.standard_normal(g.size)
        ds = r.standard_normal(dstate0.shape)
        scale = np.sqrt(d @ d + (ds * ds).sum())
        d, ds = d / scale, ds / scale
        analytic = g @ d + (dstate0 * ds).sum()
        # relative to the whole gradient's norm: a random slope is ~ norm / sqrt(size)
        assert abs(slope(d, ds) - analytic) <= rel * 0.1 * norm + noise, ("random direction", analytic)


def run_everything(model, tokens, targets, state0, masks, optimizer, threads):
    """Forward, backward and three training steps with the given thread count; all outputs."""
    model.threads = threads
    params0 = model.params.copy()
    out = {}
    fwd = model.forward(tokens, targets, state0, masks)
    model.grads[:] = 0.0
    out.update(loss=np.float32(fwd.loss), logits=fwd.logits, state=fwd.final_state, dstate0=model.backward(fwd)[0],
               grads=model.grads.copy())
    T, B = tokens.shape
    trainer = core.Trainer(model, B, T, optimizer=optimizer, clip_norm=1.0, seed=5)
    trainer.state[...] = state0
    out["train"] = [trainer.step(model.batch(tokens, targets)) for _ in range(3)]
    out.update(params=model.params.copy(), m=trainer.m.copy(), v=trainer.v.copy(), carried=trainer.state.copy())
    model.params[:] = params0
    return out


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "rmsprop", "adam"])
def test_results_are_bitwise_identical_for_any_thread_count(kind, optimizer):
    # Sizes that make every part run on several threads (the core keeps small loops on one): one
    # step of the recurrence is B*G*H*H/8 = 16*150*150/8 = 45k > 32k even for the RNN. H = 150 is
    # not a multiple of the 32-unit chunks or the 16-column panels; B = 16 takes the packed
    # recurrent product; E = 24 an embedding; dropout draws masks inside the training step.
    model, tokens, targets, state0, masks, _ = random_problem(kind, 40, 150, 24, 2, 0.25, 12, 16, seed=3)
    one = run_everything(model, tokens, targets, state0, masks, optimizer, threads=1)
    for threads in (2, 3):
        other = run_everything(model, tokens, targets, state0, masks, optimizer, threads=threads)
        for key, value in one.items():
            assert np.array_equal(np.asarray(value), np.asarray(other[key])), (key, threads)


def test_one_token_steps_are_identical_for_any_thread_count():
    # Sampling takes the unpacked path (B < 8); it too has one owner per output. H = 300 makes its
    # products big enough for two threads (1*4*300*300/8 = 45k > 32k).
    model, tokens, _, state0, _, _ = random_problem("lstm", 50, 300, 0, 2, 0.0, 1, 1, seed=4)
    results = []
    for threads in (1, 2):
        model.threads = threads
        state = state0.copy()
        results.append([model.step(tokens[0], state) for _ in range(5)] + [state])
    assert all(np.array_equal(a, b) for a, b in zip(*results))
