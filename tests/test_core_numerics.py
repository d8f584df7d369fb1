"""The C core on its own: finite-difference gradient checks in float32, results that do not
depend on the thread count, and a few streams' recurrence that gives the same bits at once or a
token at a time."""

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

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


def relu_pattern(model, tokens, state0, masks):
    """Which rnn_relu units are on (h > 0) at each step and layer of the core's forward, run a
    step at a time from state0: the activation pattern a central difference must not change."""
    state, on = state0, []
    for t in range(len(tokens)):
        fwd = model.forward(tokens[t:t + 1], None, state, None if masks is None else masks[:, t:t + 1],
                            want_logits=False)
        state = fwd.final_state
        on.append(state[:, 0] > 0)   # (L, B, H): each layer's h
    return np.array(on)


# make test-soak's draw: a stencil of 1e-3 across a relu unit's kink, 35% off
@example(kind="rnn_relu", V=11, H=2, E=5, L=1, dropout=0.0, T=1, B=2, seed=109003127)
@settings(max_examples=examples(40), deadline=None)
@given(**shape_args)
def test_gradients_match_central_differences_in_float32(kind, V, H, E, L, dropout, T, B, seed):
    gradients_agree_with_central_differences(kind, V, H, E, L, dropout, T, B, seed)


def test_relu_gradients_are_checked_where_no_kink_is_near():
    # The directions left out for relu are few where its units are few (on large problems most
    # stencils cross some unit's kink, and the core-against-reference tests carry the checks)
    for seed in range(4):
        counted = gradients_agree_with_central_differences("rnn_relu", 7, 6, 0, 1, 0.0, 3, 2, seed)
        assert counted["checked"] >= 8, counted


def gradients_agree_with_central_differences(kind, V, H, E, L, dropout, T, B, seed):
    """kann-style checks along directions: for each tensor (and the initial state) along its own
    gradient, where the signal is largest, and along random directions of the whole block, which
    catch errors orthogonal to the gradient. Returns how many directions were checked, and how
    many were left out across a relu kink."""
    model, tokens, targets, state0, masks, r = random_problem(kind, V, H, E, L, dropout, T, B, seed)
    fwd = model.forward(tokens, targets, state0, masks)
    loss = fwd.loss
    model.grads[:] = 0.0
    dstate0 = model.backward(fwd)[0].astype(np.float64)
    g = model.grads.astype(np.float64)
    p0 = model.params.copy()
    relu = kind == "rnn_relu"
    # Step: large enough that the loss change stands well above float32 round-off, small enough
    # that truncation (h^2 L''' / 6) stays below 1e-4 of the slope. rnn_relu's loss has kinks
    # where a unit switches, and a difference across one is no derivative (make test-soak found
    # one 35% off, H = 2): its differences are taken at the largest of h, h/4, h/16, h/64 whose
    # stencil keeps every unit as it is (the step-at-a-time forward's activation pattern at +-step
    # is the one at 0), and a direction with none is not checked.
    h = 1e-3 if relu else 1e-2
    steps = (h, h / 4, h / 16, h / 64) if relu else (h,)
    # Error allowed: a relative part (truncation) plus the resolution at which float32 sees a loss
    # change: a few ulp of the loss divided by the step taken.
    rel = 1e-2
    noise = lambda step: 8 * ULP_32 * abs(loss) / (2 * step)   # noqa: E731
    base = relu_pattern(model, tokens, state0, masks) if relu else None
    counted = {"checked": 0, "across a kink": 0}

    def slope(direction, state_direction):
        """(the central difference along (direction, state_direction), the step), or (None, None)
        when every step's stencil crosses a kink."""
        def at(step):
            model.params[:] = p0 + step * direction
            s = (state0 + step * state_direction).astype(np.float32)
            kinked = relu and not np.array_equal(relu_pattern(model, tokens, s, masks), base)
            return model.forward(tokens, targets, s, masks, want_logits=False).loss, kinked
        try:
            for step in steps:
                (up, kinked_up), (down, kinked_down) = at(step), at(-step)
                if not (kinked_up or kinked_down):
                    counted["checked"] += 1
                    return (up - down) / (2 * step), step
        finally:
            model.params[:] = p0
        counted["across a kink"] += 1
        return None, None

    zero, no_state = np.zeros_like(g), np.zeros_like(dstate0)
    for name, grad in list(model.views(g).items()) + [("initial state", dstate0)]:
        size = np.linalg.norm(grad)
        if size < 1e-3:      # nothing to see above the noise
            continue
        if name == "initial state":
            numeric, step = slope(zero, grad / size)
        else:
            direction = zero.copy()
            model.views(direction)[name][...] = grad / size
            numeric, step = slope(direction, no_state)
        assert numeric is None or abs(numeric - size) <= rel * size + noise(step), (name, numeric, size, step)
    norm = np.sqrt(g @ g + (dstate0 * dstate0).sum())
    for _ in range(3):
        d = r.standard_normal(g.size)
        ds = r.standard_normal(dstate0.shape)
        scale = np.sqrt(d @ d + (ds * ds).sum())
        d, ds = d / scale, ds / scale
        analytic = g @ d + (dstate0 * ds).sum()
        numeric, step = slope(d, ds)
        # relative to the whole gradient's norm: a random slope is ~ norm / sqrt(size)
        assert numeric is None or abs(numeric - analytic) <= rel * 0.1 * norm + noise(step), \
            ("random direction", numeric, analytic, step)
    return counted


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


def forward_at_once_and_a_token_at_a_time(model, tokens, state0):
    whole = model.forward(tokens, None, state0, want_logits=False).final_state
    state = state0
    for t in range(len(tokens)):
        state = model.forward(tokens[t:t + 1], None, state, want_logits=False).final_state
    return whole, state


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("B", [1, 3, 7])
def test_the_recurrence_of_few_streams_is_its_one_token_steps_to_the_last_bit(kind, B):
    # Fewer than 8 streams sum the recurrent product as a single step (mm_nt) sums it: from a packed
    # W_hh where that kernel is the faster (AVX-512), by mm_nt itself elsewhere. With one-hot input
    # (a column of W_ih added, in the same way at once and a step at a time) and one layer, nothing
    # else differs: T steps at once leave the state that T one-token steps leave. (A layer's input
    # product over T B >= 8 rows is packed and sums in k order, and so are 8 streams' recurrences:
    # no such promise there.) H = 37: a cut panel and a partial group of 8 lanes.
    model, tokens, _, state0, _, _ = random_problem(kind, 20, 37, 0, 1, 0.0, 9, B, seed=B)
    whole, stepped = forward_at_once_and_a_token_at_a_time(model, tokens, state0)
    assert np.array_equal(whole, stepped)


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "int8"])
def test_the_same_with_two_threads_and_compact_weights(precision):
    # The OpenMP team's loop (H = 300: a step of 3 streams is worth two threads) and compact weights
    # (bfloat16's products read the widened weights in mm_nt's order; int8's never pack).
    model, tokens, _, state0, _, _ = random_problem("gru", 20, 300, 0, 1, 0.0, 5, 3, seed=9)
    model.threads = 2
    if precision != "float32":
        model.set_precision(precision)
    whole, stepped = forward_at_once_and_a_token_at_a_time(model, tokens, state0)
    assert np.array_equal(whole, stepped)


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
