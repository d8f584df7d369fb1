"""The binding's guards: backward runs only on its own forward pass, a trainer's state can be taken
and put back, a checkpoint replaced while it is read is read whole, and file errors say why; and the
arrays the library reads row by row start on a cache line."""

import errno
import os
import resource
import signal

import numpy as np
import pytest

from minrnn import core
from minrnn.tasks.lm import evaluate
from minrnn.reference import Config


def problem(cell="lstm", dropout=0.3, T=5, B=4, seed=0):
    model = core.Model(Config(vocab_size=7, hidden_size=9, cell=cell, embed_size=3, num_layers=2,
                              dropout=dropout), seed=seed)
    r = np.random.default_rng(seed)
    tokens, targets = r.integers(0, 7, (T, B)), r.integers(0, 7, (T, B))
    masks = model.dropout_masks(core.Rng(seed), T, B) if dropout else None
    return model, tokens, targets, masks


def gradients(model, fwd):
    model.grads[:] = 0.0
    dstate0, _ = model.backward(fwd)
    return model.grads.copy(), dstate0


def test_backward_of_its_own_forward_after_other_work():
    # A step and an evaluation of other shapes between forward and backward change nothing: the
    # forward pass keeps its workspace.
    model, tokens, targets, masks = problem()
    expected = gradients(model, model.forward(tokens, targets, masks=masks))
    fwd = model.forward(tokens, targets, masks=masks)
    model.step([1, 2, 3], model.zero_state(3))
    evaluate(model, np.arange(100) % 7, 3, 11)
    got = gradients(model, fwd)
    assert all(np.array_equal(a, b) for a, b in zip(expected, got))


def no_forward(call):
    with pytest.raises(core.MinrnnError) as e:
        call()
    assert e.value.status == core.lib.MINRNN_ERR_NO_FORWARD
    return str(e.value)


def test_the_arrays_the_library_streams_start_on_a_cache_line(tmp_path):
    """Weights (either precision), gradients, moments, states and workspaces, and a batch's states as
    streams join and leave: each at a multiple of core.ALIGN (numpy's own arrays often are not)."""
    model, tokens, targets, _ = problem(dropout=0.0)
    trainer = core.Trainer(model, 4, 5)
    slots = core.Slots(model)
    arrays = {"params": model.params, "grads": model.grads, "m": trainer.m, "v": trainer.v,
              "state": model.zero_state(3), "workspace": model.workspace(4, 5),
              "forward's state": model.forward(tokens, targets).final_state}
    for n in range(3):
        slots.join(core.Slot([1], 4, seed=n))
        slots.step()
        arrays[f"batch of {len(slots.slots)}"] = slots.state
    slots.slots[0].cancelled = True
    slots.step()
    arrays["batch after one left"] = slots.state
    core.save_checkpoint(tmp_path / "m.ckpt", model, list(range(7)))
    arrays["loaded params"] = core.load_checkpoint(tmp_path / "m.ckpt").model.params
    for precision in ("bfloat16", "int8"):
        model.set_precision(precision)
        arrays[f"{precision} block"] = model.block()
    for name, a in arrays.items():
        assert a.ctypes.data % core.ALIGN == 0, name


def test_every_misuse_of_backward_is_an_error_that_writes_nothing():
    model, tokens, targets, masks = problem()
    before = model.grads.copy()
    with pytest.raises(core.MinrnnError, match="no targets: give dfinal"):   # nothing to differentiate
        model.backward(model.forward(tokens, None, masks=masks))

    fwd = model.forward(tokens, targets, masks=masks)
    model.forward(targets, tokens, masks=masks)                     # other text of the same shape
    assert "backward without its forward pass" in no_forward(lambda: model.backward(fwd))
    model.forward(tokens, targets, masks=masks)                     # the same pass again: fine
    model.backward(fwd)

    fwd = model.forward(tokens, targets, masks=masks)
    model.params[3] += 0.5                                          # the weights moved since
    no_forward(lambda: model.backward(fwd))
    model.params[3] -= 0.5

    fwd = model.forward(tokens, targets, masks=masks)
    other, _, _, _ = problem(seed=1)                                # another model's forward pass
    no_forward(lambda: other.backward(fwd))
    model.backward(fwd)
    once = model.grads.copy()
    no_forward(lambda: model.backward(fwd))                         # used up by the first backward
    assert np.array_equal(model.grads, once)

    fwd = model.forward(tokens, targets, masks=masks)
    trainer = core.Trainer(model, 4, 5)
    trainer.step(model.batch(tokens, targets))                      # a training step on its workspace
    no_forward(lambda: model.backward(fwd))
    assert not np.array_equal(before, once)


class Listed(list):
    """Batches that are the same in every epoch."""

    def batch(self, epoch, i):
        return self[i]


def test_trainer_state_round_trip():
    # Taking the state, training on, and putting it back gives the same next steps, bit for bit.
    model, tokens, targets, _ = problem(cell="gru")
    trainer = core.Trainer(model, 4, 5, optimizer="rmsprop", clip_norm=1.0, seed=3)
    batches = Listed([model.batch(tokens, targets), model.batch(targets, tokens), model.batch(tokens[::-1], targets)])
    trainer.step_next(batches)
    saved = trainer.get_state()
    first = [trainer.step_next(batches) for _ in range(4)]
    after = model.params.copy(), trainer.epoch, trainer.position, trainer.steps
    trainer.lr = 123.0
    trainer.set_state(saved)
    assert trainer.lr != 123.0
    assert [trainer.step_next(batches) for _ in range(4)] == first
    assert np.array_equal(model.params, after[0]) and (trainer.epoch, trainer.position, trainer.steps) == after[1:]
    assert (trainer.epoch, trainer.position) == (1, 2)   # 5 steps over 3 batches: the cursor wrapped once


def test_a_checkpoint_replaced_between_peek_and_load_is_read_whole(tmp_path, monkeypatch):
    # What sample does while training saves: the rename falls after the header was read and before
    # the rest is. Reading through one open file gets the old checkpoint, complete.
    path = tmp_path / "latest.ckpt"
    a, _, _, _ = problem(seed=1)
    b = core.Model(Config(vocab_size=5, hidden_size=4, cell="rnn_tanh"), seed=2)
    core.save_checkpoint(path, a, list(range(7)), meta={"which": "a"})
    real_model = core.Model

    def replace_then_build(*args, **kwargs):
        core.save_checkpoint(path, b, list(range(5)), meta={"which": "b"})
        return real_model(*args, **kwargs)

    monkeypatch.setattr(core, "Model", replace_then_build)
    ck = core.load_checkpoint(path)
    monkeypatch.setattr(core, "Model", real_model)
    assert ck.meta == {"which": "a"} and np.array_equal(ck.model.params, a.params)
    assert core.load_checkpoint(path).meta == {"which": "b"}


def test_file_errors_say_which_step_failed_and_why(tmp_path):
    model, _, _, _ = problem()
    with pytest.raises(core.MinrnnError, match=r"could not be opened \(No such file or directory\)") as e:
        core.load_checkpoint(tmp_path / "missing.ckpt")
    assert e.value.errno == errno.ENOENT
    with pytest.raises(core.MinrnnError, match="not a regular file"):
        core.load_checkpoint(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(core.MinrnnError, match="not a regular file"):   # at once: not waiting for a writer
        core.load_checkpoint(tmp_path / "fifo")
    (tmp_path / "taken.ckpt").mkdir()
    (tmp_path / "taken.ckpt" / "x").write_text("x")
    with pytest.raises(core.MinrnnError, match=r"renamed into place \(Is a directory\)"):
        core.save_checkpoint(tmp_path / "taken.ckpt", model, list(range(7)))
    # a write that runs out of room (the file size limit here; a full disk the same way): which step,
    # and errno's reason
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, limit[1]))
    try:
        with pytest.raises(core.MinrnnError, match=r"could not be written \(File too large\)") as e:
            core.save_checkpoint(tmp_path / "big.ckpt", model, list(range(7)))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)
    assert e.value.errno == errno.EFBIG and os.listdir(tmp_path / "taken.ckpt") == ["x"]
    assert sorted(os.listdir(tmp_path)) == ["fifo", "taken.ckpt"]   # no temporary file left behind
