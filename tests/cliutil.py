"""Running the real command line in subprocesses, as a user does, and what its failures must look like."""

import locale
import os
import pathlib
import subprocess
import sys

import pytest

from forkserver import ForkServer

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--hidden", "16", "--layers", "1", "--batch-size", "4", "--seq-len", "16", "--sample-every", "0"]


def english(n):
    """Real English from the standard library: CPython's pydoc help topics."""
    from pydoc_data.topics import topics
    return "\n".join(topics[k] for k in sorted(topics))[:n]


def example_files(folder, text_chars=5000):
    """Into folder: text.txt (English), labelled.txt (two labels, label<TAB>text) and pairs.tsv (words
    and their reverses): tiny models of each kind train on them. Returns folder."""
    (folder / "text.txt").write_text(english(text_chars), encoding="utf-8")
    (folder / "labelled.txt").write_text("".join(f"{'up' if i % 2 else 'low'}\t{'ABC' if i % 2 else 'abc'}{i % 7}\n"
                                                 for i in range(60)), encoding="utf-8")
    (folder / "pairs.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in ("ab", "abc", "ba", "cab", "bca") * 12),
                                      encoding="utf-8")
    return folder


def command(*args):
    return [sys.executable, "-m", "minrnn", *map(str, args)]


def environment(**extra):
    return dict(os.environ, PYTHONPATH=str(ROOT), **extra)


def minrnn(*args, cwd, timeout=120):
    """python -m minrnn *args in cwd, run to its end: what subprocess.run(text=True) gives. The
    process is forked from forkserver.py's, which has imported numpy and the C core already."""
    env = environment()
    server = ForkServer.started(env)
    if server is None:
        return fresh(*args, cwd=cwd, timeout=timeout)
    r = server.run(command(*args), os.path.abspath(cwd), env, timeout)
    return subprocess.CompletedProcess(r.args, r.returncode, _text(r.stdout), _text(r.stderr))


def fresh(*args, cwd, timeout=120):
    """python -m minrnn *args in cwd, in an interpreter of its own."""
    return subprocess.run(command(*args), cwd=cwd, env=environment(), capture_output=True, text=True,
                          timeout=timeout)


def _text(data):
    """As subprocess.run(text=True) decodes: the locale's encoding, universal newlines."""
    return data.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")


def start(*args, cwd):
    """minrnn running in the background, its output readable line by line."""
    return subprocess.Popen(command(*args), cwd=cwd, env=environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def one_line_error(result, *fragments):
    """A failure the way users should see it: exit != 0, one line on stderr, no traceback."""
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "input.txt"
    path.write_text(english(6000), encoding="utf-8")
    return path
