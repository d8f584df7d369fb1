"""From a text file to batches: read, build the vocabulary, split off the validation tail, cut the
training text into B contiguous streams and walk them T characters at a time.

Shapes: a batch is (tokens, targets), each (T, B) int32, time-major; targets are tokens shifted by
one character. Stream b of an epoch holds characters [b L, (b + 1) L] of the training text.
"""

import hashlib
import math
import os

import numpy as np

from minrnn.text import TextError, Vocab, read_symbols


class DataError(ValueError):
    """Input that can't be trained on, with a message that says what to do."""


def read_file(path):
    """The bytes of a text file; DataError for anything that is not a readable, non-empty file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; give a text file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror})") from None
    if not data:
        raise DataError(f"{path}: the file is empty")
    return data


def fingerprint(data):
    return hashlib.sha256(data).hexdigest()


class Corpus:
    """A text as token ids, with its vocabulary, split into training text and a validation tail."""

    def __init__(self, path, encoding="utf8", val_frac=0.1, vocab=None):
        data = read_file(path)
        self.path, self.fingerprint = str(path), fingerprint(data)
        try:
            symbols = read_symbols(data, encoding)
        except TextError as e:
            raise DataError(f"{path}: {e}") from None
        self.vocab = vocab or Vocab.from_symbols(symbols, encoding)
        try:
            ids = self.vocab.encode(symbols)
        except TextError as e:   # only when resuming with a vocabulary from a checkpoint
            raise DataError(f"{path}: {e}") from None
        n_val = int(len(ids) * val_frac)
        self.train, self.val = ids[:len(ids) - n_val], ids[len(ids) - n_val:]


class Batches:
    """Training batches of B streams by T steps over the training text, in order."""

    def __init__(self, ids, batch_size, seq_len):
        self.B, self.T = batch_size, seq_len
        self.stream_len = (len(ids) - 1) // batch_size   # inputs per stream; targets reach one further
        self.per_epoch = self.stream_len // seq_len
        if self.per_epoch < 1:
            raise DataError(too_short_message(len(ids), batch_size, seq_len))
        L = self.stream_len
        starts = np.arange(batch_size) * L
        self.streams = np.stack([ids[s:s + L + 1] for s in starts])   # (B, L + 1)

    def __len__(self):
        return self.per_epoch

    def __getitem__(self, i):
        """Batch i of an epoch: (tokens, targets), each (T, B)."""
        a = i * self.T
        chunk = self.streams[:, a:a + self.T + 1]
        return np.ascontiguousarray(chunk[:, :-1].T), np.ascontiguousarray(chunk[:, 1:].T)


def too_short_message(n, batch_size, seq_len):
    need = batch_size * seq_len + 1
    options = [(batch_size, (n - 1) // batch_size), ((n - 1) // seq_len, seq_len), (1, n - 1)]
    fits = [f"--batch-size {b} --seq-len {t}" for b, t in options if b >= 1 and t >= 1][:2]
    hint = f"; sizes that fit: {' or '.join(fits)}" if fits else "; the text needs at least 2 characters"
    return (f"the training text has {n} characters, too short for one batch of "
            f"{batch_size} x {seq_len} (+1) = {need}{hint}")


def evaluate(model, ids, streams, seq_len):
    """Mean loss in nats per character of predicting ids[1:] from what precedes, with dropout off.
    The text is cut into `streams` contiguous streams, each run from a zero state in chunks of
    seq_len with the state carried. Returns (loss, characters predicted): the last few characters
    that don't fill a stream (fewer than `streams`) are not predicted."""
    streams = max(1, min(streams, (len(ids) - 1) // 2))
    L = (len(ids) - 1) // streams
    if L < 1:
        return math.nan, 0
    data = np.stack([ids[b * L:b * L + L + 1] for b in range(streams)])   # (streams, L + 1)
    state = model.zero_state(streams)
    total = 0.0
    for a in range(0, L, seq_len):
        chunk = data[:, a:a + seq_len + 1]
        tokens, targets = chunk[:, :-1].T, chunk[:, 1:].T
        loss, _, state = model.forward(tokens, targets, state, want_logits=False)
        total += loss * tokens.size
    return total / (streams * L), streams * L


def check_writable_folder(path):
    """Create the folder if needed and prove we can write in it, or raise DataError."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-test-{os.getpid()}")
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as e:
        raise DataError(f"cannot write to the output folder {path}: {e.strerror}; "
                        "choose another --out") from None
