"""Records: a file of short texts (one per line, or per --record-sep), each its own sequence.

A record of n characters is framed by the start and end tokens: the model reads
[START, c1, ..., cn] and learns to predict [c1, ..., cn, END], n + 1 positions from a zero state.
A record may carry a label (lines "label<TAB>text"): the condition of a conditioned language
model, or the class of a classifier; or a feature vector (row i of a .npy file for record i).

Shapes of a batch of B records, T = the longest n + 1 among them (time-major, as the core's):
tokens, targets (T, B) int32, padded with the end token; lengths (B,) int32 = n + 1; for a
classifier, targets (B,) class ids; a condition: labels (B,) int32 or vectors (B, C) float32.
"""

import numpy as np

from minrnn.data import DataError, fingerprint, read_file
from minrnn.reference import Rng
from minrnn.text import TextError, Vocab, read_symbols


def split_records(data, sep, path):
    """bytes -> [bytes] on sep; a trailing separator ends the last record rather than starting an
    empty one, and with sep b"\\n" a Windows line end's b"\\r" is dropped. DataError for an empty
    record."""
    parts = data.split(sep)
    if parts and parts[-1] == b"":
        parts.pop()
    if sep == b"\n":
        parts = [p[:-1] if p.endswith(b"\r") else p for p in parts]
    where = "line" if sep == b"\n" else "record"
    for i, p in enumerate(parts):
        if not p:
            raise DataError(f"{path}: {where} {i + 1} is an empty record; remove it (records need at "
                            "least one character)")
    if not parts:
        raise DataError(f"{path}: no records")
    return parts


def split_labels(parts, path, sep):
    """[b"label\\ttext"] -> (labels, texts) as bytes; DataError for a record without a tab, or an
    empty label or text."""
    where = "line" if sep == b"\n" else "record"
    labels, texts = [], []
    for i, p in enumerate(parts):
        label, tab, text = p.partition(b"\t")
        if not tab:
            raise DataError(f"{path}: {where} {i + 1} has no tab; labelled records are label<TAB>text")
        if not label.strip() or not text:
            raise DataError(f"{path}: {where} {i + 1} has an empty {'label' if not label.strip() else 'text'}; "
                            "labelled records are label<TAB>text, both non-empty")
        labels.append(label.decode("utf-8", "replace").strip())
        texts.append(text)
    return labels, texts


def permutation(n, seed):
    """Fisher-Yates from the shared generator: the same order for the same seed, everywhere."""
    order, rng = list(range(n)), Rng(seed)
    for i in range(n - 1, 0, -1):
        j = min(int(rng.uniform() * (i + 1)), i)
        order[i], order[j] = order[j], order[i]
    return np.array(order, dtype=np.int64)


def epoch_seed(seed, epoch):
    """The seed of an epoch's order: different for every epoch, and for the validation split."""
    return (seed * 0x9E3779B97F4A7C15 + epoch + 1) % 2**64


def read_features(path, count):
    """A (count, D) float32 array from a .npy file, each column standardized later; DataError for
    another shape, non-finite values or a file that is not .npy."""
    try:
        with open(path, "rb") as f:
            a = np.load(f, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a .npy array file ({e}); save features with numpy.save") from None
    if a.ndim != 2 or a.shape[1] < 1 or not np.issubdtype(a.dtype, np.number):
        raise DataError(f"{path}: features must be a 2-D array of numbers (records, D), not shape {a.shape} "
                        f"of {a.dtype}")
    if count is not None and a.shape[0] != count:
        raise DataError(f"{path}: {a.shape[0]} rows of features for {count} records; give one row per record")
    a = a.astype(np.float64)
    bad = np.argwhere(~np.isfinite(a))
    if len(bad):
        raise DataError(f"{path}: row {bad[0][0]} holds {a[tuple(bad[0])]}; features must be finite numbers")
    return a


def standardization(vectors):
    """(shift, scale), (D,) float32 each: minus the mean, divided by the standard deviation of each
    column (over the training records), so every feature reaches the model at unit scale, whatever
    its extractor's units. A constant column gets scale 1."""
    mean, std = vectors.mean(axis=0), vectors.std(axis=0)
    return mean.astype(np.float32), np.where(std > 0, 1.0 / np.where(std > 0, std, 1.0), 1.0).astype(np.float32)


class RecordSet:
    """Records as token ids with their vocabulary, labels or features, split into training and
    validation records by a seeded shuffle (a file sorted by label still validates on every label).

    kind: "plain", "labels" (label<TAB>text) or "features" (a .npy row per record). A trained
    model's vocabulary, label names and feature scaling can be given (to resume or evaluate)."""

    def __init__(self, path, sep, encoding="utf8", val_frac=0.1, seed=1, kind="plain", features=None,
                 vocab=None, label_names=None, scaling=None):
        data = read_file(path)
        self.path, self.fingerprint = str(path), fingerprint(data)
        parts = split_records(data, sep, path)
        del data
        labels = None
        if kind == "labels":
            labels, parts = split_labels(parts, path, sep)
        try:
            self.texts = [read_symbols(p, encoding) for p in parts]
        except TextError as e:
            hint = "; use --encoding bytes to read raw bytes" if encoding == "utf8" and vocab is None else ""
            raise DataError(f"{path}: {e}{hint}") from None
        self.vocab = vocab or Vocab.from_symbols(np.concatenate(self.texts), encoding, framed=True)
        try:
            self.ids = [self.vocab.encode(t) for t in self.texts]
        except TextError as e:   # only when resuming with a vocabulary from a checkpoint
            raise DataError(f"{path}: {e}") from None
        n = len(self.ids)
        order = permutation(n, epoch_seed(seed, -1))
        n_val = int(n * val_frac)
        self.train, self.val = order[:n - n_val], order[n - n_val:]
        self.label_names, self.labels, self.vectors, self.scaling = None, None, None, None
        if labels is not None:
            self.label_names = label_names or sorted(set(labels))
            index = {name: i for i, name in enumerate(self.label_names)}
            unknown = sorted(set(labels) - set(index))
            if unknown:
                raise DataError(f"{path}: labels this run does not have: {', '.join(unknown[:10])}")
            self.labels = np.array([index[x] for x in labels], dtype=np.int32)
        if kind == "features":
            raw = read_features(features, n)
            self.scaling = scaling or standardization(raw[self.train])
            self.vectors = ((raw - self.scaling[0]) * self.scaling[1]).astype(np.float32)

    @property
    def longest(self):
        return max(len(t) for t in self.ids)

    def chars(self, picks):
        """Positions with a loss in these records: n + 1 each (the end token too)."""
        return int(sum(len(self.ids[i]) + 1 for i in picks))


def frame(ids_list, vocab):
    """(tokens, targets, lengths) for records given as id arrays: see the module's shapes."""
    lengths = np.array([len(x) + 1 for x in ids_list], dtype=np.int32)
    T, B = int(lengths.max()), len(ids_list)
    tokens = np.full((T, B), vocab.end_id, dtype=np.int32)
    targets = np.full((T, B), vocab.end_id, dtype=np.int32)
    for b, x in enumerate(ids_list):
        tokens[0, b] = vocab.start_id
        tokens[1:len(x) + 1, b] = x
        targets[:len(x), b] = x
    return tokens, targets, lengths


class RecordBatches:
    """Training batches of B records, in an order shuffled for each epoch from the run's seed
    (so a resumed run sees the same order). The last len % B records of an epoch's order sit out
    that epoch (different ones each epoch). A batch is the arguments of Trainer.step."""

    def __init__(self, records, batch_size, seed, task="lm", cond=None):
        self.records, self.B, self.seed, self.task, self.cond = records, batch_size, seed, task, cond
        self.per_epoch = len(records.train) // batch_size
        if self.per_epoch < 1:
            raise DataError(f"{records.path}: {len(records.train)} training records, fewer than one batch of "
                            f"{batch_size}; use --batch-size {max(1, len(records.train))} or more records")
        self._epoch, self._order = None, None

    def __len__(self):
        return self.per_epoch

    def picks(self, epoch, i):
        if epoch != self._epoch:
            self._epoch, self._order = epoch, self.records.train[permutation(len(self.records.train),
                                                                             epoch_seed(self.seed, epoch))]
        return self._order[i * self.B:(i + 1) * self.B]

    def batch(self, epoch, i):
        return record_batch(self.records, self.picks(epoch, i), self.task, self.cond)

    @property
    def chars_per_step(self):
        return self.records.chars(self.records.train) / len(self.records.train) * self.B


def record_batch(records, picks, task, cond):
    """Trainer.step's arguments (tokens, targets, lengths, cond) for the records `picks`."""
    tokens, targets, lengths = frame([records.ids[i] for i in picks], records.vocab)
    if task == "classify":
        targets = records.labels[picks]
    c = None
    if cond == "label":
        c = records.labels[picks]
    elif cond == "vector":
        c = records.vectors[picks]
    return tokens, targets, lengths, c
