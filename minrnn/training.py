"""The training loop behind `python -m minrnn train` and minrnn.train: batches through the C
core's one-call training step, evaluation on the validation part, checkpoints, progress, resume,
Ctrl-C and divergence. What depends on the kind of data (reading it, the model, its batches,
memory, validation, samples, what a checkpoint carries) is the task's (minrnn/tasks/).

Everything that decides the next step lives in the checkpoint (weights, optimizer moments and step,
dropout generator, carried state, data position, learning-rate scale, smoothed loss), so a resumed
run makes the same steps, bit for bit, as one that never stopped. The run folder is locked while a
run writes to it (rundir.py).
"""

import io
import json
import math
import os
import shlex
import sys
import time

import numpy as np

from minrnn import __version__, core
from minrnn.api import read_checkpoint
from minrnn.data import DataError
from minrnn.errors import UserError
from minrnn.progress import Interrupt, Progress, units
from minrnn.reference.tensor import float32
from minrnn.rundir import LAST_RUN, RunFolder, SharedFolder, remember_last_run
from minrnn.settings import (DEFAULTS, PRESETS, RUN, SESSION, SESSION_DEFAULTS, Number, base_lr, check_stored, lr_at,
                             settle)
from minrnn.tasks.base import Known
from minrnn.text import Reading, vocabulary

MAX_ROLLBACKS = 8     # consecutive divergences before giving up
RUN_FORMAT = "minrnn-run"   # the "format" of a training run's checkpoint metadata


PATH_SETTINGS = ("features", "inputs", "targets", "lengths", "grid")   # files a run reads, kept as absolute paths


class Run:
    """One training session: settings, task, data, model, trainer and the loop."""

    def __init__(self, given, input=None, out="out", resume=False, max_time=None, threads=0, stream=sys.stdout,
                 callback=None, engine=("c", "auto")):
        """given: {name: value} of the RUN and SESSION settings given (None or absent: not given);
        callback(record), if given, is called at each evaluation with what metrics.jsonl records;
        engine: settings.engine_and_device's (engine, device), the core's or torch's; a run resumes on either."""
        if given.get("inputs") is not None:   # sequences of vectors: the inputs are the run's data file
            if input is not None:
                raise UserError("--inputs X.npy is the data to train on; give it or a text file, not both")
            input = given["inputs"]
        self.given, self.input, self.out, self.max_time, self.callback = given, input, str(out), max_time, callback
        self.writer = engine[0] != "torch" or os.environ.get("RANK", "0") == "0"   # under torchrun, rank 0 writes
        self.progress = Progress(stream if self.writer else io.StringIO())
        self.folder = (RunFolder if self.writer else SharedFolder)(self.out)   # ours until this process ends
        self.latest, self.best = self.folder.file("latest.ckpt"), self.folder.file("best.ckpt")
        stale = self.folder.remove_stale_temporaries()
        if stale:
            self.progress.line(f"removed what interrupted saves left in {self.out}: {', '.join(stale)}")
        try:
            stored_session = self.resume() if resume else self.start()
            if engine[0] == "torch":
                from minrnn.torch_engine import TorchTrainer   # torch is optional: loaded only for its engine
                self.trainer = TorchTrainer.of(self.trainer, threads, engine[1])
        except BaseException:
            self.folder.abandon()
            raise
        self.session = {k: given[k] if given.get(k) is not None else stored_session.get(k, v)
                        for k, v in SESSION_DEFAULTS.items()}
        self.model.threads = threads
        self.batches = self.task.batches(self.data, self.s, self.model)
        why_not = self.writer and remember_last_run(self.out)
        if why_not:
            self.progress.line(f"note: could not write {LAST_RUN} in the working folder ({why_not}); "
                               f"sample and eval need --checkpoint {self.best}")

    # ---- setting up

    def prepare(self, path, like=None):
        """The task's data and model configuration, the memory the run needs checked first."""
        self.data = self.task.read(path, self.s, like)
        cfg = self.task.config(self.s, self.data)
        self.task.check_memory(cfg, self.s, self.data)
        return cfg

    def start(self):
        if self.input is None:
            raise DataError("give the text file to train on: python -m minrnn train FILE")
        if self.folder.exists("latest.ckpt"):
            raise UserError(f"{self.out} already holds a run; continue it with --resume, or choose another --out")
        preset = self.given.get("preset") or DEFAULTS["preset"]
        under = {**DEFAULTS, **PRESETS.get(preset, {})}
        s = {k: self.given[k] if self.given.get(k) is not None else v for k, v in under.items()}
        s["lr"] = base_lr(s)
        for name in PATH_SETTINGS:   # found again on resume, from any folder
            if s[name]:
                s[name] = os.path.abspath(s[name])
        try:
            self.s, self.task = settle(s)
        except ValueError as e:
            raise UserError(str(e)) from None
        cfg = self.prepare(self.input)
        s = self.s
        self.model = core.model_for(cfg, seed=s["seed"], init=s["init"])
        self.trainer = core.Trainer(self.model, s["batch_size"], s["seq_len"], optimizer=s["optimizer"],
                                    lr=base_lr(s), weight_decay=s["weight_decay"], clip_value=s["clip_value"],
                                    clip_norm=s["clip_norm"], seed=s["seed"] + 1, carry_state=self.task.carries_state)
        self.lr_scale, self.ema = 1.0, self.task.guessing(self.model)
        return {}

    def resume(self):
        if not self.folder.exists("latest.ckpt"):
            raise UserError(f"nothing to resume: {self.latest} does not exist")
        ck = read_checkpoint(self.latest, advice="start a new run with another --out, or resume from a copy of a "
                                                 "good checkpoint")
        if ck.meta.get("format") != RUN_FORMAT or ck.trainer is None:
            raise UserError(f"{self.latest} has no training state to resume")
        record = self.checked(ck, self.read_record)
        for key, value in self.s.items():
            given = self.given.get(key)
            if key in PATH_SETTINGS and given is not None:
                given = os.path.abspath(given)
            if given is not None and given != value:   # strings as Python writes them: a newline as \n
                shown = [repr(x) if isinstance(x, str) else x for x in (given, value)]
                raise UserError(f"--{key.replace('_', '-')} {shown[0]} differs from this run's {shown[1]}; "
                                "a resumed run keeps its settings (start a new one with another --out)")
        path = self.input or record["path"]
        cfg = self.prepare(path, like=Known(vocabulary(ck.vocab, ck.encoding), list(ck.labels) or None))
        if self.data.fingerprint != record["fingerprint"]:
            raise DataError(f"{path} (or a file given with it: --grid, --inputs, --features) is not the text this run "
                            "was trained on; give the run's files, or start a new run")
        self.task.check_resume(ck, self.data, self.s)
        self.checked(ck, lambda ck: self.same_model(ck, cfg))
        self.model, self.trainer = ck.model, ck.trainer
        self.trainer.carry_state = self.task.carries_state
        self.lr_scale, self.ema = record["lr_scale"], record["ema"]
        return record["session"]

    def checked(self, ck, read):
        """read(ck), its ValueError (or KeyError, TypeError) a UserError about ck's record of the run."""
        try:
            return read(ck)
        except (ValueError, KeyError, TypeError) as e:
            writer = ck.meta.get("minrnn")
            if writer != __version__:   # an older minrnn stored its settings its own way
                raise UserError(f"{self.latest} was started by minrnn {writer}, which stored its settings "
                                f"differently ({e}); finish it with that version, or start a new run with "
                                "another --out") from None
            raise UserError(f"{self.latest}: its record of the run is damaged ({e}); start a new run with "
                            "another --out") from None

    def read_record(self, ck):
        """The run's settings and state from the checkpoint's metadata, each checked: ValueError (or
        KeyError, TypeError) naming the first thing wrong."""
        meta = ck.meta
        self.s, self.task = settle(check_stored(RUN, meta.get("args")))
        record = dict(session=check_stored(SESSION, meta.get("session")),
                      lr_scale=Number(float, 0.0, low_open=True).check(meta.get("lr_scale")),
                      ema=Number(float).check(meta.get("train_loss_ema")),
                      path=meta["data"]["path"], fingerprint=meta["data"]["fingerprint"])
        if not isinstance(record["path"], str) or not isinstance(record["fingerprint"], str):
            raise TypeError("the text's path and fingerprint must be strings")
        return record

    def same_model(self, ck, cfg):
        """ValueError unless what the settings say is what the checkpoint holds."""
        s, t = self.s, ck.trainer
        said = core.py_config(core.c_config(cfg))   # floats as the core keeps them
        floats = [(key, float32(s[key]), getattr(t.opt, key)) for key in ("clip_norm", "clip_value", "weight_decay")]
        for key, says, holds in [("model", said, ck.model.config), ("encoding", Reading.of(s).encoding, ck.encoding),
                                 ("batch_size", s["batch_size"], t.B), ("seq_len", s["seq_len"], t.T),
                                 ("optimizer", s["optimizer"], t.optimizer)] + floats:
            if says != holds:
                raise ValueError(f"its settings say {key} {says}, its contents {holds}")

    # ---- checkpoints

    def meta(self, val_loss):
        unit = self.task.unit
        return {"format": RUN_FORMAT, "minrnn": __version__, "args": self.s, "session": self.session,
                "data": {"path": os.path.abspath(self.data.path), "fingerprint": self.data.fingerprint,
                         "train_" + unit: len(self.data.train), "val_" + unit: len(self.data.val)},
                "iteration": self.trainer.steps, "epoch": self.trainer.epoch, "lr_scale": self.lr_scale,
                "train_loss_ema": self.ema, "val_loss": val_loss, **self.task.meta(self.data)}

    def save(self, path, val_loss):
        if not np.all(np.isfinite(self.model.params)):   # never write a broken model
            raise FloatingPointError("parameters are not finite")
        core.save_checkpoint(path, self.model, self.data.vocab.stored, self.data.vocab.encoding, self.meta(val_loss),
                             self.trainer, **self.task.saved(self.data))

    def best_val_loss(self):
        try:   # none yet, or not one to beat
            return Number(float).check(core.load_checkpoint(self.best).meta.get("val_loss"))
        except (core.MinrnnError, ValueError):
            return math.inf

    def checkpoint(self, val_loss, best_so_far):
        """Save latest (and best, when validation improved, or when there is no validation to
        tell: then the latest is the best we know); returns the new best. Only the writer saves."""
        if not self.writer:
            return best_so_far
        self.save(self.latest, val_loss)
        if val_loss is None or val_loss < best_so_far:
            self.save(self.best, val_loss)
        return best_so_far if val_loss is None else min(val_loss, best_so_far)

    def report_eval(self, val, elapsed, cps):
        """metrics.jsonl's record of an evaluation, the callback's, and its line."""
        t, val_loss = self.trainer, val[0]
        record = {"iteration": t.steps, "epoch": t.epoch, "position": t.position, "train_loss": self.ema,
                  "val_loss": val_loss, "val_bpc": None if val_loss is None else val_loss / math.log(2),
                  "lr": t.lr, "elapsed_s": round(elapsed, 3), "chars_per_s": round(cps, 1)}
        if self.writer:
            with open(self.folder.file("metrics.jsonl"), "a") as f:
                f.write(json.dumps(record) + "\n")
        if self.callback is not None:
            self.callback(record)
        self.progress.evaluation(self, *val)

    # ---- the loop

    def stop_reason(self, started):
        t, s = self.trainer, self.session
        if s["max_iters"] is not None and t.steps >= s["max_iters"]:
            return f"reached --max-iters {s['max_iters']}"
        if t.epoch >= s["epochs"]:
            return f"finished {s['epochs']} epochs"
        if self.max_time is not None and time.monotonic() - started >= self.max_time:
            return f"reached --max-time {self.max_time:g} s"
        return None

    def step(self):
        """One training step on the next batch; returns its loss, or None if it diverged: a NaN or
        infinite loss or gradient (the core then changed nothing), or a loss worse than twice
        uniform guessing or four times the recent average."""
        t, guess = self.trainer, self.task.guessing(self.model)
        t.lr = lr_at(self.s, t.epoch, self.lr_scale)
        began = time.perf_counter()
        try:
            loss, _ = t.step_next(self.batches)
        except core.NonFiniteError:
            return None
        finally:
            self.stepping += time.perf_counter() - began
        if self.s["loss"] == "sum":   # reported per prediction (a character, mostly), as every other loss
            loss /= self.batches.chars_per_step
        # a classifier's batch losses swing far from their average, and a seq2seq model's near-zero
        # ones (0.01, then 0.05) by many times: only worse than guessing counts; a preset is
        # someone's recipe exactly (min-char-rnn's first steps reach 10 nats/char)
        limit = 2.0 * guess if self.task.swings else min(2.0 * guess, 4.0 * self.ema)
        if self.s["preset"] != "none":
            limit = math.inf
        if loss > limit:
            return None
        self.ema = loss if t.steps == 1 else 0.95 * self.ema + 0.05 * loss
        return loss

    def evaluate(self, best, started, rate):
        """Validate, checkpoint and report: (the validation, the new best)."""
        self.trainer.flush()   # the model validated is the one trained
        last_val = self.task.validate(self.model, self.data, self.s)
        best = self.checkpoint(last_val[0], best)
        self.report_eval(last_val, time.monotonic() - started, rate())
        return last_val, best

    def run(self):
        t, chars_per_step = self.trainer, self.batches.chars_per_step
        self.progress.announce(self)
        best = self.best_val_loss()
        snapshot = t.get_state(), self.ema   # the last good state, to roll back to
        rollbacks, last_val, evaluated_at, steps_done, reason = 0, None, None, 0, None
        started, self.stepping = time.monotonic(), 0.0   # stepping: seconds in training steps alone
        # what training reads per second: of the steps' own time (validation and saves not counted)
        rate = lambda: steps_done * chars_per_step / max(self.stepping, 1e-9)   # noqa: E731
        with Interrupt() as interrupt:
            while not interrupt.requested and not (reason := self.stop_reason(started)):
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
                    last_val, best = self.evaluate(best, started, rate)
                    snapshot, rollbacks, evaluated_at = (t.get_state(), self.ema), 0, t.steps
                if self.session["sample_every"] and t.steps % self.session["sample_every"] == 0:
                    t.flush()   # the model sampled is the one trained
                    sample = self.task.sample(self.model, self.data, self.s["seed"] + t.steps)
                    if sample is not None:
                        self.progress.line(f"---- sample at iteration {t.steps} ----\n{sample}\n----")
                self.progress.steps(self, last_val and last_val[0], rate(), started, steps_done)
        if evaluated_at != t.steps:   # the final state, evaluated and saved
            last_val, best = self.evaluate(best, started, rate)
        if interrupt.requested:
            resume = f"python -m minrnn train {shlex.quote(str(self.data.path))} --out {shlex.quote(self.out)} --resume"
            self.progress.line(f"interrupted at iteration {t.steps}; saved {self.latest}\nresume with: {resume}")
            return 130
        best_text = f"; best validation loss {best:.4f} {units(self, self.task.loss_unit)}" if best < math.inf else ""
        self.progress.line(f"{reason}{best_text}; checkpoints in {self.out}")
        return 0

