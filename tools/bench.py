"""minrnn against PyTorch (CPU) and min-char-rnn: training and sampling speed, memory, thread scaling.

    PYTHONPATH=. python tools/bench.py            # the full table (about 5 minutes on 2 cores)
    PYTHONPATH=. python tools/bench.py --quick    # fewer, shorter rounds: a smoke test
    PYTHONPATH=. python tools/bench.py --only lstm512 --json

Every comparison uses the same configuration, thread count and starting weights in both frameworks
(minrnn's parameters are copied into the PyTorch model by name), and is checked before it is timed:
the two must give the same loss on the same batch, before and after one training step. Timing then
alternates rounds of each contender, so that noise from the rest of the machine hits both; a rate is
B*T characters over the median step time of the rounds.

Training FLOPs count the dense products a correct implementation needs (see train_flops); GFLOP/s
is set against a numpy SGEMM measured in the same run with the same thread count.

Sampling has a ceiling of its own: each character reads every weight once, so it cannot go faster
than read bandwidth / weight bytes per character (see sampling_bytes). The bandwidth is measured
on one thread in the same run, on a buffer the size of the weights (where they live while sampling:
a 12.8 MB model stays in a server's L3) and, for scale, on one far larger than the
last-level cache (DRAM); the bound uses the first, the higher and so the stricter one. Each is the
better of a probe before the sampling row's timing and one after.

Compact weights (bfloat16) are timed against float32 on the same model, and must predict
tinyshakespeare's validation tail (its last 10%) as well: a model given with --checkpoint, or else
the sampling row's model trained for a short fixed time on the first 90%.

The targets are the speed issue's, in one table (TARGETS) from which the printout and the JSON's
pass/miss are both derived.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, replace

THREADS = 2
# numpy's BLAS reads its thread count once, at import: fix it to the benchmark's before importing
# numpy, so the numpy min-char-rnn runs with the same thread count as the others.
os.environ["OPENBLAS_NUM_THREADS"] = str(THREADS)

import numpy as np  # noqa: E402

from minchar_numpy import MinCharRNN  # noqa: E402
from minrnn import core, cores  # noqa: E402
from minrnn import reference  # noqa: E402
from minrnn.errors import UserError  # noqa: E402
from minrnn.api import read_checkpoint  # noqa: E402
from minrnn.tasks.lm import evaluate  # noqa: E402
from minrnn.reference import CELLS, Config  # noqa: E402
from minrnn.text import Vocab, read_symbols  # noqa: E402

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None

# The standard corpus, from the workplace's shared folder next to the repository (never copied into
# it); MINRNN_BENCH_DATA overrides, and without either a synthetic text stands in.
DATA = os.environ.get("MINRNN_BENCH_DATA", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                         "shared", "data", "tinyshakespeare.txt"))
V = 65              # tinyshakespeare's vocabulary
SEED = 1234


@dataclass
class Row:
    """A model and its training, for one row of the table."""
    key: str
    label: str
    cell: str              # "rnn_tanh", "lstm" or "gru": a key of minrnn.reference.CELLS
    H: int
    L: int
    B: int = 32
    T: int = 64
    optimizer: str = "adam"
    lr: float = 2e-3
    clip_norm: float = 5.0
    clip_value: float = 0.0
    threads: int = THREADS
    E: int = 0             # layer 0's input: an embedding of E (the train command's default is 64), or one-hot


TRAIN_ROWS = [
    Row("lstm128", "LSTM H=128 L=1", "lstm", 128, 1),
    Row("lstm256", "LSTM H=256 L=2", "lstm", 256, 2),
    Row("lstm512", "LSTM H=512 L=2", "lstm", 512, 2),
    Row("lstm256e", "LSTM H=256 L=2 E=64", "lstm", 256, 2, E=64),   # make run's model
    Row("lstm512e", "LSTM H=512 L=2 E=64", "lstm", 512, 2, E=64),   # the train command's default (less dropout)
    Row("gru256", "GRU H=256 L=2", "gru", 256, 2),
    Row("rnn256", "RNN tanh H=256 L=2", "rnn_tanh", 256, 2),
]
# min-char-rnn's shape and training: one stream of 25 steps, Adagrad, elementwise clip.
MINCHAR = Row("minchar", "min-char-rnn: RNN H=100 L=1 B=1 T=25", "rnn_tanh", 100, 1, B=1, T=25,
              optimizer="adagrad", lr=0.1, clip_norm=0.0, clip_value=5.0)
SAMPLE = Row("sample", "sampling LSTM H=512 L=2, B=1, 1 thread", "lstm", 512, 2, B=1, T=1, threads=1)
COMPACT = replace(SAMPLE, key="compact", label="sampling compact / float32, 1 thread")
COMPACT_PRECISIONS = [p for p in core.PRECISIONS if p != "float32"]   # bfloat16, int8
STREAMS_NUM = 32        # the streams row: sample --num 32 against --num 1,
STREAMS_LENGTH = 200    # each of this many characters
STREAMS = replace(SAMPLE, key="streams", label=f"sample --num {STREAMS_NUM} / --num 1, {THREADS} threads",
                  threads=THREADS)
MEMORY = Row("memory", "peak memory, training LSTM H=512 L=2", "lstm", 512, 2)
SCALING = [Row("lstm256", "LSTM H=256 L=2", "lstm", 256, 2), Row("lstm512", "LSTM H=512 L=2", "lstm", 512, 2)]
# The load row's workloads, each at 1 thread and at the default (all cores), on an idle machine and
# beside one busy process per core: training steps, sampling a character, translating a date; with
# the speed-up each must keep on an idle machine. A translation by a GRU of 128 units is too small
# to share (each step's products are under PAR_MIN_WORK, its keys under LONE_MIN_WORK): one thread
# runs it, and the default must not lose to it (0.95: the rounds' noise).
LOAD_WORKLOADS = {"training LSTM H=256 L=2 B=32 T=64": 1.8, "sampling LSTM H=512 L=2 B=1": 1.8,
                  "translating GRU H=128": 0.95}
# The caption row: training a captioner of make demo-captions' size (an LSTM of 128 units over grids of
# 12 places of 65 numbers, captions of 6 words and the end), fed its context, against the same model as
# minrnn.torch's module (PyTorch's way: a step at a time, as input feeding needs).
CAPTION = {"V": 24, "H": 128, "E": 32, "D": 65, "places": 12, "B": 32, "Td": 7}
# The engine row (make bench-torch): python -m minrnn train's steps by the C engine and by the torch
# engine (minrnn/torch_engine.py, one process) on its device (a GPU where torch sees one), same model,
# batches and rules: the README's "Outgrowing one machine" model, an LSTM of 2 x 256 with embeddings.
ENGINE = Row("engine", "torch engine, LSTM H=256 L=2 E=64", "lstm", 256, 2, E=64)
# The serve row: python -m minrnn serve's load test (tools/serve_load.py), SERVE_CLIENTS clients at once each
# streaming SERVE_LENGTH characters from a model of make run's size (an LSTM 256 x 2, embeddings of 64), 3 rounds
# each.
SERVE_CLIENTS, SERVE_LENGTH = (1, 8, 32), 500
ROW_KEYS = [r.key for r in TRAIN_ROWS] + ["minchar", "sample", "compact", "streams", "memory", "scaling", "load",
                                          "caption", "engine", "serve"]

DRAM_PROBE_BYTES = 1 << 30   # the sampling row's second bandwidth probe: past most L3s (not a 480 MiB one's)
VALID_FRAC = 0.1        # the compact row's validation tail: the last 10% of the text
EVAL_STREAMS, EVAL_SEQ_LEN = 16, 256   # python -m minrnn eval's defaults (--batch-size, --seq-len)


@dataclass(frozen=True)
class Target:
    """One target of the speed issue: the row's measured value at `measure` (keys into the row's
    result, joined by dots), compared with `limit`."""
    row: str
    measure: str
    op: str                # ">=" or "<="
    limit: float
    unit: str              # "x", "%" (of 1) or "nats"
    what: str

    def show(self, x):
        """A measured value in the target's unit."""
        if self.unit in ("ms", "n"):
            return f"{x:.1f} ms" if self.unit == "ms" else f"{x:g}"
        return f"{100 * x:.1f}%" if self.unit == "%" else f"{x:.2f}x" if self.unit == "x" else f"{x:.4f} nats"

    def text(self):
        limit = f"{100 * self.limit:g}%" if self.unit == "%" else f"{self.limit:g}" + (
            {"x": "x", "ms": " ms", "n": ""}.get(self.unit, " nats"))
        return self.op + limit

    def judge(self, result):
        """{measure, what, target, measured, pass}; measured and pass are None if the row did not
        measure it (it failed, or PyTorch is missing)."""
        value = result
        for key in self.measure.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        passed = None if value is None else value >= self.limit if self.op == ">=" else value <= self.limit
        return {"measure": self.measure, "what": self.what, "target": self.text(), "measured": value,
                "shown": "n/a" if value is None else self.show(value), "pass": passed}


# The speed issue's targets; ratios are minrnn / PyTorch in the same run, same threads, same weights.
TARGETS = [Target(key, "ratio", ">=", limit, "x", "minrnn / PyTorch c/s")
           for key, limit in (("lstm128", 1.25), ("lstm256", 1.25), ("lstm512", 1.25), ("lstm256e", 1.25),
                              ("lstm512e", 1.25), ("gru256", 2), ("rnn256", 2))] + [
    Target("lstm512", "minrnn.sgemm_share", ">=", 0.90, "%", "minrnn GFLOP/s / SGEMM's"),
    Target("minchar", "ratio", ">=", 20, "x", "minrnn / PyTorch c/s"),
    Target("minchar", "numpy_ratio", ">=", 15, "x", "minrnn / numpy min-char-rnn c/s"),
    Target("sample", "bound_share", ">=", 0.85, "%", "c/s / bandwidth bound"),
    Target("compact", "speedups.bfloat16", ">=", 1.9, "x", "bfloat16 / float32 c/s"),
    Target("compact", "loss_diffs.bfloat16", "<=", 0.01, "nats", "|bfloat16 - float32| validation loss"),
    Target("compact", "speedups.int8", ">=", 3, "x", "int8 / float32 c/s"),
    Target("compact", "loss_diffs.int8", "<=", 0.02, "nats", "|int8 - float32| validation loss"),
    Target("streams", "sgemm_share", ">=", 0.60, "%", f"--num {STREAMS_NUM}: GFLOP/s / the {THREADS}-thread SGEMM's"),
    Target("memory", "ratio", "<=", 0.3, "x", "peak RSS minrnn / PyTorch"),
] + [Target("scaling", f"configs.{row.key}.speedup", ">=", 1.85, "x", f"{row.label}: 2 threads / 1 c/s")
     for row in SCALING] + [
    target for name, speedup in LOAD_WORKLOADS.items() for target in (
        Target("load", f"workloads.{name}.speedup", ">=", speedup, "x", f"{name}: 1 thread / default time, idle"),
        Target("load", f"workloads.{name}.slowdown", "<=", 1.5, "x", f"{name}: default / 1 thread time, busy machine"))] + [
    Target("caption", f"kinds.{kind}.ratio", ">=", 1.0, "x", f"captioner ({kind}): minrnn / PyTorch rec/s")
    for kind in ("additive, fed", "none")] + [
    Target("serve", "speedup", ">=", 8, "x", f"serve: {SERVE_CLIENTS[-1]} clients / 1 client chars/s"),
    Target("serve", f"clients.{SERVE_CLIENTS[-1]}.ttfc_p99_ms", "<=", 250, "ms",
           f"serve: first character p99, {SERVE_CLIENTS[-1]} clients"),
    Target("serve", "errors", "<=", 0, "n", "serve: requests that failed")]

# Loss agreement. Before any step: float32 round-off, accumulated over a T-step recurrence and a mean
# over B*T cross-entropies, stays near 1e-6; 1e-4 leaves room and still catches any real difference
# (a wrong gate order or bias moves the loss by 1e-2 or more). After one step: Adam's first update
# is about lr * sign(g) for every weight, so a gradient element near zero whose sign differs by
# round-off moves a weight by up to 2 lr; over many such weights the next loss may differ by ~1e-4.
LOSS_TOL = 1e-4
NEXT_LOSS_TOL = 2e-3
NORM_RTOL = 1e-3               # gradient norms, relative: sums over B*T positions in float32
LOGIT_TOL = 1e-4               # sampling logits, after a few steps of the same inputs


class Mismatch(Exception):
    """minrnn and a baseline compute different things: the row is not timed."""


def require(ok, message):
    if not ok:
        raise Mismatch(message)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---- data

def load_text():
    """Token ids (int32) of tinyshakespeare, or of a synthetic random text over V symbols if the file
    is missing. Returns (ids, vocabulary (a minrnn.text.Vocab), description)."""
    try:
        with open(DATA, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        rng = np.random.default_rng(SEED)
        return (rng.integers(0, V, 1_000_000).astype(np.int32), Vocab(range(V)),
                f"synthetic random text ({DATA} missing)")
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    if len(vocab) != V:
        raise SystemExit(f"{DATA} has {len(vocab)} symbols, the benchmark expects {V}")
    return (np.array([index[c] for c in text], dtype=np.int32), Vocab(map(ord, vocab)),
            f"{DATA} ({len(text):,} chars)")


class Batches:
    """The text as B contiguous streams (stream b starts at b * S), cut into consecutive windows of T:
    column b of one batch continues column b of the one before, so carrying the state makes sense."""

    def __init__(self, data, B, T):
        self.data, self.B, self.T = data, B, T
        self.stream_len = (len(data) - 1) // B
        self.per_epoch = self.stream_len // T
        self.k = 0
        self.offsets = np.arange(B)[None, :] * self.stream_len + np.arange(T)[:, None]   # (T, B)

    def next(self):
        """tokens, targets: (T, B) int32, time-major; targets are the tokens one step on."""
        start = (self.k % self.per_epoch) * self.T
        self.k += 1
        pos = self.offsets + start
        return self.data[pos], self.data[pos + 1]


# ---- what a step costs

def train_flops(row):
    """FLOPs of one training step's dense products, the same count for every framework.

    Per layer the gates need (N, In + H) x (In + H, G*H): 2*N*G*H*(In + H) FLOPs with N = B*T, and
    the decoder (N, H) x (H, V): 2*N*V*H. Backward does two products of the same size per forward
    product (input and weight gradients), hence times 3. Layer 0's input is an embedding (In = E),
    or one-hot: minrnn adds a column of weight_ih (a gather), so In = 0 there; PyTorch multiplies by
    the one-hot matrix, work this count does not credit it for."""
    N, G, H = row.B * row.T, CELLS[row.cell].gates, row.H
    layers = sum(2 * N * G * H * ((H if l > 0 else row.E) + H) for l in range(row.L))
    return 3 * (layers + 2 * N * V * H)


SGEMM_CODE = """
import json, sys, time
import numpy as np
reps = int(sys.argv[1])
rng = np.random.default_rng(0)
a = rng.standard_normal((2048, 512), dtype=np.float32)
b = rng.standard_normal((512, 2048), dtype=np.float32)
c = a @ b  # warm-up: threads started, pages touched
times = []
for _ in range(reps):
    t0 = time.perf_counter()
    np.matmul(a, b, out=c)
    times.append(time.perf_counter() - t0)
print(json.dumps(2 * 2048 * 512 * 2048 / min(times) / 1e9))
"""


def sgemm_gflops(threads, reps):
    """numpy float32 (2048, 512) @ (512, 2048), GFLOP/s of the fastest repetition. In a subprocess:
    its BLAS thread count is set by the environment at import, and we need 1 and 2 threads in one run.
    The fastest, not the median: this is the machine's ceiling, and noise only ever lowers it."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", SGEMM_CODE, str(reps)], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def sgemm_ceiling(reps):
    """{threads: GFLOP/s}, the better of a measurement now and one after a pause: when another
    process holds a core for a while (this machine is shared), one of the two usually misses it."""
    first = {n: sgemm_gflops(n, reps) for n in (1, THREADS)}
    time.sleep(1.0)
    return {n: max(g, sgemm_gflops(n, reps)) for n, g in first.items()}


def sampling_bytes(model, itemsize):
    """Bytes of weights one sampling step reads: every parameter once, at itemsize bytes (4 for
    float32, 2 for bfloat16), except that the one-hot layer 0 reads one column of weight_ih_l0
    (G*H of its V*G*H values)."""
    require(model.config.embed_size == 0, "the sampling bound is worked out for one-hot input only")
    w = model.tensors["weight_ih_l0"]  # (G*H, V)
    return itemsize * (model.param_count - w.size + w.shape[0])


def sampling_macs(model):
    """Multiply-adds of the products of one sampling step of one stream: every weight matrix's, but
    the one-hot layer 0's input, which is a column read (no products)."""
    require(model.config.embed_size == 0, "the sampling products are worked out for one-hot input only")
    return sum(t.size for name, t in model.tensors.items() if t.ndim == 2 and name != "weight_ih_l0")


BANDWIDTH_CODE = """
import json, sys, time
import numpy as np
out = []
for nbytes in map(int, sys.argv[1].split(",")):
    a = np.ones(nbytes // 8 * 2, dtype=np.float32)  # pages touched
    reads = {"np.max": lambda: np.max(a), "np.dot(a, a)": lambda: np.dot(a, a),
             "np.bitwise_or.reduce": lambda: np.bitwise_or.reduce(a.view(np.int64))}
    best = {}
    for name, fn in reads.items():
        fn()  # warm-up: a buffer that fits in the cache is in it
        times = []
        for _ in range(max(3, (1 << 30) // nbytes)):  # a GiB read in all, at least 3 times
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        best[name] = a.nbytes / min(times) / 1e9
    name = max(best, key=best.get)
    out.append({"bytes": a.nbytes, "gb_per_s": best[name], "read": name, "all": best})
print(json.dumps(out))
"""


def read_bandwidth(sizes):
    """[{bytes, gb_per_s, read, all}] for each buffer size: single-threaded read bandwidth, GB/s, of
    the fastest of a few numpy reductions (np.max; np.dot(a, a), which reads each byte once; an
    integer OR), each at its fastest repetition (noise only ever lowers it). In a subprocess with
    one BLAS thread: this process's numpy has THREADS, and np.dot would use them."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", BANDWIDTH_CODE, ",".join(map(str, sizes))], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


# ---- timing

def interleaved(steps, rounds, round_seconds):
    """steps: {name: function doing one step}. Each round runs every function k times back to back
    (k from a timed warm-up step, so a round lasts about round_seconds, and at least one step), with
    the order reversed every other round. Returns {name: [seconds per step, one per round]}."""
    reps = {}
    for name, fn in steps.items():
        fn()  # warm-up: allocations, caches, thread pools
        t0 = time.perf_counter()
        fn()
        reps[name] = max(1, int(round_seconds / (time.perf_counter() - t0)))
    times = {name: [] for name in steps}
    for r in range(rounds):
        for name in (list(steps) if r % 2 == 0 else reversed(list(steps))):
            fn, k = steps[name], reps[name]
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            times[name].append((time.perf_counter() - t0) / k)
    return times


def rate(chars, step_times):
    """chars per second from the median step time."""
    return chars / statistics.median(step_times)


def spread(step_times):
    """(max - min) / median of the rounds: how noisy the measurement was."""
    return (max(step_times) - min(step_times)) / statistics.median(step_times)


class OtherLoad:
    """CPU time the rest of the machine used while a row ran, in cores: all busy CPU time (from
    /proc/stat, including time the hypervisor stole) minus this process's and its children's. This
    machine is shared, and a 2-thread run on 2 cores slows down a lot when anything else runs."""

    def __init__(self):
        self.start = self.sample()

    @staticmethod
    def sample():
        try:
            with open("/proc/stat") as f:
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
        except (OSError, ValueError):
            return None
        own = sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                  for field in ("ru_utime", "ru_stime"))
        busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
        return time.perf_counter(), busy, own

    def cores(self):
        end = self.sample()
        if self.start is None or end is None:
            return None
        (t0, busy0, own0), (t1, busy1, own1) = self.start, end
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)


# ---- minrnn

def minrnn_config(row):
    return Config(vocab_size=V, hidden_size=row.H, cell=row.cell, num_layers=row.L, embed_size=row.E)


def minrnn_trainer(row, threads=None):
    model = core.Model(minrnn_config(row), seed=SEED, threads=row.threads if threads is None else threads)
    trainer = core.Trainer(model, row.B, row.T, optimizer=row.optimizer, lr=row.lr, clip_norm=row.clip_norm,
                           clip_value=row.clip_value)
    return model, trainer


def stepper(train_step, batches):
    """A function doing one training step on the next batch: what interleaved() times."""
    return lambda: train_step(*batches.next())


def minrnn_step(model, trainer):
    """Trainer.step on (tokens, targets) arrays, as the training loop's batches give them."""
    return lambda x, y: trainer.step(model.batch(x, y))


# ---- PyTorch: the same model, and the usual training loop

if torch is not None:
    class TorchCharModel(torch.nn.Module):
        """nn.LSTM / nn.GRU / nn.RNN on one-hot input or an nn.Embedding, then a Linear decoder:
        minrnn's model."""

        def __init__(self, row):
            super().__init__()
            rnn = {"rnn_tanh": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[row.cell]
            self.encoder = torch.nn.Embedding(V, row.E) if row.E else None
            self.rnn = rnn(row.E or V, row.H, row.L)  # time-major, like minrnn: input (T, B, E or V)
            self.decoder = torch.nn.Linear(row.H, V)

        def forward(self, tokens, state=None):
            """tokens (T, B) int64 -> logits (T, B, V), final state ((L, B, H) or (h, c) for LSTM)."""
            if self.encoder is None:
                x = F.one_hot(tokens, V).float()  # (T, B, V): multiplied densely by weight_ih_l0
            else:
                x = self.encoder(tokens)          # (T, B, E)
            out, state = self.rnn(x, state)
            return self.decoder(out), state


def torch_model(row, model):
    """A PyTorch model with minrnn model's weights, copied by PyTorch's own names and shapes."""
    net = TorchCharModel(row)
    params = {name.removeprefix("rnn."): p for name, p in net.named_parameters()}
    require(params.keys() == model.tensors.keys(),
            f"parameter names differ: PyTorch {sorted(params)}, minrnn {sorted(model.tensors)}")
    with torch.no_grad():
        for name, p in params.items():
            src = model.tensors[name]
            require(tuple(p.shape) == src.shape, f"{name}: PyTorch {tuple(p.shape)}, minrnn {src.shape}")
            p.copy_(torch.from_numpy(src))
    return net


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


class TorchTrainer:
    """What core.Trainer.step does, the way a PyTorch user writes it: zero_grad, forward from the
    carried (detached) state, mean cross-entropy, backward, clip, optimizer step."""

    def __init__(self, net, row):
        self.net, self.row = net, row
        params = list(net.parameters())
        if row.optimizer == "adam":
            self.opt = torch.optim.Adam(params, lr=row.lr)  # betas (0.9, 0.999), eps 1e-8: minrnn's too
        else:
            # min-char-rnn's Adagrad is p -= lr g / sqrt(m + 1e-8); PyTorch's is lr g / (sqrt(m) + eps).
            # Starting the sum m at 1e-8 with eps = 0 makes PyTorch's the same formula.
            self.opt = torch.optim.Adagrad(params, lr=row.lr, eps=0.0, initial_accumulator_value=1e-8)
        self.state = None  # zeros

    def step(self, tokens, targets, want_norm=False):
        """tokens, targets (T, B) int32 numpy. Returns (loss, gradient norm before clip_norm or None)."""
        tokens, targets = torch.from_numpy(tokens).long(), torch.from_numpy(targets).long()
        self.opt.zero_grad()
        logits, state = self.net(tokens, self.state)
        loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
        loss.backward()
        norm = None
        if self.row.clip_value > 0:
            torch.nn.utils.clip_grad_value_(self.net.parameters(), self.row.clip_value)
            if want_norm:
                norm = float(torch.linalg.vector_norm(torch.cat([p.grad.ravel() for p in self.net.parameters()])))
        if self.row.clip_norm > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.row.clip_norm))
        self.opt.step()
        self.state = detach(state)
        return loss.item(), norm

    def loss(self, tokens, targets):
        """The loss from a zero state, without training."""
        with torch.no_grad():
            logits, _ = self.net(torch.from_numpy(tokens).long())
            return F.cross_entropy(logits.reshape(-1, V), torch.from_numpy(targets).long().reshape(-1)).item()


def check_training(model, trainer, ttrainer, batches):
    """Same loss on one batch from a zero state; then one training step each on it, and the same
    loss on the next batch and the same gradient norm. Leaves both trainers one step on."""
    x0, y0 = batches.next()
    x1, y1 = batches.next()
    before = (model.forward(x0, y0).loss, ttrainer.loss(x0, y0))
    require(abs(before[0] - before[1]) < LOSS_TOL,
            f"losses differ before training: minrnn {before[0]:.6f}, PyTorch {before[1]:.6f}")
    _, norm_m = trainer.step(model.batch(x0, y0))
    _, norm_t = ttrainer.step(x0, y0, want_norm=True)
    require(abs(norm_m - norm_t) <= NORM_RTOL * norm_t,
            f"gradient norms differ: minrnn {norm_m:.6f}, PyTorch {norm_t:.6f}")
    after = (model.forward(x1, y1).loss, ttrainer.loss(x1, y1))
    require(abs(after[0] - after[1]) < NEXT_LOSS_TOL,
            f"losses differ after one step: minrnn {after[0]:.6f}, PyTorch {after[1]:.6f}")
    return {"loss": before, "loss_diff": abs(before[0] - before[1]), "grad_norm": (norm_m, norm_t),
            "next_loss": after, "next_loss_diff": abs(after[0] - after[1])}


# ---- rows

def speed(row, name, step_times, chars, sgemm):
    """Rate, GFLOP/s and share of SGEMM for one contender of a training row."""
    seconds = statistics.median(step_times)
    gflops = train_flops(row) / seconds / 1e9
    return {"name": name, "chars_per_s": chars / seconds, "step_s": seconds, "spread": spread(step_times),
            "gflops": gflops, "sgemm_share": gflops / sgemm[row.threads], "rounds": step_times}


def train_row(row, data, opts, sgemm, others=None):
    """minrnn's Trainer against the PyTorch loop, on the same batches from the same weights, and
    against others ({name: step function}) in the same interleaved rounds."""
    model, trainer = minrnn_trainer(row)
    steps = {"minrnn": stepper(minrnn_step(model, trainer), Batches(data, row.B, row.T))}
    result = {"row": row.key, "label": row.label, "flops_per_step": train_flops(row)}
    if torch is not None:
        torch.set_num_threads(row.threads)
        ttrainer = TorchTrainer(torch_model(row, model), row)
        result["check"] = check_training(model, trainer, ttrainer, Batches(data, row.B, row.T))
        steps["torch"] = stepper(ttrainer.step, Batches(data, row.B, row.T))
    steps.update(others or {})
    times = interleaved(steps, opts.rounds, opts.round_seconds)
    result.update({name: speed(row, name, t, row.B * row.T, sgemm) for name, t in times.items()})
    if torch is not None:
        result["ratio"] = result["minrnn"]["chars_per_s"] / result["torch"]["chars_per_s"]
    return result


def minchar_row(data, opts, sgemm):
    """min-char-rnn's shape: minrnn against nn.RNN and the numpy original, then the pure-Python
    reference for scale. All start from the same weights."""
    row = MINCHAR
    model = core.Model(minrnn_config(row), seed=SEED)  # the weights train_row's model starts from
    x, y = Batches(data, row.B, row.T).next()
    loss_m = model.forward(x, y).loss
    numpy_rnn = MinCharRNN.from_minrnn(model.tensors, lr=row.lr)
    check = check_numpy(numpy_rnn, x, y, loss_m)
    numpy_step = stepper(lambda x, y: numpy_rnn.step(x[:, 0].tolist(), y[:, 0].tolist()), Batches(data, row.B, row.T))
    result = train_row(row, data, opts, sgemm, {"numpy": numpy_step})
    result["check_numpy"] = check
    result["numpy_ratio"] = result["minrnn"]["chars_per_s"] / result["numpy"]["chars_per_s"]
    result["reference"] = reference_speed(row, model, data, opts.reference_steps, loss_m, sgemm)
    return result


def check_numpy(numpy_rnn, x, y, loss_m):
    """The numpy min-char-rnn's loss from a zero state is minrnn's (its loss is summed over the T
    steps, minrnn's averaged). Only the loss: its training step differs in scale, not in kind. Its
    gradients, of the summed loss, are T times larger, so the clip at 5 bites at a different point;
    and minrnn's two hidden biases (PyTorch's layout) each take a step where min-char-rnn's single
    bias takes one."""
    T = len(x)
    loss_np = numpy_rnn.loss_and_grads(x[:, 0].tolist(), y[:, 0].tolist(), numpy_rnn.hprev)[0] / T
    require(abs(loss_np - loss_m) < LOSS_TOL, f"numpy min-char-rnn loss {loss_np:.6f}, minrnn {loss_m:.6f}")
    return {"loss": (loss_m, loss_np), "loss_diff": abs(loss_np - loss_m)}


def reference_speed(row, model, data, n_steps, loss_m, sgemm):
    """The pure-Python reference's train_step with the same configuration: a few steps, for scale.
    Its first loss must be minrnn's (same weights, same batch, zero state)."""
    cfg = minrnn_config(row)
    params = reference.unflatten(cfg, model.params.tolist())
    opt = reference.Optimizer(row.optimizer, len(model.params), lr=row.lr)
    state = reference.zero_state(cfg, row.B)
    batches = Batches(data, row.B, row.T)
    times = []
    for i in range(n_steps):
        x, y = batches.next()
        t0 = time.perf_counter()
        params, loss, state, _ = reference.train_step(cfg, params, opt, x.tolist(), y.tolist(), state,
                                                      clip_value=row.clip_value, clip_norm=row.clip_norm)
        times.append(time.perf_counter() - t0)
        if i == 0:
            require(abs(loss - loss_m) < LOSS_TOL, f"reference loss {loss:.6f}, minrnn {loss_m:.6f}")
    return speed(row, "reference", times, row.B * row.T, sgemm)


def sample_row(data, opts):
    """Generating one character at a time, 1 thread, float32: the library's generation loop (what the
    sample command runs) against the bound that the weights' bytes and the read bandwidth set, and
    against nn.LSTM, stepped and drawn a character at a time from Python, for scale."""
    row = SAMPLE
    model = core.Model(minrnn_config(row), seed=SEED, threads=row.threads)
    steps = {"minrnn": generation_sampler(model)}
    result = {"row": row.key, "label": row.label}
    if torch is not None:
        torch.set_num_threads(row.threads)
        net = torch_model(row, model)
        result["check"] = check_sampling(model, net, data[:32])
        steps["torch"] = torch_sampler(net)
    weights = sampling_bytes(model, 4)
    sizes = [weights, DRAM_PROBE_BYTES]
    before = read_bandwidth(sizes)
    times = interleaved(steps, opts.rounds, opts.round_seconds)
    for name, t in times.items():
        chars = SAMPLE_CHUNK if name == "minrnn" else 1
        result[name] = {"name": name, "chars_per_s": rate(chars, t), "spread": spread(t), "rounds": t}
    if torch is not None:
        result["ratio"] = result["minrnn"]["chars_per_s"] / result["torch"]["chars_per_s"]
    # the better of a probe before the timing and one after: another process only ever lowers it
    cached, dram = (max(probes, key=lambda p: p["gb_per_s"]) for probes in zip(before, read_bandwidth(sizes)))
    result.update({"bytes_per_char": weights, "bandwidth": {"weights_sized": cached, "dram": dram},
                   "bound_chars_per_s": cached["gb_per_s"] * 1e9 / weights,
                   "dram_bound_chars_per_s": dram["gb_per_s"] * 1e9 / weights})
    result["bound_share"] = result["minrnn"]["chars_per_s"] / result["bound_chars_per_s"]
    return result


def compact_row(data, opts):
    """Each compact precision against float32 on the same model: sampling speed (B=1, 1 thread,
    interleaved) and the loss on the validation tail, computed by python -m minrnn eval's function."""
    row = COMPACT
    model, tail, source = opts.trained or trained_model(data, opts.train_seconds)
    models = [model]
    for precision in COMPACT_PRECISIONS:
        models.append(core.Model(model.config, params=model.params, threads=THREADS))
        models[-1].set_precision(precision)
        require(models[-1].precision == precision, f"set_precision left the weights at {models[-1].precision}")
    losses = {m.precision: evaluate(m, tail, EVAL_STREAMS, EVAL_SEQ_LEN) for m in models}
    for m in models:
        m.threads = row.threads
    times = interleaved({m.precision: generation_sampler(m) for m in models}, opts.rounds, opts.round_seconds)
    result = {"row": row.key, "label": row.label, "model": source, "valid_chars": losses["float32"][1],
              "loss": {name: loss for name, (loss, _) in losses.items()}}
    for name, t in times.items():
        result[name] = {"name": name, "chars_per_s": rate(SAMPLE_CHUNK, t), "spread": spread(t), "rounds": t}
    result["speedups"] = {p: result[p]["chars_per_s"] / result["float32"]["chars_per_s"] for p in COMPACT_PRECISIONS}
    result["loss_diffs"] = {p: abs(result["loss"][p] - result["loss"]["float32"]) for p in COMPACT_PRECISIONS}
    return result


def trained_model(data, seconds):
    """The sampling row's model trained for `seconds` (THREADS threads, the bench's optimizer, B and T)
    on the first 1 - VALID_FRAC of the text. Returns (model, validation tail ids, description)."""
    row = replace(SAMPLE, B=Row.B, T=Row.T, threads=THREADS)
    cut = int(len(data) * (1 - VALID_FRAC))
    model, trainer = minrnn_trainer(row)
    batches, steps, t0 = Batches(data[:cut], row.B, row.T), 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        trainer.step(model.batch(*batches.next()))
        steps += 1
    return model, data[cut:], (f"LSTM H={row.H} L={row.L} trained {seconds:g} s ({steps} steps of {row.B}x{row.T}, "
                                f"{THREADS} threads) on the first {1 - VALID_FRAC:.0%} of the text")


def checkpoint_model(path):
    """(model, validation tail ids, description) from a float32 checkpoint of a language model: the
    tail is the last VALID_FRAC of DATA, read with the checkpoint's own vocabulary."""
    try:
        ck = read_checkpoint(path, threads=THREADS)
        with open(DATA, "rb") as f:
            symbols = read_symbols(f.read(), ck.encoding)
    except (UserError, OSError) as e:
        raise SystemExit(f"--checkpoint: {e}") from None
    cfg = ck.model.config
    if ck.precision != "float32" or cfg.task != "lm" or cfg.cond != "none" or Vocab(ck.vocab).framed:   # a text's
        raise SystemExit(f"--checkpoint: {path} is not a float32 language model of plain text (precision "
                         f"{ck.precision}, task {cfg.task}, condition {cfg.cond})")
    ids, _ = Vocab(ck.vocab, ck.encoding).encode_known(symbols)
    return (ck.model, ids[int(len(ids) * (1 - VALID_FRAC)):],
            f"{path}: {cfg.cell} H={cfg.hidden_size} L={cfg.num_layers}")


def streams_row(vocab, opts, sgemm):
    """sample --num 32 against --num 1 through the library's generation loop (core.Generation, what
    the sample command runs): the sampling row's model, float32, STREAMS.threads threads, temperature
    1, no prime (a newline is fed). Rate = characters produced per second; --num 32's GFLOP/s (2
    sampling_macs a character) against the same run's SGEMM at the same threads."""
    row = STREAMS
    model = core.Model(minrnn_config(row), seed=SEED, threads=row.threads)
    start = [vocab.id_of(ord("\n")) or 0]
    one = core.Generation(model, 1, start, STREAMS_LENGTH, SEED).run()[0]
    step_and_draw = minrnn_sampler(model, start[0])
    require([step_and_draw() for _ in range(STREAMS_LENGTH)] == one,
            "the library's generation loop does not give the text of Model.step and core.sample")
    runs = {"num1": (STREAMS_LENGTH, lambda: core.Generation(model, 1, start, STREAMS_LENGTH, SEED).run()),
            f"num{STREAMS_NUM}": (STREAMS_NUM * STREAMS_LENGTH,
                                  lambda: core.Generation(model, STREAMS_NUM, start, STREAMS_LENGTH, SEED).run())}
    times = interleaved({name: fn for name, (_, fn) in runs.items()}, opts.rounds, opts.round_seconds)
    result = {"row": row.key, "label": row.label, "length": STREAMS_LENGTH}
    for name, t in times.items():
        result[name] = {"name": name, "chars_per_s": rate(runs[name][0], t), "spread": spread(t), "rounds": t}
    result["speedup"] = result[f"num{STREAMS_NUM}"]["chars_per_s"] / result["num1"]["chars_per_s"]
    result["gflops"] = 2 * sampling_macs(model) * result[f"num{STREAMS_NUM}"]["chars_per_s"] / 1e9
    result["sgemm_share"] = result["gflops"] / sgemm[row.threads]
    return result


SAMPLE_CHUNK = 16   # characters per call of a generation sampler: its Python call is 1/16th of a character's


def generation_sampler(model, first=0):
    """A function producing the next SAMPLE_CHUNK characters of one stream through the library's
    generation loop (core.Generation, what the sample command runs), at temperature 1; the first
    step reads `first`."""
    generation = core.Generation(model, 1, [first], 2**62, SEED)
    return lambda: generation.next(SAMPLE_CHUNK)


def minrnn_sampler(model, first=0):
    """A function producing the next character (and returning it): Model.step, then core.sample at
    temperature 1; the first step reads `first`. (The library's loop draws the same: streams_row.)"""
    state = model.zero_state(1)  # (L, 2, 1, H), moved on in place
    rng = core.Rng(SEED)
    token = np.full(1, first, dtype=np.int32)

    def next_char():
        logits = model.step(token, state)  # (1, V)
        token[0] = core.sample(logits[0], rng)
        return int(token[0])
    return next_char


def torch_sampler(net):
    """The same with nn.LSTM called on one character: one-hot (1, 1, V), Linear, softmax, multinomial."""
    gen = torch.Generator().manual_seed(SEED)
    carry = {"state": None, "token": 0}

    def next_char():
        with torch.no_grad():
            x = F.one_hot(torch.tensor([[carry["token"]]]), V).float()  # (1, 1, V)
            out, carry["state"] = net.rnn(x, carry["state"])
            probs = torch.softmax(net.decoder(out[0, 0]), dim=-1)  # (V,)
            carry["token"] = int(torch.multinomial(probs, 1, generator=gen))
    return next_char


def check_sampling(model, net, tokens):
    """Feed the same characters one at a time to both: the logits must agree at every step."""
    state, worst = model.zero_state(1), 0.0
    tstate = None
    with torch.no_grad():
        for tok in tokens:
            logits = model.step(np.array([tok], dtype=np.int32), state)[0]
            out, tstate = net.rnn(F.one_hot(torch.tensor([[int(tok)]]), V).float(), tstate)
            worst = max(worst, float(np.abs(net.decoder(out[0, 0]).numpy() - logits).max()))
    require(worst < LOGIT_TOL, f"sampling logits differ by {worst:.2e}")
    return {"steps": len(tokens), "max_logit_diff": worst}


def scaling_row(data, opts, sgemm):
    """minrnn with 2 threads against 1 thread, interleaved; results must not depend on the count."""
    result = {"row": "scaling", "label": "thread scaling", "configs": {}}
    for row in SCALING:
        trainers = {n: minrnn_trainer(row, threads=n)[1] for n in (1, 2)}
        batches = {n: Batches(data, row.B, row.T) for n in (1, 2)}
        steps = {f"{n} thread": stepper(minrnn_step(trainers[n].model, trainers[n]), batches[n]) for n in (1, 2)}
        first = {n: steps[f"{n} thread"]()[0] for n in (1, 2)}
        times = interleaved(steps, opts.rounds, opts.round_seconds)
        one, two = (rate(row.B * row.T, times[f"{n} thread"]) for n in (1, 2))
        result["configs"][row.key] = {"label": row.label, "1 thread": one, "2 threads": two, "speedup": two / one,
                                      "same_loss": first[1] == first[2], "first_loss": first,
                                      "spread": {k: spread(t) for k, t in times.items()}}
    return result


# ---- under load: the default thread count beside other busy processes

BUSY_CODE = "while True:\n    pass\n"


def load_workloads(data):
    """{name: make(threads) -> a function doing one unit of that work at that thread count}."""
    from minrnn.reference.seq2seq import Seq2seqConfig

    def training(threads):
        model, trainer = minrnn_trainer(Row("load", "", "lstm", 256, 2), threads=threads)
        return stepper(minrnn_step(model, trainer), Batches(data, 32, 64))

    def sampling(threads):
        model = core.Model(minrnn_config(SAMPLE), seed=SEED, threads=threads)
        return generation_sampler(model)

    def translating(threads):
        cfg = Seq2seqConfig(vocab_size=40, hidden_size=128, cell="gru", embed_size=16, attention="additive",
                            attention_size=128)
        model = core.Seq2seq(cfg, seed=SEED, threads=threads)
        source = np.arange(1, 25, dtype=np.int32)
        return lambda: model.translate(source, max_length=30)

    return dict(zip(LOAD_WORKLOADS, (training, sampling, translating)))


def load_row(data, opts):
    """Each workload at 1 thread and at the default, interleaved, on an idle machine and then beside
    one busy process per core (another user's work): the default must not lose to one thread there
    (slowdown = default's time / 1 thread's), nor its speed-up on an idle machine."""
    result = {"row": "load", "label": "threads on a busy machine", "workloads": {}}
    for name, make in load_workloads(data).items():
        steps = {"1 thread": make(1), "default": make(0)}
        idle = interleaved(steps, opts.rounds, opts.round_seconds)
        busy = [subprocess.Popen([sys.executable, "-c", BUSY_CODE]) for _ in range(os.cpu_count() or 1)]
        try:   # each phase starts once the default has seen the machine as it is (minrnn.cores)
            time.sleep(2 * cores.MEASURE_SECONDS)
            loaded = interleaved(steps, opts.rounds, opts.round_seconds)
        finally:
            for p in busy:
                p.kill()
                p.wait()
            time.sleep(2 * cores.MEASURE_SECONDS)
        median = {k: {n: statistics.median(t) for n, t in times.items()} for k, times in (("idle", idle),
                                                                                           ("busy", loaded))}
        result["workloads"][name] = {"idle": median["idle"], "busy": median["busy"],
                                     "speedup": median["idle"]["1 thread"] / median["idle"]["default"],
                                     "slowdown": median["busy"]["default"] / median["busy"]["1 thread"]}
    return result


# ---- peak memory, each framework alone in a fresh interpreter

MEMORY_PRELUDE = """
import json, resource, sys
import numpy as np
B, T, V, H, L, STEPS = 32, 64, 65, {H}, {L}, {steps}
def rss_kb():
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])
rng = np.random.default_rng(0)  # token values don't change memory use
batches = [(rng.integers(0, V, (T, B)).astype(np.int32), rng.integers(0, V, (T, B)).astype(np.int32))
           for _ in range(STEPS)]
"""

# Each child imports one framework, builds the model (baseline RSS), then creates the optimizer and
# trains: the difference is what training needs (workspace, activations, gradients, moments).
MEMORY_CHILD = {
    "minrnn": """
from minrnn import core
from minrnn.reference import Config
model = core.Model(Config(vocab_size=V, hidden_size=H, cell="lstm", num_layers=L), seed=0, threads=2)
base = rss_kb()
trainer = core.Trainer(model, B, T, optimizer="adam", lr=2e-3, clip_norm=5.0)
for x, y in batches:
    trainer.step(model.batch(x, y))
""",
    "torch": """
import torch
import torch.nn.functional as F
torch.set_num_threads(2)
rnn, decoder = torch.nn.LSTM(V, H, L), torch.nn.Linear(H, V)
params = list(rnn.parameters()) + list(decoder.parameters())
base = rss_kb()
opt = torch.optim.Adam(params, lr=2e-3)
state = None
for x, y in batches:
    opt.zero_grad()
    out, state = rnn(F.one_hot(torch.from_numpy(x).long(), V).float(), state)
    loss = F.cross_entropy(decoder(out).reshape(-1, V), torch.from_numpy(y).long().reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 5.0)
    opt.step()
    state = tuple(s.detach() for s in state)
""",
}
MEMORY_REPORT = """
with open("/proc/self/status") as f:
    hwm = int(next(line for line in f if line.startswith("VmHWM:")).split()[1])
print(json.dumps({"base_kb": base, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "hwm_kb": hwm}))
"""


def run_fresh(code):
    """Run python code in a process whose ru_maxrss is its own. Linux carries the peak RSS of the
    process that forks into the child, across exec: a child of this (large) process would report
    our peak. So the shell forks it: the shell's peak is a few MB. VmHWM, the peak of the memory
    map that exec creates, is reported too as a cross-check."""
    out = subprocess.run(["sh", "-c", '"$0" -c "$1"; exit $?', sys.executable, code], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def memory_row(opts):
    row = MEMORY
    result = {"row": row.key, "label": row.label, "steps": opts.memory_steps}
    for name in ["minrnn"] + (["torch"] if torch is not None else []):
        code = MEMORY_PRELUDE.format(H=row.H, L=row.L, steps=opts.memory_steps) + MEMORY_CHILD[name] + MEMORY_REPORT
        kb = run_fresh(textwrap.dedent(code))
        result[name] = {"peak_mb": kb["peak_kb"] / 1024, "base_mb": kb["base_kb"] / 1024,
                        "training_mb": (kb["peak_kb"] - kb["base_kb"]) / 1024, "vmhwm_mb": kb["hwm_kb"] / 1024}
    if torch is not None:
        result["ratio"] = result["minrnn"]["peak_mb"] / result["torch"]["peak_mb"]
    return result


# ---- captioning with attention: minrnn's Seq2seq over a grid against minrnn.torch's module

def caption_row(opts):
    """A training step of a captioner (additive attention, fed; and the grid's mean alone) on one batch
    of random grids and captions: minrnn against the module of the same weights with Adam and the same
    global-norm clip, checked to give the same loss first (records/s = B / median step time)."""
    from minrnn.interop import torch_name
    from minrnn.reference.seq2seq import Seq2seqConfig
    c, result = CAPTION, {"row": "caption", "label": "captioner LSTM H=128, 12 places, B=32", "kinds": {}}
    rng = np.random.default_rng(SEED)
    grid = rng.standard_normal((c["places"], c["B"], c["D"])).astype(np.float32)
    inputs = rng.integers(0, c["V"] - 2, (c["Td"], c["B"])).astype(np.int32)
    inputs[0] = c["V"] - 2
    targets = rng.integers(0, c["V"], (c["Td"], c["B"])).astype(np.int32)
    pairs = core.Pairs(grid, np.full(c["B"], c["places"], np.int32), inputs, targets, np.full(c["B"], c["Td"], np.int32))
    for kind, attention in (("additive, fed", "additive"), ("none", "none")):
        cfg = Seq2seqConfig(vocab_size=c["V"], hidden_size=c["H"], cell="lstm", embed_size=c["E"], attention=attention,
                            attention_size=c["H"] if attention == "additive" else 0, input_size=c["D"],
                            input_feeding=attention != "none")
        model = core.Seq2seq(cfg, seed=SEED, threads=THREADS)
        trainer = core.Trainer(model, c["B"], c["Td"], optimizer="adam", lr=2e-3, clip_norm=5.0, seed=SEED,
                               carry_state=False)
        steps = {"minrnn": lambda: trainer.step(pairs)}
        if torch is not None:
            from minrnn import torch as mt
            torch.set_num_threads(THREADS)
            net = mt.module_for(cfg)
            net.load_state_dict({torch_name(n): torch.from_numpy(v.copy()) for n, v in model.tensors.items()})
            adam = torch.optim.Adam(net.parameters(), lr=2e-3)
            batch = (torch.from_numpy(grid), torch.full((c["B"],), c["places"]), torch.from_numpy(inputs).long())
            truth = torch.from_numpy(targets).long().reshape(-1)

            def torch_step():
                adam.zero_grad()
                loss = F.cross_entropy(net(*batch)[0].reshape(-1, c["V"]), truth)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                adam.step()
                return loss.item()
            with torch.no_grad():
                first = F.cross_entropy(net(*batch)[0].reshape(-1, c["V"]), truth).item()
            mine = model.forward(pairs, want_logits=False).loss
            if abs(first - mine) > 1e-4 * max(1.0, abs(mine)):
                raise Mismatch(f"captioner ({kind}): loss {mine} against PyTorch's {first}")
            steps["torch"] = torch_step
        times = interleaved(steps, opts.rounds, opts.round_seconds)
        rates = {name: c["B"] / statistics.median(t) for name, t in times.items()}
        result["kinds"][kind] = {**{name: {"records_per_s": r, "spread": spread(times[name])} for name, r in rates.items()},
                                 **({"ratio": rates["minrnn"] / rates["torch"]} if "torch" in rates else {})}
    return result


def engine_row(data, opts):
    """chars/s of training steps by the C engine and by the torch engine on its device, interleaved,
    after checking that their first steps give the same loss (dropout off)."""
    from minrnn.torch_engine import TorchTrainer, device_for
    row, result = ENGINE, {"row": "engine", "label": ENGINE.label}
    if torch is None:
        raise Mismatch("the torch engine needs torch (make bench-torch installs it)")
    device = device_for("auto")
    result["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (torch sees no GPU)"
    engines = {}
    for name in ("c", "torch"):
        model = core.Model(minrnn_config(row), seed=SEED, threads=row.threads)
        trainer = core.Trainer(model, row.B, row.T, optimizer=row.optimizer, lr=row.lr, clip_norm=row.clip_norm)
        engines[name] = (model, trainer if name == "c" else TorchTrainer.of(trainer, row.threads, "auto"))
    first = [engines[name][1].step(engines[name][0].batch(*Batches(data, row.B, row.T).next()))[0] for name in engines]
    require(abs(first[0] - first[1]) <= LOSS_TOL, f"first losses differ: C {first[0]:.6f}, torch {first[1]:.6f}")
    times = interleaved({name: stepper(minrnn_step(*engines[name]), Batches(data, row.B, row.T)) for name in engines},
                        opts.rounds, opts.round_seconds)
    for name in engines:
        result[name] = {"chars_per_s": rate(row.B * row.T, times[name]), "spread": spread(times[name])}
    result["ratio"] = result["torch"]["chars_per_s"] / result["c"]["chars_per_s"]
    return result


def serve_row(opts):
    """tools/serve_load.py against a server of a model of make run's size (LSTM 256 x 2, E=64) trained
    for 20 steps on the bench's text: chars/s, first-character p50/p99 and errors for each number of
    clients."""
    import tempfile
    from serve_load import load, start_server
    result = {"row": "serve", "label": "serve, LSTM H=256 L=2 E=64, 500 chars each", "clients": {}}
    with tempfile.TemporaryDirectory() as folder:
        text = DATA if os.path.exists(DATA) else os.path.join(folder, "text.txt")
        if text != DATA:   # synthetic text, as load_text makes it
            with open(text, "w", encoding="utf-8") as f:
                f.write("".join(chr(97 + i % 26) for i in np.random.default_rng(SEED).integers(0, V, 200_000)))
        r = subprocess.run([sys.executable, "-m", "minrnn", "train", text, "--hidden", "256", "--max-iters", "20",
                            "--eval-every", "20", "--sample-every", "0", "--out", os.path.join(folder, "run")],
                           capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        require(r.returncode == 0, f"training the served model failed: {r.stderr[-300:]}")
        server, port = start_server(os.path.join(folder, "run", "best.ckpt"), THREADS)
        try:
            for n in SERVE_CLIENTS:
                got = load(port, n, SERVE_LENGTH, rounds=2 if opts.quick else 3)
                got["ttfc_p50_ms"], got["ttfc_p99_ms"] = 1000 * got["ttfc_p50"], 1000 * got["ttfc_p99"]
                result["clients"][str(n)] = got
        finally:
            server.terminate()
            server.wait()
    c = result["clients"]
    result["speedup"] = c[str(SERVE_CLIENTS[-1])]["chars_per_s"] / c["1"]["chars_per_s"]
    result["errors"] = sum(x["errors"] for x in c.values())
    return result


def print_serve(i, res):
    target, miss = judged(res, "speedup")
    for n, c in res["clients"].items():
        print(table_line(f"{i} serve: {n} client(s), chars/s", fmt_rate(c["chars_per_s"]), "", "", "", "", "",
                         fmt_cores(res["other_cores"])))
        print(f"    first character p50 {c['ttfc_p50_ms']:.1f} ms, p99 {c['ttfc_p99_ms']:.1f} ms; errors {c['errors']}")
    print(table_line(f"  {SERVE_CLIENTS[-1]} clients / 1", "", "", fmt_ratio(res["speedup"]), target, "", "",
                     fmt_cores(res["other_cores"]), miss))


def print_engine(i, res):
    print(table_line(f"{i} {res['label']}", fmt_rate(res["c"]["chars_per_s"]), fmt_rate(res["torch"]["chars_per_s"]),
                     fmt_ratio(res["ratio"]), "for scale", "", "", fmt_cores(res["other_cores"])))
    print(f"  C engine c/s, then the torch engine's (1 process) on {res['device']}; ratio = torch / C")


def print_caption(i, res):
    for kind, k in res["kinds"].items():
        target, miss = judged(res, f"kinds.{kind}.ratio")
        t = k.get("torch", {}).get("records_per_s")
        print(table_line(f"{i} captioner ({kind}), rec/s", fmt_rate(k["minrnn"]["records_per_s"]), fmt_rate(t),
                         fmt_ratio(k.get("ratio")), target, "", "", fmt_cores(res["other_cores"]), miss))


# ---- the table

def fmt_rate(x):
    return f"{x:,.0f}" if x is not None else "n/a"


def fmt_gflops(c):
    return f"{c['gflops']:.2f} ({100 * c['sgemm_share']:.1f}%)" if c else "n/a"


def fmt_ratio(x):
    return f"{x:.2f}x" if x is not None else "n/a"


def fmt_cores(x):
    return f"{x:.2f}" if x is not None else "?"


def table_line(label, m, t, ratio, target, mg, tg, others, miss=False):
    """One line of the table; every cell already a string."""
    return (f"{label:<40} {m:>12} {t:>14} {ratio:>8}  {target:<19} {mg:>15} {tg:>16} {others:>7}"
            + ("  MISS" if miss else ""))


def judged(res, *measures):
    """(target cell, missed) for the row's targets on these measures (TARGETS, as main judged them)."""
    verdicts = [v for v in res.get("targets", ()) if v["measure"] in measures]
    return ", ".join(v["target"] for v in verdicts) or "-", any(v["pass"] is False for v in verdicts)


def print_table(results, sgemm, sgemm_others, header):
    print(header)
    print("SGEMM ceiling, numpy float32 (2048x512)@(512x2048), fastest run: "
          + ", ".join(f"{n} thread{'s' if n > 1 else ''} {g:.1f} GFLOP/s" for n, g in sorted(sgemm.items()))
          + f" (others {fmt_cores(sgemm_others)})")
    print("others = CPU cores that other processes used while the row ran (/proc/stat); on 2 cores, "
          "anything above ~0.1 slows the 2-thread runs.\n")
    print(table_line("row", "minrnn c/s", "PyTorch c/s", "ratio", "target", "minrnn GFLOP/s", "PyTorch GFLOP/s",
                     "others"))
    sections = {"sample": print_sample_lines, "compact": print_compact_lines, "streams": print_streams_line,
                "memory": print_memory, "scaling": print_scaling, "load": print_load, "caption": print_caption,
                "engine": print_engine, "serve": print_serve}
    for i, key in enumerate(ROW_KEYS, 1):
        res = results.get(key)
        if res is None:
            continue
        if "error" in res:
            print(f"{i} {key:<38} FAILED, not timed: {res['error']}")
        else:
            sections.get(key, print_train_lines)(i, res)
    print_checks(results)
    print_targets(results)


def print_train_lines(i, res):
    m, t, others = res["minrnn"], res.get("torch"), fmt_cores(res["other_cores"])
    target, miss = judged(res, "ratio", "minrnn.sgemm_share")
    print(table_line(f"{i} {res['label']}", fmt_rate(m["chars_per_s"]), fmt_rate(t and t["chars_per_s"]),
                     fmt_ratio(res.get("ratio")), target, fmt_gflops(m), fmt_gflops(t), others, miss))
    if res["row"] != "minchar":
        return
    target, miss = judged(res, "numpy_ratio")
    print(table_line("  vs numpy min-char-rnn (float64)", fmt_rate(m["chars_per_s"]),
                     "numpy " + fmt_rate(res["numpy"]["chars_per_s"]), fmt_ratio(res["numpy_ratio"]), target,
                     fmt_gflops(m), fmt_gflops(res["numpy"]), others, miss))
    ref = res["reference"]
    print(table_line(f"  vs pure-Python reference ({len(ref['rounds'])} step(s))", fmt_rate(m["chars_per_s"]),
                     "ref " + fmt_rate(ref["chars_per_s"]), fmt_ratio(m["chars_per_s"] / ref["chars_per_s"]),
                     "for scale", fmt_gflops(m), fmt_gflops(ref), others))


def print_sample_lines(i, res):
    m, others = res["minrnn"]["chars_per_s"], fmt_cores(res["other_cores"])
    print(table_line(f"{i} {res['label']}", fmt_rate(m), fmt_rate(res.get("torch", {}).get("chars_per_s")),
                     fmt_ratio(res.get("ratio")), "for scale", "", "", others))
    target, miss = judged(res, "bound_share")
    print(table_line("  share of the bandwidth bound", fmt_rate(m), "bound " + fmt_rate(res["bound_chars_per_s"]),
                     f"{100 * res['bound_share']:.1f}%", target, "", "", others, miss))
    cached, dram = res["bandwidth"]["weights_sized"], res["bandwidth"]["dram"]
    print(f"  bound = read bandwidth / {res['bytes_per_char'] / 1e6:.2f} MB of float32 weights a character reads; "
          f"bandwidth on 1 thread, fastest numpy reduction:\n"
          f"    {cached['bytes'] / 1e6:.2f} MB buffer (the weights' size: cache-resident) "
          f"{cached['gb_per_s']:.1f} GB/s ({cached['read']}) -> bound {fmt_rate(res['bound_chars_per_s'])} c/s\n"
          f"    {dram['bytes'] / 2**30:.0f} GiB buffer (DRAM) {dram['gb_per_s']:.1f} GB/s ({dram['read']}) -> "
          f"{fmt_rate(res['dram_bound_chars_per_s'])} c/s, for scale")


def print_compact_lines(i, res):
    others = fmt_cores(res["other_cores"])
    for p in COMPACT_PRECISIONS:
        target, miss = judged(res, f"speedups.{p}")
        print(table_line(f"{i} sampling {p} / float32, 1 thread", f"{p[:4]} " + fmt_rate(res[p]["chars_per_s"]),
                         "f32 " + fmt_rate(res["float32"]["chars_per_s"]), fmt_ratio(res["speedups"][p]), target, "",
                         "", others, miss))
    loss = res["loss"]
    print(f"  validation loss (nats/char over the last {res['valid_chars']:,} chars): float32 {loss['float32']:.4f}")
    for p in COMPACT_PRECISIONS:
        target, miss = judged(res, f"loss_diffs.{p}")
        print(f"    {p} {loss[p]:.4f}, |diff| {res['loss_diffs'][p]:.4f} (target {target}){'  MISS' if miss else ''}")
    print(f"  model: {res['model']}; sampled B=1, 1 thread")


def print_streams_line(i, res):
    big = f"num{STREAMS_NUM}"
    target, miss = judged(res, "sgemm_share")
    print(table_line(f"{i} {res['label']}", f"{big} " + fmt_rate(res[big]["chars_per_s"]),
                     "num1 " + fmt_rate(res["num1"]["chars_per_s"]), fmt_ratio(res["speedup"]), "for scale", "",
                     "", fmt_cores(res["other_cores"])))
    print(table_line(f"  --num {STREAMS_NUM}: GFLOP/s, share of SGEMM", "", "", "", target,
                     f"{res['gflops']:.1f} ({100 * res['sgemm_share']:.1f}%)", "", fmt_cores(res["other_cores"]), miss))


def print_memory(i, res):
    print(f"\n{i} {res['label']} (B=32, T=64, {res['steps']} steps; others {fmt_cores(res['other_cores'])}): "
          "peak RSS (ru_maxrss), and its part above the RSS after imports + model creation")
    for name in ("minrnn", "torch"):
        if name in res:
            r = res[name]
            print(f"  {name:<8} peak {r['peak_mb']:7.1f} MB   training {r['training_mb']:7.1f} MB   "
                  f"(after imports + model {r['base_mb']:.1f} MB; VmHWM {r['vmhwm_mb']:.1f} MB)")
    if "ratio" in res:
        target, miss = judged(res, "ratio")
        print(f"  ratio of peaks minrnn / PyTorch: {res['ratio']:.2f}x (target {target}){'  MISS' if miss else ''}")


def print_scaling(i, res):
    print(f"\n{i} thread scaling, minrnn training B=32 T=64, 2 threads over 1 "
          f"(others {fmt_cores(res['other_cores'])}):")
    for key, c in res["configs"].items():
        target, miss = judged(res, f"configs.{key}.speedup")
        same = "" if c["same_loss"] else f"   (first losses differ between thread counts: {c['first_loss']})"
        print(f"  {c['label']:<16} 1 thread {c['1 thread']:8,.0f} c/s   2 threads {c['2 threads']:8,.0f} c/s   "
              f"{c['speedup']:.2f}x (target {target}){'  MISS' if miss else ''}{same}")


def print_load(i, res):
    print(f"\n{i} threads on a busy machine (one busy process per core), seconds per unit of work, the default "
          f"(all cores) against 1 thread (others before: {fmt_cores(res['other_cores'])}):")
    for name, w in res["workloads"].items():
        fast, fast_miss = judged(res, f"workloads.{name}.speedup")
        slow, slow_miss = judged(res, f"workloads.{name}.slowdown")
        print(f"  {name:<36} idle {w['idle']['1 thread'] * 1e3:8.2f} / {w['idle']['default'] * 1e3:8.2f} ms "
              f"({w['speedup']:.2f}x the speed, target {fast}){'  MISS' if fast_miss else ''}   "
              f"busy {w['busy']['1 thread'] * 1e3:8.2f} / {w['busy']['default'] * 1e3:8.2f} ms "
              f"({w['slowdown']:.2f}x the time, target {slow}){'  MISS' if slow_miss else ''}")


def print_checks(results):
    lines = []
    for key, res in results.items():
        if "check" in res and "loss_diff" in res["check"]:
            c = res["check"]
            lines.append(f"  {res['label']:<38} loss |diff| {c['loss_diff']:.1e}, after one step "
                         f"{c['next_loss_diff']:.1e}, grad norm {c['grad_norm'][0]:.5f} vs {c['grad_norm'][1]:.5f}")
        if "check_numpy" in res:
            lines.append(f"  {'  numpy min-char-rnn':<38} loss |diff| {res['check_numpy']['loss_diff']:.1e} "
                         "(forward only: its training scales differently, see check_numpy)")
        if key == "sample" and "check" in res:
            lines.append(f"  {res['label']:<38} logits |diff| <= {res['check']['max_logit_diff']:.1e} over "
                         f"{res['check']['steps']} steps")
        if key == "streams" and "error" not in res:
            lines.append(f"  {res['label']:<38} the library loop gives Model.step and core.sample's {res['length']} "
                         "chars (same seed)")
    if lines:
        print("\nchecks (same weights, same batch, zero state; minrnn vs PyTorch unless stated):")
        print("\n".join(lines))
    noisy = [f"{res['label']} ({name} {100 * c['spread']:.0f}%)" for res in results.values() for name, c in res.items()
             if isinstance(c, dict) and c.get("spread", 0) > 0.2 and name != "reference"]
    if noisy:
        print("noisy, rounds spread over more than 20% of the median: " + "; ".join(noisy))


def print_targets(results):
    """Every target of the rows that ran, measured value against it: the speed issue's table."""
    lines, missed = [], 0
    for i, key in enumerate(ROW_KEYS, 1):
        for v in results.get(key, {}).get("targets", ()):
            missed += v["pass"] is not True
            verdict = {True: "", False: "  MISS", None: "  not measured"}[v["pass"]]
            lines.append(f"  {f'{i} {key}':<11} {v['what']:<44} {v['shown']:>12}  {v['target']:<10}{verdict}".rstrip())
    if lines:
        print("\ntargets (the speed issue's; ratios in the same run, same threads, same weights):")
        print("\n".join(lines))
        print(f"  {len(lines) - missed} of {len(lines)} met")


# ---- main

def run(key, data, vocab, opts, sgemm):
    if key == "minchar":
        return minchar_row(data, opts, sgemm)
    if key == "sample":
        return sample_row(data, opts)
    if key == "compact":
        return compact_row(data, opts)
    if key == "streams":
        return streams_row(vocab, opts, sgemm)
    if key == "memory":
        return memory_row(opts)
    if key == "scaling":
        return scaling_row(data, opts, sgemm)
    if key == "load":
        return load_row(data, opts)
    if key == "caption":
        return caption_row(opts)
    if key == "engine":
        return engine_row(data, opts)
    if key == "serve":
        return serve_row(opts)
    return train_row(next(r for r in TRAIN_ROWS if r.key == key), data, opts, sgemm)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 short rounds per row: a smoke test")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    p.add_argument("--only", metavar="NAME", choices=ROW_KEYS + [str(i) for i in range(1, len(ROW_KEYS) + 1)],
                   help="run one row: " + ", ".join(f"{i} {k}" for i, k in enumerate(ROW_KEYS, 1)))
    p.add_argument("--checkpoint", metavar="FILE", help="the compact row's model: a float32 checkpoint of a "
                   "language model trained on tinyshakespeare (default: train the sampling row's model briefly)")
    opts = p.parse_args()
    opts.rounds, opts.round_seconds = (2, 0.2) if opts.quick else (7, 1.0)
    opts.reference_steps, opts.memory_steps, opts.sgemm_reps = (1, 2, 3) if opts.quick else (2, 3, 10)
    opts.train_seconds = 3 if opts.quick else 45   # the compact row's model, without --checkpoint
    if opts.only and opts.only.isdigit():
        opts.only = ROW_KEYS[int(opts.only) - 1]
    return opts


def main():
    opts = parse_args()
    started = time.perf_counter()
    data, vocab, source = load_text()
    opts.trained = checkpoint_model(opts.checkpoint) if opts.checkpoint else None  # refused now, not minutes on
    torch_version = torch.__version__ if torch is not None else "not installed: minrnn only"
    header = (f"minrnn {core.version()} vs PyTorch {torch_version}, CPU, {THREADS} threads unless stated; "
              f"one-hot V={V}, Adam lr 2e-3, clip_norm 5 unless stated; data {source}.\n"
              f"Training rate = B*T chars / median step time over {opts.rounds} interleaved rounds; "
              "ratio = minrnn / PyTorch.")
    log(f"Measuring training ({len(TRAIN_ROWS)} models, min-char-rnn's shape), sampling (float32, bfloat16, 32 streams), "
        f"peak memory and thread scaling of minrnn against PyTorch {torch_version}: "
        f"{'about a minute' if opts.quick else 'about 5 minutes'}.")
    keys = [opts.only] if opts.only else ROW_KEYS
    load = OtherLoad()
    sgemm = sgemm_ceiling(opts.sgemm_reps)
    sgemm_others = load.cores()
    results, failed = {}, False
    for key in keys:
        log(f"  {key} ...")
        load = OtherLoad()
        try:
            results[key] = run(key, data, vocab, opts, sgemm)
        except Mismatch as e:
            results[key], failed = {"row": key, "label": key, "error": str(e)}, True
            log(f"  {key}: {e}")
        results[key]["other_cores"] = load.cores()
        results[key]["targets"] = [t.judge(results[key]) for t in TARGETS if t.row == key]
    seconds = time.perf_counter() - started
    if opts.json:
        print(json.dumps({"header": header, "sgemm_gflops": sgemm, "sgemm_others": sgemm_others,
                          "results": results, "seconds": seconds}, indent=1))
    else:
        print_table(results, sgemm, sgemm_others, header)
        print(f"\n{seconds:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
