"""Sequence to sequence through the real command line: train --task seq2seq, translate (greedy,
beam, sampling, the attention picture), eval on pairs, exact resume, the C example's byte-for-byte
agreement, and one-line errors for bad pairs, texts and checkpoints."""

import pathlib
import random
import subprocess

import numpy as np
import pytest

from cliutil import command, environment, minrnn, one_line_error
from minrnn import core

ROOT = pathlib.Path(__file__).resolve().parents[1]
# A task that needs the source: each word reversed (a non-ASCII letter included), 1 to 9 letters.
LETTERS = "abcdefgé"
TRAIN = ["--task", "seq2seq", "--hidden", "24", "--layers", "1", "--embed", "8", "--batch-size", "8",
         "--eval-every", "40", "--sample-every", "0"]
INPUTS = ["abc", "gécab", "a", "ddeeff", "bbbbbbbbb"]


def write_pairs(path, n=240, seed=5):
    rng = random.Random(seed)
    words = ["".join(rng.choice(LETTERS) for _ in range(rng.randint(1, 9))) for _ in range(n)]
    path.write_text("".join(f"{w}\t{w[::-1]}\n" for w in words), encoding="utf-8")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """checkpoint(attention): a tiny model of each attention kind, trained once a module."""
    folder = tmp_path_factory.mktemp("seq2seq")
    write_pairs(folder / "pairs.tsv")
    done = {}

    def checkpoint(attention):
        if attention not in done:
            steps = "400" if attention == "general" else "80"   # the one that must have learnt
            r = minrnn("train", "pairs.tsv", *TRAIN, "--attention", attention, "--max-iters", steps, "--out",
                       attention, cwd=folder)
            assert r.returncode == 0, r.stderr
            assert "exact" in r.stdout and "CER" in r.stdout, r.stdout
            done[attention] = folder / attention / "best.ckpt"
        return done[attention]
    checkpoint.folder = folder
    return checkpoint


@pytest.fixture(scope="module")
def example():
    subprocess.run(["make", "-s", "example"], cwd=ROOT, check=True, capture_output=True)
    return ROOT / "build" / "minrnn_sample"


def translate(ckpt, *args):
    r = subprocess.run(command("translate", "--checkpoint", ckpt, *args), env=environment(), capture_output=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def scored(ckpt, *args):
    """[(translation, log probability)] of INPUTS."""
    lines = translate(ckpt, "--scores", *args, *INPUTS).decode("utf-8").splitlines()
    return [(text, float(score)) for text, score in (line.split("\t") for line in lines)]


@pytest.mark.parametrize("attention", ["none", "dot", "general", "additive"])
def test_translate_greedy_and_beam(trained, attention):
    ckpt = trained(attention)
    greedy = scored(ckpt)
    assert len(greedy) == len(INPUTS) and all(lp <= 0 for _, lp in greedy)
    assert scored(ckpt, "--beam", "1") == greedy   # beam 1 is greedy exactly
    for k in (2, 5):   # a beam never returns a less probable translation than greedy's
        for (_, lp_beam), (_, lp_greedy) in zip(scored(ckpt, "--beam", str(k)), greedy):
            assert lp_beam >= lp_greedy


def test_the_model_learns_with_attention(trained, tmp_path):
    # 400 steps of a tiny model: not every word yet (measured 0.29 exact, 0.69 on 1-3 letters), but
    # far above chance (guessing a word of n letters is right 8^-n of the time: 1.6% over this
    # file); and eval's table covers every pair
    r = minrnn("eval", trained.folder / "pairs.tsv", "--checkpoint", trained("general"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    exact = float(r.stdout.split("exact match ")[1].split(",")[0])
    assert exact > 0.2, r.stdout
    assert "by source length" in r.stdout
    counts = [int(line.split()[1].replace(",", "")) for line in r.stdout.splitlines()[2:]]
    assert sum(counts) == 240


def test_sampling_is_seeded_and_streams_one_line_per_text(trained):
    ckpt = trained("dot")
    a = translate(ckpt, "--temperature", "1.0", "--seed", "3", *INPUTS)
    assert a == translate(ckpt, "--temperature", "1.0", "--seed", "3", *INPUTS)
    assert a.count(b"\n") == len(INPUTS)


def test_the_attention_picture(trained, tmp_path):
    out = tmp_path / "attention.html"
    translate(trained("additive"), "--picture", out, "abc", "gécab")
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 2
    assert page.count("<rect") >= 3 * 2   # at least one row (the end) per source character
    assert "gécab" in page


def test_the_c_example_translates_what_the_cli_translates(trained, example):
    for attention in ("dot", "additive", "none"):
        ckpt = trained(attention)
        for cli_args, c_args in ((), ()), (("--beam", "3"), ("--beam", "3")), \
                (("--temperature", "0.7", "--seed", "9"), ("-t", "0.7", "-s", "9")), \
                (("--precision", "bfloat16", "--max-length", "4"), ("--precision", "bfloat16", "--max-length", "4")), \
                (("--precision", "int8", "--beam", "2"), ("--precision", "int8", "--beam", "2")):
            c = subprocess.run([example, ckpt, *c_args, *INPUTS], capture_output=True)
            assert c.returncode == 0, c.stderr
            assert c.stdout == translate(ckpt, *cli_args, *INPUTS), (attention, cli_args)


def test_a_resumed_run_makes_the_same_steps(tmp_path):
    write_pairs(tmp_path / "pairs.tsv")
    args = ["pairs.tsv", *TRAIN, "--attention", "additive", "--attention-size", "6", "--dropout", "0.2"]
    assert minrnn("train", *args, "--max-iters", "60", "--out", "whole", cwd=tmp_path).returncode == 0
    assert minrnn("train", *args, "--max-iters", "30", "--out", "split", cwd=tmp_path).returncode == 0
    r = minrnn("train", "--resume", "--max-iters", "60", "--out", "split", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    whole, split = (core.load_checkpoint(tmp_path / d / "latest.ckpt") for d in ("whole", "split"))
    assert np.array_equal(whole.model.params, split.model.params)
    assert whole.model.config == split.model.config and whole.model.config.attention_size == 6


@pytest.mark.parametrize("content, fragments", [
    ("abc\tcba\nno tab here\n", ["line 2 has no tab", "source<TAB>target"]),
    ("abc\tcba\n\tx\n", ["line 2 has an empty source"]),
    ("abc\t\n", ["line 1 has an empty target"]),
    ("abcdefghijk\tx\n", ["line 1 has a source of 11 characters", "--max-source 10"]),
])
def test_bad_pairs_are_one_line(tmp_path, content, fragments):
    (tmp_path / "bad.tsv").write_text(content * 3, encoding="utf-8")
    one_line_error(minrnn("train", "bad.tsv", *TRAIN, "--max-source", "10", cwd=tmp_path), *fragments)


def test_bad_texts_and_checkpoints_are_one_line(trained, example, tmp_path):
    ckpt, none = trained("dot"), trained("none")
    r = minrnn("translate", "--checkpoint", ckpt, "abcz", cwd=tmp_path)   # skipped and said, as every command does
    assert r.returncode == 0 and r.stdout == minrnn("translate", "--checkpoint", ckpt, "abc", cwd=tmp_path).stdout
    assert "1 characters outside the model's vocabulary were skipped (1 distinct: 'z' x1)" in r.stderr
    one_line_error(minrnn("translate", "--checkpoint", ckpt, "zz", cwd=tmp_path), "text 1: none of its characters")
    one_line_error(minrnn("translate", "--checkpoint", ckpt, "abc", "", cwd=tmp_path), "non-empty texts")
    one_line_error(minrnn("translate", "--checkpoint", ckpt, "a" * 201, cwd=tmp_path), "at most 200")
    one_line_error(minrnn("translate", "--checkpoint", ckpt, "--beam", "2", "--temperature", "1", "abc",
                          cwd=tmp_path), "drop --beam")
    one_line_error(minrnn("translate", "--checkpoint", none, "--picture", tmp_path / "p.html", "abc", cwd=tmp_path),
                   "no attention")
    one_line_error(minrnn("sample", "--checkpoint", ckpt, cwd=tmp_path), "seq2seq model", "translate")
    one_line_error(minrnn("classify", "--checkpoint", ckpt, "abc", cwd=tmp_path), "seq2seq model", "translate")
    (tmp_path / "text.txt").write_text("abcabcabc\n" * 20, encoding="utf-8")
    assert minrnn("train", "text.txt", "--hidden", "8", "--layers", "1", "--max-iters", "1", "--batch-size", "2",
                  "--seq-len", "8", "--out", "lm", cwd=tmp_path).returncode == 0
    one_line_error(minrnn("translate", "--checkpoint", tmp_path / "lm" / "best.ckpt", "abc", cwd=tmp_path),
                   "language model, not a seq2seq model", "sample")
    c = subprocess.run([example, ckpt, "zz"], capture_output=True, text=True)
    assert c.returncode != 0 and "text 1" in c.stderr and len(c.stderr.strip().splitlines()) == 1
