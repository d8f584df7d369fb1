"""Models of words (--tokens words): the split rule, the vocabulary, its checkpoint form, and the
commands end to end on real English."""

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cliutil import TINY, english, minrnn, one_line_error
from minrnn import core, text
from minrnn.settings import RUN, check_stored
from minrnn.tasks.lm import TextEvaluation
from soak import examples

# Texts mixing what the rule tells apart: letters, digits, ASCII and Unicode punctuation, every
# kind of whitespace, and other scripts.
PIECES = st.sampled_from(list("ab Z9 \t\n\r\f\v.,'\"-—“”…¿é中 😀") + [" ", "  ", "x" * 70])


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(PIECES, max_size=40).map("".join))
def test_words_give_the_text_back(s):
    tokens = text.split_words(s)
    assert "".join(tokens) == s
    assert all(1 <= len(t) <= text.MAX_TOKEN_CHARS for t in tokens)
    for t in tokens:   # one space at most, and only at the start of a word or a mark
        assert " " not in t[1:] and not (t.startswith(" ") and len(t) > 1 and t[1] in text.WHITESPACE)


def test_the_split_rule_as_the_readme_gives_it():
    assert text.split_words("Hello, world!\n  It's (a) test") == \
        ["Hello", ",", " world", "!", "\n", " ", " It", "'", "s", " (", "a", ")", " test"]
    assert text.split_words("x" * 100) == ["x" * 63, "x" * 37]


def test_a_vocabulary_of_the_commonest_words():
    tokens = text.split_words("the cat the dog the cat a")
    v = text.learn([tokens], "words", size=3)
    assert v.symbols == ["", " cat", " the"]   # the unknown word, then the two commonest (a tie: in order)
    assert list(v.encode(["the", " the", " dog"])) == [0, v.id_of(" the"), 0]
    assert text.learn([tokens], "words", min_count=2).symbols == ["", " cat", " the"]
    framed = text.learn([tokens], "words", framed=True, size=4)
    assert len(framed) == 4 and framed.start_id == 2 and framed.end_id == 3
    assert v.to_bytes(v.encode(tokens)) == b"<unk> cat the<unk> the cat<unk>"
    again = text.vocabulary(framed.stored, "words")
    assert again.symbols == framed.symbols and again.framed


def test_a_word_vocabulary_is_checked_as_the_library_checks_it():
    cfg = core.Config(vocab_size=3, hidden_size=4)
    good = text.store_words(["", " a", "b"])
    assert core.checked_contents(cfg, good, "words", [], None)[0] == good
    for bad, why in [(text.store_words(["", "b", " a"]), "in order"), (text.store_words(["x", " a", "b"]), "in order"),
                     (good[:-1] + [0xD800, text.TOKEN_END], "scalar value"), (good + [98], "not ended"),
                     (text.store_words(["", " a"]), "2 words")]:
        with pytest.raises(ValueError, match=why):
            core.checked_contents(cfg, bad, "words", [], None)


def test_runs_stored_before_tokens_resume_as_chars():
    stored = {s.name: s.default for s in RUN if s.name not in ("tokens", "vocab_size", "min_count")}
    for old, new in [("utf8", "chars"), ("bytes", "bytes")]:
        s = check_stored(RUN, dict(stored, encoding=old))
        assert (s["tokens"], s["vocab_size"], s["min_count"]) == (new, None, None)


def test_a_model_of_words_end_to_end(tmp_path):
    (tmp_path / "en.txt").write_text(english(60000))
    train = minrnn("train", "en.txt", "--tokens", "words", "--vocab-size", "300", *TINY, "--embed", "8",
                   "--max-iters", "12", "--eval-every", "6", "--out", "run", cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    assert "(300 symbols)" in train.stdout and "nats/token" in train.stdout
    ck = core.load_checkpoint(tmp_path / "run" / "best.ckpt")
    assert ck.encoding == "words" and ck.model.config.vocab_size == 300

    # the same seed, the same words; detokenized, they are text again
    samples = [minrnn("sample", "--checkpoint", "run/best.ckpt", "--length", "30", "--seed", "5", "--prime", "The",
                      cwd=tmp_path) for _ in range(2)]
    assert samples[0].returncode == 0 and samples[0].stdout == samples[1].stdout
    assert samples[0].stdout.startswith("The") and len(samples[0].stdout) > 30

    # eval: nats per token and per character of the same total
    ev = minrnn("eval", "--checkpoint", "run/best.ckpt", "en.txt", cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr
    m = re.search(r"([\d.]+) nats/token.* over ([\d,]+) tokens; ([\d.]+) nats/char.* over their ([\d,]+) characters",
                  ev.stdout)
    per_token, tokens, per_char, chars = (float(g.replace(",", "")) for g in m.groups())
    assert 2 < chars / tokens < 8   # English: a few characters a token
    assert per_char * chars == pytest.approx(per_token * tokens, rel=2e-4)   # both printed to 4 decimals
    assert "read as the unknown word" in ev.stdout   # 300 ids do not hold this text's words (eval reports it)

    # through safetensors and back: the same samples
    assert minrnn("export", "run/best.ckpt", "w.safetensors", cwd=tmp_path).returncode == 0
    assert minrnn("import", "w.safetensors", "back.ckpt", cwd=tmp_path).returncode == 0
    back = minrnn("sample", "--checkpoint", "back.ckpt", "--length", "30", "--seed", "5", "--prime", "The",
                  cwd=tmp_path)
    assert back.stdout == samples[0].stdout


def test_word_settings_need_words(tmp_path):
    (tmp_path / "en.txt").write_text(english(5000))
    one_line_error(minrnn("train", "en.txt", "--vocab-size", "100", *TINY, "--out", "r", cwd=tmp_path),
                   "--vocab-size is about a vocabulary of words")
    one_line_error(minrnn("train", "en.txt", "--encoding", "bytes", "--tokens", "words", *TINY, "--out", "r",
                          cwd=tmp_path), "--encoding bytes is --tokens bytes")


def test_loss_per_char_is_the_total_over_the_characters():
    e = TextEvaluation(nats=3.0, characters=10, unknown={}, encoding="words", text_chars=40)
    assert e.nats_per_char == pytest.approx(0.75) and e.bits == pytest.approx(3.0 / math.log(2))
    assert TextEvaluation(nats=1.5, characters=10, unknown={}).nats_per_char == 1.5


def test_a_model_of_words_resumes_exactly_and_runs_in_torch(tmp_path):
    (tmp_path / "en.txt").write_text(english(30000))
    args = ["en.txt", "--tokens", "words", "--vocab-size", "200", "--min-count", "2", *TINY, "--embed", "8",
            "--dropout", "0.2", "--eval-every", "5"]
    assert minrnn("train", *args, "--max-iters", "12", "--out", "whole", cwd=tmp_path).returncode == 0
    assert minrnn("train", *args, "--max-iters", "6", "--out", "split", cwd=tmp_path).returncode == 0
    r = minrnn("train", "--resume", "--max-iters", "12", "--out", "split", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    whole, split = (core.load_checkpoint(tmp_path / d / "latest.ckpt") for d in ("whole", "split"))
    assert np.array_equal(whole.model.params, split.model.params) and whole.vocab == split.vocab

    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from minrnn import torch as mt
    from minrnn.interop import export_safetensors
    export_safetensors(whole, tmp_path / "w.safetensors")
    module, info = mt.load(tmp_path / "w.safetensors")
    assert text.vocabulary(info["vocab"], info["encoding"]).symbols == text.vocabulary(whole.vocab, "words").symbols
    tokens = np.random.default_rng(1).integers(0, 200, size=(7, 3)).astype(np.int32)
    with torch.no_grad():
        got, _ = module.eval()(torch.from_numpy(tokens).long())
    # float32 products summed in another order: ~1e-7 of logits of order one
    np.testing.assert_allclose(got.numpy(), whole.model.forward(tokens).logits, rtol=0, atol=1e-5)


def test_records_of_words_report_per_token_and_per_character(tmp_path):
    lines = [line for line in english(20000).splitlines() if line.strip()]
    (tmp_path / "lines.txt").write_text("".join(line + "\n" for line in lines))
    assert minrnn("train", "lines.txt", "--records", "--tokens", "words", "--vocab-size", "150", *TINY,
                  "--max-iters", "4", "--out", "r", cwd=tmp_path).returncode == 0
    ev = minrnn("eval", "--checkpoint", "r/best.ckpt", "lines.txt", cwd=tmp_path)
    m = re.search(r"([\d.]+) nats/token.* over ([\d,]+) tokens .*\(([\d.]+) nats/char.* over their ([\d,]+) "
                  r"characters\)", ev.stdout)
    per_token, tokens, per_char, chars = (float(g.replace(",", "")) for g in m.groups())
    assert chars == sum(len(line) for line in lines)   # every character of the records, the line ends not
    assert per_char * chars == pytest.approx(per_token * tokens, rel=2e-4)   # one total, printed to 4 decimals


def test_the_api_takes_the_old_name_of_tokens(tmp_path):
    from minrnn import api
    (tmp_path / "t.txt").write_bytes(bytes(range(256)) * 4)
    best = api.train(str(tmp_path / "t.txt"), out=str(tmp_path / "r"), encoding="bytes", hidden=4, layers=1,
                     batch_size=2, seq_len=8, max_iters=2, quiet=True)
    assert core.load_checkpoint(best).encoding == "bytes"
    with pytest.raises(Exception, match="--encoding bytes is --tokens bytes"):
        api.train(str(tmp_path / "t.txt"), out=str(tmp_path / "r2"), encoding="bytes", tokens="words", quiet=True)
