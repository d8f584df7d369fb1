"""A file of sequences of vectors as the tasks of vectors (vectors.py) read it: the inputs (N, T, D)
standardized per feature, their lengths, and the targets of a task (labels, or values
standardized likewise), split into training and validation sequences by a seeded shuffle; and the
same for raw arrays given to a trained model (given_sequences)."""

import numpy as np

from minrnn.core import checked_scaling
from minrnn.data import DataError, fingerprint_files, read_array
from minrnn.errors import UserError
from minrnn.tasks.base import shuffled_split
from minrnn.text import Vocab


class Sequences:
    """The sequences of an inputs file with their lengths and targets, for task `kind`: x (N, T, D)
    float32, standardized; lengths (N,) int32; labels (class ids, label_names their names) or values
    (float32, standardized; per_step says their shape); train and val index the shuffled split.
    like: a trained model's checkpoint (its labels and scalings)."""

    def __init__(self, path, kind, targets, lengths=None, val_frac=0.1, seed=1, like=None):
        raw = read_array(path)
        if raw.ndim != 3 or 0 in raw.shape:
            raise DataError(f"{path}: {raw.shape} is not (sequences, steps, features); give a .npy of shape "
                            "(N, T, D)")
        N, T, D = raw.shape
        self.lengths = read_lengths(lengths, N, T)
        steps = np.arange(T)[None, :] < self.lengths[:, None]   # (N, T): the steps that are data
        if not np.all(np.isfinite(raw[steps])):
            raise DataError(f"{path}: holds NaN or infinite values; give finite numbers")
        self.path, self.kind = str(path), kind
        self.fingerprint = fingerprint_files(p for p in (path, targets, lengths) if p)
        self.train, self.val = shuffled_split(N, val_frac, seed)
        if getattr(like, "input_scaling", None) is not None:   # a checkpoint's (resuming: computed again, compared)
            self.scaling = like.input_scaling
            if len(self.scaling[0]) != D:
                raise DataError(f"{path}: {D} features a step; this model reads {len(self.scaling[0])}")
        else:
            self.scaling = standardization(raw[self.train][steps[self.train]], path)
        self.x = standardized(raw, steps, self.scaling, path)
        del raw
        self.vocab = Vocab([])   # no tokens: a checkpoint's vocabulary is empty
        self.label_names = self.labels = self.values = self.target_scaling = None
        if targets is None:
            raise DataError("give the targets: --targets Y.npy (" + TARGETS[kind] + ")")
        y = read_array(targets)
        if y.shape[0:1] != (N,):
            raise DataError(f"{targets}: {y.shape[0] if y.ndim else 'no'} rows for {N} sequences; give "
                            + TARGETS[kind])
        model = getattr(like, "model", None)   # a checkpoint's: its task says per step or per sequence
        self.per_step = model.config.task == "lm" if model is not None else \
            kind == "tag" or (kind == "regress" and y.ndim >= 2 and y.shape[1] == T)
        ranks = {("regress", True): (2, 3), ("regress", False): (1, 2), ("tag", True): (2,)}.get((kind, self.per_step), (1,))
        if y.ndim not in ranks or (self.per_step and y.shape[1] != T):
            what = (f"(N, {T}) or (N, {T}, K) values, a target per step" if kind == "regress" and self.per_step
                    else "(N,) or (N, K) values, a target per sequence" if kind == "regress" else TARGETS[kind])
            raise DataError(f"{targets}: {y.shape}; this {'model' if model is not None else 'task'} reads {what}")
        read = y[steps] if self.per_step else y   # what is read: (steps, ...) or (N, ...)
        if not np.all(np.isfinite(read)):
            raise DataError(f"{targets}: holds NaN or infinite values where they are read; give finite numbers")
        if kind == "regress":
            self.values = (y if y.ndim == ranks[-1] else y[..., None]).astype(np.float64)
            K = self.values.shape[-1]
            if model is not None:
                wants = model.config.vocab_size if self.per_step else model.config.num_classes
                if K != wants:
                    raise DataError(f"{targets}: {K} values a {'step' if self.per_step else 'sequence'}; this model "
                                    f"gives {wants}")
                self.target_scaling = saved_target_scaling(like, K)
            else:
                self.target_scaling = standardization(self.values[self.train][steps[self.train]] if self.per_step
                                                      else self.values[self.train], targets)
            self.values = ((self.values - self.target_scaling[0]) * self.target_scaling[1]).astype(np.float32)
            if self.per_step:
                self.values[~steps] = 0.0
        else:
            if not np.all(read == np.round(read)):
                raise DataError(f"{targets}: holds numbers that are not whole; give labels, " + TARGETS[kind])
            names = like and list(like.labels) or None
            self.label_names, labels = label_ids(np.where(steps, y, read.min()) if self.per_step else y, names,
                                                 targets)
            self.labels = labels

    @property
    def longest(self):
        return int(self.lengths.max())

    @property
    def outputs(self):
        """Classes, or values, per output row."""
        return len(self.label_names) if self.values is None else self.values.shape[-1]

    def inputs(self, picks):
        """The batch of sequences `picks`: inputs (T, B, D) up to their longest, and their lengths."""
        lengths = self.lengths[picks]
        return np.ascontiguousarray(self.x[picks, :lengths.max()].transpose(1, 0, 2)), lengths

    def targets(self, picks):
        """The batch's targets, as the core reads them: (B,) or (T, B) labels, (B, K) or (T, B, K) values."""
        y = self.labels if self.values is None else self.values
        y = y[picks]
        if self.per_step:
            y = y[:, :self.lengths[picks].max()].swapaxes(0, 1)
        return np.ascontiguousarray(y)

    def chars(self, picks):
        """Predictions in these sequences: one each, or one a step."""
        return int(self.lengths[picks].sum()) if self.per_step else len(picks)


TARGETS = {"classify": "(N,) whole numbers, a label per sequence", "tag": "(N, T) whole numbers, a label per step",
           "regress": "(N,) or (N, K) values per sequence, (N, T) or (N, T, K) per step"}


def read_lengths(path, N, T):
    """The lengths file's (N,) lengths in [1, T], or T for every sequence without one."""
    if path is None:
        return np.full(N, T, dtype=np.int32)
    raw = read_array(path)
    if not lengths_fit(raw, N, T):
        raise DataError(f"{path}: give {N} whole numbers in [1, {T}], one length per sequence (shape {raw.shape})")
    return raw.astype(np.int32)


def label_ids(y, names, path):
    """(label names, class ids shaped like y) of whole numbers y; names: a trained model's (a label it
    does not have is an error), else the distinct values in order."""
    values = np.asarray(y).astype(np.int64)
    distinct = [str(v) for v in np.unique(values)]
    names = names or sorted(distinct, key=int)
    index = {name: k for k, name in enumerate(names)}
    missing = sorted(set(distinct) - set(index), key=int)
    if missing:
        raise DataError(f"{path}: labels this model does not have: {', '.join(missing[:10])}")
    lookup = np.vectorize(lambda v: index[str(v)], otypes=[np.int32])
    return names, lookup(values).astype(np.int32)


def standardization(values, what):
    """(shift, scale) per column of values (rows, columns), float32: the mean and 1/deviation; a
    constant column's scale is 1. DataError naming `what` (the file) for numbers too large for that
    in float32 (a mean beyond 3e38, or a deviation whose square is beyond a double's range)."""
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    with np.errstate(all="ignore"):
        mean, std = values.mean(axis=0), values.std(axis=0)
        shift, scale = mean.astype(np.float32), np.where(std > 0, 1.0 / np.where(std > 0, std, 1.0), 1.0).astype(np.float32)
    if not (np.all(np.isfinite(shift)) and np.all(np.isfinite(std))):
        raise DataError(f"{what}: numbers too large to standardize in float32 (beyond about 1e19); scale them down")
    return shift, scale


def saved_target_scaling(ck, K):
    """A regression checkpoint's (shift, scale) of its K targets, from its metadata; DataError if it
    is missing or misshapen (a damaged checkpoint: this minrnn always writes it)."""
    try:
        return checked_scaling(ck.meta.get("target_scaling"), K, "target_scaling")
    except ValueError as e:
        raise DataError(f"the checkpoint's metadata is damaged ({e}); use the checkpoint its run wrote") from None


def given_sequences(m, x, lengths):
    """Raw inputs from Python, (N, T, D) floats, as a model's Sequences (standardized; no targets)."""
    data = Sequences.__new__(Sequences)
    x = np.asarray(x, dtype=np.float64)
    D = m.model.config.input_size
    if x.ndim != 3 or x.shape[2] != D or 0 in x.shape:
        raise UserError(f"inputs: give an array of shape (sequences, steps, {D}), not {x.shape}")
    N, T, _ = x.shape
    data.lengths = np.full(N, T, np.int32) if lengths is None else np.asarray(lengths)
    if not lengths_fit(data.lengths, N, T):
        raise UserError(f"lengths: give {N} whole numbers in [1, {T}]")
    data.lengths = data.lengths.astype(np.int32)
    steps = np.arange(T)[None, :] < data.lengths[:, None]
    if not np.all(np.isfinite(x[steps])):
        raise UserError("inputs: give finite numbers (NaN or infinite values found)")
    data.x = standardized(x, steps, m.checkpoint.input_scaling, "inputs")
    return data


def lengths_fit(a, N, T):
    """Whether a is N whole numbers in [1, T]: the lengths of N sequences of T steps."""
    return a.shape == (N,) and bool(np.all(a == np.round(a))) and a.min() >= 1 and a.max() <= T


def standardized(raw, steps, scaling, what):
    """raw (N, T, D) as the model reads it: (x - shift) * scale at the data steps, 0 elsewhere, float32."""
    return scaled(np.where(steps[:, :, None], raw, scaling[0]), scaling, what)


def scaled(raw, scaling, what):
    """(raw - shift) * scale as float32, what the model reads; DataError naming `what` (the file) if
    a value is beyond float32 then."""
    with np.errstate(all="ignore"):
        out = ((raw - scaling[0]) * scaling[1]).astype(np.float32)
    if not np.all(np.isfinite(out)):
        raise DataError(f"{what}: numbers too large for float32 once standardized (beyond about 3e38); scale them "
                        "down")
    return out
