"""minrnn -> safetensors -> minrnn, bit for bit, for every kind of model; PyTorch's module of the same
file gives minrnn's logits (when torch is installed: make test-torch); bad files are one-line errors."""

import itertools

import numpy as np
import pytest

from cliutil import minrnn, one_line_error
from minrnn import core
from minrnn.interop import export_safetensors, import_safetensors, torch_name
from minrnn.reference import Config
from minrnn.reference.seq2seq import Seq2seqConfig

safetensors = pytest.importorskip("safetensors.numpy")

MODELS = {
    "lm one-hot": Config(vocab_size=7, hidden_size=5, cell="lstm", num_layers=2),
    "lm embedding": Config(vocab_size=7, hidden_size=5, cell="gru", embed_size=3, dropout=0.3),
    "min-char-rnn": Config(vocab_size=7, hidden_size=5, cell="rnn_tanh", one_bias=True, reduction="sum"),
    "classifier": Config(vocab_size=9, hidden_size=4, cell="rnn_relu", task="classify", num_classes=3),
    "labels": Config(vocab_size=9, hidden_size=4, cell="lstm", cond="label", cond_size=2),
    "features": Config(vocab_size=9, hidden_size=4, cell="gru", cond="vector", cond_size=3, embed_size=2),
    "seq2seq": Seq2seqConfig(vocab_size=8, hidden_size=6, cell="lstm", attention="additive", attention_size=4),
}


def checkpoint(cfg, seed=1):
    framed = isinstance(cfg, Seq2seqConfig) or cfg.task == "classify" or cfg.cond != "none"
    vocab = list(range(97, 97 + cfg.vocab_size - (2 if framed else 0))) + ([core.START_SYMBOL, core.END_SYMBOL]
                                                                              if framed else [])
    labels = ["x", "y", "z"][:cfg.num_classes] if getattr(cfg, "task", "") == "classify" else (
        ["p", "q"] if getattr(cfg, "cond", "") == "label" else [])
    scaling = (np.arange(3, dtype=np.float32), np.ones(3, np.float32) / 2) if getattr(cfg, "cond", "") == "vector" else None
    return core.Checkpoint(core.model_for(cfg, seed=seed), vocab, "utf8", {"note": "test"}, None, labels, scaling)


@pytest.mark.parametrize("kind", MODELS)
def test_a_round_trip_is_bit_exact(tmp_path, kind):
    ck = checkpoint(MODELS[kind])
    export_safetensors(ck, tmp_path / "m.safetensors")
    back = import_safetensors(tmp_path / "m.safetensors")
    assert back.model.config == ck.model.config
    assert np.array_equal(back.model.params.view(np.uint32), ck.model.params.view(np.uint32))
    assert (back.vocab, back.encoding, list(back.labels), back.meta) == (ck.vocab, ck.encoding, list(ck.labels),
                                                                         ck.meta)
    if ck.cond_scaling is not None:
        assert all(np.array_equal(a, b) for a, b in zip(back.cond_scaling, ck.cond_scaling))


def test_the_cli_exports_and_imports_a_trained_model(tmp_path):
    (tmp_path / "t.txt").write_text("abcabcabd\n" * 30, encoding="utf-8")
    assert minrnn("train", "t.txt", "--hidden", "8", "--layers", "1", "--max-iters", "5", "--batch-size", "2",
                  "--seq-len", "8", "--out", "run", cwd=tmp_path).returncode == 0
    r = minrnn("export", "--checkpoint", "run/best.ckpt", "--out", "m.safetensors", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert minrnn("import", "m.safetensors", "back.ckpt", cwd=tmp_path).returncode == 0
    a, b = (core.load_checkpoint(tmp_path / p) for p in ("run/best.ckpt", "back.ckpt"))
    assert np.array_equal(a.model.params, b.model.params) and a.vocab == b.vocab
    samples = [minrnn("sample", "--checkpoint", p, "--seed", "3", "--length", "40", cwd=tmp_path).stdout
               for p in ("run/best.ckpt", "back.ckpt")]
    assert samples[0] == samples[1] and len(samples[0]) >= 40


def edited(tmp_path, change):
    """A valid exported file with its tensors changed by change(tensors), and its path."""
    ck = checkpoint(MODELS["lm one-hot"])
    export_safetensors(ck, tmp_path / "ok.safetensors")
    from safetensors import safe_open
    with safe_open(str(tmp_path / "ok.safetensors"), framework="numpy") as f:
        metadata = f.metadata()
    tensors = safetensors.load_file(str(tmp_path / "ok.safetensors"))
    change(tensors)
    safetensors.save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=metadata)
    return "bad.safetensors"


@pytest.mark.parametrize("change, fragments", [
    (lambda t: t.pop("rnn.weight_hh_l1"), ["'rnn.weight_hh_l1' is missing"]),
    (lambda t: t.update({"rnn.weight_hh_l1": np.zeros((3, 3), np.float32)}), ["'rnn.weight_hh_l1' has shape (3, 3)"]),
    (lambda t: t.update({"extra.weight": np.zeros(2, np.float32)}), ["'extra.weight' is not one of this model's"]),
    (lambda t: t.update({"decoder.bias": np.zeros(7, np.int32)}), ["'decoder.bias' holds int32"]),
])
def test_bad_files_name_the_tensor(tmp_path, change, fragments):
    bad = edited(tmp_path, change)
    one_line_error(minrnn("import", bad, "out.ckpt", cwd=tmp_path), *fragments)
    assert not (tmp_path / "out.ckpt").exists()


def test_a_file_without_minrnn_metadata_is_one_line(tmp_path):
    safetensors.save_file({"w": np.zeros(2, np.float32)}, str(tmp_path / "plain.safetensors"))
    one_line_error(minrnn("import", "plain.safetensors", "out.ckpt", cwd=tmp_path), "no minrnn metadata")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    one_line_error(minrnn("import", "junk.safetensors", "out.ckpt", cwd=tmp_path), "not a readable safetensors")


def test_layer_tensors_go_under_rnn():
    assert [torch_name(n) for n in ("weight_ih_l0", "bias_hh_l3", "decoder.weight", "enc.weight_hh_l1",
                                    "dec.encoder.weight", "cond.weight")] == [
        "rnn.weight_ih_l0", "rnn.bias_hh_l3", "decoder.weight", "enc.rnn.weight_hh_l1", "dec.encoder.weight",
        "cond.weight"]


# ---- PyTorch's module of the same file (make test-torch installs torch)

@pytest.mark.parametrize("cell, layers, embed", list(itertools.product(["rnn_tanh", "rnn_relu", "lstm", "gru"], [1, 2],
                                                                       [0, 4])))
def test_the_torch_module_gives_minrnns_logits(tmp_path, cell, layers, embed):
    torch = pytest.importorskip("torch")
    from minrnn import torch as mt
    cfg = Config(vocab_size=11, hidden_size=16, cell=cell, num_layers=layers, embed_size=embed, dropout=0.2)
    ck = checkpoint(cfg, seed=7)
    export_safetensors(ck, tmp_path / "m.safetensors")
    module, info = mt.load(tmp_path / "m.safetensors")
    module.eval()
    tokens = np.random.default_rng(3).integers(0, 11, size=(9, 4)).astype(np.int32)
    want = ck.model.forward(tokens).logits
    with torch.no_grad():
        got, _ = module(torch.from_numpy(tokens).long())
    # float32 against float32 in another summation order: a few ulp of logits of size ~1, through
    # 9 steps and 2 layers (measured: at most 1.8e-7 over 80 models, 5 seeds of each case here)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=2e-5)
    assert info["vocab"] == ck.vocab


def test_the_torch_classifier_reads_each_records_last_step(tmp_path):
    torch = pytest.importorskip("torch")
    from minrnn import torch as mt
    cfg = Config(vocab_size=9, hidden_size=8, cell="lstm", task="classify", num_classes=3, embed_size=4)
    ck = checkpoint(cfg, seed=2)
    export_safetensors(ck, tmp_path / "c.safetensors")
    module, _ = mt.load(tmp_path / "c.safetensors")
    module.eval()
    tokens = np.random.default_rng(5).integers(0, 9, size=(6, 3)).astype(np.int32)
    lengths = np.array([6, 2, 4], np.int32)
    want = ck.model.forward(tokens, lengths=lengths).logits
    with torch.no_grad():
        got, _ = module(torch.from_numpy(tokens).long(), lengths=torch.from_numpy(lengths).long())
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=2e-5)   # as above
