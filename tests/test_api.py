"""minrnn.load and minrnn.train, the notebook API: the same results as the command line."""

import math

import numpy as np
import pytest

import minrnn
from cliutil import english, example_files, minrnn as cli
from minrnn.errors import UserError
from genutil import spec_generate

TINY = dict(hidden=16, layers=1, batch_size=4, seq_len=16, sample_every=0, eval_every=10)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    return example_files(folder, 5000)


@pytest.fixture(scope="module")
def lm(folder):
    records = []
    best = minrnn.train(folder / "text.txt", out=folder / "lm", max_iters=20, quiet=True, callback=records.append,
                        **TINY)
    assert [r["iteration"] for r in records] == [10, 20] and all(math.isfinite(r["val_loss"]) for r in records)
    return best


@pytest.fixture(scope="module")
def cls(folder):
    return minrnn.train(folder / "labelled.txt", out=folder / "cls", task="classify", max_iters=40, quiet=True,
                        **{**TINY, "batch_size": 8})


@pytest.fixture(scope="module")
def s2s(folder):
    return minrnn.train(folder / "pairs.tsv", out=folder / "s2s", task="seq2seq", max_iters=20, quiet=True,
                        **{**TINY, "batch_size": 8})


@pytest.fixture(scope="module")
def conditioned(folder):
    """Record models conditioned on a label and on features: {"label": checkpoint, "vector": checkpoint}."""
    np.save(folder / "f.npy", np.random.default_rng(0).normal(3.0, 10.0, (60, 2)))
    return {"label": minrnn.train(folder / "labelled.txt", out=folder / "gen", labels=True, max_iters=200, epochs=100,
                                  quiet=True, **TINY),
            "vector": minrnn.train(folder / "labelled.txt", out=folder / "feat", records=True,
                                   features=str(folder / "f.npy"), max_iters=10, quiet=True, **TINY)}


def test_generate_is_what_sample_prints(folder, lm):
    m = minrnn.load(lm)
    text = m.generate(prime="The ", length=50, temperature=0.8, seed=4)
    printed = cli("sample", "--checkpoint", lm, "--prime", "The ", "--length", "50", "--temperature", "0.8",
                  "--seed", "4", cwd=folder).stdout
    assert text == printed
    assert "The " + "".join(m.stream(prime="The ", length=50, temperature=0.8, seed=4)) == text


def test_num_samples_are_what_sample_num_prints(folder, lm):
    m = minrnn.load(lm)
    texts = m.generate(prime="A", length=30, seed=2, num=3)
    printed = cli("sample", "--checkpoint", lm, "--prime", "A", "--length", "30", "--seed", "2", "--num", "3",
                  cwd=folder).stdout
    assert len(texts) == 3 and len(set(texts)) == 3 and "\n\n".join(texts) + "\n" == printed
    assert m.generate(prime="A", length=30, seed=2, num=1) == [m.generate(prime="A", length=30, seed=2)]


def test_a_drawn_seed_is_kept(lm):
    m = minrnn.load(lm)
    text = m.generate(length=40)
    seed = m.last_seed
    assert isinstance(seed, int) and m.generate(length=40, seed=seed) == text
    pieces = m.stream(length=40)
    assert m.last_seed != seed   # drawn at the call, before the first piece
    assert "".join(pieces) == m.generate(length=40, seed=m.last_seed)


def test_a_conditioned_sample_is_what_sample_condition_prints(folder, conditioned):
    m = minrnn.load(conditioned["label"])
    records = m.generate(condition="up", length=12, seed=3, num=4)
    printed = cli("sample", "--checkpoint", conditioned["label"], "--condition", "up", "--length", "12", "--seed", "3",
                  "--num", "4", cwd=folder).stdout
    assert "".join(r + "\n" for r in records) == printed
    one = cli("sample", "--checkpoint", conditioned["label"], "--condition", "up", "--length", "12", "--seed", "3",
              cwd=folder).stdout
    assert m.generate(condition="up", length=12, seed=3) + "\n" == one   # the first of a batch draws otherwise
    assert m.generate(condition="low", length=12, seed=3, num=4) != records
    with pytest.raises(UserError, match="condition 'side' is not one of this model's labels: low, up"):
        m.generate(condition="side")
    with pytest.raises(UserError, match="conditioned on a label: give condition"):
        m.generate()


def test_a_feature_vector_is_standardized_as_sample_vector_does(folder, conditioned):
    m = minrnn.load(conditioned["vector"])
    raw = np.load(folder / "f.npy")[5]
    records = m.generate(condition=raw, length=12, seed=3, num=3)
    printed = cli("sample", "--checkpoint", conditioned["vector"], "--features", folder / "f.npy", "--row", "5",
                  "--length", "12", "--seed", "3", "--num", "3", cwd=folder).stdout
    assert "".join(r + "\n" for r in records) == printed
    assert m.generate(condition=list(raw), length=12, seed=3, num=3) == records
    shift, scale = m.checkpoint.cond_scaling   # standardized as training did, at the model's level
    cond = np.repeat(((raw - shift) * scale).astype(np.float32)[None, :], 3, axis=0)
    by_hand = spec_generate(m.model, [m.vocab.start_id], 3, 12, 3, end=m.vocab.end_id, banned=m.vocab.start_id,
                            cond=cond)
    assert [m.vocab.to_bytes(ids).decode("utf-8") for ids in by_hand] == records
    with pytest.raises(UserError, match="condition has 3 numbers; this model reads 2 finite ones"):
        m.generate(condition=[1, 2, 3])


def test_loss_is_what_eval_reports(folder, lm):
    nats, bits = minrnn.load(lm).loss((folder / "text.txt").read_text(encoding="utf-8"))
    printed = cli("eval", folder / "text.txt", "--checkpoint", lm, cwd=folder).stdout
    assert f"{nats:.4f} nats/char" in printed and bits == pytest.approx(nats / math.log(2))


def test_evaluate_gives_the_numbers_eval_prints(folder, lm):
    (folder / "odd.txt").write_text(english(2000) + "ΩΩ☃", encoding="utf-8")
    scores = minrnn.load(lm).evaluate(folder / "odd.txt", batch_size=4, seq_len=32)
    printed = cli("eval", folder / "odd.txt", "--checkpoint", lm, "--batch-size", "4", "--seq-len", "32",
                  cwd=folder).stdout
    assert printed.startswith(f"{folder / 'odd.txt'}: {scores.nats:.4f} nats/char, {scores.bits:.4f} bits/char "
                              f"over {scores.characters:,} characters")
    assert scores.unknown == {ord("Ω"): 2, ord("☃"): 1} and "3 characters outside" in printed


def test_evaluate_a_classifier_and_a_conditioned_model(folder, cls, conditioned):
    scores = minrnn.load(cls).evaluate(folder / "labelled.txt")
    printed = cli("eval", folder / "labelled.txt", "--checkpoint", cls, cwd=folder).stdout.splitlines()
    assert scores.labels == ["low", "up"] and scores.records == 60 and scores.majority == 0.5
    assert f"accuracy {scores.accuracy:.4f} over 60 records" in printed[0]
    assert scores.accuracy == np.trace(scores.confusion) / 60 and len(scores.precision) == len(scores.recall) == 2
    records = minrnn.load(conditioned["label"]).evaluate(folder / "labelled.txt")
    assert records.records == 60 and records.characters == 5 * 60   # 4 characters and the end, each record
    assert records.per_record == pytest.approx(records.nats * 5)
    with pytest.raises(UserError, match="give features"):
        minrnn.load(conditioned["vector"]).evaluate(folder / "labelled.txt")
    assert minrnn.load(conditioned["vector"]).evaluate(folder / "labelled.txt", features=folder / "f.npy").records == 60


def test_evaluate_a_seq2seq_model(folder, s2s):
    scores = minrnn.load(s2s).evaluate(folder / "pairs.tsv", beam=2)
    printed = cli("eval", folder / "pairs.tsv", "--checkpoint", s2s, "--beam", "2", cwd=folder).stdout
    assert f"exact match {scores.exact:.4f}, character error rate {scores.cer:.4f} over 60 pairs (beam 2)" in printed
    assert sum(n for _, _, n, _, _ in scores.by_length) == scores.pairs == 60


def test_step_gives_a_distribution_and_carries_the_state(lm):
    m = minrnn.load(lm)
    p, state = m.step("Th")
    assert sum(p.values()) == pytest.approx(1.0) and len(p) == len(m.vocab)
    q, _ = m.step("e", state)
    r, _ = m.step("The")
    assert q == pytest.approx(r)   # feeding in two calls is feeding at once


def test_classify_and_translate(folder, cls, s2s):
    labels = minrnn.load(cls).classify(["ABC1", "abc2"], top=2)
    assert [len(x) for x in labels] == [2, 2] and {name for name, _ in labels[0]} == {"up", "low"}
    out = minrnn.load(s2s).translate(["abc", "ba"], beam=2)
    printed = cli("translate", "--checkpoint", s2s, "--beam", "2", "abc", "ba", cwd=folder).stdout
    assert "\n".join(out) + "\n" == printed


def test_classify_skips_characters_outside_the_vocabulary_as_the_command_does(folder, cls):
    labels = minrnn.load(cls).classify(["AB☃C1"], top=1)
    assert labels == minrnn.load(cls).classify(["ABC1"], top=1)
    printed = cli("classify", "--checkpoint", cls, "--top", "1", "AB☃C1", cwd=folder).stdout
    assert printed == f"AB☃C1\t{labels[0][0][0]} {labels[0][0][1]:.3f}\n"
    with pytest.raises(UserError, match="text 2: none of its characters"):
        minrnn.load(cls).classify(["abc", "☃"])


def test_translations_carry_scores_and_alignments(folder, s2s):
    m = minrnn.load(s2s)
    done = list(m.translations(["abc", "cab"], beam=2, alignments=True))
    printed = cli("translate", "--checkpoint", s2s, "--beam", "2", "--scores", "abc", "cab", cwd=folder).stdout
    assert "".join(f"{t.text}\t{t.logprob:.6f}\n" for t in done) == printed
    for text, t in zip(["abc", "cab"], done):
        assert t.source == list(text)
        assert t.alignments.shape[1] == 3 and len(t.alignments) in (len(t.characters), len(t.characters) + 1)
        assert np.allclose(t.alignments.sum(axis=1), 1.0, atol=1e-5)
    drawn = m.translate(["abc"] * 3, temperature=1.0)
    assert m.translate(["abc"] * 3, temperature=1.0, seed=m.last_seed) == drawn
    with pytest.raises(UserError, match="text 1 has 201 characters; this model reads sources of at most 200"):
        m.translate(["a" * 201])
    with pytest.raises(UserError, match="give beam=1"):
        m.translations(["abc"], beam=2, temperature=1.0)


def test_mistakes_are_user_errors(folder, lm):
    with pytest.raises(UserError, match="unknown settings: hiden"):
        minrnn.train(folder / "text.txt", out=folder / "x", hiden=3)
    with pytest.raises(UserError, match="hidden"):
        minrnn.train(folder / "text.txt", out=folder / "x", hidden=0)
    with pytest.raises(UserError, match="a language model, not a seq2seq model"):
        minrnn.load(lm).translate(["abc"])
    with pytest.raises(UserError, match="this model has no condition"):
        minrnn.load(lm).generate(condition="up")
    with pytest.raises(UserError, match=r"prime: invalid UTF-8 .* this model reads UTF-8"):
        minrnn.load(lm).generate(prime="caf\udce9")


def test_bad_arguments_are_one_line_errors_and_empty_lists_are_empty(lm, cls, s2s):
    m = minrnn.load(lm)
    for bad, message in [(dict(length=-1), r"length: expected a whole number in \[0, 9223372036854775807\]"),
                         (dict(temperature=-1.0), "temperature: expected"), (dict(top_k=-1), "top_k: expected"),
                         (dict(top_p=0.0), "top_p: expected"), (dict(num=0), "num: expected")]:
        with pytest.raises(UserError, match=message):
            m.generate(**bad)
    assert m.generate(prime=b"Th", length=10, seed=1) == m.generate(prime="Th", length=10, seed=1)
    # a character outside the vocabulary is skipped, as every call does, and reported
    plain = m.generate(prime="Th", length=10, seed=1)
    assert m.generate(prime="Th☃", length=10, seed=1) == "Th☃" + plain[2:] and m.last_unknown == {ord("☃"): 1}
    assert minrnn.load(cls).classify([]) == [] and minrnn.load(s2s).translate([]) == []
    # an empty text's translation is empty, and it has no labels: a file's blank line keeps its place
    assert minrnn.load(s2s).translate(["ab", ""])[1] == "" and minrnn.load(cls).classify(["ab", ""])[1] == []
    with pytest.raises(UserError, match="beam: expected"):
        minrnn.load(s2s).translate(["ab"], beam=0)
