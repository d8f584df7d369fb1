"""Records: a file of short texts (one per line, or per --record-sep), each its own sequence, and a
language model that writes whole records, conditioned on a label or a feature vector or not.

A record of n characters is framed by the start and end tokens: the model reads
[START, c1, ..., cn] and learns to predict [c1, ..., cn, END], n + 1 positions from a zero state.
A record may carry a label (lines "label<TAB>text"): the condition of a conditioned language
model, or the class of a classifier (classify.py); or a feature vector (row i of a .npy file for
record i).

Shapes of a batch of B records, T = the longest n + 1 among them (time-major, as the core's):
tokens, targets (T, B) int32, padded with the end token; lengths (B,) int32 = n + 1; for a
classifier, targets (B,) class ids; a condition: labels (B,) int32 or vectors (B, C) float32.
"""

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from minrnn import core
from minrnn.data import DataError, read_array
from minrnn.errors import UserError
from minrnn.reference import Config
from minrnn.resources import available_memory
from minrnn.tasks.base import (Known, Rows, ShuffledBatches, check_training_memory, shuffled_split, split_records,
                               training_memory, workspace_bytes)
from minrnn.tasks.lm import LanguageModel, per_char, units_of, with_skipped
from minrnn.tasks.sequences import scaled, standardization
from minrnn.text import Reading, add_counts, unescape, vocabulary


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


def read_features(path, count):
    """A (count, D) float64 array from a .npy file (count None: any number of rows); DataError for
    another shape, non-finite values or a file that is not a .npy of real numbers."""
    a = read_array(path)
    if a.ndim != 2 or a.shape[1] < 1:
        raise DataError(f"{path}: features must be a 2-D array of numbers (records, D), not shape {a.shape}")
    if count is not None and a.shape[0] != count:
        raise DataError(f"{path}: {a.shape[0]} rows of features for {count} records; give one row per record")
    bad = np.argwhere(~np.isfinite(a))
    if len(bad):
        raise DataError(f"{path}: row {bad[0][0]} holds {a[tuple(bad[0])]}; features must be finite numbers")
    return a


class RecordSet:
    """Records as token ids with their vocabulary, labels or features, split into training and
    validation records by a seeded shuffle.

    kind: "plain", "labels" (label<TAB>text) or "features" (a .npy row per record). like: a
    trained model's Known, to resume or evaluate."""

    def __init__(self, path, sep, reading=Reading("utf8"), val_frac=0.1, seed=1, kind="plain", features=None, like=None,
                 skip_unknown=False):
        labels = []

        def split(data):
            parts = split_records(data, sep, path)
            if kind == "labels":
                names, parts = split_labels(parts, path, sep)
                labels.extend(names)
            return [[p] for p in parts]

        rows = Rows(path, reading, split, like and like.vocab, framed=True, skip_unknown=skip_unknown)
        self.path, self.fingerprint, self.vocab, self.unknown = rows.path, rows.fingerprint, rows.vocab, rows.unknown
        self.ids = [row[0] for row in rows.rows]
        self.text_chars = rows.text_chars   # the characters the records' ids stand for
        n = len(self.ids)
        self.train, self.val = shuffled_split(n, val_frac, seed)
        self.label_names, self.labels, self.vectors, self.scaling = None, None, None, None
        if kind == "labels":
            self.label_names = (like and like.labels) or sorted(set(labels))
            index = {name: i for i, name in enumerate(self.label_names)}
            unknown = sorted(set(labels) - set(index))
            if unknown:
                raise DataError(f"{path}: labels this run does not have: {', '.join(unknown[:10])}")
            self.labels = np.array([index[x] for x in labels], dtype=np.int32)
        if kind == "features":
            raw = read_features(features, n)
            self.scaling = (like and like.scaling) or standardization(raw[self.train], features)
            self.vectors = scaled(raw, self.scaling, features)

    @property
    def longest(self):
        return max(len(t) for t in self.ids)

    def chars(self, picks):
        """Positions with a loss in these records: n + 1 each (the end token too)."""
        return int(sum(len(self.ids[i]) + 1 for i in picks))

    def condition(self, picks):
        """The records' labels or vectors (their condition), or None."""
        return self.labels[picks] if self.labels is not None else self.vectors[picks] if self.vectors is not None \
            else None


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


def record_kind(s):
    return "labels" if s["labels"] else "features" if s["features"] else "plain"


def read_records(path, s, kind, like=None, skip_unknown=False):
    return RecordSet(path, unescape(s["record_sep"]).encode("utf-8"), Reading.of(s), s["val_frac"], s["seed"], kind,
                     s["features"], like, skip_unknown)


def check_records_memory(cfg, s, data):
    """UserError if batches of the longest records do not fit, saying which lengths would."""
    B, T = s["batch_size"], data.longest + 1
    have = available_memory()
    fits = T - 1
    if have is not None:   # the longest record (characters) whose batches of B fit now
        ok = lambda t: core.workspace_floats(cfg, B, t) > 0 and training_memory(cfg, 4 * core.workspace_floats(cfg, B, t)) <= have
        lo, hi = 0, T   # ok(lo + 1) or lo == 0; not ok(hi + 1)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if ok(mid + 1) else (lo, mid - 1)
        fits = lo
    advice = (f"records of up to {fits} characters would fit: split the longest records, or use a smaller "
              "--batch-size, --hidden or --layers" if fits else
              "not even a record of one character fits: use a smaller --hidden or --layers")
    check_training_memory(cfg, workspace_bytes(cfg, B, T), f"training a {s['layers']}-layer {s['cell']} of "
                          f"{s['hidden']} units on records of up to {T - 1} characters, {B} at a time", advice)


def evaluate_records(model, records, picks, batch_size, cond_of=None, targets_of=None):
    """Loss of the records `picks` (a RecordSet's indices), dropout off, in batches of batch_size,
    cond_of(picks) their condition: (nats per prediction, nats per record, characters, the argmax
    of each record's logits when targets_of(picks) gives class targets (a classifier), else []). A
    record of n characters has n + 1 predictions of its characters (the end token too); a
    classifier's record, one."""
    total, chars, predicted = 0.0, 0, []
    for a in range(0, len(picks), batch_size):
        chunk = picks[a:a + batch_size]
        tokens, targets, lengths = frame([records.ids[i] for i in chunk], records.vocab)
        if targets_of is not None:
            targets = targets_of(chunk)
        fwd = model.forward(tokens, targets, lengths=lengths, cond=cond_of and cond_of(chunk),
                            want_logits=targets_of is not None)
        count = len(chunk) if targets_of is not None else int(lengths.sum())
        total += fwd.loss * (1 if model.config.reduction == "sum" else count)
        chars += int(lengths.sum())
        if fwd.logits is not None:
            predicted += list(np.argmax(fwd.logits, axis=1))
    per = len(picks) if targets_of is not None else chars
    return total / per, total / len(picks), chars, np.array(predicted, dtype=np.int64)


class Records(LanguageModel):
    name = "records"
    option = "lm"

    def chosen_by(self, s):
        return s["task"] == self.option and s["records"]

    def holds(self, ck):
        cfg = ck.model.config
        return cfg.task == "lm" and cfg.input_size == 0 and vocabulary(ck.vocab, ck.encoding).framed

    # ---- training

    def read(self, path, s, like=None):
        return read_records(path, s, record_kind(s), like)

    def config(self, s, data):
        cond = record_kind(s)
        C = len(data.label_names) if cond == "labels" else data.vectors.shape[1] if cond == "features" else 0
        return Config(vocab_size=len(data.vocab), hidden_size=s["hidden"], cell=s["cell"], embed_size=s["embed"],
                      num_layers=s["layers"], dropout=s["dropout"], cond={"labels": "label", "features": "vector"}
                      .get(cond, "none"), cond_size=C, one_bias=s["biases"] == 1, reduction=s["loss"])

    def batches(self, data, s, model):
        def make(picks):
            tokens, targets, lengths = frame([data.ids[i] for i in picks], data.vocab)
            return model.batch(tokens, targets, lengths, data.condition(picks))
        return ShuffledBatches(data.train, s["batch_size"], s["seed"], data.path, make, data.chars)

    def check_memory(self, cfg, s, data):
        check_records_memory(cfg, s, data)

    def validate(self, model, data, s):
        if len(data.val) == 0:
            return None, ""
        loss, per_record, _, _ = evaluate_records(model, data, data.val, s["batch_size"], data.condition)
        return loss, f" | {per_record:.3f} nats/record"

    def sample(self, model, data, seed):
        """A record for each of the first few labels, validation records' features, or four."""
        if data.labels is not None:
            names = data.label_names[:4]
            cond = np.arange(len(names), dtype=np.int32)
        elif data.vectors is not None:
            cond = data.vectors[data.val[:4] if len(data.val) else data.train[:4]]
            names = [f"features {i}" for i in range(len(cond))]
        else:
            cond, names = None, [""] * 4
        end, banned = self.ends(data.vocab)
        out = core.Generation(model, len(names), self.fed(data.vocab, []), 200, seed, 0.8, end=end, banned=banned,
                              cond=cond).run()
        return "\n".join(f"{name + ': ' if name else ''}" + data.vocab.to_bytes(ids).decode("utf-8", "replace")
                         for name, ids in zip(names, out))

    def saved(self, data):
        return dict(labels=data.label_names or (), cond_scaling=data.scaling)

    def check_resume(self, ck, data, s):
        if ck.cond_scaling is not None and not all(np.array_equal(a, b) for a, b in zip(ck.cond_scaling, data.scaling)):
            raise DataError(f"{s['features']} is not the features file this run was trained on; give that file, or "
                            "start a new run")

    # ---- use

    def starts(self, vocab):
        return [vocab.start_id]

    def ends(self, vocab):
        return vocab.end_id, vocab.start_id   # the start token is never drawn

    def condition(self, m, condition, num):
        """The condition as the model reads it for num streams: a label id (num,) or a standardized
        vector (num, C)."""
        cfg, labels = m.model.config, m.checkpoint.labels
        if cfg.cond == "none":
            return super().condition(m, condition, num)
        C, known = cfg.cond_size, ", ".join(labels)
        if condition is None:
            if cfg.cond == "label":
                raise UserError(f"this model is conditioned on a label: give condition (--condition LABEL), one of "
                                f"{known}")
            raise UserError(f"this model is conditioned on {C} features: give condition, {C} numbers (--vector, "
                            "or --features FILE.npy --row I)")
        if cfg.cond == "label":
            if not isinstance(condition, str) or condition not in labels:
                raise UserError(f"condition {condition!r} is not one of this model's labels: {known}")
            return np.full(num, labels.index(condition), dtype=np.int32)
        try:
            v = np.asarray(condition, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise UserError(f"condition: give {C} numbers") from None
        if v.shape != (C,) or not np.all(np.isfinite(v)):
            raise UserError(f"condition has {v.size} numbers; this model reads {C} finite ones")
        shift, scale = m.checkpoint.cond_scaling
        with np.errstate(over="ignore"):
            standard = ((v - shift) * scale).astype(np.float32)
        if not np.all(np.isfinite(standard)):
            raise UserError(f"condition: {v.tolist()} is too far from the training features for float32, once "
                            "standardized; give numbers nearer to theirs")
        return np.repeat(standard[None, :], num, axis=0)

    def pieces(self, prime, generation, vocab):
        """Each record: the prime, its characters and a newline."""
        yield b"".join(prime + vocab.to_bytes(ids) + b"\n" for ids in generation.run())

    def stream(self, m, prime, length, temperature, top_k, top_p, seed):
        raise UserError("a record model writes whole records: use generate")

    def evaluate(self, m, path, batch_size, seq_len, features, beam, targets=None, lengths=None, grid=None):
        cfg, ck = m.model.config, m.checkpoint
        s = dict(m.settings, features=features, val_frac=0.0)
        if cfg.cond == "vector" and features is None:
            raise UserError("this model is conditioned on features: give features (--features FILE.npy), one row "
                            "per record")
        kind = {"label": "labels", "vector": "features"}.get(cfg.cond, "plain")
        records = read_records(path, s, kind, Known(m.vocab, list(ck.labels) or None, ck.cond_scaling),
                               skip_unknown=True)
        add_counts(m.last_unknown, records.unknown)
        nats, per_record, chars, _ = evaluate_records(m.model, records, np.arange(len(records.ids)), batch_size,
                                                      records.condition)
        return RecordEvaluation(nats, per_record, chars, len(records.ids), dict(m.last_unknown), m.vocab.encoding,
                                records.text_chars)


@dataclass
class RecordEvaluation:
    """A language model on a file of records."""
    nats: float         # per character (a model of words: per token), the end of each record included
    per_record: float   # nats per record
    characters: int
    records: int
    unknown: dict = dataclasses.field(default_factory=dict)   # the characters skipped, as TextEvaluation's
    encoding: str = "utf8"
    text_chars: int = None   # the characters of the records (a model of words: its tokens')

    @property
    def bits(self):
        return self.nats / math.log(2)

    def report(self, path):
        unit, units = units_of(self.encoding)
        chars = ""
        if self.encoding == "words":   # the same total over the records' characters (the ends have none)
            nats = per_char(self.nats, self.characters, self.text_chars)
            chars = f" ({nats:.4f} nats/char, {nats / math.log(2):.4f} bits/char over their {self.text_chars:,} characters)"
        return with_skipped(f"{path}: {self.nats:.4f} nats/{unit}, {self.bits:.4f} bits/{unit} over {self.characters:,} "
                            f"{units} (the end of each record included){chars}; {self.per_record:.3f} nats per "
                            f"record over {self.records:,} records", self.unknown, self.encoding)
