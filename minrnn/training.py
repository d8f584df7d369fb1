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
from minrnn.inference import (evaluate, evaluate_records, evaluation_shape, generate, generate_records, load,
                              workspace_bytes)
from minrnn.pairs import PairBatches, PairSet, pairs_loss, translate_all, translation_scores
from minrnn.records import RecordBatches, RecordSet
from minrnn.reference import OPTIMIZERS, Config
from minrnn.reference.seq2seq import Seq2seqConfig
from minrnn.reference.tensor import float32
from minrnn.resources import available_memory, require_memory
from minrnn.rundir import LAST_RUN, RunFolder, remember_last_run
from minrnn.errors import UserError
from minrnn.settings import (DEFAULTS, PRESETS, RUN, SESSION, SESSION_DEFAULTS, Number, check_stored, check_together,
                             imply)
from minrnn.text import Vocab, unescape

MAX_ROLLBACKS = 8     # consecutive divergences before giving up
VAL_TRANSLATIONS = 500   # validation pairs a seq2seq run translates at each evaluation
RUN_FORMAT = "minrnn-run"   # the "format" of a training run's checkpoint metadata


def model_config(s, vocab_size, num_labels=0, cond_size=0):
    """The model the settings describe, for data of vocab_size symbols, num_labels labels and
    feature vectors of cond_size."""
    if s["task"] == "seq2seq":
        additive = s["attention"] == "additive"
        return Seq2seqConfig(vocab_size=vocab_size, hidden_size=s["hidden"], cell=s["cell"], embed_size=s["embed"],
                             num_layers=s["layers"], dropout=s["dropout"], attention=s["attention"],
                             attention_size=(s["attention_size"] or s["hidden"]) if additive else 0)
    classify = s["task"] == "classify"
    cond = "label" if s["labels"] and not classify else "vector" if s["features"] else "none"
    return Config(vocab_size=vocab_size, hidden_size=s["hidden"], cell=s["cell"], embed_size=s["embed"],
                  num_layers=s["layers"], dropout=s["dropout"], task=s["task"],
                  num_classes=num_labels if classify else 0, cond=cond,
                  cond_size=num_labels if cond == "label" else cond_size if cond == "vector" else 0,
                  one_bias=s["biases"] == 1, reduction=s["loss"])


def condition_of(cfg):
    return None if cfg.cond == "none" else cfg.cond


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


def seq2seq_memory(cfg, B, Ts, Td):
    """Bytes a seq2seq training run holds: 7 parameter blocks (see training_memory) and a step's
    workspace for B pairs of sources up to Ts and targets up to Td - 1 characters."""
    floats = core.lib.minrnn_seq2seq_workspace_size(core.c_config(cfg), B, Ts, Td)
    if floats == 0:
        raise UserError(f"batches of {B} pairs of {Ts} and {Td} steps are more than the core takes; use a smaller "
                        "--batch-size or --max-source")
    return 4 * 7 * core.param_count(cfg) + 4 * floats


def longest_that_fits(cfg, B, T):
    """The longest record (characters) whose batches of B fit in the memory available now."""
    have = available_memory()
    if have is None:
        return T - 1
    fits = lambda t: core.workspace_floats(cfg, B, t) > 0 and training_memory(cfg, B, t, 0) <= have
    lo, hi = 0, T   # fits(lo + 1) or lo == 0; not fits(hi + 1)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid + 1) else (lo, mid - 1)
    return lo


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

    def __init__(self, args, stream=sys.stdout, callback=None):
        """callback(record), if given, is called at each evaluation with what metrics.jsonl records."""
        self.args, self.out, self.callback = args, args.out, callback
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

    def prepare(self, path, encoding, vocab=None, label_names=None):
        """The text and its batches, then the memory the run needs checked (before allocating it)."""
        s = self.s
        B = s["batch_size"]
        if s["task"] == "seq2seq":
            self.corpus = PairSet(path, encoding, s["val_frac"], s["seed"], s["max_source"], vocab)
            cfg = model_config(s, len(self.corpus.vocab))
            self.batches = PairBatches(self.corpus, B, s["seed"])
            Ts, Td = self.corpus.longest_source, self.corpus.longest_target + 1
            require_memory(seq2seq_memory(cfg, B, Ts, Td),
                           f"training a {s['layers']}-layer {s['cell']} encoder and decoder of {s['hidden']} units "
                           f"on pairs of up to {Ts} and {Td - 1} characters, {B} at a time",
                           "use a smaller --batch-size, --hidden or --layers, or shorter pairs")
        elif s["records"]:
            kind = "labels" if s["labels"] or s["task"] == "classify" else "features" if s["features"] else "plain"
            self.corpus = RecordSet(path, unescape(s["record_sep"]).encode("utf-8"), encoding, s["val_frac"],
                                    s["seed"], kind, s["features"], vocab, label_names)
            names = self.corpus.label_names or []
            if s["task"] == "classify" and len(names) < 2:
                raise DataError(f"{path}: --task classify needs at least 2 labels, and this file has "
                                f"{len(names)} ({', '.join(names)})")
            cond_size = self.corpus.vectors.shape[1] if self.corpus.vectors is not None else 0
            cfg = model_config(s, len(self.corpus.vocab), len(names), cond_size)
            self.batches = RecordBatches(self.corpus, B, s["seed"], s["task"], condition_of(cfg))
            T = self.corpus.longest + 1
            what = (f"training a {s['layers']}-layer {s['cell']} of {s['hidden']} units on records of up to "
                    f"{T - 1} characters, {B} at a time")
            fits = longest_that_fits(cfg, B, T)
            advice = (f"records of up to {fits} characters would fit: split the longest records, or use a "
                      "smaller --batch-size, --hidden or --layers" if fits else
                      "not even a record of one character fits: use a smaller --hidden or --layers")
            require_memory(training_memory(cfg, B, T, 0), what, advice)
        else:
            self.corpus = Corpus(path, encoding, s["val_frac"], vocab=vocab)
            self.batches = Batches(self.corpus.train, B, s["seq_len"])
            cfg = model_config(s, len(self.corpus.vocab))
            require_memory(training_memory(cfg, B, s["seq_len"], len(self.corpus.val)),
                           f"training a {s['layers']}-layer {s['cell']} of {s['hidden']} units in batches of "
                           f"{B} x {s['seq_len']}",
                           "use a smaller --hidden, --layers, --embed, --batch-size or --seq-len")
        return cfg

    def start(self):
        args = self.args
        if args.input is None:
            raise DataError("give the text file to train on: python -m minrnn train FILE")
        if self.folder.exists("latest.ckpt"):
            raise UserError(f"{self.out} already holds a run; continue it with --resume, or choose another --out")
        preset = args.preset if args.preset is not None else DEFAULTS["preset"]
        under = {**DEFAULTS, **PRESETS.get(preset, {})}
        self.s = imply({k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in under.items()})
        self.s["lr"] = base_lr(self.s)
        if self.s["features"]:   # found again on resume, from any folder
            self.s["features"] = os.path.abspath(self.s["features"])
        s = self.s
        try:
            check_together(s)
        except ValueError as e:
            raise UserError(str(e)) from None
        cfg = self.prepare(args.input, s["encoding"])
        self.model = core.model_for(cfg, seed=s["seed"], init=s["init"])
        self.trainer = core.Trainer(self.model, s["batch_size"], s["seq_len"], optimizer=s["optimizer"],
                                    lr=base_lr(s), clip_value=s["clip_value"], clip_norm=s["clip_norm"],
                                    seed=s["seed"] + 1, carry_state=not s["records"])
        self.lr_scale, self.ema = 1.0, math.log(self.model.outputs)
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
        names = list(ck.labels) or None
        self.prepare(path, ck.encoding, vocab=Vocab(ck.vocab, ck.encoding), label_names=names)
        if self.corpus.fingerprint != record["fingerprint"]:
            raise DataError(f"{path} is not the text this run was trained on; give that file, or start a new run")
        if ck.cond_scaling is not None and not all(np.array_equal(a, b) for a, b in zip(ck.cond_scaling,
                                                                                      self.corpus.scaling)):
            raise DataError(f"{self.s['features']} is not the features file this run was trained on; give that "
                            "file, or start a new run")
        self.model, self.trainer = ck.model, ck.trainer
        self.trainer.carry_state = not self.s["records"]
        self.lr_scale, self.ema = record["lr_scale"], record["ema"]
        return record["session"]

    def read_record(self, ck):
        """The run's settings and state from the checkpoint's metadata, each checked, and checked
        against what the checkpoint itself holds: ValueError (or KeyError, TypeError) naming the
        first thing wrong."""
        meta = ck.meta
        self.s = check_stored(RUN, meta.get("args"))
        check_together(self.s)
        record = dict(session=check_stored(SESSION, meta.get("session")),
                      lr_scale=Number(float, 0.0, low_open=True).check(meta.get("lr_scale")),
                      ema=Number(float).check(meta.get("train_loss_ema")),
                      path=meta["data"]["path"], fingerprint=meta["data"]["fingerprint"])
        if not isinstance(record["path"], str) or not isinstance(record["fingerprint"], str):
            raise TypeError("the text's path and fingerprint must be strings")
        s, t = self.s, ck.trainer
        c = ck.model.config   # the sizes that the data decides, the rest from the settings
        labels, cond_size = 0, 0
        if s["task"] != "seq2seq":
            labels, cond_size = c.num_classes or (c.cond_size if c.cond == "label" else 0), c.cond_size
        model = core.py_config(core.c_config(model_config(s, len(ck.vocab), labels, cond_size)))   # floats as the core keeps them
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
                         "train_" + self.unit: len(self.corpus.train), "val_" + self.unit: len(self.corpus.val)},
                "iteration": self.trainer.steps, "epoch": self.trainer.epoch, "lr_scale": self.lr_scale,
                "train_loss_ema": self.ema, "val_loss": val_loss}

    @property
    def unit(self):
        return "pairs" if self.s["task"] == "seq2seq" else "records" if self.s["records"] else "chars"

    def save(self, path, val_loss):
        if not np.all(np.isfinite(self.model.params)):   # never write a broken model
            raise FloatingPointError("parameters are not finite")
        core.save_checkpoint(path, self.model, self.corpus.vocab.stored, self.corpus.vocab.encoding,
                             self.meta(val_loss), self.trainer, labels=getattr(self.corpus, "label_names", None) or (),
                             cond_scaling=getattr(self.corpus, "scaling", None))

    def best_val_loss(self):
        if not self.folder.exists("best.ckpt"):
            return math.inf
        try:
            return Number(float).check(core.load_checkpoint(self.best).meta.get("val_loss"))
        except (core.MinrnnError, ValueError):
            return math.inf

    # ---- evaluation and samples

    def validate(self):
        """The validation loss (per character; a classifier's per record), and a note for people."""
        if not self.s["records"]:
            if len(self.corpus.val) < 2:
                return None, ""
            loss, _ = evaluate(self.model, self.corpus.val, self.s["batch_size"], self.s["seq_len"])
            return loss, ""
        if len(self.corpus.val) == 0:
            return None, ""
        val = self.corpus.val
        if self.s["task"] == "seq2seq":   # translations of the first VAL_TRANSLATIONS pairs
            loss = pairs_loss(self.model, self.corpus, val, self.s["batch_size"])
            some = val[:VAL_TRANSLATIONS]
            exact, cer = translation_scores(self.corpus, some, translate_all(self.model, self.corpus, some))
            return loss, f" | exact {exact:.3f}, CER {cer:.4f} (greedy, {min(len(val), VAL_TRANSLATIONS)} pairs)"
        loss, per_record, _, predicted = evaluate_records(self.model, self.corpus, val, self.s["batch_size"],
                                                          condition_of(self.model.config))
        if self.s["task"] == "classify":
            truth = self.corpus.labels[val]
            majority = np.bincount(self.corpus.labels[self.corpus.train]).argmax()
            return loss, (f" | accuracy {np.mean(predicted == truth):.3f} (always "
                          f"{self.corpus.label_names[majority]}: {np.mean(truth == majority):.3f})")
        return loss, f" | {per_record:.3f} nats/record"

    def sample_text(self, iteration):
        vocab, cfg, seed = self.corpus.vocab, self.model.config, self.s["seed"] + iteration
        if cfg.task == "classify":
            return None
        if cfg.task == "seq2seq":   # greedy translations of a few validation (or training) sources
            picks = (self.corpus.val if len(self.corpus.val) else self.corpus.train)[:4]
            return "\n".join(vocab.to_bytes(self.corpus.source_ids[i]).decode("utf-8", "replace") + " -> "
                             + vocab.to_bytes(self.model.translate(self.corpus.source_ids[i])[0]).decode(
                                 "utf-8", "replace") for i in picks)
        if not self.s["records"]:
            ids = generate(self.model, vocab, [], 200, seed=seed, temperature=0.8)
            return vocab.to_bytes(list(ids)).decode("utf-8", errors="replace")
        if cfg.cond == "label":   # one for each of the first few labels
            names = self.corpus.label_names[:4]
            cond = np.arange(len(names), dtype=np.int32)
        elif cfg.cond == "vector":
            cond = self.corpus.vectors[self.corpus.val[:4] if len(self.corpus.val) else self.corpus.train[:4]]
            names = [f"features {i}" for i in range(len(cond))]
        else:
            cond, names = None, [""] * 4
        out = generate_records(self.model, vocab, len(names), 200, seed, temperature=0.8, cond=cond)
        return "\n".join(f"{name + ': ' if name else ''}" + vocab.to_bytes(ids).decode("utf-8", "replace")
                         for name, ids in zip(names, out))

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

    def report_eval(self, val, elapsed, cps):
        val_loss, note = val
        t = self.trainer
        record = {"iteration": t.steps, "epoch": t.epoch, "position": t.position, "train_loss": self.ema,
                  "val_loss": val_loss, "val_bpc": None if val_loss is None else val_loss / math.log(2),
                  "lr": t.lr, "elapsed_s": round(elapsed, 3), "chars_per_s": round(cps, 1)}
        with open(self.folder.file("metrics.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.callback is not None:
            self.callback(record)
        if val_loss is None:
            val = "n/a"
        elif self.s["task"] == "classify":
            val = f"{val_loss:.4f} nats/record"
        else:
            val = f"{val_loss:.4f} nats/char ({val_loss / math.log(2):.4f} bits/char)"
        self.progress.line(f"iter {t.steps:6d} | epoch {t.epoch + t.position / len(self.batches):6.2f} | "
                           f"train {self.ema:.4f} | val {val}{note}")

    def announce(self):
        s, V = self.s, len(self.corpus.vocab)
        unit = self.unit if s["records"] else "characters"
        shape = f"{s['batch_size']} {unit}" if s["records"] else f"{s['batch_size']} x {s['seq_len']}"
        what = ("classifier" if s["task"] == "classify" else
                f"{s['cell']} encoder and decoder ({s['attention']} attention)" if s["task"] == "seq2seq"
                else s["cell"])
        self.progress.line(f"training a {s['layers']}-layer {what} of {s['hidden']} units "
                           f"({self.model.param_count:,} parameters) on {len(self.corpus.train):,} {unit} "
                           f"({V} symbols), validating on {len(self.corpus.val):,}; batches of {shape}, "
                           f"{len(self.batches)} per epoch; output in {self.out}")

    def step(self):
        """One training step on the next batch; returns its loss, or None if it diverged: a NaN or
        infinite loss or gradient (the core then changed nothing), or a loss worse than twice
        uniform guessing or four times the recent average."""
        t, V = self.trainer, self.model.outputs
        t.lr = lr_at(self.s, t.epoch, self.lr_scale)
        try:
            loss, _ = t.step_next(self.batches)
        except core.NonFiniteError:
            return None
        if self.s["loss"] == "sum":   # reported per character, as every other loss
            loss /= self.s["batch_size"] * self.s["seq_len"]
        # a classifier's batch losses swing far from their average, and a seq2seq model's near-zero
        # ones (0.01, then 0.05) by many times: only worse than guessing counts; a preset is
        # someone's recipe exactly (min-char-rnn's first steps reach 10 nats/char)
        swings = self.s["task"] in ("classify", "seq2seq")
        limit = 2.0 * math.log(V) if swings else min(2.0 * math.log(V), 4.0 * self.ema)
        if self.s["preset"] != "none":
            limit = math.inf
        if loss > limit:
            return None
        self.ema = loss if t.steps == 1 else 0.95 * self.ema + 0.05 * loss
        return loss

    def status(self, last_val, cps, eta):
        t = self.trainer
        val = ""
        if last_val is not None:
            bpc = "" if self.s["task"] == "classify" else f" ({last_val / math.log(2):.3f} bpc)"
            val = f" | val {last_val:.3f}{bpc}"
        self.progress.status(f"iter {t.steps} | epoch {t.epoch + t.position / len(self.batches):.2f} | "
                             f"loss {self.ema:.3f}{val} | {cps:,.0f} chars/s"
                             + ("" if eta is None else f" | ETA {format_seconds(eta)}"))

    def run(self):
        t, chars_per_step = self.trainer, self.batches.chars_per_step
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
                    best = self.checkpoint(last_val[0], best)
                    snapshot, rollbacks, evaluated_at = (t.get_state(), self.ema), 0, t.steps
                    self.report_eval(last_val, time.monotonic() - started, rate())
                if self.session["sample_every"] and t.steps % self.session["sample_every"] == 0:
                    sample = self.sample_text(t.steps)
                    if sample is not None:
                        self.progress.line(f"---- sample at iteration {t.steps} ----\n{sample}\n----")
                self.status(last_val and last_val[0], rate(), self.eta(started, steps_done))
        if evaluated_at != t.steps:   # the final state, evaluated and saved
            last_val = self.validate()
            best = self.checkpoint(last_val[0], best)
            self.report_eval(last_val, time.monotonic() - started, rate())
        if interrupt.requested:
            resume = f"python -m minrnn train {quote(self.corpus.path)} --out {quote(self.out)} --resume"
            self.progress.line(f"interrupted at iteration {t.steps}; saved {self.latest}\nresume with: {resume}")
            return 130
        unit = "nats/record" if self.s["task"] == "classify" else "nats/char"
        best_text = f"; best validation loss {best:.4f} {unit}" if best < math.inf else ""
        self.progress.line(f"{reason}{best_text}; checkpoints in {self.out}")
        return 0


def quote(text):
    import shlex
    return shlex.quote(str(text))


def format_seconds(s):
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
