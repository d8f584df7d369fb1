"""The training loop behind `python -m minrnn train`: batches through the C core's one-call training
step, evaluation on the validation tail, checkpoints, progress, resume, Ctrl-C and divergence.

Everything that decides the next step lives in the checkpoint (weights, optimizer moments and step,
dropout generator, carried state, data position, learning-rate scale, smoothed loss), so a resumed
run makes the same steps, bit for bit, as one that never stopped. The run folder is locked while a
run writes to it (rundir.py).
"""

import json
import math
import os
import signal
import sys
import time

import numpy as np

from minrnn import __version__, core
from minrnn.data import Batches, Corpus, DataError
from minrnn.inference import evaluate, evaluation_shape, generate, load, workspace_bytes
from minrnn.reference import OPTIMIZERS, Config
from minrnn.reference.tensor import float32
from minrnn.resources import require_memory
from minrnn.rundir import LAST_RUN, RunFolder, remember_last_run
from minrnn.errors import UserError
from minrnn.settings import DEFAULTS, RUN, SESSION, SESSION_DEFAULTS, Number, check_stored, check_together
from minrnn.text import Vocab

MAX_ROLLBACKS = 8     # consecutive divergences before giving up
RUN_FORMAT = "minrnn-run"   # the "format" of a training run's checkpoint metadata


def model_config(s, vocab_size):
    return Config(vocab_size=vocab_size, hidden_size=s["hidden"], cell=s["cell"], embed_size=s["embed"],
                  num_layers=s["layers"], dropout=s["dropout"])


def base_lr(s):
    return s["lr"] if s["lr"] is not None else OPTIMIZERS[s["optimizer"]]["lr"]


def training_memory(cfg, B, T, val_chars):
    """Bytes a training run holds: the parameters, their gradients, two optimizer moments and the
    rollback copies of parameters and moments (7 blocks), the workspace of a step, and validation's
    when a short validation text gives it another shape."""
    need = 4 * 7 * core.param_count(cfg) + workspace_bytes(cfg, B, T)
    if val_chars >= 2:
        streams, _, chunk = evaluation_shape(val_chars, B, T)
        if (streams, chunk) != (B, T):
            need += workspace_bytes(cfg, streams, chunk)
    return need


def lr_at(s, epoch, scale):
    """char-rnn's schedule: after lr_decay_after epochs, times lr_decay at each new epoch."""
    return base_lr(s) * scale * s["lr_decay"] ** max(0, epoch + 1 - s["lr_decay_after"])


class Progress:
    """One updating line on a terminal; plain lines every 10 seconds otherwise."""

    def __init__(self, stream):
        self.stream = stream
        self.tty = stream.isatty()
        self.last_plain = 0.0
        self.drawn = False

    def line(self, text):
        """A message that stays (evaluations, samples, warnings)."""
        if self.tty and self.drawn:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()
        self.drawn = False

    def status(self, text, force=False):
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self.drawn = True
        elif force or now - self.last_plain >= 10.0:
            self.stream.write(text + "\n")
            self.last_plain = now
        self.stream.flush()


class Interrupt:
    """Turns the first Ctrl-C into a flag the loop checks between steps; a second one stops at once."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self.handle)
        return self

    def handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self.previous)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)


class Run:
    """One training session: settings, data, model, trainer and the loop."""

    def __init__(self, args, stream=sys.stdout):
        self.args, self.out = args, args.out
        self.progress = Progress(stream)
        self.folder = RunFolder(self.out)   # ours until this process ends
        self.latest, self.best = self.folder.file("latest.ckpt"), self.folder.file("best.ckpt")
        stale = self.folder.remove_stale_temporaries()
        if stale:
            self.progress.line(f"removed what interrupted saves left in {self.out}: {', '.join(stale)}")
        try:
            stored_session = self.resume() if args.resume else self.start()
        except BaseException:
            self.folder.abandon()
            raise
        self.session = {k: getattr(args, k) if getattr(args, k) is not None else stored_session.get(k, v)
                        for k, v in SESSION_DEFAULTS.items()}
        self.model.threads = args.threads
        why_not = remember_last_run(self.out)
        if why_not:
            self.progress.line(f"note: could not write {LAST_RUN} in the working folder ({why_not}); "
                               f"sample and eval need --checkpoint {self.best}")

    # ---- setting up

    def prepare(self, path, encoding, vocab=None):
        """The text and its batches, then the memory the run needs checked (before allocating it)."""
        s = self.s
        self.corpus = Corpus(path, encoding, s["val_frac"], vocab=vocab)
        self.batches = Batches(self.corpus.train, s["batch_size"], s["seq_len"])
        cfg = model_config(s, len(self.corpus.vocab))
        require_memory(training_memory(cfg, s["batch_size"], s["seq_len"], len(self.corpus.val)),
                       f"training a {s['layers']}-layer {s['cell']} of {s['hidden']} units in batches of "
                       f"{s['batch_size']} x {s['seq_len']}",
                       "use a smaller --hidden, --layers, --embed, --batch-size or --seq-len")
        return cfg

    def start(self):
        args = self.args
        if args.input is None:
            raise DataError("give the text file to train on: python -m minrnn train FILE")
        if self.folder.exists("latest.ckpt"):
            raise UserError(f"{self.out} already holds a run; continue it with --resume, or choose another --out")
        self.s = {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in DEFAULTS.items()}
        self.s["lr"] = base_lr(self.s)
        s = self.s
        try:
            check_together(s)
        except ValueError as e:
            raise UserError(str(e)) from None
        cfg = self.prepare(args.input, s["encoding"])
        self.model = core.Model(cfg, seed=s["seed"], init=s["init"])
        self.trainer = core.Trainer(self.model, s["batch_size"], s["seq_len"], optimizer=s["optimizer"],
                                    lr=base_lr(s), clip_value=s["clip_value"], clip_norm=s["clip_norm"],
                                    seed=s["seed"] + 1)
        self.lr_scale, self.ema = 1.0, math.log(len(self.corpus.vocab))
        return {}

    def resume(self):
        args = self.args
        if not self.folder.exists("latest.ckpt"):
            raise UserError(f"nothing to resume: {self.latest} does not exist")
        ck = load(self.latest, advice="start a new run with another --out, or resume from a copy of a good "
                                      "checkpoint")
        if ck.meta.get("format") != RUN_FORMAT or ck.trainer is None:
            raise UserError(f"{self.latest} has no training state to resume")
        try:
            record = self.read_record(ck)
        except (ValueError, KeyError, TypeError) as e:
            writer = ck.meta.get("minrnn")
            if writer != __version__:   # an older minrnn stored its settings its own way
                raise UserError(f"{self.latest} was started by minrnn {writer}, which stored its settings "
                                f"differently ({e}); finish it with that version, or start a new run with "
                                "another --out") from None
            raise UserError(f"{self.latest}: its record of the run is damaged ({e}); start a new run with "
                            "another --out") from None
        for key, value in self.s.items():
            given = getattr(args, key)
            if given is not None and given != value:
                raise UserError(f"--{key.replace('_', '-')} {given} differs from this run's {value}; "
                                "a resumed run keeps its settings (start a new one with another --out)")
        path = args.input or record["path"]
        self.prepare(path, ck.encoding, vocab=Vocab(ck.vocab, ck.encoding))
        if self.corpus.fingerprint != record["fingerprint"]:
            raise DataError(f"{path} is not the text this run was trained on; give that file, or start a new run")
        self.model, self.trainer = ck.model, ck.trainer
        self.lr_scale, self.ema = record["lr_scale"], record["ema"]
        return record["session"]

    def read_record(self, ck):
        """The run's settings and state from the checkpoint's metadata, each checked, and checked
        against what the checkpoint itself holds: ValueError (or KeyError, TypeError) naming the
        first thing wrong."""
        meta = ck.meta
        self.s = check_stored(RUN, meta.get("args"))
        record = dict(session=check_stored(SESSION, meta.get("session")),
                      lr_scale=Number(float, 0.0, low_open=True).check(meta.get("lr_scale")),
                      ema=Number(float).check(meta.get("train_loss_ema")),
                      path=meta["data"]["path"], fingerprint=meta["data"]["fingerprint"])
        if not isinstance(record["path"], str) or not isinstance(record["fingerprint"], str):
            raise TypeError("the text's path and fingerprint must be strings")
        s, t = self.s, ck.trainer
        model = core.py_config(core.c_config(model_config(s, len(ck.vocab))))   # floats as the core keeps them
        for key, said, held in [("model", model, ck.model.config), ("encoding", s["encoding"], ck.encoding),
                                ("batch_size", s["batch_size"], t.B), ("seq_len", s["seq_len"], t.T),
                                ("optimizer", s["optimizer"], t.optimizer),
                                ("clip_norm", float32(s["clip_norm"]), t.opt.clip_norm),
                                ("clip_value", float32(s["clip_value"]), t.opt.clip_value)]:
            if said != held:
                raise ValueError(f"its settings say {key} {said}, its contents {held}")
        return record

    # ---- checkpoints

    def meta(self, val_loss):
        return {"format": RUN_FORMAT, "minrnn": __version__, "args": self.s, "session": self.session,
                "data": {"path": os.path.abspath(self.corpus.path), "fingerprint": self.corpus.fingerprint,
                         "train_chars": len(self.corpus.train), "val_chars": len(self.corpus.val)},
                "iteration": self.trainer.steps, "epoch": self.trainer.epoch, "lr_scale": self.lr_scale,
                "train_loss_ema": self.ema, "val_loss": val_loss}

    def save(self, path, val_loss):
        if not np.all(np.isfinite(self.model.params)):   # never write a broken model
            raise FloatingPointError("parameters are not finite")
        core.save_checkpoint(path, self.model, self.corpus.vocab.symbols, self.corpus.vocab.encoding,
                             self.meta(val_loss), self.trainer)

    def best_val_loss(self):
        if not self.folder.exists("best.ckpt"):
            return math.inf
        try:
            return Number(float).check(core.load_checkpoint(self.best).meta.get("val_loss"))
        except (core.MinrnnError, ValueError):
            return math.inf

    # ---- evaluation and samples

    def validate(self):
        if len(self.corpus.val) < 2:
            return None
        loss, _ = evaluate(self.model, self.corpus.val, self.s["batch_size"], self.s["seq_len"])
        return loss

    def sample_text(self, iteration):
        vocab = self.corpus.vocab
        ids = generate(self.model, vocab, [], 200, seed=self.s["seed"] + iteration, temperature=0.8)
        return vocab.to_bytes(list(ids)).decode("utf-8", errors="replace")

    # ---- the loop

    def stop_reason(self, started):
        a, t, s = self.args, self.trainer, self.session
        if s["max_iters"] is not None and t.steps >= s["max_iters"]:
            return f"reached --max-iters {s['max_iters']}"
        if t.epoch >= s["epochs"]:
            return f"finished {s['epochs']} epochs"
        if a.max_time is not None and time.monotonic() - started >= a.max_time:
            return f"reached --max-time {a.max_time:g} s"
        return None

    def eta(self, started, steps_done):
        a, t, s = self.args, self.trainer, self.session
        elapsed = time.monotonic() - started
        if steps_done == 0:
            return None
        per_step = elapsed / steps_done
        left = [(s["epochs"] - t.epoch) * len(self.batches) - t.position]
        if s["max_iters"] is not None:
            left.append(s["max_iters"] - t.steps)
        seconds = min(x * per_step for x in left)
        if a.max_time is not None:
            seconds = min(seconds, a.max_time - elapsed)
        return max(0.0, seconds)

    def checkpoint(self, val_loss, best_so_far):
        """Save latest (and best, when validation improved); returns the new best."""
        self.save(self.latest, val_loss)
        if val_loss is not None and val_loss < best_so_far:
            self.save(self.best, val_loss)
            return val_loss
        if val_loss is None:   # no validation text: the latest is the best we know
            self.save(self.best, val_loss)
        return best_so_far

    def report_eval(self, val_loss, elapsed, cps):
        t = self.trainer
        record = {"iteration": t.steps, "epoch": t.epoch, "position": t.position, "train_loss": self.ema,
                  "val_loss": val_loss, "val_bpc": None if val_loss is None else val_loss / math.log(2),
                  "lr": t.lr, "elapsed_s": round(elapsed, 3), "chars_per_s": round(cps, 1)}
        with open(self.folder.file("metrics.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        val = "n/a" if val_loss is None else f"{val_loss:.4f} nats/char ({val_loss / math.log(2):.4f} bits/char)"
        self.progress.line(f"iter {t.steps:6d} | epoch {t.epoch + t.position / len(self.batches):6.2f} | "
                           f"train {self.ema:.4f} | val {val}")

    def announce(self):
        s, V = self.s, len(self.corpus.vocab)
        self.progress.line(f"training a {s['layers']}-layer {s['cell']} of {s['hidden']} units "
                           f"({self.model.param_count:,} parameters) on {len(self.corpus.train):,} characters "
                           f"({V} symbols), validating on {len(self.corpus.val):,}; batches of {s['batch_size']} "
                           f"x {s['seq_len']}, {len(self.batches)} per epoch; output in {self.out}")

    def step(self):
        """One training step on the next batch; returns its loss, or None if it diverged: a NaN or
        infinite loss or gradient (the core then changed nothing), or a loss worse than twice
        uniform guessing or four times the recent average."""
        t, V = self.trainer, len(self.corpus.vocab)
        t.lr = lr_at(self.s, t.epoch, self.lr_scale)
        try:
            loss, _ = t.step_next(self.batches)
        except core.NonFiniteError:
            return None
        if loss > min(2.0 * math.log(V), 4.0 * self.ema):
            return None
        self.ema = loss if t.steps == 1 else 0.95 * self.ema + 0.05 * loss
        return loss

    def status(self, last_val, cps, eta):
        t = self.trainer
        val = "" if last_val is None else f" | val {last_val:.3f} ({last_val / math.log(2):.3f} bpc)"
        self.progress.status(f"iter {t.steps} | epoch {t.epoch + t.position / len(self.batches):.2f} | "
                             f"loss {self.ema:.3f}{val} | {cps:,.0f} chars/s"
                             + ("" if eta is None else f" | ETA {format_seconds(eta)}"))

    def run(self):
        t, chars_per_step = self.trainer, self.s["batch_size"] * self.s["seq_len"]
        self.announce()
        best = self.best_val_loss()
        snapshot = t.get_state(), self.ema   # the last good state, to roll back to
        rollbacks, last_val, evaluated_at, steps_done = 0, None, None, 0
        started = time.monotonic()
        rate = lambda: steps_done * chars_per_step / max(time.monotonic() - started, 1e-9)
        with Interrupt() as interrupt:
            while not interrupt.requested:
                reason = self.stop_reason(started)
                if reason:
                    break
                if self.step() is None:
                    rollbacks += 1
                    if rollbacks > MAX_ROLLBACKS:
                        raise UserError(f"training keeps diverging even at a learning rate of {t.lr:.3g}; "
                                        "try a smaller --lr or --clip-norm")
                    t.set_state(snapshot[0])
                    self.ema = snapshot[1]
                    self.lr_scale *= 0.5   # halved again at each divergence (not part of the snapshot)
                    self.progress.line(f"iter {t.steps:6d} | diverging; back to the last good state at a "
                                       f"learning rate of {lr_at(self.s, t.epoch, self.lr_scale):.3g}")
                    continue
                steps_done += 1
                if t.steps % self.session["eval_every"] == 0:
                    last_val = self.validate()
                    best = self.checkpoint(last_val, best)
                    snapshot, rollbacks, evaluated_at = (t.get_state(), self.ema), 0, t.steps
                    self.report_eval(last_val, time.monotonic() - started, rate())
                if self.session["sample_every"] and t.steps % self.session["sample_every"] == 0:
                    sample = self.sample_text(t.steps)
                    self.progress.line(f"---- sample at iteration {t.steps} ----\n{sample}\n----")
                self.status(last_val, rate(), self.eta(started, steps_done))
        if evaluated_at != t.steps:   # the final state, evaluated and saved
            last_val = self.validate()
            best = self.checkpoint(last_val, best)
            self.report_eval(last_val, time.monotonic() - started, rate())
        if interrupt.requested:
            resume = f"python -m minrnn train {quote(self.corpus.path)} --out {quote(self.out)} --resume"
            self.progress.line(f"interrupted at iteration {t.steps}; saved {self.latest}\nresume with: {resume}")
            return 130
        best_text = f"; best validation loss {best:.4f} nats/char" if best < math.inf else ""
        self.progress.line(f"{reason}{best_text}; checkpoints in {self.out}")
        return 0


def quote(text):
    import shlex
    return shlex.quote(str(text))


def format_seconds(s):
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
