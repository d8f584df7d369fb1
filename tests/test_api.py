"""minrnn.load and minrnn.train, the notebook API: the same results as the command line."""

import math

import pytest

import minrnn
from cliutil import english, minrnn as cli
from minrnn.errors import UserError

TINY = dict(hidden=16, layers=1, batch_size=4, seq_len=16, sample_every=0, eval_every=10)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    (folder / "text.txt").write_text(english(5000), encoding="utf-8")
    (folder / "labelled.txt").write_text("".join(f"{'up' if i % 2 else 'low'}\t{'ABC' if i % 2 else 'abc'}{i % 7}\n"
                                                 for i in range(60)), encoding="utf-8")
    (folder / "pairs.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in ("ab", "abc", "ba", "cab", "bca") * 12),
                                      encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def lm(folder):
    records = []
    best = minrnn.train(folder / "text.txt", out=folder / "lm", max_iters=20, quiet=True, callback=records.append,
                        **TINY)
    assert [r["iteration"] for r in records] == [10, 20] and all(math.isfinite(r["val_loss"]) for r in records)
    return best


def test_generate_is_what_sample_prints(folder, lm):
    m = minrnn.load(lm)
    text = m.generate(prime="The ", length=50, temperature=0.8, seed=4)
    printed = cli("sample", "--checkpoint", lm, "--prime", "The ", "--length", "50", "--temperature", "0.8",
                  "--seed", "4", cwd=folder).stdout
    assert text == printed
    assert "The " + "".join(m.stream(prime="The ", length=50, temperature=0.8, seed=4)) == text


def test_loss_is_what_eval_reports(folder, lm):
    nats, bits = minrnn.load(lm).loss((folder / "text.txt").read_text(encoding="utf-8"))
    printed = cli("eval", folder / "text.txt", "--checkpoint", lm, cwd=folder).stdout
    assert f"{nats:.4f} nats/char" in printed and bits == pytest.approx(nats / math.log(2))


def test_step_gives_a_distribution_and_carries_the_state(lm):
    m = minrnn.load(lm)
    p, state = m.step("Th")
    assert sum(p.values()) == pytest.approx(1.0) and len(p) == len(m.vocab)
    q, _ = m.step("e", state)
    r, _ = m.step("The")
    assert q == pytest.approx(r)   # feeding in two calls is feeding at once


def test_classify_and_translate(folder):
    cls = minrnn.train(folder / "labelled.txt", out=folder / "cls", task="classify", max_iters=40, quiet=True,
                       **{**TINY, "batch_size": 8})
    labels = minrnn.load(cls).classify(["ABC1", "abc2"], top=2)
    assert [len(x) for x in labels] == [2, 2] and {name for name, _ in labels[0]} == {"up", "low"}
    s2s = minrnn.train(folder / "pairs.tsv", out=folder / "s2s", task="seq2seq", max_iters=20, quiet=True,
                       **{**TINY, "batch_size": 8})
    out = minrnn.load(s2s).translate(["abc", "ba"], beam=2)
    printed = cli("translate", "--checkpoint", s2s, "--beam", "2", "abc", "ba", cwd=folder).stdout
    assert "\n".join(out) + "\n" == printed


def test_mistakes_are_user_errors(folder, lm):
    with pytest.raises(UserError, match="unknown settings: hiden"):
        minrnn.train(folder / "text.txt", out=folder / "x", hiden=3)
    with pytest.raises(UserError, match="hidden"):
        minrnn.train(folder / "text.txt", out=folder / "x", hidden=0)
    with pytest.raises(UserError, match="seq2seq models do that"):
        minrnn.load(lm).translate(["abc"])
