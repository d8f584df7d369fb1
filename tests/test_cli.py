"""End to end: the real command line in subprocesses, as a user runs it."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from cliutil import ROOT, TINY, english, minrnn, one_line_error, text  # noqa: F401 (text: a fixture)
from minrnn import core


def test_train_sample_eval(tmp_path, text):
    r = minrnn("train", text, *TINY, "--max-iters", 30, "--eval-every", 10, "--out", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "reached --max-iters 30" in r.stdout and "val" in r.stdout
    run = tmp_path / "run"
    assert (run / "latest.ckpt").exists() and (run / "best.ckpt").exists()
    metrics = (run / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 3   # evaluations at 10, 20 and 30

    # sample with no arguments uses the last run's best checkpoint; the same seed, the same text
    a = minrnn("sample", "--length", 80, "--seed", 5, "--prime", "The ", cwd=tmp_path)
    b = minrnn("sample", "--length", 80, "--seed", 5, "--prime", "The ", cwd=tmp_path)
    assert a.returncode == 0 and a.stdout == b.stdout
    assert a.stdout.startswith("The ") and len(a.stdout) == 4 + 80   # --length counts generated characters
    c = minrnn("sample", "--length", 80, "--seed", 6, cwd=tmp_path)
    assert c.stdout != a.stdout[4:]
    d = minrnn("sample", "--length", 300, "--seed", 5, "--stop", "e", cwd=tmp_path)
    assert d.stdout.endswith("e") and d.stdout.count("e") == 1
    e = minrnn("sample", "--length", 50, "--argmax", "--prime", "the", cwd=tmp_path)
    f = minrnn("sample", "--length", 50, "--argmax", "--prime", "the", "--seed", 99, cwd=tmp_path)
    assert e.stdout == f.stdout   # argmax draws nothing: the seed does not matter

    # eval reports nats and bits per character, and counts characters it doesn't know
    other = tmp_path / "other.txt"
    other.write_text(english(3000) + "ΩΩ☃", encoding="utf-8")
    g = minrnn("eval", other, "--checkpoint", run / "best.ckpt", cwd=tmp_path)
    assert g.returncode == 0, g.stderr
    nats = float(g.stdout.split(" nats/char")[0].split()[-1])
    bits = float(g.stdout.split(" bits/char")[0].split()[-1])
    assert bits == pytest.approx(nats / np.log(2), abs=1e-3)
    assert "3 characters outside the model's vocabulary were skipped" in g.stdout and "'Ω' x2" in g.stdout


def test_resume_continues_bit_for_bit(tmp_path, text):
    # N = 7 steps, stop, resume to 14: the checkpoint equals 14 steps straight. Dropout (the
    # default 0.2) makes the generator part of what must be restored.
    # --weight-decay: the optimizer's field in the checkpoint (format 7) is part of the state
    straight = minrnn("train", text, *TINY, "--weight-decay", 0.1, "--max-iters", 14, "--eval-every", 5, "--out", "a",
                      cwd=tmp_path)
    first = minrnn("train", text, *TINY, "--weight-decay", 0.1, "--max-iters", 7, "--eval-every", 5, "--out", "b",
                   cwd=tmp_path)
    second = minrnn("train", "--max-iters", 14, "--eval-every", 5, "--out", "b", "--resume", cwd=tmp_path)
    assert straight.returncode == first.returncode == second.returncode == 0, second.stderr
    assert (tmp_path / "a" / "latest.ckpt").read_bytes() == (tmp_path / "b" / "latest.ckpt").read_bytes()


def test_resume_refuses_changed_settings_and_other_text(tmp_path, text):
    assert minrnn("train", text, *TINY, "--max-iters", 3, "--out", "r", cwd=tmp_path).returncode == 0
    one_line_error(minrnn("train", text, "--hidden", 32, "--out", "r", "--resume", cwd=tmp_path),
                   "--hidden 32 differs from this run's 16")
    other = tmp_path / "other.txt"
    other.write_text(english(5000), encoding="utf-8")
    one_line_error(minrnn("train", other, "--out", "r", "--resume", cwd=tmp_path), "not the text this run")
    one_line_error(minrnn("train", text, *TINY, "--out", "r", cwd=tmp_path), "--resume")
    one_line_error(minrnn("train", text, "--out", "nothing", "--resume", cwd=tmp_path), "nothing to resume")


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tmp_path, text):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "minrnn", "train", str(text), *TINY, "--max-time", "120",
                             "--epochs", "100000",
                             "--eval-every", "100000", "--out", "run"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("training a")   # the loop is about to start
    # the first step's status line (a line every 10 s when not on a terminal, the first at once):
    # a step is done and the loop listens for Ctrl-C, however slow the machine (a fixed sleep was
    # a guess at how long that takes)
    assert proc.stdout.readline().startswith("iter 1 |")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "interrupted at iteration" in out and "resume with: python -m minrnn train" in out
    ck = core.load_checkpoint(tmp_path / "run" / "latest.ckpt")
    steps = ck.trainer.steps
    assert steps > 0 and ck.meta["iteration"] == steps
    r = minrnn("train", "--out", "run", "--resume", "--max-iters", steps + 3, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert core.load_checkpoint(tmp_path / "run" / "latest.ckpt").trainer.steps == steps + 3


def test_divergence_rolls_back_and_never_saves_a_broken_model(tmp_path, text):
    # plain SGD at a learning rate of 50 without clipping blows up at once
    r = minrnn("train", text, *TINY, "--optimizer", "sgd", "--lr", 50, "--clip-norm", 0, "--max-iters", 40,
               "--eval-every", 10, "--out", "run", cwd=tmp_path)
    assert "diverging; back to the last good state" in r.stdout
    assert r.returncode == 0 or "keeps diverging" in r.stderr
    for name in ("latest.ckpt", "best.ckpt"):
        ck = core.load_checkpoint(tmp_path / "run" / name)
        assert np.all(np.isfinite(ck.model.params))


def test_bad_input(tmp_path, text):
    run = lambda *a: minrnn(*a, cwd=tmp_path)
    one_line_error(run("train", tmp_path / "missing.txt", *TINY), "no such file")
    (tmp_path / "empty.txt").write_bytes(b"")
    one_line_error(run("train", tmp_path / "empty.txt", *TINY), "empty")
    one_line_error(run("train", tmp_path, *TINY), "is a folder")   # root can read anything, not a folder
    (tmp_path / "short.txt").write_text("hello world, this is short. " * 8)
    one_line_error(run("train", tmp_path / "short.txt", "--batch-size", 32, "--seq-len", 64),
                   "too short", "--batch-size 32 --seq-len")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1") * 50)
    line = one_line_error(run("train", tmp_path / "latin1.txt", *TINY), "invalid UTF-8 at byte offset 3",
                          "--tokens bytes")
    assert run("train", tmp_path / "latin1.txt", *TINY, "--encoding", "bytes", "--max-iters", 2,
               "--val-frac", "0", "--out", "bytes_run").returncode == 0, line
    one_line_error(run("train", text, *TINY, "--out", text / "sub"), "cannot write to the output folder")

    assert run("train", text, *TINY, "--max-iters", 2, "--out", "ok").returncode == 0
    # a character outside the vocabulary is skipped, and said on stderr, by every command
    r = run("sample", "--prime", "Zebra ☃", "--length", 5, "--seed", 1)
    assert r.returncode == 0 and r.stdout.startswith("Zebra ☃") and len(r.stdout) == len("Zebra ☃") + 5
    assert "characters outside the model's vocabulary were skipped" in r.stderr and "'☃' x1" in r.stderr
    one_line_error(run("sample", "--checkpoint", tmp_path / "nope.ckpt"), "could not be opened")
    data = (tmp_path / "ok" / "best.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[:len(data) // 2])
    one_line_error(run("sample", "--checkpoint", tmp_path / "cut.ckpt"), "truncated")
    one_line_error(run("sample", "--checkpoint", text), "not a minrnn checkpoint")
    one_line_error(run("eval", text, "--checkpoint", tmp_path / "cut.ckpt"), "truncated")

    for args, fragment in [(["train", text, "--hidden", "-5"], "--hidden"),
                           (["train", text, "--batch-size", "0"], "--batch-size"),
                           (["train", text, "--dropout", "1.5"], "--dropout"),
                           (["train", text, "--lr", "abc"], "--lr"),
                           (["sample", "--temperature", "0"], "--temperature"),
                           (["sample", "--temperature", "-1"], "--temperature"),
                           (["sample", "--top-p", "0"], "--top-p"),
                           (["sample", "--top-p", "1.5"], "--top-p"),
                           (["sample", "--length", "-3"], "--length")]:
        r = run(*args)
        assert r.returncode == 2
        one_line_error(r, fragment)


def test_a_torchrun_restart_resumes_only_the_run_its_job_wrote(tmp_path, monkeypatch):
    # torchrun --max-restarts runs the same command again: it resumes when this job (its token, in
    # torchrun's store for the whole job) wrote the run's checkpoint, and a run another job left in
    # --out is not resumed by it (attempt 0 was refused for it, as without torchrun)
    import argparse
    from minrnn import cli
    out = tmp_path / "run"
    out.mkdir()
    (out / "latest.ckpt").write_bytes(b"x")
    args = argparse.Namespace(engine="torch", out=str(out))
    monkeypatch.setattr(cli, "job_token", lambda create=False: "this job")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert not cli.restarted(args)                  # no mark: another job's run
    (out / cli.TORCHRUN_JOB).write_text("another job")
    assert not cli.restarted(args)
    (out / cli.TORCHRUN_JOB).write_text("this job")
    assert cli.restarted(args)
    monkeypatch.setattr(cli, "job_token", lambda create=False: None)   # no agent's store: no token
    assert not cli.restarted(args)
    monkeypatch.setattr(cli, "job_token", lambda create=False: "this job")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    assert not cli.restarted(args)                  # the first attempt: as the command says
