"""The run folder (--out): one writer at a time, the leftovers of a killed save, and the pointer in
the working folder through which `sample` and `eval` find the last run."""

import contextlib
import fcntl
import json
import os
import pathlib
import re

from minrnn.errors import UserError

LOCK = ".lock"                   # in the run folder: held (flock) by the process writing to it
LAST_RUN = ".minrnn-last-run"    # in the working folder: {"out": the last run's folder}
# what minrnn_checkpoint_save writes before its rename: "<name>.tmp-" and six characters
TEMPORARY = re.compile(r".+\.ckpt\.tmp-[A-Za-z0-9]{6}")


class RunFolder:
    """A run folder, taken for this process (created if needed). Another process that has it makes
    this a UserError. The lock is the kernel's (flock): it goes with the process, however that ends,
    so a crash or a kill never leaves a stale lock behind."""

    def __init__(self, path):
        self.path = str(path)
        self.created = not os.path.exists(self.path)
        try:
            os.makedirs(self.path, exist_ok=True)
            self.fd = os.open(os.path.join(self.path, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise UserError(f"cannot write to the output folder {self.path}: {e.strerror}; choose another --out") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode("ascii", "replace").strip()
            os.close(self.fd)
            raise UserError(f"another training run (process {holder or 'unknown'}) is writing to {self.path}; "
                            "wait for it to finish, or choose another --out") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def file(self, name):
        return os.path.join(self.path, name)

    def exists(self, name):
        return os.path.exists(self.file(name))

    def remove_stale_temporaries(self):
        """Remove what killed saves left (latest.ckpt.tmp-XXXXXX, ...): nobody else writes here, so
        any there now is stale. Returns their names."""
        stale = sorted(name for name in os.listdir(self.path) if TEMPORARY.fullmatch(name))
        for name in stale:
            os.remove(self.file(name))
        return stale

    def release(self):
        os.close(self.fd)

    def abandon(self):
        """Release the folder after a failed start, removing it first (still locked) if this process
        created it and it holds nothing but the lock. (A process that opens the lock file meanwhile
        makes a new one, which the rmdir then leaves alone.)"""
        if self.created and os.listdir(self.path) == [LOCK]:
            os.remove(self.file(LOCK))
            try:
                os.rmdir(self.path)
            except OSError:
                pass
        self.release()


class SharedFolder(RunFolder):
    """A run folder that another process of the same job writes (rank 0 under torchrun): read from,
    never locked, cleaned or written here."""

    def __init__(self, path):
        self.path, self.created = str(path), False

    def remove_stale_temporaries(self):
        return []

    def release(self):
        pass


@contextlib.contextmanager
def replacing(path):
    """A temporary name beside path, with path's suffix (what matplotlib reads the format from), to
    write to: path is replaced by it whole when the block ends without an error, and either way
    nothing is left behind. A crash or Ctrl-C never leaves path half written."""
    path = pathlib.Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_output(option, path, inputs=(), suffixes=(), kind=""):
    """UserError unless a command may write path (given as `option`): it is none of the command's
    inputs (the same file by any name: writing it would destroy what is read), and, with suffixes,
    its name says the kind of file it gets (kind: what that is, for the message)."""
    for given in inputs:
        if given is not None and os.path.exists(path) and os.path.exists(given) and os.path.samefile(path, given):
            raise UserError(f"{option} {path} is {given}, which this command reads; give another path")
    if suffixes and not pathlib.Path(path).name.lower().endswith(tuple(suffixes)):
        raise UserError(f"{option} {path}: {kind} is written there; give a name ending in {' or '.join(suffixes)}")


def write_atomically(path, data):
    """path's contents replaced by data (bytes) whole, or not at all."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def remember_last_run(path):
    """Point `sample` and `eval` in the working folder at this run. Optional: returns the reason it
    could not (a read-only working folder, say), and then they need --checkpoint."""
    try:
        write_atomically(LAST_RUN, json.dumps({"out": os.path.abspath(path)}).encode("utf-8"))
    except OSError as e:
        return e.strerror or str(e)
    return None


def last_run_checkpoint():
    """The best checkpoint of the last run started in the working folder (or of ./out)."""
    out = "out"
    try:
        with open(LAST_RUN) as f:
            out = json.load(f)["out"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        pass
    for name in ("best.ckpt", "latest.ckpt"):
        path = os.path.join(str(out), name)
        if os.path.exists(path):
            return path
    raise UserError("no checkpoint given and no training run found here; pass --checkpoint FILE, "
                    "or train first: python -m minrnn train FILE")
