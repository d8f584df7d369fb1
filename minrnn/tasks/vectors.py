"""A classifier of sequences of vectors (many to one: "sequence of frames -> category"): N sequences
of D-dimensional vectors in a .npy of shape (N, T, D), with their lengths (N,) in another for
ragged ones (steps past a length are padding), and one integer label each in a third (N,). Layer 0
reads W_ih x_t with a dense x_t, each feature standardized with the training sequences' mean and
deviation (kept in the checkpoint); the head reads the top layer's output at each sequence's last
step, as the text classifier's does.

Shapes: a batch is inputs (T, B, D) float32, time-major, its sequences' labels (B,) and lengths (B,).
"""

import numpy as np

from minrnn.data import DataError, fingerprint, read_array, read_file
from minrnn.errors import UserError
from minrnn.reference import Config
from minrnn.tasks.base import ShuffledBatches, Task, check_training_memory, probabilities, shuffled_split, \
    workspace_bytes
from minrnn.tasks.classify import ClassifierEvaluation
from minrnn.text import Vocab


class Sequences:
    """The sequences of an inputs file with their lengths and labels: x (N, T, D) float32,
    standardized; lengths (N,) int32; labels (N,) class ids, label_names their names; train and val
    index the shuffled split. like: a trained model's checkpoint (its labels and scaling)."""

    def __init__(self, path, targets, lengths=None, val_frac=0.1, seed=1, like=None):
        raw = read_array(path)
        if raw.ndim != 3 or 0 in raw.shape:
            raise DataError(f"{path}: {raw.shape} is not (sequences, steps, features); give a .npy of shape "
                            "(N, T, D)")
        N, T, D = raw.shape
        self.lengths = read_lengths(lengths, N, T)
        steps = np.arange(T)[None, :] < self.lengths[:, None]   # (N, T): the steps that are data
        if not np.all(np.isfinite(raw[steps])):
            raise DataError(f"{path}: holds NaN or infinite values; give finite numbers")
        self.path = str(path)
        self.fingerprint = fingerprint(read_file(path) + (read_file(targets) if targets else b"")
                                       + (read_file(lengths) if lengths else b""))
        self.train, self.val = shuffled_split(N, val_frac, seed)
        if getattr(like, "input_scaling", None) is not None:   # a checkpoint's (resuming: computed again, compared)
            self.scaling = like.input_scaling
            if len(self.scaling[0]) != D:
                raise DataError(f"{path}: {D} features a step; this model reads {len(self.scaling[0])}")
        else:
            self.scaling = standardization(raw[self.train], steps[self.train])
        x = np.where(steps[:, :, None], (raw - self.scaling[0]) * self.scaling[1], 0.0)
        self.x = x.astype(np.float32)
        del raw, x
        self.label_names, self.labels = read_labels(targets, N, like and list(like.labels))
        self.vocab = Vocab([])   # no tokens: a checkpoint's vocabulary is empty

    @property
    def longest(self):
        return int(self.lengths.max())

    def inputs(self, picks):
        """The batch of sequences `picks`: inputs (T, B, D) up to their longest, and their lengths."""
        lengths = self.lengths[picks]
        return np.ascontiguousarray(self.x[picks, :lengths.max()].transpose(1, 0, 2)), lengths

    def chars(self, picks):
        """Predictions in these sequences: one each."""
        return len(picks)


def read_lengths(path, N, T):
    """The lengths file's (N,) lengths in [1, T], or T for every sequence without one."""
    if path is None:
        return np.full(N, T, dtype=np.int32)
    raw = read_array(path)
    if raw.shape != (N,) or not np.all(raw == np.round(raw)) or raw.min() < 1 or raw.max() > T:
        raise DataError(f"{path}: give {N} whole numbers in [1, {T}], one length per sequence (shape {raw.shape})")
    return raw.astype(np.int32)


def read_labels(path, N, names=None):
    """(label names, (N,) class ids) of a targets file of N whole numbers; names: a trained model's
    (a label it does not have is an error), else the distinct values in order."""
    if path is None:
        raise DataError("give the labels: --targets Y.npy, one whole number per sequence")
    raw = read_array(path)
    if raw.shape != (N,) or not np.all(np.isfinite(raw)) or not np.all(raw == np.round(raw)):
        raise DataError(f"{path}: give {N} whole numbers, one label per sequence (shape {raw.shape})")
    values = [str(int(v)) for v in raw]
    names = names or sorted(set(values), key=int)
    index = {name: k for k, name in enumerate(names)}
    missing = sorted(set(values) - set(index), key=int)
    if missing:
        raise DataError(f"{path}: labels this model does not have: {', '.join(missing[:10])}")
    return names, np.array([index[v] for v in values], dtype=np.int32)


def standardization(x, steps):
    """(shift, scale) per feature, float32: the mean and 1/deviation over the data steps of x (N, T,
    D); a constant feature's scale is 1."""
    values = x[steps].astype(np.float64)   # (steps, D)
    mean, std = values.mean(axis=0), values.std(axis=0)
    return mean.astype(np.float32), np.where(std > 0, 1.0 / np.where(std > 0, std, 1.0), 1.0).astype(np.float32)


class VectorClassify(Task):
    name = "vectors"
    option = "classify"
    what = "a classifier of sequences of vectors"
    use = ("it labels sequences of vectors: python -m minrnn predict --checkpoint CKPT --inputs X.npy "
           "(predict() from Python)")
    unit, noun = "sequences", "sequences"
    loss_unit = "nats/sequence"
    swings = True
    reads_vectors = True

    def chosen_by(self, s):
        return s["task"] == self.option and s["inputs"] is not None

    def holds(self, ck):
        cfg = ck.model.config
        return cfg.task == "classify" and cfg.input_size > 0

    def check(self, s):
        if s["records"] or s["tokens"] != "chars":
            raise ValueError("--inputs reads sequences of vectors; drop --records, --labels, --features and --tokens")

    def read(self, path, s, like=None):
        data = Sequences(path, s["targets"], s["lengths"], s["val_frac"], s["seed"], like)
        if len(data.label_names) < 2:
            raise DataError(f"{s['targets']}: a classifier needs at least 2 labels, and this file has "
                            f"{len(data.label_names)}")
        return data

    def config(self, s, data):
        return Config(vocab_size=0, hidden_size=s["hidden"], cell=s["cell"], num_layers=s["layers"],
                      dropout=s["dropout"], task="classify", num_classes=len(data.label_names),
                      one_bias=s["biases"] == 1, reduction=s["loss"], input_size=data.x.shape[2])

    def batches(self, data, s, model):
        def make(picks):
            x, lengths = data.inputs(picks)
            return model.batch(x, data.labels[picks], lengths)
        return ShuffledBatches(data.train, s["batch_size"], s["seed"], data.path, make, data.chars)

    def check_memory(self, cfg, s, data):
        check_training_memory(cfg, workspace_bytes(cfg, s["batch_size"], data.longest),
                              f"training on sequences of up to {data.longest} steps in batches of {s['batch_size']}",
                              "use a smaller --hidden, --layers or --batch-size")

    def describe(self, s):
        return "classifier of vectors"

    def validate(self, model, data, s):
        if len(data.val) == 0:
            return None, ""
        nats, predicted = evaluate(model, data, data.val, s["batch_size"])
        truth = data.labels[data.val]
        majority = np.bincount(data.labels[data.train]).argmax()
        return nats, (f" | accuracy {np.mean(predicted == truth):.3f} (always {data.label_names[majority]}, the "
                      f"training sequences' commonest label: {np.mean(truth == majority):.3f})")

    def saved(self, data):
        return dict(labels=data.label_names, input_scaling=data.scaling)

    def check_resume(self, ck, data, s):
        if any(not np.array_equal(a, b) for a, b in zip(ck.input_scaling, data.scaling)):
            raise DataError(f"{data.path}: its standardization is not this run's; give the run's files")

    # ---- use

    def predict(self, m, x, lengths, batch_size=64):
        """(N, K) probabilities of each class for raw inputs x (N, T, D), lengths (N,) or None."""
        data = given_sequences(m, x, lengths)
        out = []
        for a in range(0, len(data.x), batch_size):
            x, lengths = data.inputs(np.arange(a, min(a + batch_size, len(data.x))))
            out.append(probabilities(m.model.forward(x, lengths=lengths).logits))
        return np.concatenate(out)

    def evaluate(self, m, path, batch_size, seq_len, features, beam, targets=None, lengths=None):
        data = Sequences(path, targets, lengths, val_frac=0.0, like=m.checkpoint)
        picks = np.arange(len(data.x))
        nats, predicted = evaluate(m.model, data, picks, batch_size)
        K = len(data.label_names)
        confusion = np.zeros((K, K), dtype=np.int64)
        np.add.at(confusion, (data.labels, predicted), 1)
        return ClassifierEvaluation(nats, list(data.label_names), confusion, noun="sequences")


def given_sequences(m, x, lengths):
    """Raw inputs from Python, (N, T, D) floats, as a model's Sequences (standardized; no labels)."""
    data = Sequences.__new__(Sequences)
    x = np.asarray(x, dtype=np.float64)
    D = m.model.config.input_size
    if x.ndim != 3 or x.shape[2] != D or 0 in x.shape:
        raise UserError(f"inputs: give an array of shape (sequences, steps, {D}), not {x.shape}")
    N, T, _ = x.shape
    data.lengths = np.full(N, T, np.int32) if lengths is None else np.asarray(lengths)
    if data.lengths.shape != (N,) or not np.all(data.lengths == np.round(data.lengths)) or \
            data.lengths.min() < 1 or data.lengths.max() > T:
        raise UserError(f"lengths: give {N} whole numbers in [1, {T}]")
    data.lengths = data.lengths.astype(np.int32)
    steps = np.arange(T)[None, :] < data.lengths[:, None]
    if not np.all(np.isfinite(x[steps])):
        raise UserError("inputs: give finite numbers (NaN or infinite values found)")
    shift, scale = m.checkpoint.input_scaling
    data.x = np.where(steps[:, :, None], (x - shift) * scale, 0.0).astype(np.float32)
    return data


def evaluate(model, data, picks, batch_size):
    """(mean nats per sequence, predicted class ids) of the sequences `picks`, dropout off."""
    total, predicted = 0.0, []
    for a in range(0, len(picks), batch_size):
        chunk = picks[a:a + batch_size]
        x, lengths = data.inputs(chunk)
        fwd = model.forward(x, data.labels[chunk], lengths=lengths)
        total += fwd.loss * (1 if model.config.reduction == "sum" else len(chunk))
        predicted += list(np.argmax(fwd.logits, axis=1))
    return total / len(picks), np.array(predicted, dtype=np.int64)
