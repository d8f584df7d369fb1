"""From a text file to batches: read, build the vocabulary, split off the validation tail, cut the
training text into B contiguous streams and walk them T characters at a time.

Shapes: a batch is (tokens, targets), each (T, B) int32, time-major; targets are tokens shifted by
one character. Stream b of an epoch holds characters [b n, (b + 1) n] of the training text, where
n is the stream length.
"""

import hashlib
import os
import stat

import numpy as np

from minrnn.errors import UserError
from minrnn.resources import available_memory, size_text
from minrnn.text import TextError, Vocab, read_symbols

# Bytes of memory per byte of text while a text is read and encoded: the bytes, the decoded string
# (up to 4 a character), its UTF-32 copy, the symbols, the ids and the training streams (4 each).
MEMORY_PER_TEXT_BYTE = 20


class DataError(UserError):
    """Input that can't be trained on."""


def read_file(path):
    """The bytes of a text file; DataError for anything that is not a readable, non-empty file (or
    pipe) whose text fits in memory."""
    try:
        with open(path, "rb") as f:
            return read_bounded(f, path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; give a text file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror})") from None


def read_bounded(f, path):
    st = os.fstat(f.fileno())
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode)):
        raise DataError(f"{path}: is a device, not a text file; give a text file")
    have = available_memory()
    limit = None if have is None else have // MEMORY_PER_TEXT_BYTE
    size = st.st_size if stat.S_ISREG(st.st_mode) else None
    if limit is not None and size is not None and size > limit:
        raise DataError(f"{path}: {size_text(size)} of text needs about {size_text(size * MEMORY_PER_TEXT_BYTE)} "
                        f"of memory to train on, and {size_text(have)} is available; give a shorter text")
    data = f.read() if limit is None or size is not None else f.read(limit + 1)
    if limit is not None and len(data) > limit:   # a pipe that goes on and on
        raise DataError(f"{path}: more than {size_text(limit)} of text, more than fits in memory "
                        f"({size_text(have)} available); give a shorter text")
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
            hint = "; use --encoding bytes to read raw bytes" if encoding == "utf8" and vocab is None else ""
            raise DataError(f"{path}: {e}{hint}") from None
        del data
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
        n = self.stream_len
        self.streams = np.stack([ids[b * n:b * n + n + 1] for b in range(batch_size)])   # (B, n + 1)

    def __len__(self):
        return self.per_epoch

    @property
    def chars_per_step(self):
        return self.B * self.T

    def batch(self, epoch, i):
        """Batch i of every epoch: (tokens, targets), each (T, B)."""
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
