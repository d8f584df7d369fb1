"""minrnn from plain C: the example program agrees with Python byte for byte, and a small C
program builds against `make lib` through pkg-config."""

import os
import pathlib
import subprocess

import numpy as np
import pytest

from minrnn import core
from minrnn.inference import generate
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
        trainer.step(streams[s:s + 16], streams[s + 1:s + 17])
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
    ids = list(generate(model, vocab, prime_ids, args["length"], args["seed"], args["temperature"],
                        args.get("top_k", 0), args.get("top_p", 1.0)))
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
    out = subprocess.run([str(example), str(path), "-p", "QZ"], capture_output=True)
    assert out.returncode == 1 and b"vocabulary" in out.stderr and out.stdout == b""
    out = subprocess.run([str(example), str(tmp_path / "nothing.ckpt")], capture_output=True)
    assert out.returncode == 1 and b"could not be opened" in out.stderr
    out = subprocess.run([str(example), str(path), "-t", "-1"], capture_output=True)
    assert out.returncode == 2


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
    if (minrnn_init_params(&cfg, params, 1, MINRNN_INIT_DEFAULT) != MINRNN_OK) return 1;
    int status = minrnn_step(&cfg, params, 1, &token, state, logits, work, 0);
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
