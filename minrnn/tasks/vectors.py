"""Sequences of vectors in, classes or values out: N sequences of D-dimensional vectors in a .npy of
shape (N, T, D), with their lengths (N,) in another for ragged ones (steps past a length are
padding, never read), and the targets in a third:

    --task classify   (N,) whole numbers: a label per sequence (many to one, "frames -> category")
    --task tag        (N, T) whole numbers: a label per step (many to many)
    --task regress    real values: (N,) or (N, K) per sequence; (N, T) or (N, T, K) per step (an
                      array whose second size is the inputs' T is read per step). Forecasting the
                      next value of a series is regress with targets the inputs moved one step on.

Layer 0 reads W_ih x_t with a dense x_t, each feature standardized with the training sequences'
mean and deviation (kept in the checkpoint's scaling section); regression targets are standardized
likewise (kept in its metadata: "target_scaling") and predictions scaled back. A label or a
value per sequence is read from the top layer's output at the sequence's last step (the core's
classify task); per step, from every step's (its lm task: outputs per step without a vocabulary).

Shapes: a batch is inputs (T, B, D) float32, time-major, with (B,) or (T, B) labels, or (B, K) or
(T, B, K) values, and lengths (B,).
"""

import math
from dataclasses import dataclass

import numpy as np

from minrnn.data import DataError
from minrnn.errors import UserError
from minrnn.reference import Config
from minrnn.tasks.base import REQUIRED, ShuffledBatches, Task, check_training_memory, probabilities, workspace_bytes
from minrnn.tasks.classify import ClassifierEvaluation
from minrnn.tasks.sequences import Sequences, given_sequences, saved_target_scaling


class Vectors(Task):
    """What the three tasks of vectors share; `option` says which (classify, tag or regress)."""
    reads_vectors = True
    swings = True
    what = "a model of sequences of vectors"
    use = "it reads sequences of vectors: python -m minrnn predict --checkpoint CKPT --inputs X.npy (predict())"
    unit = noun = "sequences"
    loss_unit = "nats/sequence"
    endpoint = "predict"
    fields = {"inputs": ("numbers", REQUIRED)}   # one sequence: (T, D) raw numbers

    def answer(self, m, r):
        """A classifier's probabilities of its labels, a tagger's per step, a regression's values."""
        try:
            x = np.asarray(r["inputs"], dtype=np.float64)
        except ValueError:
            raise UserError("inputs: give a sequence of vectors, (T, D) numbers") from None
        if x.ndim != 2:
            raise UserError(f"inputs: give one sequence of vectors, (T, D) numbers, not an array of {x.ndim} dimensions")
        return {"outputs": m.predict(x[None])[0].tolist(), "labels": m.labels}

    core_task = None          # the core's task its checkpoints hold (None: either)
    loss = "cross_entropy"    # ... and their loss

    def chosen_by(self, s):
        return s["task"] == self.option and s["inputs"] is not None

    def holds(self, ck):
        cfg = ck.model.config
        return cfg.input_size > 0 and cfg.cond == "none" and cfg.loss == self.loss and self.core_task in (None, cfg.task)

    def check(self, s):
        if s["records"] or s["tokens"] != "chars":
            raise ValueError("--inputs reads sequences of vectors; drop --records, --labels, --features and --tokens")

    def per_step(self, cfg):
        return cfg.task == "lm"

    def guessing(self, model):
        """Values: the squared error of always saying the training mean, 1 for standardized targets."""
        return 1.0 if model.config.loss == "squared_error" else super().guessing(model)

    # ---- training

    def read(self, path, s, like=None):
        data = Sequences(path, self.option, s["targets"], s["lengths"], s["val_frac"], s["seed"], like)
        if data.values is None and len(data.label_names) < 2:
            raise DataError(f"{s['targets']}: labels need at least 2 kinds, and this file has "
                            f"{len(data.label_names)}")
        return data

    def config(self, s, data):
        K = data.outputs
        return Config(vocab_size=K if data.per_step else 0, hidden_size=s["hidden"], cell=s["cell"],
                      num_layers=s["layers"], dropout=s["dropout"], task="lm" if data.per_step else "classify",
                      num_classes=0 if data.per_step else K, one_bias=s["biases"] == 1, reduction=s["loss"],
                      input_size=data.x.shape[2], loss="squared_error" if data.values is not None else "cross_entropy")

    def batches(self, data, s, model):
        def make(picks):
            x, lengths = data.inputs(picks)
            return model.batch(x, data.targets(picks), lengths)
        return ShuffledBatches(data.train, s["batch_size"], s["seed"], data.path, make, data.chars)

    def check_memory(self, cfg, s, data):
        check_training_memory(cfg, workspace_bytes(cfg, s["batch_size"], data.longest),
                              f"training on sequences of up to {data.longest} steps in batches of {s['batch_size']}",
                              "use a smaller --hidden, --layers or --batch-size")

    def batch_shape(self, s):
        return f"{s['batch_size']} sequences"

    def validate(self, model, data, s):
        if len(data.val) == 0:
            return None, ""
        scores = evaluate(model, data, data.val, s["batch_size"])
        return scores.loss, f" | {scores.summary()}"

    def saved(self, data):
        return dict(labels=data.label_names or [], input_scaling=data.scaling)

    def meta(self, data):
        if data.target_scaling is None:
            return {}
        return {"target_scaling": [a.astype(float).tolist() for a in data.target_scaling]}

    def check_resume(self, ck, data, s):
        if any(not np.array_equal(a, b) for a, b in zip(ck.input_scaling, data.scaling)):
            raise DataError(f"{data.path}: its standardization is not this run's; give the run's files")

    # ---- use

    def predict(self, m, x, lengths, batch_size=64):
        """Class probabilities (N, K), (N, T, K) per step; or values (N, K), (N, T, K) per step, in
        the targets' own units (0 past a sequence's length)."""
        data = given_sequences(m, x, lengths)
        cfg, out = m.model.config, []
        for a in range(0, len(data.x), batch_size):
            picks = np.arange(a, min(a + batch_size, len(data.x)))
            x, lengths = data.inputs(picks)
            y = m.model.forward(x, lengths=lengths).logits
            y = y if cfg.loss == "squared_error" else probabilities(y)
            if self.per_step(cfg):   # (T', B, K) -> (B, T, K)
                full = np.zeros((len(picks), data.x.shape[1], y.shape[-1]))
                full[:, :y.shape[0]] = y.swapaxes(0, 1)
                y = full
            out.append(y)
        y = np.concatenate(out)
        if cfg.loss == "squared_error":
            shift, scale = (a.astype(np.float64) for a in saved_target_scaling(m.checkpoint, y.shape[-1]))
            y = y / scale + shift
        if self.per_step(cfg):   # zeros past each length
            y[np.arange(y.shape[1])[None, :] >= data.lengths[:, None]] = 0.0
        return y

    def predicted_lines(self, m, y, lengths):
        """What `predict` prints of predict's y: a line per sequence: its label and probability, or
        its values (per step: each step's label, or values joined by commas, separated by spaces)."""
        cfg, names = m.model.config, m.labels
        N, T = len(y), (y.shape[1] if self.per_step(cfg) else 1)
        lengths = np.full(N, T) if lengths is None else np.asarray(lengths, dtype=np.int64)

        def one(row):   # a sequence's (K,) output, or a step's
            if cfg.loss == "squared_error":
                return ",".join(f"{v:.6g}" for v in row)
            k = int(np.argmax(row))
            return f"{names[k]}" if self.per_step(cfg) else f"{names[k]} {row[k]:.3f}"
        if not self.per_step(cfg):
            return [one(row) for row in y]
        return [" ".join(one(y[i, t]) for t in range(lengths[i])) for i in range(N)]

    def evaluate(self, m, path, batch_size, seq_len, features, beam, targets=None, lengths=None, grid=None):
        if features is not None:
            raise UserError("features are for a model of records conditioned on them; this one reads --inputs")
        data = Sequences(path, self.option, targets, lengths, val_frac=0.0, like=m.checkpoint)
        return evaluate(m.model, data, np.arange(len(data.x)), batch_size)


class VectorClassify(Vectors):
    name, option, core_task = "vectors", "classify", "classify"


class VectorTag(Vectors):
    name, option, core_task = "tag", "tag", "lm"
    option_help = "--inputs X.npy: learn a label per step, --targets (N, T) whole numbers"
    loss_unit = "nats/step"


class VectorRegress(Vectors):
    name, option, loss = "regress", "regress", "squared_error"
    option_help = "--inputs X.npy: learn real values per sequence or per step, a squared-error loss"
    loss_unit = "squared error (standardized)"


def evaluate(model, data, picks, batch_size):
    """The model on the sequences `picks`, dropout off: a ClassifierEvaluation (labels; per step,
    every step counts as a record), or a RegressionEvaluation (values, beside baselines from the
    training targets' statistics)."""
    total, count, predicted, got = 0.0, 0, [], []
    for a in range(0, len(picks), batch_size):
        chunk = picks[a:a + batch_size]
        x, lengths = data.inputs(chunk)
        fwd = model.forward(x, data.targets(chunk), lengths=lengths)
        n = data.chars(chunk) * (data.outputs if data.values is not None else 1)
        total += fwd.loss * (1 if model.config.reduction == "sum" else n)
        count += n
        if data.per_step:   # (T, B, K) -> the steps read, sequence by sequence, as rows() and the labels
            y = fwd.logits.swapaxes(0, 1)[np.arange(x.shape[0])[None, :] < lengths[:, None]]
        else:
            y = fwd.logits   # (rows, K)
        if data.values is None:
            predicted.append(np.argmax(y, axis=-1))
        else:
            got.append(y)
    if data.values is None:
        truth = rows(data.labels, data, picks)
        K = len(data.label_names)
        confusion = np.zeros((K, K), dtype=np.int64)
        np.add.at(confusion, (truth, np.concatenate(predicted)), 1)
        noun = "steps" if data.per_step else "sequences"
        return ClassifierEvaluation(total / count, list(data.label_names), confusion, noun=noun)
    return RegressionEvaluation.of(data, picks, np.concatenate(got), total / count)


@dataclass
class RegressionEvaluation:
    """A model of values on labelled sequences, in the targets' own units: root mean squared error and
    mean absolute error over every value read, beside two naive forecasts: the mean of the training
    values (the checkpoint's: the training targets' mean), and (per step) the last step's value."""
    loss: float          # the mean squared error of the standardized values (what training minimizes)
    rmse: float
    mae: float
    baselines: dict      # {name: (rmse, mae)}
    values: int          # values compared

    @classmethod
    def of(cls, data, picks, predicted, loss):
        shift, scale = (a.astype(np.float64) for a in data.target_scaling)   # shift: the training targets' mean
        truth = rows(data.values, data, picks).astype(np.float64) / scale + shift
        guess = np.asarray(predicted, np.float64) / scale + shift
        baselines = {"the training mean": np.broadcast_to(shift, truth.shape)}
        if data.per_step:   # y_{t-1} for y_t: the last value, the first step having none (the training mean)
            previous = np.concatenate([np.concatenate([shift[None], data.values[i, :data.lengths[i] - 1]
                                                       / scale + shift]) for i in picks])
            baselines["the last value"] = previous
        errors = {name: (rms(b - truth), float(np.abs(b - truth).mean())) for name, b in baselines.items()}
        return cls(float(loss), rms(guess - truth), float(np.abs(guess - truth).mean()), errors, truth.size)

    def summary(self):
        best = min(self.baselines.items(), key=lambda kv: kv[1][0])
        return f"RMSE {self.rmse:.4g}, MAE {self.mae:.4g} ({best[0]}: RMSE {best[1][0]:.4g})"

    def report(self, path):
        lines = [f"{path}: RMSE {self.rmse:.6g}, MAE {self.mae:.6g} over {self.values:,} values; loss {self.loss:.4f} "
                 "(squared error of the standardized values)"]
        lines += [f"  always {name}: RMSE {r:.6g}, MAE {a:.6g}" for name, (r, a) in self.baselines.items()]
        return "\n".join(lines)


def rows(a, data, picks):
    """a's rows (data's labels or standardized values) of the sequences `picks`: one per step read,
    sequence by sequence, or one per sequence."""
    if data.per_step:
        return np.concatenate([a[i, :data.lengths[i]] for i in picks])
    return a[picks]


def rms(e):
    return float(math.sqrt(np.mean(np.square(e))))
