"""Properties of records (ragged batches), conditions and the sum reduction that hold exactly, or to
rounding, whatever the weights: a record's result does not depend on its padding or its batch."""

import pytest
from hypothesis import given, settings, strategies as st

from minrnn.reference import (CONDITIONS, TASKS, Config, Optimizer, backward, flatten, forward, train_step,
                              unflatten)
from minrnn.reference.tensor import one_hot
from soak import examples
from refutil import KINDS, Problem

seed_st = st.integers(0, 2**63)
# the tasks with a loss; "encode" has none (its outputs are the result): test_reference_seq2seq.py checks it
LOSS_TASKS = [task for task in TASKS if task != "encode"]


def config(kind, task, cond="none", **kw):
    return Config(cell=kind, vocab_size=3, hidden_size=2, embed_size=kw.pop("E", 0), task=task,
                  num_classes=3 if task == "classify" else 0, cond=cond, cond_size=0 if cond == "none" else 2, **kw)


def stream(x, b):
    """Stream b of a (L, S, B, H) state or (L, T, B, H) masks, as a batch of one."""
    return [[[rows[b]] for rows in layer] for layer in x]


def run(cfg, params, tokens, targets, state0, masks, lengths, cond, dfinal):
    fwd = forward(cfg, params, tokens, targets, state0, masks, lengths, cond)
    return fwd, backward(cfg, params, fwd, dfinal)


@pytest.mark.parametrize("task", LOSS_TASKS)
@settings(max_examples=examples(20), deadline=None)
@given(kind=st.sampled_from(KINDS), cond=st.sampled_from(CONDITIONS), layers=st.integers(1, 2),
       dropout=st.sampled_from([0.0, 0.5]), E=st.integers(0, 2), T=st.integers(2, 4), B=st.integers(2, 3),
       seed=seed_st)
def test_padding_changes_nothing(task, kind, cond, layers, dropout, E, T, B, seed):
    # Each record of a padded ragged batch, run alone (B = 1, T = its length), against its stream in
    # the batch. A stream's forward and backward never read another stream's values and run the same
    # operations in the same order alone or in a batch, so its final state, logits, dstate0 and dcond
    # are exactly equal (dfinal enters alone right after the last step, in the batch after the
    # skipped ones, which pass it through untouched). Only the sums over streams (the loss, the
    # parameter gradients) add the same terms in another order: equal to a few ulp of sums of
    # a dozen terms of order one, far inside 1e-12. The sum reduction makes the loss of the batch
    # the sum of the records' losses; the mean divides by the count (test_sum_is_count_times_mean).
    cfg = config(kind, task, cond, E=E, num_layers=layers, dropout=dropout, reduction="sum")
    pb = Problem(cfg, T, B, seed, ragged=True)
    params, L = pb.params, cfg.num_layers
    # what lies past a record's end must not matter: other tokens and targets there
    tokens = [[tok if t < pb.lengths[b] else (tok + 1) % cfg.vocab_size for b, tok in enumerate(row)]
              for t, row in enumerate(pb.tokens)]
    targets = pb.targets if task == "classify" else \
        [[y if t < pb.lengths[b] else (y + 2) % cfg.vocab_size for b, y in enumerate(row)] for t, row in enumerate(pb.targets)]
    fwd, (grads, dstate0, dcond) = run(cfg, params, tokens, targets, pb.state0, pb.masks, pb.lengths, pb.cond, pb.dfinal)
    fwd_p, (grads_p, dstate0_p, dcond_p) = run(cfg, params, pb.tokens, pb.targets, pb.state0, pb.masks, pb.lengths,
                                               pb.cond, pb.dfinal)
    assert (fwd.loss, fwd.final_state, grads, dstate0, dcond) == (fwd_p.loss, fwd_p.final_state, grads_p, dstate0_p, dcond_p)

    loss, total = 0.0, [0.0] * len(pb.flat)
    for b, n in enumerate(pb.lengths):
        alone_targets = [targets[b]] if task == "classify" else [[targets[t][b]] for t in range(n)]
        masks = [layer[:n] for layer in stream(pb.masks, b)] if pb.masks else None
        one, (g, ds, dc) = run(cfg, params, [[tokens[t][b]] for t in range(n)], alone_targets, stream(pb.state0, b),
                               masks, None, [pb.cond[b]] if pb.cond else None, stream(pb.dfinal, b))
        assert stream(fwd.final_state, b) == one.final_state
        assert stream(dstate0, b) == ds
        assert (dcond is None and dc is None) or dcond[b] == dc[0]
        if task == "classify":
            assert fwd.logits[b] == one.logits[0]
        else:
            assert [fwd.logits[t][b] for t in range(n)] == [row[0] for row in one.logits]
        # past the end: the output is the frozen top h, times that position's mask
        h = fwd.final_state[L - 1][0][b]
        for t in range(n, T):
            mask = pb.masks[L - 1][t][b] if pb.masks else [1.0] * len(h)
            assert fwd.outputs[t][b] == [hj * mj for hj, mj in zip(h, mask)]
            assert fwd.caches[t][b] == [None] * L
        loss += one.loss
        total = [a + x for a, x in zip(total, flatten(cfg, g))]
    assert fwd.loss == pytest.approx(loss, rel=1e-12)
    assert flatten(cfg, grads) == pytest.approx(total, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("task", LOSS_TASKS)
@settings(max_examples=examples(15), deadline=None)
@given(kind=st.sampled_from(KINDS), cond=st.sampled_from(CONDITIONS), layers=st.integers(1, 2),
       dropout=st.sampled_from([0.0, 0.5]), T=st.integers(1, 3), B=st.integers(1, 3), seed=seed_st)
def test_lengths_of_T_are_no_lengths(reduction, task, kind, cond, layers, dropout, T, B, seed):
    # every stream running all T steps is the same computation in the same order (the mean's count
    # sum(lengths) is the integer T*B): exactly equal
    cfg = config(kind, task, cond, num_layers=layers, dropout=dropout, reduction=reduction)
    pb = Problem(cfg, T, B, seed)
    for dfinal in (None, pb.dfinal):
        args = (cfg, pb.params, pb.tokens, pb.targets, pb.state0, pb.masks)
        fwd, back = run(*args, None, pb.cond, dfinal)
        fwd_T, back_T = run(*args, [T] * B, pb.cond, dfinal)
        assert (fwd.loss, fwd.logits, fwd.final_state, fwd.outputs) == \
               (fwd_T.loss, fwd_T.logits, fwd_T.final_state, fwd_T.outputs)
        assert back == back_T


@pytest.mark.parametrize("task", LOSS_TASKS)
@settings(max_examples=examples(15), deadline=None)
@given(kind=st.sampled_from(KINDS), layers=st.integers(1, 2), E=st.integers(0, 2), T=st.integers(1, 3),
       B=st.integers(1, 3), ragged=st.booleans(), seed=seed_st)
def test_a_label_is_its_one_hot_vector(task, kind, layers, E, T, B, ragged, seed):
    # W_cond v with v = one_hot(label) is the label's column; both build the same layer-0 input, so
    # everything is exactly equal, the gradient of cond.weight included
    label_cfg = config(kind, task, "label", E=E, num_layers=layers)
    vector_cfg = config(kind, task, "vector", E=E, num_layers=layers)
    pb = Problem(label_cfg, T, B, seed, ragged=ragged and T >= 2)
    vectors = [one_hot(c, label_cfg.cond_size) for c in pb.cond]
    args = (pb.params, pb.tokens, pb.targets, pb.state0, pb.masks, pb.lengths)
    fwd_l, (grads_l, dstate0_l, dcond_l) = run(label_cfg, *args, pb.cond, pb.dfinal)
    fwd_v, (grads_v, dstate0_v, dcond_v) = run(vector_cfg, *args, vectors, pb.dfinal)
    assert (fwd_l.loss, fwd_l.logits, fwd_l.final_state) == (fwd_v.loss, fwd_v.logits, fwd_v.final_state)
    assert grads_l == grads_v and dstate0_l == dstate0_v
    assert dcond_l is None and len(dcond_v) == B


@pytest.mark.parametrize("task", LOSS_TASKS)
@settings(max_examples=examples(15), deadline=None)
@given(kind=st.sampled_from(KINDS), cond=st.sampled_from(CONDITIONS), layers=st.integers(1, 2), T=st.integers(1, 3),
       B=st.integers(1, 3), ragged=st.booleans(), seed=seed_st)
def test_one_bias_is_a_zero_bias_hh_that_does_not_learn(task, kind, cond, layers, T, B, ragged, seed):
    # the two-bias model with every bias_hh zero computes the same sums (x + 0.0 is x): exactly equal,
    # and its gradients are one_bias's plus those of the bias_hh it does not have
    one_cfg = config(kind, task, cond, num_layers=layers, one_bias=True)
    two_cfg = config(kind, task, cond, num_layers=layers)
    pb = Problem(one_cfg, T, B, seed, ragged=ragged and T >= 2)
    zero_bias_hh = {f"bias_hh_l{k}": [0.0] * (one_cfg.gates * one_cfg.hidden_size) for k in range(layers)}
    args = (pb.tokens, pb.targets, pb.state0, pb.masks, pb.lengths, pb.cond, pb.dfinal)
    fwd_1, (grads_1, dstate0_1, dcond_1) = run(one_cfg, pb.params, *args)
    fwd_2, (grads_2, dstate0_2, dcond_2) = run(two_cfg, {**pb.params, **zero_bias_hh}, *args)
    assert (fwd_1.loss, fwd_1.logits, fwd_1.final_state) == (fwd_2.loss, fwd_2.logits, fwd_2.final_state)
    assert (dstate0_1, dcond_1) == (dstate0_2, dcond_2)
    assert grads_1 == {name: g for name, g in grads_2.items() if name not in zero_bias_hh}


# (lengths, T) with sum(lengths), the mean's count for lm, and B = len(lengths), classify's, powers of two
POWER_OF_TWO_RECORDS = [(None, 1), (None, 2), (None, 4), ([1, 1], 2), ([1, 3], 3), ([3, 1], 4), ([2, 1, 1, 4], 4),
                        ([1, 2, 4, 1], 4)]


@pytest.mark.parametrize("task", LOSS_TASKS)
@settings(max_examples=examples(20), deadline=None)
@given(kind=st.sampled_from(KINDS), cond=st.sampled_from(CONDITIONS), records=st.sampled_from(POWER_OF_TWO_RECORDS),
       B=st.sampled_from([1, 2, 4]), dropout=st.sampled_from([0.0, 0.5]), seed=seed_st)
def test_sum_is_count_times_mean(task, kind, cond, records, B, dropout, seed):
    # The mean divides every dlogits by the count, the sum by 1; backward is linear in dlogits, and
    # scaling by a power of two commutes exactly with every rounding (far from under- and overflow),
    # so with a power-of-two count the sum's loss and gradients are exactly count times the mean's.
    lengths, T = records
    if lengths is not None:
        B = len(lengths)
    mean_cfg = config(kind, task, cond, dropout=dropout)
    sum_cfg = config(kind, task, cond, dropout=dropout, reduction="sum")
    pb = Problem(mean_cfg, T, B, seed)
    count = B if task == "classify" else (sum(lengths) if lengths else T * B)
    args = (pb.params, pb.tokens, pb.targets, pb.state0, pb.masks, lengths, pb.cond, None)
    fwd_m, (grads_m, dstate0_m, dcond_m) = run(mean_cfg, *args)
    fwd_s, (grads_s, dstate0_s, dcond_s) = run(sum_cfg, *args)
    assert fwd_s.loss == count * fwd_m.loss
    assert flatten(sum_cfg, grads_s) == [count * g for g in flatten(mean_cfg, grads_m)]
    assert dstate0_s == [[[[count * x for x in row] for row in s] for s in layer] for layer in dstate0_m]
    if cond == "vector":
        assert dcond_s == [[count * x for x in row] for row in dcond_m]


def test_backward_needs_a_loss_or_dfinal():
    cfg = config("gru", "lm")
    pb = Problem(cfg, 2, 1, 0)
    with pytest.raises(ValueError, match="dfinal"):
        backward(cfg, pb.params, pb.forward(with_targets=False))
    backward(cfg, pb.params, pb.forward(with_targets=False), pb.dfinal)   # either one will do


@pytest.mark.parametrize("change, message", [
    (dict(lengths=[2]), "lengths"),           # one length for two streams
    (dict(lengths=[0, 2]), "lengths"),        # a record of no steps
    (dict(lengths=[2, 3]), "lengths"),        # longer than T
    (dict(lengths=[2.0, 1]), "lengths"),      # not a whole number
    (dict(cond=None), "cond"),                # the config has a condition
    (dict(cond=[0, 1]), "vectors"),           # labels for a vector condition
    (dict(cond=[[0.5, 1.0]]), "one entry per stream"),
    (dict(targets=[0, 3]), "class ids"),      # K = 3
    (dict(targets=[1]), "class ids"),
])
def test_forward_checks_the_per_stream_arguments(change, message):
    cfg = config("lstm", "classify", "vector")
    pb = Problem(cfg, 2, 2, 5)
    args = dict(tokens=pb.tokens, targets=pb.targets, state0=pb.state0, lengths=[1, 2], cond=pb.cond)
    forward(cfg, pb.params, **args)
    with pytest.raises(ValueError, match=message):
        forward(cfg, pb.params, **{**args, **change})


def test_forward_checks_the_condition_against_the_config():
    lm, labels = config("lstm", "lm"), config("lstm", "lm", "label")   # C = 2
    for cfg, cond, message in [(lm, [0, 1], "no condition"), (labels, None, "must be given"),
                               (labels, [0, 2], "labels"), (labels, [0, 1.0], "labels")]:
        pb = Problem(cfg, 2, 2, 5)
        with pytest.raises(ValueError, match=message):
            forward(cfg, pb.params, pb.tokens, None, pb.state0, cond=cond)


def test_train_step_passes_lengths_and_cond_on():
    cfg = config("rnn_tanh", "lm", "label", reduction="sum")
    pb = Problem(cfg, 3, 2, 9, ragged=True)
    params, loss, state, _ = train_step(cfg, pb.params, Optimizer("sgd", len(pb.flat), lr=0.1), pb.tokens,
                                        pb.targets, pb.state0, lengths=pb.lengths, cond=pb.cond)
    fwd = pb.forward()
    grads, _, _ = backward(cfg, pb.params, fwd)
    assert (loss, state) == (fwd.loss, fwd.final_state)
    assert params == unflatten(cfg, [p - 0.1 * g for p, g in zip(pb.flat, flatten(cfg, grads))])
