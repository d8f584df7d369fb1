"""What a training run shows on a terminal, and how it hears Ctrl-C."""

import math
import signal
import time


class Progress:
    """One updating line on a terminal; plain lines every 10 seconds otherwise."""

    def __init__(self, stream):
        self.stream, self.tty, self.last_plain, self.drawn = stream, stream.isatty(), 0.0, False

    def line(self, text):
        """A message that stays (evaluations, samples, warnings)."""
        if self.tty and self.drawn:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()
        self.drawn = False

    def status(self, text):
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self.drawn = True
        elif now - self.last_plain >= 10.0:
            self.stream.write(text + "\n")
            self.last_plain = now
        self.stream.flush()


    # ---- a training run's lines (run: training.Run)

    def announce(self, run):
        s, task = run.s, run.task
        self.line(f"training a {s['layers']}-layer {task.describe(s)} of {s['hidden']} units "
                  f"({run.model.param_count:,} parameters) on {len(run.data.train):,} {units(run, task.noun)} "
                  f"({len(run.data.vocab)} symbols), validating on {len(run.data.val):,}; batches of "
                  f"{task.batch_shape(s)}, {len(run.batches)} per epoch; output in {run.out}")

    def evaluation(self, run, val_loss, note):
        t = run.trainer
        val = "n/a" if val_loss is None else f"{val_loss:.4f} {units(run, run.task.loss_unit)}{bits(run, val_loss, 4)}"
        self.line(f"iter {t.steps:6d} | epoch {t.epoch + t.position / len(run.batches):6.2f} | train {run.ema:.4f} | "
                  f"val {val}{note}")

    def steps(self, run, last_val, cps, started, steps_done):
        t, eta = run.trainer, time_left(run, started, steps_done)
        val = "" if last_val is None else f" | val {last_val:.3f}{bits(run, last_val, 3, short=True)}"
        self.status(f"iter {t.steps} | epoch {t.epoch + t.position / len(run.batches):.2f} | loss {run.ema:.3f}{val} | "
                    f"{cps:,.0f} {run.data.vocab.unit}s/s training" + ("" if eta is None else f" | ETA {format_seconds(eta)}"))


def time_left(run, started, steps_done):
    """Seconds until the run stops (epochs, --max-iters, --max-time), at the rate so far; None before a step."""
    t, s = run.trainer, run.session
    if steps_done == 0:
        return None
    elapsed = time.monotonic() - started
    left = [(s["epochs"] - t.epoch) * len(run.batches) - t.position]
    if s["max_iters"] is not None:
        left.append(s["max_iters"] - t.steps)
    seconds = min(x * elapsed / steps_done for x in left)
    if run.max_time is not None:
        seconds = min(seconds, run.max_time - elapsed)
    return max(0.0, seconds)


def units(run, text):
    """A task's noun or loss unit in the units of the run's vocabulary: characters, tokens."""
    return text.format(unit=run.data.vocab.unit, units=run.data.vocab.units)


def bits(run, loss, digits, short=False):
    """A loss per character (or token) in bits too: " (x bits/char)"; nothing for a loss of another unit."""
    unit = run.data.vocab.unit
    if run.task.loss_unit != "nats/{unit}":
        return ""
    return f" ({loss / math.log(2):.{digits}f} {'bpc' if short and unit == 'char' else 'bits/' + unit})"


class Interrupt:
    """Turns the first Ctrl-C into a flag the loop checks between steps; a second one stops at once."""

    def __enter__(self):
        self.requested = False
        self.previous = signal.signal(signal.SIGINT, self.handle)
        return self

    def handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self.previous)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)


def format_seconds(s):
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
