"""The suite's command-line runs are forked from tests/forkserver.py: each must be what a fresh
`python -m minrnn` gives, or the suite would test something users never run."""

import os
import pathlib
import re
import subprocess
import time

import pytest

from cliutil import TINY, fresh, minrnn, text  # noqa: F401   (text: a fixture)


def same_run(forked, real):
    timing = re.compile(r"[\d,.]+ chars/s|ETA \S+")   # the only words of a run that vary from run to run
    assert forked.args == real.args
    assert forked.returncode == real.returncode
    assert timing.sub("#", forked.stdout) == timing.sub("#", real.stdout)
    assert forked.stderr == real.stderr


def test_a_forked_run_is_what_a_fresh_interpreter_gives(text, tmp_path):
    trained = {}
    for run in (minrnn, fresh):
        (tmp_path / run.__name__).mkdir()
        trained[run] = run("train", text, *TINY, "--max-iters", 6, "--eval-every", 3, "--seed", 4, "--out", "run",
                           cwd=tmp_path / run.__name__)
    same_run(trained[minrnn], trained[fresh])
    assert trained[minrnn].returncode == 0 and "val" in trained[minrnn].stdout
    assert (tmp_path / "minrnn/run/best.ckpt").read_bytes() == (tmp_path / "fresh/run/best.ckpt").read_bytes()
    for args in (["--help"], ["train", "--bogus"], ["sample", "--checkpoint", "missing.ckpt"],
                 ["sample", "--checkpoint", "run/best.ckpt", "--length", 80, "--seed", 9, "--threads", 2],
                 ["eval", "--checkpoint", "run/best.ckpt", text]):
        same_run(minrnn(*args, cwd=tmp_path / "fresh"), fresh(*args, cwd=tmp_path / "fresh"))


def test_a_forked_run_has_the_environment_and_cwd_it_is_given(monkeypatch, tmp_path):
    monkeypatch.setenv("COLUMNS", "200")   # argparse wraps its help to it
    wide = minrnn("--help", cwd=tmp_path)
    monkeypatch.setenv("COLUMNS", "40")    # another environment: another server imports for it
    narrow = minrnn("--help", cwd=tmp_path)
    same_run(narrow, fresh("--help", cwd=tmp_path))
    assert narrow.returncode == 0 and narrow.stdout != wide.stdout
    with pytest.raises(FileNotFoundError):   # as subprocess.run raises it
        minrnn("--help", cwd=tmp_path / "missing")


def processes_in(folder):
    """The pids of the processes whose working directory is folder."""
    found = []
    for cwd in pathlib.Path("/proc").glob("[0-9]*/cwd"):
        try:
            if os.readlink(cwd) == str(folder):
                found.append(int(cwd.parent.name))
        except OSError:   # gone, or not ours to read
            pass
    return found


def test_a_forked_run_past_its_timeout_is_killed(text, tmp_path):
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        minrnn("train", text, *TINY, "--epochs", 10 ** 6, "--out", "run", cwd=tmp_path, timeout=1)
    assert time.monotonic() - start < 10   # 1 s, and the kill; not the million epochs
    assert processes_in(tmp_path) == []    # the server reports the status only after the run has ended
