"""The configuration's checks, the parameter block's order and the three initialisations, written
here from the spec, not from the code."""

import math

import pytest

from minrnn.reference import Config, Rng, init_params, param_shapes
from minrnn.reference.model import IRNN_INPUT_BOUND


@pytest.mark.parametrize("fields, message", [
    (dict(task="regress"), "task must be one of lm, classify"),
    (dict(task="classify"), "num_classes >= 2"),                      # K missing
    (dict(task="classify", num_classes=1), "num_classes >= 2"),
    (dict(num_classes=3), "num_classes must be 0"),                   # K for a language model
    (dict(cond="image"), "cond must be one of none, label, vector"),
    (dict(cond="label"), "cond_size >= 1"),                           # C missing
    (dict(cond="vector", cond_size=-1), "cond_size >= 1"),
    (dict(cond_size=4), "cond_size must be 0"),                       # C without a condition
    (dict(one_bias=1), "one_bias must be True or False"),
    (dict(reduction="max"), "reduction must be one of mean, sum"),
])
def test_config_rejects_bad_combinations(fields, message):
    with pytest.raises(ValueError, match=message):
        Config(vocab_size=5, hidden_size=3, **fields)


def test_todays_defaults_are_todays_model():
    cfg = Config(vocab_size=5, hidden_size=3)
    assert (cfg.task, cfg.num_classes, cfg.cond, cfg.cond_size, cfg.one_bias, cfg.reduction) == \
           ("lm", 0, "none", 0, False, "mean")
    assert param_shapes(cfg) == [("weight_ih_l0", (12, 5)), ("weight_hh_l0", (12, 3)), ("bias_ih_l0", (12,)),
                                 ("bias_hh_l0", (12,)), ("decoder.weight", (5, 3)), ("decoder.bias", (5,))]


def test_block_order_with_everything():
    cfg = Config(vocab_size=5, hidden_size=3, cell="gru", embed_size=2, num_layers=2, cond="label", cond_size=4,
                 task="classify", num_classes=6, one_bias=True)
    assert param_shapes(cfg) == [
        ("encoder.weight", (5, 2)), ("cond.weight", (9, 4)),
        ("weight_ih_l0", (9, 2)), ("weight_hh_l0", (9, 3)), ("bias_ih_l0", (9,)),
        ("weight_ih_l1", (9, 3)), ("weight_hh_l1", (9, 3)), ("bias_ih_l1", (9,)),
        ("head.weight", (6, 3)), ("head.bias", (6,))]
    lm = Config(vocab_size=5, hidden_size=3, cell="rnn_tanh", cond="vector", cond_size=2)
    assert [name for name, _ in param_shapes(lm)] == [
        "cond.weight", "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "decoder.weight", "decoder.bias"]


def by_hand(cfg, seed, rules):
    """The parameters drawn from seed in block order, rules[name] saying how: ("u", bound): one
    uniform per element, (2u - 1) bound; ("n",): two uniforms u1, u2 per element, the N(0, 1) value
    of Box and Muller, then times 0.01 (the C core's order: the product is rounded differently from
    (0.01 * sqrt) * cos); ("eye",) and ("0",): no draw."""
    rng = Rng(seed)
    out = {}
    for name, shape in param_shapes(cfg):
        rows, cols = shape if len(shape) == 2 else (1, shape[0])
        rule = rules[name]
        values = []
        for r in range(rows):
            for c in range(cols):
                if rule[0] == "u":
                    values.append((2.0 * rng.uniform() - 1.0) * rule[1])
                elif rule[0] == "n":
                    u1 = rng.uniform()
                    u2 = rng.uniform()
                    values.append(0.01 * (math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)))
                else:
                    values.append(1.0 if rule[0] == "eye" and r == c else 0.0)
        out[name] = [values[r * cols:(r + 1) * cols] for r in range(rows)] if len(shape) == 2 else values
    return out


def test_normal_init_is_min_char_rnns():
    # every weight matrix 0.01 N(0, 1), drawn u1 then u2 per element and computed in exactly that
    # order; every bias zero, drawing nothing
    cfg = Config(vocab_size=5, hidden_size=3, cell="gru", embed_size=2, num_layers=2, cond="vector", cond_size=2,
                 task="classify", num_classes=3)
    rules = {name: ("0",) if "bias" in name else ("n",) for name, _ in param_shapes(cfg)}
    assert init_params(cfg, 11, "normal") == by_hand(cfg, 11, rules)
    lm = Config(vocab_size=4, hidden_size=2, cell="lstm", one_bias=True)
    params = init_params(lm, 3, "normal")
    assert by_hand(lm, 3, {name: ("0",) if "bias" in name else ("n",) for name, _ in param_shapes(lm)}) == params
    assert params["decoder.bias"] == [0.0] * 4 and params["bias_ih_l0"] == [0.0] * 8 and "bias_hh_l0" not in params


def test_normal_init_has_mean_0_and_std_0_01():
    # n = 30000 weights. A correct N(0, 0.01^2) has a sample mean within 4 standard errors,
    # 4 * 0.01 / sqrt(n) = 2.3e-4, and a sample std within 4 * 0.01 / sqrt(2n) = 1.6e-4 of 0.01, but
    # for a chance of 6e-5. (The 24-bit uniforms cut the tails at sqrt(2 ln 2^24) = 5.8 std, which
    # moves the variance by less than 1e-6 of itself.) A dropped factor of 2 under the root moves the std
    # by 29%; the formula itself is checked element by element above.
    cfg = Config(vocab_size=100, hidden_size=100, cell="rnn_tanh")
    params = init_params(cfg, 2024, "normal")
    w = [x for name in ("weight_ih_l0", "weight_hh_l0", "decoder.weight") for row in params[name] for x in row]
    n = len(w)
    mean = math.fsum(w) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in w) / (n - 1))
    assert n == 30000
    assert abs(mean) < 2.5e-4
    assert abs(std - 0.01) < 2e-4
    # the signs balance and the tails are normal's: 4.55% beyond two std, with a standard error of
    # sqrt(0.0455 * 0.9545 / n) = 0.12%
    assert abs(sum(abs(x) > 0.02 for x in w) / n - 0.0455) < 0.006


def test_default_and_irnn_cover_the_new_tensors():
    H = 4
    cfg = Config(vocab_size=5, hidden_size=H, cell="rnn_relu", embed_size=2, cond="label", cond_size=3,
                 task="classify", num_classes=2, one_bias=True)
    wide = ("u", 1.0 / math.sqrt(H))
    default = {name: wide for name, _ in param_shapes(cfg)}
    default["encoder.weight"] = ("u", math.sqrt(3.0))
    assert init_params(cfg, 8) == by_hand(cfg, 8, default)
    # irnn: identity weight_hh, zero biases (bias_ih only: one_bias), cond.weight small like weight_ih,
    # the head like a decoder
    irnn = {"encoder.weight": ("u", math.sqrt(3.0)), "cond.weight": ("u", IRNN_INPUT_BOUND),
            "weight_ih_l0": ("u", IRNN_INPUT_BOUND), "weight_hh_l0": ("eye",), "bias_ih_l0": ("0",),
            "head.weight": wide, "head.bias": wide}
    assert init_params(cfg, 8, "irnn") == by_hand(cfg, 8, irnn)
    assert IRNN_INPUT_BOUND == 0.001 * math.sqrt(3.0)


def test_unknown_schemes_and_irnn_for_gated_cells_are_refused():
    with pytest.raises(ValueError, match="default, irnn, normal"):
        init_params(Config(vocab_size=3, hidden_size=2), 0, "xavier")
    with pytest.raises(ValueError, match="irnn"):
        init_params(Config(vocab_size=3, hidden_size=2, cell="gru"), 0, "irnn")
    init_params(Config(vocab_size=3, hidden_size=2, cell="gru"), 0, "normal")
