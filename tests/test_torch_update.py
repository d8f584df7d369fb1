"""The torch engine's first part (issue 23): minrnn's clipping and update rules in torch
(minrnn/torch_update.py) make the C engine's steps. From the same weights and batches, a language
model of a stream (its state carried), a record model and a seq2seq model trained for 20 steps in
PyTorch (minrnn.torch's modules) follow the C core's losses and end at its weights, to float32
round-off. Skipped without torch (make test-torch installs it)."""

import numpy as np
import pytest

from minrnn import core
from minrnn.reference import Config
from minrnn.reference.seq2seq import Seq2seqConfig

torch = pytest.importorskip("torch")
F = torch.nn.functional

STEPS = 20
# Measured over these 20 steps: the losses at most 2.4e-7 apart (2 ulp of a loss near 3), the
# weights 1e-6 (Adam and RMSprop move every weight by about lr a step, so their round-off is the
# weights' own, a few ulp of values near 1 after 20 steps). 1e-5 and 2e-5 leave 40 and 20 times
# that; a wrong rule (Adam without its bias correction) fails every Adam case here.
LOSS_TOL, WEIGHT_TOL = 1e-5, 2e-5


def module_of(model):
    from minrnn import torch as mt
    from minrnn.interop import torch_name
    net = mt.module_for(model.config)
    net.load_state_dict({torch_name(n): torch.from_numpy(v.copy()) for n, v in model.tensors.items()})
    return net


def weights_apart(model, net):
    from minrnn.interop import torch_name
    state = net.state_dict()
    return max(float(np.abs(v - state[torch_name(n)].numpy()).max()) for n, v in model.tensors.items())


def masked_mean(logits, targets, lengths):
    """The mean cross-entropy over the positions t < lengths[b] of (T, B, V) logits."""
    T, B, V = logits.shape
    inside = (torch.arange(T)[:, None] < lengths[None, :]).reshape(-1).float()
    rows = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction="none")
    return (rows * inside).sum() / inside.sum()


def train_both(model, trainer, net, update, batches, loss_of):
    """20 steps of each on the same batches: the largest difference of their losses."""
    worst = 0.0
    for batch in batches:
        loss_c, _ = trainer.step(batch["core"])
        for p in net.parameters():
            p.grad = None
        loss = loss_of(net, batch)
        loss.backward()
        update.step(loss)
        worst = max(worst, abs(loss.item() - loss_c))
    return worst


@pytest.mark.parametrize("cell, layers, optimizer, lr, weight_decay",
                         [("lstm", 2, "adam", 3e-3, 0.0), ("gru", 1, "adam", 3e-3, 0.5), ("rnn_tanh", 2, "rmsprop", 2e-3, 0.0),
                          ("lstm", 1, "sgd", 0.1, 0.1)])
def test_a_stream_language_model_makes_the_c_engines_steps(cell, layers, optimizer, lr, weight_decay):
    from minrnn.torch_update import Update
    torch.set_num_threads(1)
    V, B, T = 20, 4, 16
    model = core.Model(Config(vocab_size=V, hidden_size=24, cell=cell, num_layers=layers, embed_size=8), seed=3,
                       threads=1)
    trainer = core.Trainer(model, B, T, optimizer=optimizer, lr=lr, weight_decay=weight_decay, clip_norm=5.0, seed=1,
                           carry_state=True)
    net = module_of(model)
    update = Update(net.parameters(), optimizer, clip_norm=5.0, lr=lr, weight_decay=weight_decay)
    streams = np.random.default_rng(0).integers(0, V, size=(B, T * STEPS + 1))
    batches, carried = [], {"state": None}
    for s in range(STEPS):
        x = np.ascontiguousarray(streams[:, s * T:(s + 1) * T].T).astype(np.int32)
        y = np.ascontiguousarray(streams[:, s * T + 1:(s + 1) * T + 1].T).astype(np.int32)
        batches.append({"core": model.batch(x, y), "x": torch.from_numpy(x).long(), "y": torch.from_numpy(y).long()})

    def loss_of(net, batch):   # the state carried from the last batch, cut from its graph
        logits, state = net(batch["x"], carried["state"])
        carried["state"] = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        return F.cross_entropy(logits.reshape(-1, V), batch["y"].reshape(-1))

    assert train_both(model, trainer, net, update, batches, loss_of) <= LOSS_TOL
    assert weights_apart(model, net) <= WEIGHT_TOL


def test_weight_decay_is_pytorchs_adamw():
    # --weight-decay with Adam is torch.optim.AdamW (decoupled: p (1 - lr wd), then Adam's step):
    # 20 steps of each from the same weights and gradients. AdamW divides by sqrt(v) / sqrt(c2) + eps
    # where minrnn divides by sqrt(v / c2) + eps, so they may differ by round-off: 1e-6 is 4 ulp of
    # the largest weight (2.3). Measured: the same floats here; without the decay 6.9e-3 apart.
    from minrnn.torch_update import Update
    torch.manual_seed(0)
    ours, theirs = [torch.randn(7, 5)], [None]
    theirs[0] = ours[0].clone()
    for p in ours + theirs:
        p.requires_grad_(True)
    update = Update(ours, "adam", lr=3e-3, weight_decay=0.05)
    adamw = torch.optim.AdamW(theirs, lr=3e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
    for _ in range(STEPS):
        g = torch.randn(7, 5)
        ours[0].grad, theirs[0].grad = g.clone(), g.clone()
        assert update.step(torch.tensor(1.0))[0]
        adamw.step()
    assert float((ours[0] - theirs[0]).detach().abs().max()) <= 1e-6


def test_records_and_seq2seq_make_the_c_engines_steps():
    from minrnn.torch_update import Update
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    V, B, T = 12, 5, 9
    # records of different lengths, each from a zero state: the C engine's loss counts their positions only
    model = core.Model(Config(vocab_size=V, hidden_size=16, cell="lstm", num_layers=2, embed_size=6), seed=4, threads=1)
    trainer = core.Trainer(model, B, T, optimizer="adam", lr=3e-3, clip_norm=1.0, seed=1, carry_state=False)
    net, batches = module_of(model), []
    update = Update(net.parameters(), "adam", clip_norm=1.0, lr=3e-3)
    for _ in range(STEPS):
        x, y = (rng.integers(0, V, size=(T, B)).astype(np.int32) for _ in range(2))
        lengths = rng.integers(1, T + 1, size=B).astype(np.int32)
        batches.append({"core": model.batch(x, y, lengths), "x": torch.from_numpy(x).long(),
                        "y": torch.from_numpy(y).long(), "lengths": torch.from_numpy(lengths).long()})
    records = lambda net, b: masked_mean(net(b["x"])[0], b["y"], b["lengths"])   # noqa: E731
    assert train_both(model, trainer, net, update, batches, records) <= LOSS_TOL
    assert weights_apart(model, net) <= WEIGHT_TOL

    # pairs: an encoder, a decoder fed its context, additive attention
    cfg = Seq2seqConfig(vocab_size=V, hidden_size=16, cell="gru", embed_size=6, attention="additive",
                        attention_size=8, input_feeding=True)
    model = core.Seq2seq(cfg, seed=5, threads=1)
    Ts, Td = 7, 6
    trainer = core.Trainer(model, B, Td, optimizer="adam", lr=3e-3, clip_norm=1.0, seed=1, carry_state=False)
    net, batches = module_of(model), []
    update = Update(net.parameters(), "adam", clip_norm=1.0, lr=3e-3)
    for _ in range(STEPS):
        source = rng.integers(0, V - 2, size=(Ts, B)).astype(np.int32)
        inputs, targets = (rng.integers(0, V - 2, size=(Td, B)).astype(np.int32) for _ in range(2))
        inputs[0] = V - 2
        sl, tl = (rng.integers(1, n + 1, size=B).astype(np.int32) for n in (Ts, Td))
        batches.append({"core": core.Pairs(source, sl, inputs, targets, tl),
                        "t": [torch.from_numpy(a).long() for a in (source, sl, inputs)],
                        "y": torch.from_numpy(targets).long(), "lengths": torch.from_numpy(tl).long()})
    pairs = lambda net, b: masked_mean(net(*b["t"])[0], b["y"], b["lengths"])   # noqa: E731
    assert train_both(model, trainer, net, update, batches, pairs) <= LOSS_TOL
    assert weights_apart(model, net) <= WEIGHT_TOL


# ---- the torch engine's trainer: core.Trainer's interface, its numpy side a checkpoint's

def stream_batches(V, B, T, steps, seed):
    streams = np.random.default_rng(seed).integers(0, V, size=(B, T * steps + 1))
    return [(np.ascontiguousarray(streams[:, s * T:(s + 1) * T].T).astype(np.int32),
             np.ascontiguousarray(streams[:, s * T + 1:(s + 1) * T + 1].T).astype(np.int32)) for s in range(steps)]


@pytest.mark.parametrize("cfg", [Config(vocab_size=15, hidden_size=12, cell="lstm", num_layers=2, embed_size=5),
                                 Config(vocab_size=15, hidden_size=12, cell="rnn_tanh", one_bias=True),
                                 Config(vocab_size=15, hidden_size=12, cell="gru", cond="vector", cond_size=3)])
def test_the_torch_trainer_steps_as_the_c_trainer_and_round_trips_its_state(cfg, tmp_path):
    from minrnn.torch_engine import TorchTrainer
    torch.set_num_threads(1)
    B, T = 3, 10
    cond = np.linspace(-1, 1, B * 3, dtype=np.float32).reshape(B, 3) if cfg.cond == "vector" else None
    batches = stream_batches(cfg.vocab_size, B, T, STEPS, 7)
    c_model, t_model = (core.Model(cfg, seed=9, threads=1) for _ in range(2))
    c = core.Trainer(c_model, B, T, optimizer="adam", lr=3e-3, clip_norm=1.0, seed=2, carry_state=True)
    t = TorchTrainer(t_model, B, T, optimizer="adam", lr=3e-3, clip_norm=1.0, seed=2, carry_state=True)
    for k, (x, y) in enumerate(batches):
        loss_c, _ = c.step(c_model.batch(x, y, cond=cond))
        loss_t, _ = t.step(t_model.batch(x, y, cond=cond))
        assert abs(loss_c - loss_t) <= LOSS_TOL, k
        if k == STEPS // 2:   # the rollback's round trip: the torch side from the numpy side, exactly
            snapshot = t.get_state()
            t.set_state(snapshot)
            again = t.get_state()
            for name in ("params", "m", "v", "state"):
                assert np.array_equal(getattr(snapshot, name), getattr(again, name)), name
    t.flush()
    for mine, theirs in ((t_model.params, c_model.params), (t.m, c.m), (t.v, c.v), (t.state, c.state)):
        assert float(np.abs(mine - theirs).max()) <= WEIGHT_TOL
    assert t.steps == c.steps == STEPS
    # a checkpoint of the torch side, loaded, continues as the run that never stopped
    core.save_checkpoint(tmp_path / "t.ckpt", t_model, list(range(97, 97 + cfg.vocab_size)), trainer=t,
                         cond_scaling=(np.zeros(3, np.float32), np.ones(3, np.float32)) if cond is not None else None)
    ck = core.load_checkpoint(tmp_path / "t.ckpt")
    resumed = TorchTrainer(ck.model, B, T, optimizer="adam", lr=3e-3, clip_norm=1.0, seed=2, carry_state=True)
    resumed.set_state(ck.trainer.get_state())
    x, y = stream_batches(cfg.vocab_size, B, T, 1, 8)[0]
    assert resumed.step(ck.model.batch(x, y, cond=cond))[0] == t.step(t_model.batch(x, y, cond=cond))[0]


def test_train_engine_torch_through_the_command_line(tmp_path):
    # --engine torch trains the same run as the C engine (dropout off), its checkpoints are minrnn's
    # (sample reads them), and a run resumes on either engine
    from cliutil import english, minrnn
    (tmp_path / "t.txt").write_text(english(20000), encoding="utf-8")
    args = ["t.txt", "--hidden", "24", "--layers", "2", "--embed", "8", "--dropout", "0", "--batch-size", "4",
            "--seq-len", "16", "--eval-every", "10", "--sample-every", "0"]
    for out, steps, engine in (("c", 30, "c"), ("torch", 30, "torch"), ("mixed", 15, "torch")):
        r = minrnn("train", *args, "--max-iters", steps, "--out", out, "--engine", engine, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    r = minrnn("train", "--resume", "--out", "mixed", "--max-iters", "30", "--engine", "c", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    c, t, mixed = (core.load_checkpoint(tmp_path / d / "latest.ckpt") for d in ("c", "torch", "mixed"))
    assert t.trainer.steps == mixed.trainer.steps == 30
    for other in (t, mixed):
        assert float(np.abs(other.model.params - c.model.params).max()) <= WEIGHT_TOL
        assert float(np.abs(other.trainer.m - c.trainer.m).max()) <= WEIGHT_TOL
    s = minrnn("sample", "--checkpoint", "torch/best.ckpt", "--length", "20", "--seed", "1", cwd=tmp_path)
    assert s.returncode == 0 and len(s.stdout) >= 20, s.stderr


def test_the_device_is_the_torch_engines_and_is_checked(tmp_path):
    # --device cpu is what auto chooses without a GPU: the same run, bit for bit, dropout included
    # (torch's generator is seeded from the run's at each step), and a resumed one too; cuda where
    # torch sees none, or --device with the C engine, is a one-line error that leaves no run folder
    import minrnn
    from cliutil import english, minrnn as run
    from minrnn.errors import UserError
    (tmp_path / "t.txt").write_text(english(5000), encoding="utf-8")
    args = ["t.txt", "--hidden", "16", "--batch-size", "2", "--seq-len", "8", "--dropout", "0.3", "--eval-every", "3",
            "--sample-every", "0", "--engine", "torch"]
    if not torch.cuda.is_available():
        for out, more in (("auto", ["--max-iters", "6"]), ("cpu", ["--device", "cpu", "--max-iters", "3"])):
            r = run("train", *args, *more, "--out", out, cwd=tmp_path)
            assert r.returncode == 0, r.stderr
        r = run("train", "--resume", "--out", "cpu", "--max-iters", "6", "--engine", "torch", "--device", "cpu",
                cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        auto, cpu = (core.load_checkpoint(tmp_path / d / "latest.ckpt") for d in ("auto", "cpu"))
        assert np.array_equal(auto.model.params, cpu.model.params)
        r = run("train", *args, "--max-iters", "6", "--device", "cuda", "--out", "gpu", cwd=tmp_path)
        assert r.returncode == 1 and "no CUDA device" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
        assert not (tmp_path / "gpu").exists()
    r = run("train", *args[:-2], "--max-iters", "6", "--device", "cpu", "--out", "c", cwd=tmp_path)
    assert r.returncode == 1 and "--engine torch" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert not (tmp_path / "c").exists()
    for engine, device in (("c", "cpu"), ("torch", "gpu"), ("jax", None)):
        with pytest.raises(UserError):
            minrnn.train(tmp_path / "t.txt", out=tmp_path / "api", engine=engine, device=device, max_iters=1,
                         quiet=True)
    assert not (tmp_path / "api").exists()


def test_two_processes_with_ddp_make_one_process_steps(tmp_path):
    # torchrun, 2 processes on gloo, each B / 2 of every batch: the same weights, moments, carried
    # states and losses as one process with the whole batch, to float32 round-off, for a stream model,
    # records, a fed seq2seq model and a captioner of grids (measured: 4.8e-7 at most after 20 steps,
    # a loss's; DDP sums the two halves' gradients in another order than one process)
    import subprocess
    import sys
    from cliutil import ROOT, environment
    helper = ROOT / "tests" / "torch_ranks.py"
    one = subprocess.run([sys.executable, helper, tmp_path / "one.npz"], env=environment(), capture_output=True,
                         text=True, timeout=120)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                          str(free_port()), helper, tmp_path / "two.npz"], env=environment(), capture_output=True,
                         text=True, timeout=180)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    for name in a.files:
        assert float(np.abs(a[name] - b[name]).max()) <= WEIGHT_TOL, name


def free_port():
    """A port nothing listens on now (torchrun's store takes it a moment later: another program could
    take it first, which this machine's tests do not do)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args, cwd, timeout=300, **kw):
    import subprocess
    import sys
    from cliutil import environment
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                           str(free_port()), "-m", "minrnn", *map(str, args)], cwd=cwd, env=environment(),
                          capture_output=True, text=True, timeout=timeout, **kw)


def test_a_torchrun_job_trains_as_one_process_and_resumes_bit_for_bit_after_a_kill(tmp_path):
    # python -m minrnn train --engine torch under torchrun: rank 0 alone writes the run; the weights
    # are one process's to round-off; one of the two processes killed ends the job (torchrun stops the
    # other, which says so in a line: no hang), and --resume reaches the uninterrupted job's weights
    # bit for bit
    import signal
    import subprocess
    import sys
    import time
    from cliutil import english, environment, minrnn
    (tmp_path / "t.txt").write_text(english(20000), encoding="utf-8")
    args = ["t.txt", "--hidden", "24", "--layers", "2", "--embed", "8", "--dropout", "0", "--batch-size", "4",
            "--seq-len", "16", "--eval-every", "20", "--sample-every", "0", "--engine", "torch"]
    r = minrnn("train", *args, "--max-iters", "60", "--out", "one", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = torchrun("train", *args, "--max-iters", "60", "--out", "two", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("reached --max-iters 60") == 1   # one rank speaks
    one, two = (core.load_checkpoint(tmp_path / d / "latest.ckpt") for d in ("one", "two"))
    assert float(np.abs(one.model.params - two.model.params).max()) <= WEIGHT_TOL
    job = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                            str(free_port()), "-m", "minrnn", "train", *args, "--max-iters", "100000", "--out",
                            "killed"],
                           cwd=tmp_path, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "killed" / "latest.ckpt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    workers = subprocess.run(["pgrep", "-P", str(job.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2, workers
    os_kill = __import__("os").kill
    os_kill(int(workers[-1]), signal.SIGKILL)
    _, err = job.communicate(timeout=120)   # ends, rather than waiting forever for the dead one
    assert job.returncode != 0
    # the survivor says why in a line of its own (torchrun's report of the dead one follows it)
    assert "process 0 of 2: another process of this job stopped" in err, err[-3000:]
    stopped = core.load_checkpoint(tmp_path / "killed" / "latest.ckpt").trainer.steps
    assert stopped >= 20
    target = stopped + 40
    r = torchrun("train", "--resume", "--out", "killed", "--max-iters", target, "--engine", "torch", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    r = torchrun("train", *args, "--max-iters", target, "--out", "whole", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    resumed, whole = (core.load_checkpoint(tmp_path / d / "latest.ckpt") for d in ("killed", "whole"))
    for name in ("params", "m", "v", "state"):
        mine = resumed.model.params if name == "params" else getattr(resumed.trainer, name)
        theirs = whole.model.params if name == "params" else getattr(whole.trainer, name)
        assert np.array_equal(mine, theirs), name


def test_torchruns_max_restarts_resumes_the_job_after_a_kill(tmp_path):
    # torchrun --max-restarts 1 relaunches the same command after one of its processes is killed: the
    # command then resumes from the run's last checkpoint (TORCHELASTIC_RESTART_COUNT), and the job
    # ends where an uninterrupted one does, bit for bit
    import signal
    import subprocess
    import sys
    import time
    from cliutil import english, environment
    (tmp_path / "t.txt").write_text(english(20000), encoding="utf-8")
    args = ["train", "t.txt", "--hidden", "16", "--embed", "8", "--dropout", "0.2", "--batch-size", "4", "--seq-len",
            "16", "--eval-every", "20", "--sample-every", "0", "--engine", "torch", "--max-iters", "400"]
    job = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--max-restarts",
                            "1", "--master-port", str(free_port()), "-m", "minrnn", *args, "--out", "restarted"],
                           cwd=tmp_path,
                           env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "restarted" / "latest.ckpt").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = subprocess.run(["pgrep", "-P", str(job.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2, workers
    __import__("os").kill(int(workers[0]), signal.SIGKILL)
    _, err = job.communicate(timeout=300)
    # the second attempt resumed: a run started again in a folder that holds one is refused
    assert job.returncode == 0, err[-3000:]
    r = torchrun(*args, "--out", "whole", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    again, whole = (core.load_checkpoint(tmp_path / d / "latest.ckpt") for d in ("restarted", "whole"))
    assert again.trainer.steps == whole.trainer.steps == 400
    assert np.array_equal(again.model.params, whole.model.params)
