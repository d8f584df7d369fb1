"""The command line under accidents and misuse, in real processes: two writers on one run, reading
while training saves, damaged run records, sizes that can't fit, full disks, read-only folders,
leftovers of killed saves, and Ctrl-C at any moment. Each ends in one line that says what to do."""

import json
import os
import resource
import select
import signal
import struct
import subprocess
import time

import pytest

from cliutil import TINY, command, environment, minrnn, one_line_error, start, text  # noqa: F401  (text: a fixture)
from minrnn import core
from minrnn.reference import CELLS


def wait_for_line(proc, prefix, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line
        assert line or proc.poll() is None, proc.stderr.read()
    raise AssertionError(f"no line starting with {prefix!r}")


def test_a_second_writer_is_refused_until_the_first_is_gone(tmp_path, text):
    # The first run has taken the folder and saved nothing yet (it evaluates every 100000 steps).
    # --max-time 600 only bounds a run the test would not kill: it must outlive the checks below on
    # any machine.
    first = start("train", text, *TINY, "--max-time", 600, "--epochs", 10**5, "--eval-every", 10**5,
                  "--out", "run", cwd=tmp_path)
    try:
        wait_for_line(first, "training a")
        for args in (["train", text, *TINY, "--max-iters", 2], ["train", "--resume"]):
            one_line_error(minrnn(*args, "--out", "run", cwd=tmp_path),
                           f"another training run (process {first.pid}) is writing to run")
        assert first.poll() is None   # untouched
    finally:
        first.kill()   # SIGKILL: no chance to clean up
        first.communicate()
    # the kernel dropped the lock with the process: the folder is free
    r = minrnn("train", text, *TINY, "--max-iters", 2, "--out", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_reading_checkpoints_while_training_replaces_them(tmp_path, text):
    # Training saves latest.ckpt and best.ckpt at every step; meanwhile this process loads them in a
    # loop and sample runs on them. Every read must succeed, and see a whole checkpoint.
    # --max-time 600 only bounds a run the test would not interrupt: it must outlive the reads below
    # on any machine (20 s could end it first on a loaded one: the reads allow themselves 60 s)
    trainer = start("train", text, *TINY, "--max-time", 600, "--epochs", 10**5, "--eval-every", 1,
                    "--out", "run", cwd=tmp_path)
    try:
        wait_for_line(trainer, "iter      1")
        steps, deadline = set(), time.monotonic() + 60
        while len(steps) < 30 and time.monotonic() < deadline:   # reads across 30 saves at least
            for name in ("latest.ckpt", "best.ckpt"):
                ck = core.load_checkpoint(tmp_path / "run" / name)
                assert ck.meta["iteration"] == ck.trainer.steps   # one save, not two mixed
                steps.add(ck.trainer.steps)
        for _ in range(3):
            r = minrnn("sample", "--checkpoint", tmp_path / "run" / "latest.ckpt", "--length", 20, "--seed", 1,
                       cwd=tmp_path)
            assert r.returncode == 0 and len(r.stdout) == 20, r.stderr
        assert trainer.poll() is None
    finally:
        trainer.send_signal(signal.SIGINT)
        trainer.communicate(timeout=60)
    assert len(steps) >= 30, f"the run saved only {len(steps)} times while it was read"


# ---- damaged run records: valid checkpoints (checksums recomputed) with bad metadata or header fields

FNV_BASIS, FNV_PRIME = 0xcbf29ce484222325, 0x100000001b3
META_TABLE = 128 + 16 * 5   # (offset, size) of the metadata section in the header


def fnv1a(data):
    h = FNV_BASIS
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def rewrite(path, meta=None, header=None):
    """Replace a checkpoint's metadata bytes and/or header fields {offset: (format, value)}, and fix
    the sizes and the checksum so that the file is valid again."""
    data = bytearray(path.read_bytes()[:-8])
    if meta is not None:
        offset, size = struct.unpack_from("<QQ", data, META_TABLE)
        data[offset:offset + size] = meta
        struct.pack_into("<Q", data, META_TABLE + 8, len(meta))
        for entry in range(META_TABLE + 16, 256, 16):   # the sections after meta (format 2) move along
            struct.pack_into("<Q", data, entry, struct.unpack_from("<Q", data, entry)[0] + len(meta) - size)
    for at, (fmt, value) in (header or {}).items():
        struct.pack_into(fmt, data, at, value)
    path.write_bytes(bytes(data) + struct.pack("<Q", fnv1a(data)))


@pytest.fixture
def trained(tmp_path, text):
    r = minrnn("train", text, *TINY, "--max-iters", 4, "--eval-every", 2, "--out", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return tmp_path / "run" / "latest.ckpt"


def run_meta(path):
    return core.load_checkpoint(path).meta


def no_traceback(result):
    """Success, or a failure as users should see it."""
    if result.returncode != 0:
        one_line_error(result)


@pytest.mark.parametrize("case", ["nested", "huge integer", "a string", "lr_scale null", "hidden 10**5000",
                                  "lr_scale 10**400", "settings missing"])
def test_damaged_metadata_is_one_line_for_sample_eval_and_resume(tmp_path, text, trained, case):
    meta = run_meta(trained)
    if case == "nested":
        raw = b"[" * 100000 + b"]" * 100000
    elif case == "huge integer":
        raw = json.dumps(meta).encode().replace(b'"iteration": 4', b'"iteration": ' + b"9" * 5000)
    elif case == "a string":
        raw = b'"minrnn-run"'
    elif case == "lr_scale null":
        raw = json.dumps(dict(meta, lr_scale=None)).encode()
    elif case == "hidden 10**5000":
        raw = json.dumps(meta).encode().replace(b'"hidden": 16', b'"hidden": 1' + b"0" * 5000)
    elif case == "lr_scale 10**400":   # a whole number too large for a double, within json's digit limit
        raw = json.dumps(dict(meta, lr_scale=10**400)).encode()
    else:
        raw = json.dumps({k: v for k, v in meta.items() if k != "args"}).encode()
    assert raw != json.dumps(meta).encode()
    rewrite(trained, meta=raw)
    for args in (["sample", "--checkpoint", trained, "--length", 10, "--seed", 1],
                 ["eval", text, "--checkpoint", trained]):
        no_traceback(minrnn(*args, cwd=tmp_path))
    one_line_error(minrnn("train", "--resume", "--out", "run", cwd=tmp_path), "latest.ckpt", "start a new run")


def test_a_run_started_by_another_version_says_so(tmp_path, text, trained):
    # minrnn 0.1 stored the IRNN as a cell ("irnn") and had no --init
    meta = run_meta(trained)
    meta["minrnn"] = "0.1.0"
    meta["args"]["cell"] = "irnn"
    del meta["args"]["init"]
    rewrite(trained, meta=json.dumps(meta).encode())
    one_line_error(minrnn("train", "--resume", "--out", "run", cwd=tmp_path),
                   "was started by minrnn 0.1.0", "finish it with that version, or start a new run")


def test_settings_that_disagree_with_the_checkpoint_are_one_line(tmp_path, text, trained):
    # The header says seq_len 17 while the run's settings say 16 (and the other way round).
    original = trained.read_bytes()
    rewrite(trained, header={56: ("<i", 17)})   # seq_len, offset 56 of the header (checkpoint.c)
    one_line_error(minrnn("train", "--resume", "--out", "run", cwd=tmp_path),
                   "its settings say seq_len 16, its contents 17", "start a new run")
    trained.write_bytes(original)
    rewrite(trained, meta=json.dumps(run_meta(trained)).encode().replace(b'"seq_len": 16', b'"seq_len": 8'))
    one_line_error(minrnn("train", "--resume", "--out", "run", cwd=tmp_path),
                   "its settings say seq_len 8, its contents 16")


# ---- sizes that can't fit, and options that can't work

def test_what_cannot_fit_in_memory_is_refused_before_allocating(tmp_path, text):
    run = lambda *a: minrnn(*a, cwd=tmp_path, timeout=60)
    one_line_error(run("train", text, "--hidden", 65536), "needs about", "of memory but", "--hidden")
    one_line_error(run("train", "/dev/zero"), "/dev/zero: is a device, not a text file")
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as f:   # a sparse terabyte: nothing is written to disk
        f.truncate(2**40)
    one_line_error(run("train", huge, "--out", "r2"), "1 TiB of text needs about")
    assert not (tmp_path / "out").exists() and not (tmp_path / "r2").exists()   # no run folder left behind
    # a chunk longer than the text is cut to the text: evaluation works
    assert minrnn("train", text, *TINY, "--max-iters", 2, "--out", "ok", cwd=tmp_path).returncode == 0
    r = run("eval", text, "--checkpoint", tmp_path / "ok" / "best.ckpt", "--seq-len", 100000000)
    assert r.returncode == 0 and "nats/char" in r.stdout, r.stderr


@pytest.mark.parametrize("option, value, says", [
    ("--clip-norm", "inf", "a finite number >= 0"), ("--clip-value", "inf", "a finite number >= 0"),
    ("--clip-norm", "nan", "a finite number"), ("--lr", "1e39", "beyond float32"),
    ("--dropout", "0.99999999", "in [0, 1)"), ("--hidden", "100000", "in [1, 65536]"),
    ("--layers", "65", "in [1, 64]"), ("--embed", "70000", "in [0, 65536]"),
    ("--batch-size", "99999999999", "in [1, 1073741824]"), ("--seed", "-1", "in [0, 18446744073709551615]"),
    ("--cell", "irnn", "one of " + ", ".join(CELLS)), ("--max-time", "inf", "a finite number > 0"),
])
def test_options_are_checked_before_anything_runs(tmp_path, text, option, value, says):
    r = minrnn("train", text, option, value, "--out", "run", cwd=tmp_path)
    assert r.returncode == 2
    one_line_error(r, f"argument {option}: expected", says)
    assert not (tmp_path / "run").exists()


def test_settings_that_do_not_go_together_are_refused_up_front(tmp_path, text):
    one_line_error(minrnn("train", text, "--cell", "lstm", "--init", "irnn", "--out", "run", cwd=tmp_path),
                   "--init irnn", "is for rnn_relu and rnn_tanh, not lstm")
    assert not (tmp_path / "run").exists()
    r = minrnn("train", text, *TINY, "--cell", "rnn_relu", "--init", "irnn", "--max-iters", 2, "--out", "run",
               cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_a_huge_number_in_the_best_checkpoint_does_not_stop_a_resume(tmp_path, text, trained):
    best = trained.parent / "best.ckpt"
    rewrite(best, meta=json.dumps(dict(run_meta(best), val_loss=10**400)).encode())
    r = minrnn("train", "--resume", "--max-iters", 6, "--out", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr   # such a best counts as no best at all


def test_text_that_is_not_utf8_gets_advice_the_command_has(tmp_path, text):
    assert minrnn("train", text, *TINY, "--max-iters", 2, "--out", "run", cwd=tmp_path).returncode == 0
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 au lait".encode("latin-1") * 50)
    env = environment()
    prime = subprocess.run(command("sample", "--prime") + [b"caf\xe9"], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    for r in (prime, minrnn("eval", latin1, cwd=tmp_path)):
        line = one_line_error(r, "invalid UTF-8 at byte offset", "this model reads UTF-8")
        assert "--tokens" not in line.replace("without --tokens bytes", "")


def limit_file_size(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return apply


def test_a_full_disk_says_what_failed_and_why(tmp_path, text):
    # The first save needs ~150 KB; 20 KB is what the "disk" holds (the file size limit, EFBIG,
    # stands in for ENOSPC: the same path through the code).
    r = subprocess.run(command("train", text, *TINY, "--max-iters", 3, "--eval-every", 2, "--out", "run"),
                       cwd=tmp_path, env=environment(), capture_output=True, text=True,
                       preexec_fn=limit_file_size(20000))
    one_line_error(r, "saving run/latest.ckpt: file could not be written (File too large)")
    assert sorted(os.listdir(tmp_path / "run")) == [".lock"]   # no temporary file left


def test_a_read_only_working_folder_only_costs_the_last_run_pointer(tmp_path, text):
    # root can write anywhere, so the pointer is made unwritable by a folder in its place
    (tmp_path / ".minrnn-last-run").mkdir()
    r = minrnn("train", text, *TINY, "--max-iters", 2, "--out", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "note: could not write .minrnn-last-run" in r.stdout and "--checkpoint run/best.ckpt" in r.stdout
    assert (tmp_path / "run" / "best.ckpt").exists()


def test_leftovers_of_killed_saves_are_removed_when_a_run_resumes(tmp_path, text, trained):
    run = trained.parent
    for name in ("latest.ckpt.tmp-Ab12Cd", "best.ckpt.tmp-zz99ZZ"):
        (run / name).write_bytes(os.urandom(1000))
    (run / "notes.tmp-keepme").write_text("not ours")
    r = minrnn("train", "--resume", "--max-iters", 6, "--out", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "removed what interrupted saves left in run: best.ckpt.tmp-zz99ZZ, latest.ckpt.tmp-Ab12Cd" in r.stdout
    assert sorted(os.listdir(run)) == [".lock", "best.ckpt", "latest.ckpt", "metrics.jsonl", "notes.tmp-keepme"]


def test_ctrl_c_while_the_modules_load_is_quiet(tmp_path):
    # PYTHONVERBOSE makes Python report each import on stderr as it happens; SIGINT goes out as soon
    # as numpy starts loading, which is the middle of minrnn's imports.
    for attempt in range(3):
        proc = subprocess.Popen(command("sample", "--length", 5), cwd=tmp_path, env=environment(PYTHONVERBOSE="1"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        seen = b""
        while b"numpy" not in seen:
            ready, _, _ = select.select([proc.stderr], [], [], 30)
            assert ready, "no imports reported"
            chunk = os.read(proc.stderr.fileno(), 65536)
            assert chunk, "the process ended before loading numpy"
            seen += chunk
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, (proc.returncode, err[-2000:])
        assert b"Traceback" not in err and b"KeyboardInterrupt" not in err
