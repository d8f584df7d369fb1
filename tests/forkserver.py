"""A fork server for the suite's `python -m minrnn` runs: one process that has imported what the command
line imports (numpy, the C core: 0.15 s of a run's 0.2 s on the 2-core VM, and the suite runs about
400), then forks a process for each run, which runs minrnn/__main__.py as `python -m minrnn` does.

Each run is still its own process, with its own exit status, signals, stdin, stdout, stderr, cwd
and environment (one that imports as the server's did: cliutil sends any other to a real interpreter).
What it shares is the import before main(), which a run changes nothing in.
Nothing in that import may start threads of OpenMP: libgomp's would not exist in the forked runs.

    python forkserver.py SOCKET   prints "ready" when it listens; stops when its stdin closes.

A request is one connection: a line of JSON {"argv": [...], "cwd": ..., "env": {...}} with the run's stdin, stdout
and stderr (three descriptors, SCM_RIGHTS). The answer is two lines of JSON, {"pid": N} when the run
starts and {"returncode": R} when it ends (as subprocess.Popen's: -N for signal N).
"""

import atexit
import json
import os
import runpy
import selectors
import signal
import socket
import sys
import threading
import traceback

import minrnn.cli  # noqa: F401   (what python -m minrnn imports before main)


def exit_code(code):
    """The status of SystemExit(code), as Python's own exit gives it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run(argv, cwd, env):
    """In the forked process: python -m minrnn *argv, and the interpreter's own ending."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.path[0] = os.getcwd()   # as python -m puts it
    sys.argv = ["-m", *argv]
    try:
        runpy.run_module("minrnn", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as e:
        code = exit_code(e.code)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    threading._shutdown()   # what Py_FinalizeEx does, in its order: threads, atexit, buffers
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):
            code = code or 120   # Python's status when it cannot flush stdout at exit
    os._exit(code)


def serve(listener, conn):
    """In a process forked for one request: fork the run, report its pid, wait for it, report its status."""
    listener.close()
    request, fds = b"", []
    while not request.endswith(b"\n"):
        data, more, _, _ = socket.recv_fds(conn, 1 << 16, 3)
        if not data:
            os._exit(1)
        request, fds = request + data, fds + more
    request = json.loads(request)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    pid = os.fork()
    if pid == 0:
        try:
            conn.close()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            run(request["argv"], request["cwd"], request["env"])
        except BaseException:
            traceback.print_exc()
        os._exit(1)
    for fd in fds:
        os.close(fd)
    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    conn.sendall(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
    os._exit(0)


def main(path):
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # the request processes are reaped by the kernel
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    events = selectors.DefaultSelector()
    events.register(listener, selectors.EVENT_READ)
    events.register(sys.stdin, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in events.select():
            if key.fileobj is sys.stdin:   # the suite has ended, or died
                return
            conn, _ = listener.accept()
            sys.stdout.flush(), sys.stderr.flush()
            if os.fork() == 0:
                try:
                    events.close()
                    serve(listener, conn)
                except BaseException:
                    traceback.print_exc()
                os._exit(1)
            conn.close()


if __name__ == "__main__":
    main(sys.argv[1])
