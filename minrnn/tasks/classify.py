"""A classifier (many to one): records label<TAB>text, and a head on the top layer's output at
each record's last step that learns its label. Records are read and batched as records.py's are;
the targets of a batch are its records' labels, (B,) class ids."""

import dataclasses
from dataclasses import dataclass

import numpy as np

from minrnn.data import DataError
from minrnn.errors import UserError
from minrnn.reference import Config
from minrnn.tasks.base import REQUIRED, Known, ShuffledBatches, Task, probabilities
from minrnn.tasks.lm import with_skipped
from minrnn.tasks.records import check_records_memory, evaluate_records, frame, read_records
from minrnn.text import add_counts


class Classify(Task):
    name = "classify"
    option = "classify"
    option_help = "learn the label of each record, from lines label<TAB>text"
    what = "a classifier"
    use = "it labels texts: python -m minrnn classify --checkpoint CKPT TEXT (classify() from Python)"
    unit = "records"
    loss_unit = "nats/record"
    swings = True

    endpoint = "classify"
    fields = {"text": ("text", REQUIRED), "top": ("int", 3)}

    def chosen_by(self, s):
        return s["task"] == self.option and s["inputs"] is None

    def answer(self, m, r):
        return {"labels": [[label, p] for label, p in m.classify([r["text"]], r["top"])[0]]}

    def holds(self, ck):
        cfg = ck.model.config
        return cfg.task == "classify" and cfg.cond == "none" and cfg.input_size == 0

    def check(self, s):
        if s["features"]:
            raise ValueError("--task classify reads label<TAB>text records; --features is for --task lm")

    # ---- training

    def read(self, path, s, like=None):
        data = read_records(path, s, "labels", like)
        names = data.label_names
        if len(names) < 2:
            raise DataError(f"{path}: --task classify needs at least 2 labels, and this file has {len(names)} "
                            f"({', '.join(names)})")
        return data

    def config(self, s, data):
        return Config(vocab_size=len(data.vocab), hidden_size=s["hidden"], cell=s["cell"], embed_size=s["embed"],
                      num_layers=s["layers"], dropout=s["dropout"], task="classify",
                      num_classes=len(data.label_names), one_bias=s["biases"] == 1, reduction=s["loss"])

    def batches(self, data, s, model):
        def make(picks):
            tokens, _, lengths = frame([data.ids[i] for i in picks], data.vocab)
            return model.batch(tokens, data.labels[picks], lengths)
        return ShuffledBatches(data.train, s["batch_size"], s["seed"], data.path, make, data.chars)

    def check_memory(self, cfg, s, data):
        check_records_memory(cfg, s, data)

    def describe(self, s):
        return "classifier"

    def validate(self, model, data, s):
        if len(data.val) == 0:
            return None, ""
        loss, _, _, predicted = evaluate_records(model, data, data.val, s["batch_size"],
                                                 targets_of=lambda picks: data.labels[picks])
        truth = data.labels[data.val]
        majority = np.bincount(data.labels[data.train]).argmax()
        return loss, (f" | accuracy {np.mean(predicted == truth):.3f} (always {data.label_names[majority]}, the "
                      f"training records' commonest label: {np.mean(truth == majority):.3f})")

    def saved(self, data):
        return dict(labels=data.label_names)

    # ---- use

    def classify(self, m, texts, top, batch_size=64):
        ids = []
        for i, t in enumerate(texts):
            known = m.ids(t, f"text {i + 1}")
            if len(t) and len(known) == 0:
                raise UserError(f"text {i + 1}: none of its characters is in the model's vocabulary")
            ids.append(known)
        read = [i for i, t in enumerate(texts) if len(t)]   # an empty text has no labels
        results = [[] for _ in texts]
        labels = m.checkpoint.labels
        for a in range(0, len(read), batch_size):
            chunk = read[a:a + batch_size]
            tokens, _, lengths = frame([ids[i] for i in chunk], m.vocab)
            for i, p in zip(chunk, probabilities(m.model.forward(tokens, lengths=lengths).logits)):
                results[i] = [(labels[k], float(p[k])) for k in np.argsort(-p, kind="stable")[:top]]
        return results

    def evaluate(self, m, path, batch_size, seq_len, features, beam, targets=None, lengths=None, grid=None):
        ck = m.checkpoint
        records = read_records(path, dict(m.settings, val_frac=0.0), "labels", Known(m.vocab, list(ck.labels)),
                               skip_unknown=True)
        add_counts(m.last_unknown, records.unknown)
        _, nats, _, predicted = evaluate_records(m.model, records, np.arange(len(records.ids)), batch_size,
                                                 targets_of=lambda picks: records.labels[picks])
        K = len(ck.labels)
        confusion = np.zeros((K, K), dtype=np.int64)
        np.add.at(confusion, (records.labels, predicted), 1)
        return ClassifierEvaluation(nats, list(ck.labels), confusion, dict(m.last_unknown), m.vocab.encoding)


@dataclass
class ClassifierEvaluation:
    """A classifier on a file of label<TAB>text records."""
    nats: float         # per record
    labels: list        # the label names, in the confusion matrix's order
    confusion: object   # (K, K) counts; rows: the true label, columns: the predicted one
    unknown: dict = dataclasses.field(default_factory=dict)   # the characters skipped, as TextEvaluation's
    encoding: str = "utf8"
    noun: str = "records"   # what is classified

    @property
    def records(self):
        return int(self.confusion.sum())

    @property
    def loss(self):
        return self.nats

    def summary(self):
        """A validation line's figures."""
        return f"accuracy {self.accuracy:.3f} (always the commonest label: {self.majority:.3f})"

    @property
    def accuracy(self):
        return np.trace(self.confusion) / self.confusion.sum()

    @property
    def majority(self):
        """The accuracy of always saying the commonest label."""
        return self.confusion.sum(axis=1).max() / self.confusion.sum()

    @property
    def precision(self):
        """Per label, the share of the records said to have it that have it (None: none was said to)."""
        said = self.confusion.sum(axis=0)
        return [self.confusion[k, k] / said[k] if said[k] else None for k in range(len(said))]

    @property
    def recall(self):
        """Per label, the share of the records that have it said to have it (None: none has it)."""
        true = self.confusion.sum(axis=1)
        return [self.confusion[k, k] / true[k] if true[k] else None for k in range(len(true))]

    def report(self, path):
        """Accuracy, per-label precision and recall, and the confusion matrix."""
        one = self.noun[:-1]
        lines = [f"{path}: accuracy {self.accuracy:.4f} over {self.records:,} {self.noun} (always this file's "
                 f"commonest label: {self.majority:.4f}); loss {self.nats:.4f} nats/{one}"]
        width = max(max(len(n) for n in self.labels), 9)
        lines.append(f"{'label':<{width}}  precision  recall  {self.noun:>7}")
        for k, (name, p, r) in enumerate(zip(self.labels, self.precision, self.recall)):
            precision = f"{p:9.3f}" if p is not None else "        -"
            recall = f"{r:6.3f}" if r is not None else "     -"
            lines.append(f"{name:<{width}}  {precision}  {recall}  {self.confusion[k].sum():7d}")
        lines.append("confusion matrix (rows: true label, columns: predicted, in the order above)")
        for k, name in enumerate(self.labels):
            lines.append(f"{name:<{width}}  " + " ".join(f"{x:6d}" for x in self.confusion[k]))
        return with_skipped("\n".join(lines), self.unknown, self.encoding)
