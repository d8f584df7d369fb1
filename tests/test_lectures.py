"""python -m minrnn picture: the features and correlations behind the activations page, the gradient
reach against the RNN's own formula, and valid files (HTML pages, PNG) from trained models."""

import re
from html.parser import HTMLParser

import numpy as np
import pytest

from cliutil import english, minrnn, one_line_error
from minrnn import core
from minrnn.lectures import correlations, features, reach_at, states_after, states_near
from minrnn.reference import Config


def test_features_of_a_text():
    f = features(list('a "b" (c)\nd'))
    assert f["inside quotes"].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0]   # the closing quote ends it
    assert f["inside brackets"].tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0]
    assert f["position in the line"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_correlations_find_the_unit_that_follows_a_feature():
    feature = np.array([0, 1, 1, 0, 1, 0], float)
    units = np.stack([feature * 3 + 1, -feature, np.ones(6), np.arange(6.0)], axis=1)
    r = correlations(units, feature)
    assert r[:3] == pytest.approx([1.0, -1.0, 0.0]) and abs(r[3]) < 1


def test_one_step_back_is_the_rnns_own_formula():
    # h_t = tanh(W_ih x_t + W_hh h_{t-1} + b): dL/dh_{t-1} = W_hh^T ((1 - h_t^2) * dL/dh_t)
    cfg = Config(vocab_size=6, hidden_size=5, cell="rnn_tanh")
    model = core.Model(cfg, seed=3)
    ids = [1, 4, 2, 5, 0, 3, 3, 1]
    along = states_after(model, ids)
    t = 5
    reach = reach_at(model, ids, along, t, 3)
    W, b = model.tensors["decoder.weight"].astype(np.float64), model.tensors["decoder.bias"]
    h = along[t][0, 0, 0].astype(np.float64)
    z = W @ h + b
    p = np.exp(z - z.max())
    p /= p.sum()
    p[ids[t + 1]] -= 1
    g = W.T @ p
    back = model.tensors["weight_hh_l0"].T.astype(np.float64) @ ((1 - h * h) * g)
    # float32 products of length 5 in the core: a few ulp
    assert reach[0] == pytest.approx(np.linalg.norm(g), rel=1e-6)
    assert reach[1] == pytest.approx(np.linalg.norm(back), rel=1e-5)
    assert reach[2] < reach[0] * 10   # a contraction at this init, not an explosion


class Checked(HTMLParser):
    """An HTML page's tags opened and closed in order (the void ones excepted)."""

    def __init__(self):
        super().__init__()
        self.stack, self.h2 = [], 0

    def handle_starttag(self, tag, attrs):
        if tag not in ("meta", "br"):
            self.stack.append(tag)
        self.h2 += tag == "h2"

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, tag


def checked_page(path):
    parser = Checked()
    parser.feed(path.read_text(encoding="utf-8"))
    assert parser.stack == []
    return parser


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lectures")
    (folder / "text.txt").write_text(english(4000), encoding="utf-8")
    for cell in ("rnn_tanh", "lstm"):
        r = minrnn("train", "text.txt", "--cell", cell, "--hidden", "16", "--layers", "1", "--embed", "8",
                   "--max-iters", "20", "--batch-size", "4", "--seq-len", "16", "--sample-every", "0",
                   "--out", cell, cwd=folder)
        assert r.returncode == 0, r.stderr
    return folder


def test_the_pictures_are_valid_files(trained):
    r = minrnn("picture", "activations", "--checkpoint", "lstm/best.ckpt", "--text", "text.txt", "--unit", "3",
               "--out", "act.html", cwd=trained)
    assert r.returncode == 0, r.stderr
    assert checked_page(trained / "act.html").h2 == 4   # the unit asked for, then one per feature
    assert re.search(r"among all \d+ \(every layer", (trained / "act.html").read_text(encoding="utf-8"))
    r = minrnn("picture", "temperature", "--checkpoint", "lstm/best.ckpt", "--prime", "The ", "--temperatures",
               "0.2,1,2", "--length", "80", "--out", "temp.html", cwd=trained)
    assert r.returncode == 0, r.stderr
    assert checked_page(trained / "temp.html").h2 == 3
    pytest.importorskip("matplotlib")
    r = minrnn("picture", "gradients", "--checkpoint", "rnn_tanh/best.ckpt", "--checkpoint", "lstm/best.ckpt",
               "--text", "text.txt", "--distance", "12", "--out", "grad.png", cwd=trained)
    assert r.returncode == 0, r.stderr
    assert (trained / "grad.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "rnn_tanh" in r.stdout and "lstm" in r.stdout


def test_what_it_cannot_draw_is_one_line(trained):
    one_line_error(minrnn("picture", "activations", "--checkpoint", "lstm/best.ckpt", "--out", "a.html",
                          cwd=trained), "--text")
    one_line_error(minrnn("picture", "temperature", "--checkpoint", "lstm/best.ckpt", "--temperatures", "1,x",
                          "--out", "t.html", cwd=trained), "numbers separated by commas")
    one_line_error(minrnn("picture", "activations", "--checkpoint", "lstm/best.ckpt", "--text", "text.txt",
                          "--unit", "999", "--out", "a.html", cwd=trained), "units 0 to")
    one_line_error(minrnn("picture", "gradients", "--checkpoint", "lstm/best.ckpt", "--text", "text.txt",
                          "--out", "g.pdf", cwd=trained), ".png or .svg")


def test_states_near_positions_are_the_states_along_the_text(monkeypatch):
    monkeypatch.setattr("minrnn.lectures.CHUNK", 5)   # several forward calls between positions
    model = core.Model(Config(vocab_size=6, hidden_size=5, cell="lstm", num_layers=2), seed=4)
    ids = np.random.default_rng(1).integers(0, 6, size=60).tolist()
    along = states_after(model, ids)
    near = states_near(model, ids, [50, 12, 15], distance=4)
    assert sorted(near) == list(range(8, 16)) + list(range(46, 51))
    for k, state in near.items():
        # the forward's hoisted input products sum in another order than a step's: float32 round-off
        np.testing.assert_allclose(state, along[k], rtol=0, atol=1e-6)
