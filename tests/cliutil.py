"""Running the real command line in subprocesses, as a user does, and what its failures must look like."""

import atexit
import json
import locale
import os
import pathlib
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

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
    """python -m minrnn *args in cwd, run to its end: subprocess.run's CompletedProcess, text and all.
    The process is forked from forkserver.py's, which has already imported numpy and the C core."""
    server, env = ForkServer.started(), environment()
    if server is None or not server.imports_as(env):
        return subprocess.run(command(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return server.run(list(map(str, args)), os.path.abspath(cwd), env, timeout)


class ForkServer:
    """tests/forkserver.py, started by the first run that needs it and stopped when the suite ends."""
    lock = threading.Lock()
    server = None

    @classmethod
    def started(cls):
        with cls.lock:
            if cls.server is None:
                cls.server = cls()
            return cls.server if cls.server.process.poll() is None else None

    def __init__(self):
        self.folder = tempfile.mkdtemp(prefix="minrnn-forkserver-")
        self.path = os.path.join(self.folder, "socket")
        self.env = environment()
        with open(os.path.join(self.folder, "log"), "wb") as log:   # its own failures, for run()'s message
            self.process = subprocess.Popen([sys.executable, str(ROOT / "tests" / "forkserver.py"), self.path],
                                            cwd=self.folder, env=self.env, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=log)
        if self.process.stdout.readline() != b"ready\n":   # it could not import minrnn: the real error
            self.process.wait()                              # then shows in each test's own interpreter
        atexit.register(self.stop)

    def imports_as(self, env):
        """Whether a run with this environment would import what the server imported: pytest's
        PYTEST_CURRENT_TEST, which changes with every test, is the only variable allowed to differ."""
        return all(env.get(k) == self.env.get(k) for k in set(env) | set(self.env) if k != "PYTEST_CURRENT_TEST")

    def stop(self):
        self.process.stdin.close()   # its signal to stop
        self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def run(self, argv, cwd, env, timeout):
        deadline = time.monotonic() + timeout
        out, err = os.pipe(), os.pipe()
        stdin = 0 if _is_open(0) else os.open(os.devnull, os.O_RDONLY)   # subprocess.run's: this process's
        chunks, answers, pid = {out[0]: [], err[0]: []}, b"", None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn, selectors.DefaultSelector() as events:
            conn.connect(self.path)
            socket.send_fds(conn, [json.dumps({"argv": argv, "cwd": cwd, "env": env}).encode() + b"\n"], [stdin, out[1], err[1]])
            for fd in (out[1], err[1]) + ((stdin,) if stdin else ()):
                os.close(fd)
            for fd in chunks:
                events.register(fd, selectors.EVENT_READ)
            events.register(conn, selectors.EVENT_READ)
            while events.get_map():
                ready = events.select(deadline - time.monotonic())
                if not ready:
                    if pid is not None:
                        os.kill(pid, signal.SIGKILL)
                    for fd in chunks:
                        os.close(fd)
                    raise subprocess.TimeoutExpired(command(*argv), timeout)
                for key, _ in ready:
                    data = key.fileobj.recv(1 << 16) if key.fileobj is conn else os.read(key.fd, 1 << 16)
                    if not data:
                        events.unregister(key.fileobj)
                    elif key.fileobj is conn:
                        answers += data
                        if pid is None and b"\n" in answers:
                            pid = json.loads(answers.split(b"\n")[0])["pid"]
                    else:
                        chunks[key.fd].append(data)
        for fd in chunks:
            os.close(fd)
        lines = answers.splitlines()
        if len(lines) != 2:
            log = pathlib.Path(self.folder, "log").read_text(errors="replace")
            raise RuntimeError(f"tests/forkserver.py gave no status for {argv}: {answers!r}\n{log}")
        stdout, stderr = (_text(b"".join(chunks[fd[0]])) for fd in (out, err))
        return subprocess.CompletedProcess(command(*argv), json.loads(lines[1])["returncode"], stdout, stderr)


def _is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


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
