"""Pairs for sequence to sequence: a file of `source<TAB>target` lines, one pair per line.

One vocabulary holds the symbols of both sides, then the start and end tokens (a framed Vocab).
The encoder reads a source's n ids; the decoder reads [START, y1..ym] and learns [y1..ym, END].
Shapes of a batch of B pairs (time-major, as the core's): source (Ts, B), inputs and targets
(Td, B) int32, padded with 0 (never read); source_lengths (B,) = n and target_lengths (B,) = m + 1.
"""

import numpy as np

from minrnn import core
from minrnn.data import DataError, fingerprint, read_file
from minrnn.records import RecordBatches, epoch_seed, permutation, split_records
from minrnn.text import TextError, Vocab, read_symbols


def split_pairs(lines, path, max_source):
    """[b"source\\ttarget"] -> (sources, targets) as bytes; DataError naming the first line without a
    tab, with an empty side, or with a source longer than max_source characters (bytes are counted
    after decoding, by the caller)."""
    sources, targets = [], []
    for i, line in enumerate(lines):
        source, tab, target = line.partition(b"\t")
        if not tab:
            raise DataError(f"{path}: line {i + 1} has no tab; seq2seq pairs are source<TAB>target")
        if not source or not target:
            raise DataError(f"{path}: line {i + 1} has an empty {'source' if not source else 'target'}; "
                            "seq2seq pairs are source<TAB>target, both non-empty")
        sources.append(source)
        targets.append(target)
    return sources, targets


def decode_side(parts, encoding, path, what):
    try:
        return [read_symbols(p, encoding) for p in parts]
    except TextError as e:
        hint = "; use --encoding bytes to read raw bytes" if encoding == "utf8" else ""
        raise DataError(f"{path}: a {what}: {e}{hint}") from None


def check_source_lengths(sources, max_source, path):
    for i, s in enumerate(sources):
        if len(s) > max_source:
            raise DataError(f"{path}: line {i + 1} has a source of {len(s)} characters, longer than "
                            f"--max-source {max_source}; shorten it, or train with a larger --max-source")


class PairSet:
    """Pairs as token ids with their vocabulary, split into training and validation pairs by a
    seeded shuffle. A trained model's vocabulary can be given (to resume or evaluate)."""

    def __init__(self, path, encoding="utf8", val_frac=0.1, seed=1, max_source=200, vocab=None):
        data = read_file(path)
        self.path, self.fingerprint = str(path), fingerprint(data)
        lines = split_records(data, b"\n", path)
        del data
        sources, targets = split_pairs(lines, path, max_source)
        self.sources = decode_side(sources, encoding, path, "source")
        self.targets = decode_side(targets, encoding, path, "target")
        check_source_lengths(self.sources, max_source, path)
        self.vocab = vocab or Vocab.from_symbols(np.concatenate(self.sources + self.targets), encoding, framed=True)
        try:
            self.source_ids = [self.vocab.encode(s) for s in self.sources]
            self.target_ids = [self.vocab.encode(t) for t in self.targets]
        except TextError as e:   # only with a vocabulary from a checkpoint
            raise DataError(f"{path}: {e}") from None
        n = len(self.source_ids)
        order = permutation(n, epoch_seed(seed, -1))
        n_val = int(n * val_frac)
        self.train, self.val = order[:n - n_val], order[n - n_val:]

    @property
    def longest_source(self):
        return max(len(s) for s in self.source_ids)

    @property
    def longest_target(self):
        return max(len(t) for t in self.target_ids)

    def chars(self, picks):
        """Positions with a loss in these pairs: m + 1 each (the end token too)."""
        return int(sum(len(self.target_ids[i]) + 1 for i in picks))

    def pairs(self, picks):
        """core.Pairs of the pairs `picks`, framed and padded."""
        return frame_pairs([self.source_ids[i] for i in picks], [self.target_ids[i] for i in picks], self.vocab)


def frame_pairs(sources, targets, vocab):
    """core.Pairs for sources and targets given as id arrays: see the module's shapes."""
    B = len(sources)
    source_lengths = np.array([len(s) for s in sources], dtype=np.int32)
    target_lengths = np.array([len(t) + 1 for t in targets], dtype=np.int32)
    Ts, Td = int(source_lengths.max()), int(target_lengths.max())
    source = np.zeros((Ts, B), dtype=np.int32)
    inputs = np.zeros((Td, B), dtype=np.int32)
    out = np.zeros((Td, B), dtype=np.int32)
    for b, (s, t) in enumerate(zip(sources, targets)):
        source[:len(s), b] = s
        inputs[0, b] = vocab.start_id
        inputs[1:len(t) + 1, b] = t
        out[:len(t), b] = t
        out[len(t), b] = vocab.end_id
    return core.Pairs(source, source_lengths, inputs, out, target_lengths)


class PairBatches(RecordBatches):
    """Training batches of B pairs, shuffled for each epoch from the run's seed, as RecordBatches'
    records are. A batch is the argument of Trainer.step: (Pairs,)."""

    def batch(self, epoch, i):
        return (self.records.pairs(self.picks(epoch, i)),)


# ---- evaluation

def edit_distance(a, b):
    """Levenshtein distance between two id sequences (insertions, deletions, substitutions)."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (x != y))
    return row[-1]


def max_length_for(target_ids):
    """translate's bound on the steps for a target like these: twice the longest, and 10 more."""
    return 2 * max((len(t) for t in target_ids), default=0) + 10


def pairs_loss(model, pairs, picks, batch_size):
    """Nats per target character (END included) on the pairs `picks`, teacher-forced, dropout off."""
    total, chars = 0.0, 0
    for a in range(0, len(picks), batch_size):
        chunk = picks[a:a + batch_size]
        fwd = model.forward(pairs.pairs(chunk), want_logits=False)
        count = pairs.chars(chunk)
        total += fwd.loss * count
        chars += count
    return total / max(chars, 1)


def translation_scores(pairs, picks, translations):
    """(exact-match accuracy, character error rate = edit distance / target characters) of the
    translations of the pairs `picks`."""
    exact = errors = length = 0
    for i, out in zip(picks, translations):
        truth = pairs.target_ids[i].tolist()
        exact += out == truth
        errors += edit_distance(out, truth)
        length += len(truth)
    return exact / max(len(picks), 1), errors / max(length, 1)


def translate_all(model, pairs, picks, beam=1, max_length=None):
    """The translations (ids) of the sources of the pairs `picks`."""
    if max_length is None:
        max_length = max_length_for(pairs.target_ids)
    return [model.translate(pairs.source_ids[i], beam=beam, max_length=max_length)[0] for i in picks]
