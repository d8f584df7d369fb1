"""A fork server for the suite's `python -m minrnn` runs: one process that has imported what the command
line imports (numpy, the C core: 0.15 s of a run's 0.2 s on the 2-core VM, and a suite runs about
400), then forks a process for each run, which runs minrnn/__main__.py as `python -m minrnn` does.

Each run is still its own process, with its own exit status, signals, stdin, stdout, stderr, cwd
and environment, and it ends as an interpreter does (threads joined, atexit, buffers flushed, objects
finalized). What it shares is the import before main(), which a run changes nothing in. So the
server holds one environment (less pytest's PYTEST_CURRENT_TEST), and the client starts another
server when a run's differs; an import that writes anything (a warning, say) makes the server refuse
to start, and the client then runs real interpreters, which show it. Known differences: the runs
share the server's string-hash seed (minrnn sorts what it prints and saves), a module in a run's cwd
cannot shadow numpy or minrnn (the suite runs in fresh temporary folders), and the traceback of an
exception that escapes main() (a failure in any test) starts with two frames of this file.
Nothing in the import may start OpenMP's threads: libgomp's would not exist in the forked runs
(test_forkserver.py's 2-thread run would hang).

    python forkserver.py SOCKET   prints "ready" when it listens; ends when its stdin closes.

A request is one connection: a line of JSON {"argv": [...], "cwd": ..., "env": {...}} with the run's
stdin, stdout and stderr (three descriptors, SCM_RIGHTS). The answer is two lines of JSON, {"pid": N}
when the run starts and {"returncode": R} when it ends (as subprocess.Popen's: -N for signal N). A
client that shuts its side of the connection before the end has the run killed.
"""

import atexit
import json
import os
import runpy
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types

# ---- the client (cliutil.minrnn)


class ForkServer:
    """This file run as a server for one environment; started() gives the one for a run's."""
    lock = threading.Lock()
    current = None

    @classmethod
    def started(cls, env):
        """The server for env (started if need be), or None if it could not start."""
        with cls.lock:
            if cls.current is not None and not (cls.current.imports_as(env) and cls.current.process.poll() is None):
                cls.current.stop()
                cls.current = None
            if cls.current is None:
                cls.current = cls(env)
            return cls.current if cls.current.ready else None

    def __init__(self, env):
        self.folder = tempfile.mkdtemp(prefix="minrnn-forkserver-")
        self.path, self.env = os.path.join(self.folder, "socket"), env
        with open(os.path.join(self.folder, "log"), "wb") as log:   # its own failures, for run()'s message
            self.process = subprocess.Popen([sys.executable, __file__, self.path], cwd=self.folder, env=env,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        with selectors.DefaultSelector() as events:
            events.register(self.process.stdout, selectors.EVENT_READ)
            self.ready = bool(events.select(60)) and self.process.stdout.readline() == b"ready\n"
        if not self.ready:
            self.process.kill()
        atexit.register(self.stop)

    def imports_as(self, env):
        return all(env.get(k) == self.env.get(k) for k in set(env) | set(self.env) if k != "PYTEST_CURRENT_TEST")

    def stop(self):
        self.process.stdin.close()   # its signal to end
        self.process.stdout.close()
        self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def run(self, args, cwd, env, timeout):
        """subprocess.run(args, cwd=cwd, env=env, capture_output=True, timeout=timeout)'s
        CompletedProcess (bytes), args being [python, -m, minrnn, *argv], from a forked run."""
        if not os.path.isdir(cwd):   # as Popen raises it
            raise FileNotFoundError(2, "No such file or directory", cwd)
        deadline = time.monotonic() + timeout
        out, err = os.pipe(), os.pipe()
        given = [out[1], err[1]]   # the run's ends: closed here once sent
        try:
            os.fstat(0)
            stdin = 0   # subprocess.run's: this process's
        except OSError:
            stdin = os.open(os.devnull, os.O_RDONLY)
            given.append(stdin)
        out, err, chunks, answers = out[0], err[0], {out[0]: [], err[0]: []}, b""
        conn, events = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), selectors.DefaultSelector()
        try:
            conn.connect(self.path)
            request = json.dumps({"argv": args[3:], "cwd": cwd, "env": env}).encode() + b"\n"
            socket.send_fds(conn, [request], [stdin, *given[:2]])
            while given:
                os.close(given.pop())
            for fd in chunks:
                events.register(fd, selectors.EVENT_READ)
            events.register(conn, selectors.EVENT_READ)
            while events.get_map():
                left = deadline - time.monotonic()
                for key, _ in events.select(left) if left > 0 else ():
                    data = conn.recv(1 << 16) if key.fileobj is conn else os.read(key.fd, 1 << 16)
                    if not data:
                        events.unregister(key.fileobj)
                    elif key.fileobj is conn:
                        answers += data
                    else:
                        chunks[key.fd].append(data)
                if left <= 0:
                    answers += self.kill(conn)
                    output, errors = (b"".join(chunks[fd]) or None for fd in (out, err))
                    raise subprocess.TimeoutExpired(args, timeout, output, errors)
        except BaseException:
            if b"returncode" not in answers:
                self.kill(conn)
            raise
        finally:
            events.close()
            conn.close()
            for fd in (*given, *chunks):
                os.close(fd)
        lines = answers.splitlines()
        if len(lines) != 2:
            log = open(os.path.join(self.folder, "log"), errors="replace").read()
            raise RuntimeError(f"tests/forkserver.py gave no status for {args[3:]}: {answers!r}\n{log}")
        return subprocess.CompletedProcess(args, json.loads(lines[1])["returncode"], b"".join(chunks[out]),
                                           b"".join(chunks[err]))

    @staticmethod
    def kill(conn):
        """Have the server kill the run (it has not reaped it, so its pid is still the run's); what
        the server said after, within 10 s."""
        said = b""
        try:
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(10)
            while True:
                data = conn.recv(1 << 16)
                if not data:
                    return said
                said += data
        except OSError:
            return said


# ---- the server


def serve(path):
    """Listen at path; in each process forked for a run, return its request."""
    server = os.getpid()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # the processes of the requests are reaped by the kernel
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    events = selectors.DefaultSelector()
    events.register(listener, selectors.EVENT_READ)
    events.register(sys.stdin, selectors.EVENT_READ)
    print("ready", flush=True)
    try:
        while True:
            for key, _ in events.select():
                if key.fileobj is sys.stdin:   # the suite has ended, or died
                    return None
                conn, _ = listener.accept()
                sys.stderr.flush()
                if os.fork() == 0:
                    events.close()
                    listener.close()
                    return fork_the_run(conn)
                conn.close()
    finally:
        if os.getpid() == server:   # not in the processes forked, which return through here
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)


def fork_the_run(conn):
    """In the process of one request: fork the run and return its request there; here, report its
    pid, wait for its end (killing it if the client goes first), report its status."""
    request, fds = b"", []
    while not request.endswith(b"\n"):
        data, more, _, _ = socket.recv_fds(conn, 1 << 16, 3)
        if not data:
            os._exit(1)
        request, fds = request + data, fds + more
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    pid = os.fork()
    if pid == 0:
        conn.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        return json.loads(request)
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        status = wait_or_kill(pid, conn)
        conn.sendall(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
    except OSError:   # the client went away: wait_or_kill has killed the run
        pass
    os._exit(0)


def wait_or_kill(pid, conn):
    """The wait status of the run, killed first if the client shuts its side of conn."""
    try:
        ended = os.pidfd_open(pid)   # readable when the run ends (Linux 5.3)
    except (AttributeError, OSError):
        ended = None                 # elsewhere: look every 10 ms
    with selectors.DefaultSelector() as events:
        events.register(conn, selectors.EVENT_READ)
        if ended is not None:
            events.register(ended, selectors.EVENT_READ)
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            for key, _ in events.select(None if ended is not None else 0.01):
                if key.fileobj is conn:
                    os.kill(pid, signal.SIGKILL)
                    events.unregister(conn)


def run(request):
    """In the run's process: what `python -m minrnn *argv` does, from a fresh __main__. Whatever it
    raises ends this interpreter as it would end that one's."""
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.path[0] = os.getcwd()   # as python -m puts it
    sys.argv = ["-m", *request["argv"]]
    sys.modules["__main__"] = types.ModuleType("__main__")
    runpy._run_module_as_main("minrnn")   # what -m calls


def quiet_import():
    """Import what python -m minrnn imports before main(); whether that wrote nothing (what a run
    writes must be its own)."""
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as written:
        os.dup2(written.fileno(), 1)
        os.dup2(written.fileno(), 2)
        try:
            import minrnn.cli  # noqa: F401
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in enumerate(saved, 1):
                os.dup2(copy, fd)
                os.close(copy)
        return os.fstat(written.fileno()).st_size == 0


if __name__ == "__main__":
    if quiet_import():
        request = serve(sys.argv[1])
        if request is not None:
            run(request)
