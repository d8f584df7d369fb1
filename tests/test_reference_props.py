"""Properties of the reference's softmax, sampler, clipping and optimizers."""

import math

import pytest
from hypothesis import assume, given, settings, strategies as st

from minrnn.reference import Optimizer, Rng, argmax, clip_by_norm, clip_by_value, sample, softmax
from soak import examples

logit = st.floats(-30.0, 30.0, allow_nan=False)
logits_st = st.lists(logit, min_size=1, max_size=40)
seed_st = st.integers(0, 2**64 - 1)


def rank_order(logits):
    """Indices best first, ties to the lower index: the order "the k best" refers to."""
    return sorted(range(len(logits)), key=lambda i: (-logits[i], i))


@settings(max_examples=examples(200), deadline=None)
@given(logits_st)
def test_softmax_is_a_distribution(logits):
    p = softmax(logits)
    # each term is exact to an ulp or so; summing <= 40 of them loses at most ~40 ulp of 1
    assert math.fsum(p) == pytest.approx(1.0, abs=1e-14)
    assert all(0.0 <= x <= 1.0 for x in p)
    assert p[argmax(logits)] == max(p)


@settings(max_examples=examples(200), deadline=None)
@given(logits_st, seed_st)
def test_small_temperature_gives_argmax(logits, seed):
    order = rank_order(logits)
    gap = logits[order[0]] - logits[order[1]] if len(logits) > 1 else 1.0
    assume(gap > 1e-6)
    # at temperature gap / 800 every other weight is at most exp(-800), which is 0 in float64
    assert sample(logits, Rng(seed), temperature=gap / 800) == argmax(logits)
    assert sample(logits, Rng(seed), temperature=0.0) == argmax(logits)


def test_temperature_sharpens_towards_argmax():
    # the share of draws that pick the argmax grows as the temperature falls
    logits = [0.0, 0.5, 1.0, 0.2]
    shares = []
    for temperature in (2.0, 1.0, 0.5, 0.1):
        rng = Rng(7)
        shares.append(sum(sample(logits, rng, temperature) == 2 for _ in range(2000)) / 2000)
    assert shares == sorted(shares) and shares[-1] > 0.98


@settings(max_examples=examples(200), deadline=None)
@given(logits_st, st.integers(1, 40), seed_st, st.floats(0.1, 3.0))
def test_top_k_stays_in_the_k_best(logits, k, seed, temperature):
    rng = Rng(seed)
    allowed = set(rank_order(logits)[:k])
    for _ in range(20):
        assert sample(logits, rng, temperature, top_k=k) in allowed


@settings(max_examples=examples(200), deadline=None)
@given(logits_st, st.floats(0.01, 1.0), seed_st)
def test_top_p_stays_in_the_nucleus(logits, top_p, seed):
    # the nucleus: the shortest best-first prefix whose probability reaches top_p
    p = softmax(logits)
    order = rank_order(logits)
    cum, n = 0.0, 0
    while n < len(order) and cum < top_p * (1 - 1e-12):  # slack for the sampler's own rounding
        cum += p[order[n]]
        n += 1
    allowed = set(order[:n + 1])
    rng = Rng(seed)
    for _ in range(20):
        assert sample(logits, rng, top_p=top_p) in allowed


@settings(max_examples=examples(100), deadline=None)
@given(logits_st, seed_st, st.integers(0, 5), st.floats(0.2, 1.0))
def test_same_seed_same_samples(logits, seed, top_k, top_p):
    a, b = Rng(seed), Rng(seed)
    assert [sample(logits, a, 0.8, top_k, top_p) for _ in range(30)] == \
           [sample(logits, b, 0.8, top_k, top_p) for _ in range(30)]


def test_sampling_follows_the_distribution():
    # 20000 draws from p = softmax([0, ln 2, ln 3]) = [1/6, 2/6, 3/6]; the standard error of each
    # frequency is below sqrt(0.25 / 20000) = 0.0035, so 0.015 is more than four of them.
    rng = Rng(1)
    counts = [0, 0, 0]
    for _ in range(20000):
        counts[sample([0.0, math.log(2), math.log(3)], rng)] += 1
    assert [c / 20000 for c in counts] == pytest.approx([1 / 6, 2 / 6, 3 / 6], abs=0.015)


grads_st = st.lists(st.floats(-10.0, 10.0), min_size=1, max_size=20)


@settings(max_examples=examples(100), deadline=None)
@given(grads_st, st.floats(0.1, 5.0))
def test_clip_by_value_bounds_every_element(g, limit):
    clipped = list(g)
    clip_by_value(clipped, limit)
    assert all(-limit <= c <= limit for c in clipped)
    assert all(c == x for c, x in zip(clipped, g) if abs(x) <= limit)


@settings(max_examples=examples(100), deadline=None)
@given(grads_st, st.floats(0.1, 5.0))
def test_clip_by_norm_is_pytorchs_rule(g, max_norm):
    clipped = list(g)
    norm = clip_by_norm(clipped, max_norm)
    assert norm == pytest.approx(math.sqrt(math.fsum(x * x for x in g)), rel=1e-12)
    scale = min(1.0, max_norm / (norm + 1e-6))
    assert clipped == pytest.approx([x * scale for x in g], rel=1e-12, abs=1e-300)
    assert math.sqrt(sum(x * x for x in clipped)) <= max_norm * (1 + 1e-12)


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=8), st.lists(st.floats(-5, 5), min_size=8, max_size=8))
def test_adam_two_steps_match_the_textbook(p0, g):
    # Kingma & Ba, Algorithm 1, written out for steps 1 and 2 with the same gradient g.
    n = len(p0)
    g = g[:n]
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    opt = Optimizer("adam", n, lr=lr)
    p = list(p0)
    opt.update(p, g)
    opt.update(p, g)
    for j in range(n):
        m1, v1 = (1 - b1) * g[j], (1 - b2) * g[j] ** 2
        x1 = p0[j] - lr * (m1 / (1 - b1)) / (math.sqrt(v1 / (1 - b2)) + eps)
        m2, v2 = b1 * m1 + (1 - b1) * g[j], b2 * v1 + (1 - b2) * g[j] ** 2
        x2 = x1 - lr * (m2 / (1 - b1 ** 2)) / (math.sqrt(v2 / (1 - b2 ** 2)) + eps)
        assert p[j] == pytest.approx(x2, rel=1e-12, abs=1e-15)
    assert opt.step == 2


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=8), st.lists(st.floats(-5, 5), min_size=8, max_size=8))
def test_adagrad_step_matches_min_char_rnn(p0, g):
    # min-char-rnn: mem += dparam * dparam; param += -learning_rate * dparam / np.sqrt(mem + 1e-8)
    n = len(p0)
    opt = Optimizer("adagrad", n, lr=0.1)
    p = list(p0)
    opt.update(p, g[:n])
    for j in range(n):
        assert opt.m[j] == g[j] * g[j]
        assert p[j] == pytest.approx(p0[j] - 0.1 * g[j] / math.sqrt(g[j] * g[j] + 1e-8), rel=1e-12, abs=1e-15)


@settings(max_examples=examples(50), deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=8), st.lists(st.floats(-5, 5), min_size=8, max_size=8),
       st.sampled_from(["sgd", "adagrad", "rmsprop", "adam"]), st.floats(0.0, 2.0))
def test_weight_decay_scales_before_the_rule(p0, g, kind, weight_decay):
    # Decoupled weight decay (AdamW, Loshchilov & Hutter): each update is the rule's update of
    # p (1 - lr wd), with the rule's moments untouched by the decay.
    n, lr = len(p0), 0.05
    g = g[:n]
    decayed, plain = Optimizer(kind, n, lr=lr, weight_decay=weight_decay), Optimizer(kind, n, lr=lr)
    p, q = list(p0), [x * (1.0 - lr * weight_decay) for x in p0]
    decayed.update(p, g)
    plain.update(q, g)
    assert p == q and decayed.m == plain.m and decayed.v == plain.v


def test_sgd_momentum_and_rmsprop_by_hand():
    # SGD, momentum 0.9: m1 = g = 2, p1 = 1 - 0.1 * 2 = 0.8; m2 = 0.9 * 2 + 2 = 3.8, p2 = 0.8 - 0.38
    opt = Optimizer("sgd", 1, lr=0.1, momentum=0.9)
    p = [1.0]
    opt.update(p, [2.0])
    opt.update(p, [2.0])
    assert p[0] == pytest.approx(0.42, rel=1e-14)
    # RMSprop, alpha 0.95: m = 0.05 * 4 = 0.2; p = 1 - 0.01 * 2 / (sqrt(0.2) + 1e-8)
    opt = Optimizer("rmsprop", 1, lr=0.01)
    p = [1.0]
    opt.update(p, [2.0])
    assert p[0] == pytest.approx(1.0 - 0.02 / (math.sqrt(0.2) + 1e-8), rel=1e-14)
