"""minrnn -> safetensors -> minrnn, bit for bit, for every kind of model; PyTorch's module of the same
file gives minrnn's logits (when torch is installed: make test-torch); bad files are one-line errors."""

import itertools

import numpy as np
import pytest

from cliutil import minrnn, one_line_error
from minrnn import core
from minrnn.interop import export_safetensors, import_model, torch_name
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
    "seq2seq fed": Seq2seqConfig(vocab_size=8, hidden_size=6, cell="gru", attention="general", input_feeding=True),
    "caption": Seq2seqConfig(vocab_size=8, hidden_size=6, cell="lstm", embed_size=2, attention="additive",
                             attention_size=4, input_size=3, input_feeding=True),
}


def checkpoint(cfg, seed=1):
    framed = isinstance(cfg, Seq2seqConfig) or cfg.task == "classify" or cfg.cond != "none"
    vocab = list(range(97, 97 + cfg.vocab_size - (2 if framed else 0))) + ([core.START_SYMBOL, core.END_SYMBOL]
                                                                              if framed else [])
    labels = ["x", "y", "z"][:cfg.num_classes] if getattr(cfg, "task", "") == "classify" else (
        ["p", "q"] if getattr(cfg, "cond", "") == "label" else [])
    scaling = (np.arange(3, dtype=np.float32), np.ones(3, np.float32) / 2) if getattr(cfg, "cond", "") == "vector" else None
    D = cfg.input_size   # a captioner's grid scaling
    input_scaling = (np.linspace(-1, 1, D, dtype=np.float32), np.full(D, 0.25, np.float32)) if D else None
    return core.Checkpoint(core.model_for(cfg, seed=seed), vocab, "utf8", {"note": "test"}, None, labels, scaling,
                           input_scaling=input_scaling)


@pytest.mark.parametrize("kind", MODELS)
def test_a_round_trip_is_bit_exact(tmp_path, kind):
    ck = checkpoint(MODELS[kind])
    export_safetensors(ck, tmp_path / "m.safetensors")
    back = import_model(tmp_path / "m.safetensors")
    assert back.model.config == ck.model.config
    assert np.array_equal(back.model.params.view(np.uint32), ck.model.params.view(np.uint32))
    assert (back.vocab, back.encoding, list(back.labels), back.meta) == (ck.vocab, ck.encoding, list(ck.labels),
                                                                         ck.meta)
    for mine, theirs in ((back.cond_scaling, ck.cond_scaling), (back.input_scaling, ck.input_scaling)):
        assert (mine is None) == (theirs is None) and all(np.array_equal(a, b) for a, b in zip(mine or (), theirs or ()))


@pytest.mark.parametrize("kind, older", [("lm one-hot", ("input_size", "loss")),                # before 0.6
                                         ("seq2seq", ("input_size", "input_feeding"))])     # before 0.7
def test_a_file_exported_before_a_config_field_existed_imports(tmp_path, kind, older):
    # an older minrnn wrote no field it did not have; its files mean that field's one old value
    import json
    from minrnn.interop import read_safetensors
    ck = checkpoint(MODELS[kind])
    export_safetensors(ck, tmp_path / "new.safetensors")
    tensors, info = read_safetensors(tmp_path / "new.safetensors")
    for field in older:
        del info["config"][field]
    safetensors.save_file(tensors, str(tmp_path / "old.safetensors"), metadata={"minrnn": json.dumps(info)})
    back = import_model(tmp_path / "old.safetensors")
    assert back.model.config == ck.model.config
    assert np.array_equal(back.model.params.view(np.uint32), ck.model.params.view(np.uint32))


def test_the_cli_exports_and_imports_a_trained_model(tmp_path):
    (tmp_path / "t.txt").write_text("abcabcabd\n" * 30, encoding="utf-8")
    assert minrnn("train", "t.txt", "--hidden", "8", "--layers", "1", "--max-iters", "5", "--batch-size", "2",
                  "--seq-len", "8", "--out", "run", cwd=tmp_path).returncode == 0
    r = minrnn("export", "--checkpoint", "run/best.ckpt", "--out", "m.safetensors", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert minrnn("export", "run/best.ckpt", "positional.safetensors", cwd=tmp_path).returncode == 0
    assert (tmp_path / "positional.safetensors").read_bytes() == (tmp_path / "m.safetensors").read_bytes()
    one_line_error(minrnn("export", "run/best.ckpt", cwd=tmp_path), "CKPT OUT")
    one_line_error(minrnn("export", "--checkpoint", "run/best.ckpt", cwd=tmp_path), "give where to write")
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

# float32 against float32 in another summation order: a few ulp of logits of size ~1, through 9 steps
# and 2 layers, or an encoder, attention and a decoder (measured: at most 1.8e-7 over 80 language
# models, 5 seeds of each case; at most 1.2e-7 for conditions, one bias and seq2seq with each
# attention and cell, 5 seeds of each). 1e-6 is 8 ulp of a logit of 1, 5x the worst seen; a wrong
# equation (a bias left out, a gate in another order) is off by far more.
ATOL = 1e-6


def torch_of(tmp_path, ck):
    """minrnn.torch's module of ck's exported file, in eval mode (no dropout), and the metadata."""
    from minrnn import torch as mt
    export_safetensors(ck, tmp_path / "m.safetensors")
    module, info = mt.load(tmp_path / "m.safetensors")
    return module.eval(), info


def lm_logits(torch, model, module, tokens, cond=None):
    """(minrnn's logits, the module's) of tokens (T, B) int32 and a condition (labels or vectors)."""
    want = model.forward(tokens, cond=cond).logits
    with torch.no_grad():
        got, _ = module(torch.from_numpy(tokens).long(), cond=None if cond is None else torch.from_numpy(cond))
    return want, got.numpy()


@pytest.mark.parametrize("cell, layers, embed", list(itertools.product(["rnn_tanh", "rnn_relu", "lstm", "gru"], [1, 2],
                                                                       [0, 4])))
def test_the_torch_module_gives_minrnns_logits(tmp_path, cell, layers, embed):
    torch = pytest.importorskip("torch")
    ck = checkpoint(Config(vocab_size=11, hidden_size=16, cell=cell, num_layers=layers, embed_size=embed,
                           dropout=0.2), seed=7)
    module, info = torch_of(tmp_path, ck)
    tokens = np.random.default_rng(3).integers(0, 11, size=(9, 4)).astype(np.int32)
    np.testing.assert_allclose(*lm_logits(torch, ck.model, module, tokens), rtol=0, atol=ATOL)
    assert info["vocab"] == ck.vocab


CONDITIONED = {
    "labels": (Config(vocab_size=9, hidden_size=8, cell="lstm", num_layers=2, cond="label", cond_size=2),
               np.array([0, 1, 1], np.int32)),
    "features": (Config(vocab_size=9, hidden_size=8, cell="gru", embed_size=2, cond="vector", cond_size=3),
                 np.random.default_rng(2).normal(size=(3, 3)).astype(np.float32)),
    "min-char-rnn": (Config(vocab_size=7, hidden_size=5, cell="rnn_tanh", one_bias=True, reduction="sum"), None),
}


@pytest.mark.parametrize("kind", CONDITIONED)
def test_conditions_and_one_bias_keep_minrnns_layout_in_torch(tmp_path, kind):
    torch = pytest.importorskip("torch")
    cfg, cond = CONDITIONED[kind]
    ck = checkpoint(cfg, seed=3)
    module, _ = torch_of(tmp_path, ck)
    assert {name: tuple(t.shape) for name, t in module.state_dict().items()} == {
        torch_name(name): view.shape for name, view in ck.model.tensors.items()}
    tokens = np.random.default_rng(1).integers(0, cfg.vocab_size - 2, size=(7, 3)).astype(np.int32)
    np.testing.assert_allclose(*lm_logits(torch, ck.model, module, tokens, cond), rtol=0, atol=ATOL)


def test_one_bias_stays_zero_while_pytorch_trains(tmp_path):
    torch = pytest.importorskip("torch")
    module, _ = torch_of(tmp_path, checkpoint(CONDITIONED["min-char-rnn"][0]))
    opt = torch.optim.SGD(module.parameters(), lr=0.5)
    logits, _ = module(torch.tensor([[1, 2, 3, 4]]).T)
    logits.sum().backward()
    opt.step()
    assert not torch.any(module.rnn.bias_hh_l0) and torch.any(module.rnn.bias_ih_l0 != 0)


def test_the_torch_classifier_reads_each_records_last_step(tmp_path):
    torch = pytest.importorskip("torch")
    ck = checkpoint(Config(vocab_size=9, hidden_size=8, cell="lstm", task="classify", num_classes=3, embed_size=4),
                    seed=2)
    module, _ = torch_of(tmp_path, ck)
    tokens = np.random.default_rng(5).integers(0, 9, size=(6, 3)).astype(np.int32)
    lengths = np.array([6, 2, 4], np.int32)
    want = ck.model.forward(tokens, lengths=lengths).logits
    with torch.no_grad():
        got, _ = module(torch.from_numpy(tokens).long(), lengths=torch.from_numpy(lengths).long())
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=ATOL)


def pairs_batch(cfg, seed):
    """A ragged batch of 3 pairs: (source, its lengths, decoder inputs, targets, their lengths); a
    captioner's source is a grid (6, 3, D)."""
    rng = np.random.default_rng(seed)
    source = rng.integers(0, cfg.start, size=(6, 3)).astype(np.int32)
    if cfg.input_size:
        source = rng.uniform(-1, 1, size=(6, 3, cfg.input_size)).astype(np.float32)
    inputs = rng.integers(0, cfg.vocab_size, size=(5, 3)).astype(np.int32)
    inputs[0] = cfg.start
    targets = rng.integers(0, cfg.vocab_size, size=(5, 3)).astype(np.int32)
    return source, np.array([6, 2, 4], np.int32), inputs, targets, np.array([5, 3, 1], np.int32)


@pytest.mark.parametrize("attention, cell", [("none", "lstm"), ("dot", "gru"), ("general", "rnn_tanh"),
                                             ("additive", "lstm"), ("additive", "gru")])
@pytest.mark.parametrize("D, feed", [(0, False), (0, True), (4, False), (4, True)])
def test_the_torch_seq2seq_gives_minrnns_logits_and_alignments(tmp_path, attention, cell, D, feed):
    # translation and captioning (a grid of 4-vectors; dot: of 6, the state's width), fed or not
    torch = pytest.importorskip("torch")
    if feed and attention == "none":
        pytest.skip("input feeding feeds the attention's context")
    cfg = Seq2seqConfig(vocab_size=8, hidden_size=6, cell=cell, num_layers=2, embed_size=3, dropout=0.1,
                        attention=attention, attention_size=4 if attention == "additive" else 0,
                        input_size=6 if D and attention == "dot" else D, input_feeding=feed)
    ck = checkpoint(cfg, seed=4)
    module, _ = torch_of(tmp_path, ck)
    source, source_lengths, inputs, targets, target_lengths = pairs_batch(cfg, 5)
    want = ck.model.forward(core.Pairs(source, source_lengths, inputs, targets, target_lengths),
                            want_alignments=attention != "none")
    if D:   # what lies past a grid's places is never read, as the core never reads it
        for b, n in enumerate(source_lengths):
            source[n:, b] = np.nan
    with torch.no_grad():
        logits, alignments = module(torch.from_numpy(source) if D else torch.from_numpy(source).long(),
                                    *(torch.from_numpy(a).long() for a in (source_lengths, inputs)))
    for b, (n, m) in enumerate(zip(source_lengths, target_lengths)):   # within each pair: the rest is padding
        np.testing.assert_allclose(logits.numpy()[:m, b], want.logits[:m, b], rtol=0, atol=ATOL)
        if attention != "none":
            np.testing.assert_allclose(alignments.numpy()[:m, b, :n], want.alignments[:m, b, :n], rtol=0, atol=ATOL)
            assert not np.any(alignments.numpy()[:, b, n:])   # no attention past the source


@pytest.mark.parametrize("kind", ["lm one-hot", "labels", "features", "min-char-rnn", "seq2seq", "caption"])
def test_a_model_trained_on_in_pytorch_comes_back(tmp_path, kind):
    """export, a step of Adam in PyTorch, torch.save of the state dict, import --like: the checkpoint
    holds PyTorch's new parameters bit for bit, and sample runs it."""
    torch = pytest.importorskip("torch")
    ck = checkpoint(MODELS[kind], seed=6)
    core.save_checkpoint(tmp_path / "start.ckpt", ck.model, ck.vocab, ck.encoding, meta=ck.meta, labels=ck.labels,
                         cond_scaling=ck.cond_scaling, input_scaling=ck.input_scaling)
    module, info = torch_of(tmp_path, ck)
    opt = torch.optim.Adam(module.parameters(), lr=0.01)
    tokens = torch.from_numpy(np.random.default_rng(1).integers(0, 6, size=(5, 2))).long()
    if kind == "seq2seq":
        logits, _ = module(tokens, torch.tensor([5, 3]), tokens)
    elif kind == "caption":
        logits, _ = module(torch.ones(4, 2, 3), torch.tensor([4, 2]), tokens)
    else:
        cond = {"labels": torch.tensor([0, 1]), "features": torch.ones(2, 3)}.get(kind)
        logits, _ = module(tokens, cond=cond)
    logits.square().mean().backward()
    opt.step()
    torch.save(module.state_dict(keep_vars=True), tmp_path / "trained.pt")   # Parameters, as some save them
    r = minrnn("import", "trained.pt", "back.ckpt", "--like", "start.ckpt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    back = core.load_checkpoint(tmp_path / "back.ckpt")
    minrnn_name = {torch_name(name): name for name in back.model.tensors}
    for name, value in module.state_dict().items():
        assert np.array_equal(back.model.tensors[minrnn_name[name]], value.numpy()), name
    assert not np.array_equal(back.model.params, ck.model.params)
    from minrnn import torch as mt
    for name in ("self-described.pt", "self-described.safetensors"):   # the metadata inside: no --like
        mt.save(module, info, tmp_path / name)
        assert minrnn("import", name, "again.ckpt", cwd=tmp_path).returncode == 0
        again = core.load_checkpoint(tmp_path / "again.ckpt")
        assert np.array_equal(again.model.params, back.model.params) and again.vocab == ck.vocab, name


def test_bad_pytorch_files_are_one_line(tmp_path):
    torch = pytest.importorskip("torch")
    ck = checkpoint(MODELS["lm one-hot"])
    core.save_checkpoint(tmp_path / "start.ckpt", ck.model, ck.vocab, ck.encoding)
    module, _ = torch_of(tmp_path, ck)
    torch.save(module.state_dict(), tmp_path / "bare.pt")
    one_line_error(minrnn("import", "bare.pt", "out.ckpt", cwd=tmp_path), "no minrnn metadata", "--like")
    state = module.state_dict()
    state["rnn.weight_hh_l1"] = torch.zeros(2, 2)
    torch.save(state, tmp_path / "shape.pt")
    one_line_error(minrnn("import", "shape.pt", "out.ckpt", "--like", "start.ckpt", cwd=tmp_path),
                   "'rnn.weight_hh_l1' has shape (2, 2)")
    torch.save([1, 2], tmp_path / "list.pt")
    one_line_error(minrnn("import", "list.pt", "out.ckpt", "--like", "start.ckpt", cwd=tmp_path), "not a state dict")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    one_line_error(minrnn("import", "junk.pt", "out.ckpt", "--like", "start.ckpt", cwd=tmp_path), "not a PyTorch")
    assert not (tmp_path / "out.ckpt").exists()
