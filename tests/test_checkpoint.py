"""Checkpoints through the Python binding: exact round trips and exact resumes; every damaged file
gives an error, never a crash."""

import os
import pathlib
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minrnn import core
from minrnn.reference import Config
from soak import examples


def trained(kind="lstm", dropout=0.25, steps=3, optimizer="adam"):
    cfg = Config(cell=kind, vocab_size=6, hidden_size=10, embed_size=3, num_layers=2, dropout=dropout)
    model = core.Model(cfg, seed=1)
    trainer = core.Trainer(model, batch_size=3, seq_len=5, optimizer=optimizer, clip_norm=5.0, seed=2)
    r = np.random.default_rng(0)
    batches = [(r.integers(0, 6, (5, 3)), r.integers(0, 6, (5, 3))) for _ in range(2 * steps)]
    for tokens, targets in batches[:steps]:
        trainer.step(model.batch(tokens, targets))
    trainer.epoch, trainer.position = 4, 17
    return model, trainer, batches[steps:]


VOCAB = [10, 32, 97, 98, 233, 0x1F600]   # "\n", " ", "a", "b", "é", an emoji
META = {"args": {"cell": "lstm", "lr": 0.002}, "history": [[1, 2.5]], "note": "é ☃"}


@pytest.fixture
def saved(tmp_path):
    model, trainer, rest = trained()
    path = tmp_path / "model.ckpt"
    core.save_checkpoint(path, model, VOCAB, "utf8", META, trainer)
    return path, model, trainer, rest


def test_round_trip_is_bitwise(saved):
    path, model, trainer, _ = saved
    ck = core.load_checkpoint(path)
    assert ck.model.config == model.config
    assert ck.vocab == VOCAB and ck.encoding == "utf8" and ck.meta == META
    assert ck.model.params.tobytes() == model.params.tobytes()
    t = ck.trainer
    for name in ("m", "v", "state"):
        assert getattr(t, name).tobytes() == getattr(trainer, name).tobytes(), name
    assert bytes(core.ffi.buffer(t.opt)) == bytes(core.ffi.buffer(trainer.opt))
    assert (t.rng.state, t.B, t.T, t.epoch, t.position) == (trainer.rng.state, 3, 5, 4, 17)


def test_resuming_from_a_checkpoint_continues_exactly(saved):
    # Training on from the loaded state gives the same bits as training on without stopping.
    path, model, trainer, rest = saved
    ck = core.load_checkpoint(path)
    for tokens, targets in rest:
        assert ck.trainer.step(ck.model.batch(tokens, targets)) == trainer.step(model.batch(tokens, targets))
    assert ck.model.params.tobytes() == model.params.tobytes()
    assert ck.trainer.state.tobytes() == trainer.state.tobytes()


def test_a_checkpoint_without_training_state(tmp_path):
    model, _, _ = trained("gru", dropout=0.0)
    path = tmp_path / "weights.ckpt"
    core.save_checkpoint(path, model, list(range(6)), "bytes")
    ck = core.load_checkpoint(path)
    assert ck.trainer is None and ck.meta == {} and ck.encoding == "bytes"
    assert ck.model.params.tobytes() == model.params.tobytes()


def test_saving_replaces_atomically_and_leaves_no_temporary_file(saved):
    path, model, trainer, _ = saved
    model.params[:] += 1.0
    core.save_checkpoint(path, model, VOCAB, "utf8", META, trainer)
    assert core.load_checkpoint(path).model.params.tobytes() == model.params.tobytes()
    assert os.listdir(path.parent) == [path.name]


@pytest.fixture
def in_memory(tmp_path):
    """A folder in memory where there is a tmpfs: ext4 writes a file truncated on open back to the
    disk at once, and a test that rewrites a file thousands of times waits for the disk each time."""
    if not os.access("/dev/shm", os.W_OK):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir="/dev/shm") as folder:
        yield pathlib.Path(folder)


def test_every_truncation_is_an_error(saved, in_memory):
    path = saved[0]
    data = path.read_bytes()
    cut = in_memory / "cut.ckpt"
    for n in range(len(data)):
        cut.write_bytes(data[:n])
        with pytest.raises(core.MinrnnError) as e:
            core.load_checkpoint(cut)
        assert e.value.status in (core.lib.MINRNN_ERR_TRUNCATED, core.lib.MINRNN_ERR_NOT_CHECKPOINT), n


CACHED = trained()


@settings(max_examples=examples(300), deadline=None)
@given(data=st.data())
def test_damaged_bytes_are_an_error(data, tmp_path_factory):
    # XOR with a non-zero byte at distinct positions always changes the file; FNV-1a detects any
    # single changed byte, and several only escape it with probability 2^-64.
    path = tmp_path_factory.mktemp("ck") / "model.ckpt"
    model, trainer, _ = CACHED
    core.save_checkpoint(path, model, VOCAB, "utf8", META, trainer)
    raw = bytearray(path.read_bytes())
    positions = data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=4, unique=True))
    for position in positions:
        raw[position] ^= data.draw(st.integers(1, 255))
    path.write_bytes(bytes(raw))
    with pytest.raises(core.MinrnnError):
        core.load_checkpoint(path)


def test_foreign_missing_and_newer_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("this is not a checkpoint, just some words\n")
    with pytest.raises(core.MinrnnError, match="not a minrnn checkpoint"):
        core.load_checkpoint(text)
    with pytest.raises(core.MinrnnError, match="could not be opened"):
        core.load_checkpoint(tmp_path / "missing.ckpt")
    model, trainer, _ = CACHED
    newer = tmp_path / "newer.ckpt"
    core.save_checkpoint(newer, model, VOCAB, "utf8", META, trainer)
    data = bytearray(newer.read_bytes())
    data[8] = 8   # format version 8: newer than this library
    newer.write_bytes(bytes(data))
    with pytest.raises(core.MinrnnError, match="reads formats 1 to 7"):
        core.load_checkpoint(newer)
