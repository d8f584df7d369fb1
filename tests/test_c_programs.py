"""minrnn from plain C: the example program agrees with Python byte for byte (with the generation
loop written out in Python, genutil.spec_generate, and with `python -m minrnn sample` for records,
conditions and batches of samples from models the real command line trains), and a small C
program builds against `make lib` through pkg-config."""

import os
import pathlib
import random
import subprocess

import numpy as np
import pytest

from cliutil import TINY, command, english, environment, minrnn, one_line_error
from genutil import spec_generate
from minrnn import core
from minrnn.reference import Config
from minrnn.text import Vocab, read_symbols

ROOT = pathlib.Path(__file__).resolve().parents[1]


def make(*targets):
    subprocess.run(["make", "-s", *targets], cwd=ROOT, check=True, capture_output=True)


@pytest.fixture(scope="module")
def example():
    make("example")
    return ROOT / "build" / "minrnn_sample"


TEXT = "the cat sat on the mat. the dog ate the hat. héllo wörld, ☃!\n" * 20


def small_checkpoint(path, encoding, kind):
    symbols = read_symbols(TEXT.encode("utf-8"), encoding)
    vocab = Vocab.from_symbols(symbols, encoding)
    ids = vocab.encode(symbols)
    cfg = Config(cell=kind, vocab_size=len(vocab), hidden_size=24, embed_size=8 if kind == "gru" else 0,
                     num_layers=2)
    model = core.Model(cfg, seed=3)
    trainer = core.Trainer(model, batch_size=4, seq_len=16, lr=1e-2, seed=4)
    streams = ids[:len(ids) // 4 * 4].reshape(4, -1).T   # (steps, 4)
    for s in range(0, streams.shape[0] - 17, 16):        # a few steps: the text need not be good
        trainer.step(model.batch(streams[s:s + 16], streams[s + 1:s + 17]))
    core.save_checkpoint(path, model, vocab.symbols, encoding)
    return model, vocab


@pytest.mark.parametrize("encoding, kind, args", [
    ("utf8", "lstm", dict(length=300, temperature=0.8, top_k=5, prime="the ", seed=42)),
    ("utf8", "gru", dict(length=200, temperature=1.0, top_p=0.9, prime="", seed=7)),
    ("bytes", "rnn_tanh", dict(length=250, temperature=1.3, prime="héllo", seed=2**64 - 1)),
    ("utf8", "lstm", dict(length=50, temperature=0.0, prime="wörld", seed=0)),
])
def test_example_program_matches_python(example, tmp_path, encoding, kind, args):
    path = tmp_path / "model.ckpt"
    model, vocab = small_checkpoint(path, encoding, kind)
    prime = args["prime"].encode("utf-8")
    prime_ids = vocab.encode(read_symbols(prime, encoding)) if prime else []
    fed = list(prime_ids) or [vocab.id_of(ord("\n"))]   # an empty prime: a newline (the text has one)
    ids = spec_generate(model, fed, 1, args["length"], args["seed"], args["temperature"], args.get("top_k", 0),
                        args.get("top_p", 1.0))[0]
    expected = prime + vocab.to_bytes(ids)
    cmd = [str(example), str(path), "-n", str(args["length"]), "-t", repr(args["temperature"]),
           "--top-k", str(args.get("top_k", 0)), "--top-p", repr(args.get("top_p", 1.0)), "-s", str(args["seed"])]
    if prime:
        cmd += ["-p", args["prime"]]
    out = subprocess.run(cmd, capture_output=True, check=True)
    assert out.stdout == expected
    assert len(ids) == args["length"]


def test_example_program_reports_bad_input(example, tmp_path):
    path = tmp_path / "model.ckpt"
    small_checkpoint(path, "utf8", "lstm")
    # characters outside the vocabulary are skipped and said, as python -m minrnn sample does
    out = subprocess.run([str(example), str(path), "-p", "QZthe", "-n", "5", "-s", "1"], capture_output=True)
    same = subprocess.run([str(example), str(path), "-p", "the", "-n", "5", "-s", "1"], capture_output=True)
    assert out.returncode == 0 and out.stdout == b"QZ" + same.stdout
    assert out.stderr == b"minrnn_sample: 2 characters outside the model's vocabulary were skipped\n"
    out = subprocess.run([str(example), str(path), "-p", b"caf\xe9"], capture_output=True)
    assert out.returncode == 1 and b"invalid UTF-8 at byte offset 3" in out.stderr and out.stdout == b""
    out = subprocess.run([str(example), str(tmp_path / "nothing.ckpt")], capture_output=True)
    assert out.returncode == 1 and b"could not be opened" in out.stderr
    out = subprocess.run([str(example), str(path), "-t", "-1"], capture_output=True)
    assert out.returncode == 2
    out = subprocess.run([str(example), str(path), "--precision", "int4"], capture_output=True)
    assert out.returncode == 2 and b"bad value for --precision" in out.stderr and out.stdout == b""
    out = subprocess.run([str(example), str(path), "--temperature", "0.5"], capture_output=True)   # -t is its name
    assert out.returncode == 2 and b"unknown option --temperature" in out.stderr
    out = subprocess.run([str(example), str(path), "--beam", "3"], capture_output=True)
    assert out.returncode == 1 and b"--beam is for translating; this checkpoint generates text" in out.stderr


# ---- the example against `python -m minrnn sample`: tiny models trained by the real command line

TRAIN = [*TINY, "--embed", "8", "--max-iters", "30", "--eval-every", "30"]


def write_data(folder):
    """The training files, from a seeded generator: plain records (with a non-ASCII letter),
    labelled records (upper- or lower-case words), features of the plain records (length, and a
    count of 'a' in the record, as a float64 .npy), and English for a stream model."""
    rng = random.Random(11)
    words = ["".join(rng.choice("abcdefghé") for _ in range(rng.randint(2, 12))) for _ in range(200)]
    (folder / "words.txt").write_text("".join(w + "\n" for w in words), encoding="utf-8")
    labelled = []
    for _ in range(200):
        label, word = rng.choice(["upper", "lower"]), "".join(rng.choice("abcdef") for _ in range(rng.randint(3, 10)))
        labelled.append(f"{label}\t{word.upper() if label == 'upper' else word}\n")
    (folder / "labelled.txt").write_text("".join(labelled), encoding="utf-8")
    np.save(folder / "features.npy", np.array([[len(w), 3.5 * w.count("a") + 1] for w in words], dtype=np.float64))
    (folder / "english.txt").write_text(english(4000), encoding="utf-8")
    lines = [line for line in english(6000).splitlines() if line.strip()]
    (folder / "lines.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    numbers = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    (folder / "pairs.txt").write_text("".join(f"{' '.join(numbers[int(d)] for d in str(n))}\t{n}\n"
                                              for n in rng.sample(range(1000), 300)), encoding="utf-8")


MODELS = {   # the training command of each kind of model, after `python -m minrnn train`
    "records": ["words.txt", "--records"],
    "labels": ["labelled.txt", "--labels"],
    "features": ["words.txt", "--features", "features.npy"],
    "stream": ["english.txt"],
    "classifier": ["labelled.txt", "--task", "classify"],
    "words": ["english.txt", "--tokens", "words", "--vocab-size", "150"],
    "word records": ["lines.txt", "--records", "--tokens", "words", "--vocab-size", "150"],
    "word pairs": ["pairs.txt", "--task", "seq2seq", "--tokens", "words"],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """checkpoint(kind): the best checkpoint of a tiny model of that kind, trained once a module."""
    folder = tmp_path_factory.mktemp("trained")
    write_data(folder)
    done = {}

    def checkpoint(kind):
        if kind not in done:
            r = minrnn("train", *MODELS[kind], *TRAIN, "--out", kind, cwd=folder)
            assert r.returncode == 0, r.stderr
            done[kind] = folder / kind / "best.ckpt"
        return done[kind]
    return checkpoint


def python_sample(checkpoint, args):
    r = subprocess.run(command("sample", "--checkpoint", checkpoint, *args), env=environment(), capture_output=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


# (kind, python -m minrnn sample's options, the example's): the same samples asked for each way.
# The example's default length is 200, the command's 500: a record longer than 200 (a loop at
# --argmax) needs the length given to both.
AGREEMENT = [
    ("records", ["--seed", 3], ["-s", 3]),
    ("records", ["--seed", 3, "--num", 5], ["-s", 3, "--num", 5]),
    ("records", ["--seed", 4, "--prime", "ab"], ["-s", 4, "-p", "ab"]),
    ("records", ["--seed", 4, "--num", 5, "--prime", "é", "--temperature", 0.8, "--top-k", 4],
     ["-s", 4, "--num", 5, "-p", "é", "-t", 0.8, "--top-k", 4]),
    ("records", ["--seed", 5, "--num", 7, "--length", 4, "--top-p", 0.9],   # some records cut at 4
     ["-s", 5, "--num", 7, "-n", 4, "--top-p", 0.9]),
    ("records", ["--seed", 6, "--num", 3, "--argmax", "--length", 30], ["-s", 6, "--num", 3, "-t", 0, "-n", 30]),
    ("labels", ["--seed", 7, "--num", 5, "--condition", "upper"], ["-s", 7, "--num", 5, "-c", "upper"]),
    ("labels", ["--seed", 7, "--num", 5, "--condition", "lower"], ["-s", 7, "--num", 5, "--condition", "lower"]),
    ("labels", ["--seed", 8, "--condition", "upper", "--prime", "A"], ["-s", 8, "-c", "upper", "-p", "A"]),
    ("features", ["--seed", 9, "--num", 5, "--vector", "7, 4.5"], ["-s", 9, "--num", 5, "-v", "7, 4.5"]),
    # digits beyond a float32, so that standardizing in double and rounding once is what is compared
    ("features", ["--seed", 9, "--num", 5, "--vector", " 3.14159265358979,-0.1e-3 "],
     ["-s", 9, "--num", 5, "--vector", " 3.14159265358979,-0.1e-3 "]),
    ("stream", ["--seed", 10, "--num", 3, "--length", 60], ["-s", 10, "--num", 3, "-n", 60]),
    ("stream", ["--seed", 11, "--num", 3, "--length", 40, "--prime", "The "],
     ["-s", 11, "--num", 3, "-n", 40, "-p", "The "]),
    ("stream", ["--seed", 12, "--length", 80, "--prime", r"The\nA"], ["-s", 12, "-n", 80, "-p", r"The\nA"]),
    # compact weights: rounded to bfloat16 on load, stepped by minrnn_step_compact
    ("stream", ["--seed", 13, "--length", 80, "--precision", "bfloat16"], ["-s", 13, "-n", 80, "--precision", "bfloat16"]),
    ("labels", ["--seed", 14, "--num", 5, "--condition", "upper", "--precision", "bfloat16"],
     ["-s", 14, "--num", 5, "-c", "upper", "--precision", "bfloat16"]),
    # int8: quantized on load, integer products
    ("stream", ["--seed", 16, "--num", 2, "--length", 80, "--precision", "int8"],
     ["-s", 16, "--num", 2, "-n", 80, "--precision", "int8"]),
    ("features", ["--seed", 17, "--num", 3, "--vector", "7, 4.5", "--precision", "int8"],
     ["-s", 17, "--num", 3, "-v", "7, 4.5", "--precision", "int8"]),
]


@pytest.mark.parametrize("kind, python_args, c_args", AGREEMENT)
def test_example_program_samples_what_the_cli_samples(example, trained, kind, python_args, c_args):
    checkpoint = trained(kind)
    expected = python_sample(checkpoint, python_args)
    out = subprocess.run([str(example), str(checkpoint), *map(str, c_args)], capture_output=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == expected
    assert out.stderr == b""


@pytest.mark.parametrize("kind, precision", [("stream", "bfloat16"), ("features", "bfloat16"), ("stream", "int8"),
                                             ("features", "int8")])
def test_an_exported_checkpoint_samples_as_its_model_at_its_precision(example, trained, tmp_path, kind, precision):
    """`export` keeps the model and drops the training state, in bfloat16 (the default) or int8: the
    CLI and the example sample from it what the original gives at that --precision."""
    checkpoint, exported = trained(kind), tmp_path / "small.ckpt"
    r = minrnn("export", "--checkpoint", checkpoint, "--out", exported,
               *(["--precision", precision] if precision != "bfloat16" else []), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert precision in r.stdout and exported.stat().st_size < checkpoint.stat().st_size / 4
    args = ["--seed", 15, "--num", 3, "--length", 50] + (["--vector", "6 2"] if kind == "features" else [])
    expected = python_sample(checkpoint, args + ["--precision", precision])
    assert python_sample(exported, args) == expected
    c_args = ["-s", "15", "--num", "3", "-n", "50"] + (["-v", "6 2"] if kind == "features" else [])
    out = subprocess.run([str(example), str(exported), *c_args], capture_output=True)
    assert out.returncode == 0 and out.stdout == expected, out.stderr


def nats(result):
    assert result.returncode == 0, result.stderr
    return float(result.stdout.split(" nats/char")[0].rsplit(" ", 1)[1])


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_eval_and_classify_take_compact_weights(trained, tmp_path, precision):
    """eval at --precision bfloat16 or int8 is eval of the checkpoint exported so, to the printed
    digit, and within 0.01 nats of float32 (rounding moves each weight by at most 2^-9 of itself,
    int8 each weight and product input by at most 2^-8 of its row's largest; on these tiny models
    the loss moves by about 1e-4 and 1e-3); classify's probabilities move by as little."""
    checkpoint = trained("stream")
    text = checkpoint.parents[1] / "english.txt"
    exported = tmp_path / "small.ckpt"
    assert minrnn("export", "--checkpoint", checkpoint, "--out", exported, "--precision", precision,
                  cwd=tmp_path).returncode == 0
    full = nats(minrnn("eval", "--checkpoint", checkpoint, text, cwd=tmp_path))
    compact = minrnn("eval", "--checkpoint", checkpoint, "--precision", precision, text, cwd=tmp_path)
    assert compact.stdout == minrnn("eval", "--checkpoint", exported, text, cwd=tmp_path).stdout
    assert abs(nats(compact) - full) < 0.01
    classifier = trained("classifier")
    probabilities = {}
    for weights in ("float32", precision):
        r = minrnn("classify", "--checkpoint", classifier, "--precision", weights, "--top", "2", "abcd", "ABCD",
                   cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        probabilities[weights] = sorted(line.split("\t")[1] for line in r.stdout.splitlines())
    for f32, other in zip(*probabilities.values()):
        for x, y in zip(f32.split()[1::2], other.split()[1::2]):
            assert abs(float(x) - float(y)) <= 0.01


def test_export_refuses_to_replace_its_own_checkpoint(trained, tmp_path):
    checkpoint = trained("stream")
    before = checkpoint.read_bytes()
    one_line_error(minrnn("export", "--checkpoint", checkpoint, "--out", checkpoint, cwd=tmp_path),
                   "which this command reads")
    assert checkpoint.read_bytes() == before
    r = minrnn("sample", "--checkpoint", checkpoint, "--precision", "int4", cwd=tmp_path)
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_conditions_change_the_samples(example, trained):
    """The label and the vector reach every stream: different conditions, different records."""
    def sample(kind, *args):
        return subprocess.run([str(example), str(trained(kind)), "-s", "1", "--num", "8", *args],
                              capture_output=True, check=True).stdout
    upper, lower = sample("labels", "-c", "upper"), sample("labels", "-c", "lower")
    assert upper != lower
    assert sum(c.isupper() for c in upper.decode()) > sum(c.isupper() for c in lower.decode())
    assert sample("features", "-v", "2 1") != sample("features", "-v", "12 30")


@pytest.mark.parametrize("kind, args, fragments", [
    ("labels", ["-c", "middle"], ["'middle' is not one of this model's labels: lower, upper"]),
    ("labels", [], ["give -c LABEL, one of lower, upper"]),
    ("labels", ["-v", "1 2"], ["conditioned on a label"]),
    ("features", [], ["conditioned on 2 features", "-v"]),
    ("features", ["-v", "1 2 3"], ["give 2 finite numbers"]),
    ("features", ["-v", "1, nan"], ["give 2 finite numbers"]),
    ("features", ["-v", "1,"], ["give 2 finite numbers"]),
    ("features", ["-c", "upper"], ["conditioned on 2 features"]),
    ("records", ["-c", "upper"], ["no condition", "drop -c"]),
    ("stream", ["-v", "1"], ["no condition", "drop -v"]),
    ("classifier", [], ["classifier"]),
    ("classifier", ["-c", "upper"], ["classifier"]),
])
def test_example_program_refuses_a_wrong_condition(example, trained, kind, args, fragments):
    out = subprocess.run([str(example), str(trained(kind)), *args], capture_output=True, text=True)
    one_line_error(out, *fragments)
    assert out.stdout == ""


EMBEDDER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <minrnn.h>

int main(void) {
    minrnn_config cfg = {MINRNN_LSTM, MINRNN_TANH, 10, 0, 32, 1, 0.0f};
    float *params = malloc(minrnn_param_count(&cfg) * sizeof(float));
    float *state = calloc(minrnn_state_size(&cfg, 1), sizeof(float));
    float *work = malloc(minrnn_workspace_size(&cfg, 1, 1) * sizeof(float));
    float logits[10];
    int32_t token = 3;
    minrnn_batch batch = {.B = 1, .T = 1, .tokens = &token};
    if (minrnn_init_params(&cfg, params, 1, MINRNN_INIT_DEFAULT) != MINRNN_OK) return 1;
    int status = minrnn_step(&cfg, params, &batch, state, logits, work, 0);
    printf("minrnn %s: %s, logit %.3f\n", minrnn_version(), minrnn_strerror(status), logits[0]);
    free(params), free(state), free(work);
    return status;
}
"""


@pytest.mark.parametrize("static", [False, True])
def test_a_c_program_builds_against_make_lib_with_pkg_config(tmp_path, static):
    make("lib")
    source = tmp_path / "embed.c"
    source.write_text(EMBEDDER)
    env = dict(os.environ, PKG_CONFIG_PATH=str(ROOT / "build"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", *(["--static"] if static else []), "minrnn"],
                           env=env, capture_output=True, text=True, check=True).stdout.split()
    if static:   # the archive, by name, where the shared library would otherwise win
        flags = [f for f in flags if f != "-lminrnn"] + [str(ROOT / "build" / "libminrnn.a"), "-lgomp", "-lm"]
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", str(source), "-o", str(tmp_path / "embed"), *flags],
                   check=True)
    out = subprocess.run([str(tmp_path / "embed")], capture_output=True, text=True, check=True)
    assert out.stdout.startswith(f"minrnn {core.version()}: success, logit ")


# (kind, python -m minrnn's command and options, the example's): models of words, whose primes and
# texts hold words outside the vocabulary (read as the unknown word, and counted on stderr by both)
WORD_AGREEMENT = [
    ("words", ["sample", "--seed", 21, "--length", 60, "--prime", "The grammar, (parsed) zzzunknown. See"],
     ["-s", 21, "-n", 60, "-p", "The grammar, (parsed) zzzunknown. See"]),
    ("words", ["sample", "--seed", 22, "--length", 30, "--num", 3], ["-s", 22, "-n", 30, "--num", 3]),
    # 64 letters: two words, 63 and 1 (with 64 in one, the model would read one word less)
    ("words", ["sample", "--seed", 23, "--length", 40, "--prime", r"  \n\t" + "q" * 63 + "a"],
     ["-s", 23, "-n", 40, "-p", r"  \n\t" + "q" * 63 + "a"]),
    ("word records", ["sample", "--seed", 24, "--num", 4, "--length", 50], ["-s", 24, "--num", 4, "-n", 50]),
    ("word records", ["sample", "--seed", 25, "--prime", "The", "--temperature", 0.7],
     ["-s", 25, "-p", "The", "-t", 0.7]),
    ("word pairs", ["translate", "three one four", "nine nine", "eleven two"], ["three one four", "nine nine", "eleven two"]),
    ("word pairs", ["translate", "--beam", 3, "five five five"], ["--beam", 3, "five five five"]),
]


@pytest.mark.parametrize("kind, python_args, c_args", WORD_AGREEMENT)
def test_the_example_reads_and_writes_words_as_the_cli_does(example, trained, kind, python_args, c_args):
    checkpoint = trained(kind)
    command_name, *options = python_args
    cli = subprocess.run(command(command_name, "--checkpoint", checkpoint, *options), env=environment(),
                         capture_output=True)
    assert cli.returncode == 0, cli.stderr
    out = subprocess.run([str(example), str(checkpoint), *map(str, c_args)], capture_output=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == cli.stdout
    said = [int(x.split()[0]) for x in (cli.stderr.decode(), out.stderr.decode().removeprefix("minrnn_sample: ")) if x]
    assert len(said) in (0, 2) and len(set(said)) <= 1, (cli.stderr, out.stderr)   # the same count of unknown words


def test_the_example_refuses_a_model_of_vectors_in_one_line(example, tmp_path):
    cfg = Config(vocab_size=2, hidden_size=4, task="lm", input_size=3, loss="squared_error")
    core.save_checkpoint(tmp_path / "v.ckpt", core.Model(cfg, seed=1), [], "utf8",
                         input_scaling=(np.zeros(3), np.ones(3)))
    out = subprocess.run([str(example), str(tmp_path / "v.ckpt")], capture_output=True)
    assert out.returncode == 1 and out.stdout == b""
    assert out.stderr == (b"minrnn_sample: this checkpoint reads sequences of vectors, not text (python -m minrnn "
                          b"predict); it does not generate text\n")
