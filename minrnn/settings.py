"""The settings of a training run, in one table: each with its default, its check and its help.

The command line is built from these tables, and a resumed run's stored settings are checked
against them, so a default, a limit or a help text is written once. RUN settings define a run and
are fixed once it has started; SESSION settings are remembered by the run and can be changed by
giving them again.
"""

import math
from typing import NamedTuple

from minrnn import core, tasks
from minrnn.errors import UserError
from minrnn.reference import CELLS, INIT_SCHEMES, OPTIMIZERS
from minrnn.reference.seq2seq import ATTENTIONS
from minrnn.reference.tensor import float32
from minrnn.text import TOKENS

FLOAT32_MAX = 3.4028234663852886e38


class Number:
    """A whole number (kind int) or a finite real (kind float) in [low, high], open at either end.
    Reals must also stay within those bounds as float32, the precision the C core keeps them in,
    unless single is False (the core takes them as doubles: a sampler's temperature and top-p)."""

    def __init__(self, kind, low=None, high=None, low_open=False, high_open=False, single=True):
        self.kind, self.low, self.high, self.low_open, self.high_open = kind, low, high, low_open, high_open
        self.single = single

    def describe(self):
        what = "a whole number" if self.kind is int else "a finite number"
        low, high = (f"{x}" if self.kind is int or x is None else f"{x:g}" for x in (self.low, self.high))
        if self.low is not None and self.high is not None:
            return f"{what} in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {low}"
        return what

    def within(self, x):
        return not ((self.low is not None and (x <= self.low if self.low_open else x < self.low))
                    or (self.high is not None and (x >= self.high if self.high_open else x > self.high)))

    def check(self, value):
        """value if it is a number of this kind in range, else ValueError."""
        ok = isinstance(value, int) and not isinstance(value, bool)
        if self.kind is float:   # (an int beyond a double's range would overflow math.isfinite)
            ok = (ok or isinstance(value, float)) and (isinstance(value, int) or math.isfinite(value))
            if ok and self.single and abs(value) > FLOAT32_MAX:
                raise ValueError(f"expected {self.describe()}, not {value!r} (beyond float32, what the core holds)")
            if ok and self.single and self.within(value) and not self.within(float32(value)):
                raise ValueError(f"expected {self.describe()}, not {value!r}, which is {float32(value)!r} as a "
                                 "float32, what the core holds")
        if not (ok and self.within(value)):
            raise ValueError(f"expected {self.describe()}, not {value!r}")
        return self.kind(value)

    def parse(self, text):
        try:
            value = self.kind(text)
        except ValueError:
            raise ValueError(f"expected {self.describe()}, not {text!r}") from None
        return self.check(value)


class Choice:
    def __init__(self, values):
        self.values = tuple(values)

    def describe(self):
        return "one of " + ", ".join(self.values)

    def check(self, value):
        if value not in self.values:
            raise ValueError(f"expected {self.describe()}, not {value!r}")
        return value

    parse = check


class OrNone:
    """A setting that may be unset (None, or 'none' on the command line)."""

    def __init__(self, inner):
        self.inner = inner

    def describe(self):
        return f"{self.inner.describe()}, or none"

    def check(self, value):
        return None if value is None else self.inner.check(value)

    def parse(self, text):
        return None if text == "none" else self.inner.parse(text)


class Flag:
    """On or off: given on the command line as the bare option."""

    def describe(self):
        return "true or false"

    def check(self, value):
        if not isinstance(value, bool):
            raise ValueError(f"expected {self.describe()}, not {value!r}")
        return value


class Text:
    """A non-empty string."""

    def describe(self):
        return "a non-empty text"

    def check(self, value):
        if not isinstance(value, str) or not value:
            raise ValueError(f"expected {self.describe()}, not {value!r}")
        return value

    parse = check


class Setting(NamedTuple):
    name: str        # the key in a run's metadata; on the command line --name with - for _
    default: object
    rule: object     # Number, Choice or OrNone: parses the command line, checks stored values
    metavar: str
    help: str        # "{default}" is replaced by the default

    @property
    def option(self):
        return "--" + self.name.replace("_", "-")


def base_lr(s):
    """The run's learning rate: --lr, or its optimizer's default."""
    return s["lr"] if s["lr"] is not None else OPTIMIZERS[s["optimizer"]]["lr"]


def lr_at(s, epoch, scale):
    """char-rnn's schedule: after lr_decay_after epochs, times lr_decay at each new epoch."""
    return base_lr(s) * scale * s["lr_decay"] ** max(0, epoch + 1 - s["lr_decay_after"])


WORD_DEFAULTS = {"vocab_size": 10000, "min_count": 1}
ENGINES = ("c", "torch")   # what makes a run's training steps: minrnn's core, or minrnn/torch_engine.py
DEVICES = ("auto", "cpu", "cuda")   # where the torch engine steps; auto: a GPU when torch sees one


def engine_and_device(engine, device):
    """(engine, device) of a run, checked (the command line's and the API's rule); device None: auto."""
    if engine not in ENGINES:
        raise UserError(f"engine: expected {' or '.join(ENGINES)}, not {engine!r}")
    if device is not None and device not in DEVICES:
        raise UserError(f"device: expected {', '.join(DEVICES)}, not {device!r}")
    if device is not None and engine != "torch":
        raise UserError("--device chooses where the torch engine steps; give it with --engine torch (the C engine "
                        "runs on this machine's CPU)")
    return engine, device or "auto"
POSITIVE = Number(int, 1, core.lib.MINRNN_MAX_BATCH_ROWS)   # B or T: the core takes B * T up to this
SEED = Number(int, 0, 2**64 - 1)
THREADS = Number(int, 0, 1024)            # 0 = the cores other processes leave free (minrnn.cores)
PROBABILITY = Number(float, 0.0, 1.0, high_open=True)
NONNEGATIVE = Number(float, 0.0)

# What a trained model is asked for, by the commands' options and by minrnn.load's methods alike.
# (A temperature of 0 is the API's argmax; the sample command says --argmax and takes X > 0.)
USE = {
    "length": Number(int, 0, 2**63 - 1),            # characters generated after the prime (the core's int64)
    "temperature": Number(float, 0.0, 1e6, single=False),   # the sampler's are doubles
    "top_k": Number(int, 0, 2**31 - 1),             # 0 = off
    "top_p": Number(float, 0.0, 1.0, low_open=True, single=False),
    "num": Number(int, 1, 65536),                   # samples drawn together
    "beam": Number(int, 1, 4096),                   # 1 = greedy
    "max_length": Number(int, 1, 100000),           # a translation's steps, the end included
    "seed": SEED,
    "top": Number(int, 1, 2**31 - 1),               # labels shown per text
    "batch_size": POSITIVE,                         # an evaluation's streams or records at once
    "seq_len": POSITIVE,                            # an evaluation's chunks of a text
    "threads": THREADS,
    "precision": OrNone(Choice(core.PRECISIONS)),   # None: as the checkpoint stores the weights
}

MODEL = [
    Setting("cell", "lstm", Choice(CELLS), "CELL",
            "recurrent cell: " + ", ".join(CELLS) + " (PyTorch's RNN modes) (default {default})"),
    Setting("init", "default", Choice(INIT_SCHEMES), "SCHEME",
            "initialization: default (PyTorch's), irnn (identity recurrence, for rnn_relu: Le et al. "
            "2015), or normal (weights N(0, 0.01^2), biases 0: min-char-rnn) (default {default})"),
    Setting("hidden", 512, Number(int, 1, core.lib.MINRNN_MAX_HIDDEN), "N", "units per layer (default {default})"),
    Setting("layers", 2, Number(int, 1, core.lib.MINRNN_MAX_LAYERS), "N", "stacked layers (default {default})"),
    Setting("embed", 64, Number(int, 0, core.lib.MINRNN_MAX_HIDDEN), "N",
            "embedding size; 0 feeds characters one-hot (default {default}: an embedding learns much faster "
            "than one-hot input at PyTorch's initialization)"),
    Setting("dropout", 0.2, PROBABILITY, "P",
            "dropout between layers and before the output, in training (default {default})"),
    Setting("tokens", "chars", Choice(TOKENS), "KIND",
            "what the model reads and writes: chars (UTF-8 characters), words (words, punctuation and "
            "whitespace, each a token, with the space before a word in its token: README) or bytes "
            "(any file's raw bytes); --encoding bytes is --tokens bytes (default {default})"),
    Setting("vocab_size", None, OrNone(Number(int, 2, core.lib.MINRNN_MAX_VOCAB)), "N",
            "--tokens words: the commonest N-1 words and the unknown word; the output layer costs "
            "N x --hidden weights and as many multiply-adds per token (default 10000)"),
    Setting("min_count", None, OrNone(Number(int, 1)), "C",
            "--tokens words: only words seen C times or more; the rest read as the unknown word "
            "(default 1)"),
    Setting("biases", 2, Number(int, 1, 2), "N",
            "bias vectors per layer: 2, PyTorch's bias_ih and bias_hh; 1, min-char-rnn's one hidden bias "
            "(default {default})"),
    Setting("attention", "additive", Choice(ATTENTIONS), "KIND",
            "--task seq2seq: how the decoder looks at the source at each step: dot (h.e) or general "
            "(h.W e), Luong's; additive (v.tanh(W h + U e)), Bahdanau's, the most accurate on the "
            "README's demo; none: it reads only the encoder's final state (default {default})"),
    Setting("attention_size", None, OrNone(Number(int, 1, core.lib.MINRNN_MAX_HIDDEN)), "N",
            "--attention additive: its hidden size (default: --hidden)"),
    Setting("input_feeding", False, Flag(), None,
            "--task seq2seq: feed each step's attention context to the decoder's next step as well as to its "
            "output (input feeding; a captioner of --grid always is, when it attends)"),
]
DATA = [
    Setting("task", "lm", Choice(tasks.OPTIONS), "TASK",
            "; ".join(f"{name}: {learns}" for name, learns in tasks.OPTIONS.items()) + " (default {default})"),
    Setting("max_source", 200, Number(int, 1, 1000000), "N",
            "--task seq2seq: the longest source (characters) the model reads; a longer one is an error, "
            "in training and in translate (default {default})"),
    Setting("records", False, Flag(), None,
            "the file is a list of records, one per line (or per --record-sep): each its own sequence "
            "from a zero state, framed by start and end tokens; sample writes whole records"),
    Setting("record_sep", "\n", Text(), "SEP",
            "what separates records (\\n and \\t are understood; \\n\\n: a blank line) (default: a newline)"),
    Setting("labels", False, Flag(), None,
            "records are label<TAB>text; the label conditions every step (implies --records; "
            "sample --condition LABEL)"),
    Setting("inputs", None, OrNone(Text()), "X.npy",
            "--task classify on sequences of vectors instead of text: a (N, T, D) .npy of N sequences of "
            "T steps of D numbers, each number standardized with the training sequences' mean and "
            "deviation; the text file is then not given"),
    Setting("targets", None, OrNone(Text()), "Y.npy", "--inputs: the (N,) whole-number label of each sequence"),
    Setting("lengths", None, OrNone(Text()), "L.npy",
            "--inputs: the (N,) length of each sequence, in [1, T], when they differ (later steps are "
            "padding) (default: T each)"),
    Setting("grid", None, OrNone(Text()), "GRID.npy",
            "captioning: a (N, L, D) .npy, or (N, Hg, Wg, D), of a grid of L vectors for each of the file's N "
            "lines (an image's patches), standardized per feature; line i is written from grid i, attending "
            "over its places (--attention; none: from the grid's mean alone) (python -m minrnn caption)"),
    Setting("features", None, OrNone(Text()), "FILE.npy",
            "a (records, D) .npy array: row i conditions record i at every step, standardized per "
            "column with the training records' mean and deviation (implies --records; sample --features)"),
]
TRAINING = [
    Setting("seq_len", 64, POSITIVE, "N",
            "characters per stream per step: how far back gradients flow (default {default})"),
    Setting("batch_size", 32, POSITIVE, "N", "parallel streams per step (default {default})"),
    Setting("optimizer", "adam", Choice(OPTIMIZERS), "RULE",
            "update rule: " + ", ".join(OPTIMIZERS) + " (default {default})"),
    Setting("lr", None, OrNone(Number(float, 0.0, low_open=True)), "X",
            "learning rate (default: " + ", ".join(f"{k} {v['lr']:g}" for k, v in OPTIMIZERS.items()) + ")"),
    Setting("lr_decay", 0.95, Number(float, 0.0, 1.0, low_open=True), "F",
            "multiply the learning rate by this at each epoch after --lr-decay-after (default {default})"),
    Setting("lr_decay_after", 5, Number(int, 0), "N", "epochs at the full learning rate (default {default})"),
    Setting("clip_norm", 5.0, NONNEGATIVE, "X",
            "scale gradients down to this global norm; 0 = off (default {default})"),
    Setting("clip_value", 0.0, NONNEGATIVE, "X",
            "clip each gradient element to +-this; 0 = off. Clipping acts on the gradient of the loss as "
            "--loss defines it: of the mean by default, B x T times smaller than min-char-rnn's sum "
            "(default {default})"),
    Setting("weight_decay", 0.0, NONNEGATIVE, "X",
            "decoupled weight decay (AdamW's), for every update rule: each update first multiplies every "
            "parameter by 1 - lr x this; 0 = off (default {default})"),
    Setting("loss", "mean", Choice(core.REDUCTION_CODES), "HOW",
            "the loss over a batch's positions: mean (nats per character) or sum (min-char-rnn) "
            "(default {default})"),
    Setting("val_frac", 0.1, Number(float, 0.0, 0.5), "F",
            "the end of the text kept for validation (default {default})"),
    Setting("seed", 1, SEED, "S", "seed for initialization, dropout and the order of records (default {default})"),
    Setting("preset", "none", Choice(("none", "min-char-rnn")), "NAME",
            "min-char-rnn: Karpathy's gist exactly (rnn_tanh, 100 units, one-hot, one bias, N(0, 0.01) "
            "weights, B 1 x T 25, summed loss, elements clipped to +-5, Adagrad lr 0.1, no validation "
            "split); options given as well override it (default {default})"),
]
# Every preset, as the settings it gives (the run's defaults, under what is given).
PRESETS = {
    "min-char-rnn": dict(cell="rnn_tanh", init="normal", hidden=100, layers=1, embed=0, dropout=0.0, biases=1,
                         seq_len=25, batch_size=1, optimizer="adagrad", lr=0.1, lr_decay=1.0, clip_norm=0.0,
                         clip_value=5.0, loss="sum", val_frac=0.0),
}
RUN = MODEL + DATA + TRAINING
SESSION = [
    Setting("max_iters", None, OrNone(Number(int, 1)), "N",
            "stop after this many training steps in total (default: none)"),
    Setting("epochs", 10, Number(int, 1), "N", "stop after this many passes over the text (default {default})"),
    Setting("eval_every", 250, Number(int, 1), "N", "validate and checkpoint every N steps (default {default})"),
    Setting("sample_every", 1000, Number(int, 0), "N", "print a sample every N steps; 0 = never (default {default})"),
]

DEFAULTS = {s.name: s.default for s in RUN}


SESSION_DEFAULTS = {s.name: s.default for s in SESSION}


def settle(s):
    """The settings s (every RUN setting), with what follows from them (labels and features are
    about records, a grid about captions), checked together: (s, the task they choose), or ValueError for settings that
    are each fine but do not go together."""
    s = dict(s, records=s["records"] or bool(s["labels"] or s["features"]))
    if s["grid"] is not None and s["task"] == DEFAULTS["task"]:   # a grid per line: captions
        s["task"] = "caption"
    if s["grid"] is not None and s["task"] != "caption":
        raise ValueError(f"--grid conditions captions on grids (--task caption), not --task {s['task']}")
    for name, default in WORD_DEFAULTS.items():
        if s["tokens"] != "words" and s[name] is not None:
            raise ValueError(f"--{name.replace('_', '-')} is about a vocabulary of words; give --tokens words "
                             "or leave it out")
        if s["tokens"] == "words" and s[name] is None:
            s[name] = default
    if s["init"] == "irnn" and CELLS[s["cell"]].gates != 1:
        raise ValueError(f"--init irnn (an identity recurrent weight) is for rnn_relu and rnn_tanh, not {s['cell']}")
    if s["labels"] and s["features"]:
        raise ValueError("--labels and --features each condition the model; give one")
    if s["attention_size"] is not None and s["attention"] != "additive":
        raise ValueError(f"--attention-size is the size of additive attention; this run's is {s['attention']}")
    if s["inputs"] is None and (s["targets"] or s["lengths"]):
        raise ValueError("--targets and --lengths go with --inputs X.npy (sequences of vectors)")
    if s["input_feeding"] and s["task"] != "seq2seq" and s["grid"] is None:
        raise ValueError("--input-feeding feeds a seq2seq decoder its attention's context; give --task seq2seq")
    task = tasks.for_settings(s)
    if s["inputs"] is not None and not task.reads_vectors:
        raise ValueError("--inputs reads sequences of vectors: give --task classify, tag or regress")
    task.check(s)
    return s, task


# Settings of runs stored by an older minrnn, as the settings now say them: {old name: (new name,
# {old value: new value})}; and the settings added since, as those runs had them.
RENAMED = {"encoding": ("tokens", {"utf8": "chars", "bytes": "bytes"})}
def renamed(given, old, value):
    """given (the settings given, by name) with an old setting's value as its new one says it (what
    --encoding bytes means now: --tokens bytes); ValueError for a value it never had, or if the new
    one is given too, otherwise."""
    new, values = RENAMED[old]
    if value not in values:
        raise ValueError(f"--{old} takes {' or '.join(values)}, not {value!r}")
    if given.get(new) not in (None, values[value]):
        raise ValueError(f"--{old} {value} is --{new} {values[value]}; give one of them")
    return {**given, new: values[value]}


ADDED = {"vocab_size": None, "min_count": None, "inputs": None, "targets": None, "lengths": None, "grid": None,
         "input_feeding": False}


def check_stored(settings, stored):
    """The values of `settings` in `stored` (a run's metadata), each checked; ValueError naming the
    first that is missing or wrong."""
    if not isinstance(stored, dict):
        raise ValueError("the settings are not a JSON object")
    stored = dict(stored)
    for old, (new, values) in RENAMED.items():
        if old in stored and new not in stored:
            value = stored.pop(old)
            stored[new] = values.get(value, value)
    stored = {**ADDED, **stored}
    out = {}
    for s in settings:
        if s.name not in stored:
            raise ValueError(f"{s.name} is missing")
        try:
            out[s.name] = s.rule.check(stored[s.name])
        except ValueError as e:
            raise ValueError(f"{s.name}: {e}") from None
    return out
