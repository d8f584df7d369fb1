"""Text to token ids and back.

A vocabulary is a sorted list of symbols: Unicode code points (encoding "utf8") or byte values
(encoding "bytes"); a token id is a symbol's index in it. Symbols and ids are int32 numpy arrays,
4 bytes a character. The vocabulary of a record model (framed) has two more ids after the
symbols: the start and the end token, which no text contains; a checkpoint stores them as the
symbols START_SYMBOL and END_SYMBOL (minrnn.h's MINRNN_START_SYMBOL, MINRNN_END_SYMBOL).
"""

import re

import numpy as np

from minrnn.errors import UserError


class TextError(UserError):
    """Text that can't be read or encoded."""


def read_symbols(data, encoding):
    """bytes -> int32 array of symbols. Invalid UTF-8 raises TextError with the byte offset; the
    caller says what to do about it."""
    if encoding == "bytes":
        return np.frombuffer(data, dtype=np.uint8).astype(np.int32)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TextError(f"invalid UTF-8 at byte offset {e.start}") from None
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int32)


def show(symbol, encoding):
    """A symbol as a person can read it in an error message."""
    if encoding == "bytes":
        return f"byte 0x{symbol:02x}"
    return repr(chr(symbol))


def skipped(unknown, encoding):
    """What is said of the characters outside a model's vocabulary that it skipped, {symbol: count}:
    "N characters outside the model's vocabulary were skipped (K distinct: 'x' x2, ...)"."""
    commonest = sorted(unknown.items(), key=lambda item: -item[1])[:10]
    listed = ", ".join(f"{show(s, encoding)} x{c}" for s, c in commonest)
    return (f"{sum(unknown.values()):,} characters outside the model's vocabulary were skipped "
            f"({len(unknown)} distinct: {listed}{', ...' if len(unknown) > 10 else ''})")


def add_counts(into, counts):
    """into += counts, as {key: count}."""
    for key, n in counts.items():
        into[key] = into.get(key, 0) + n


START_SYMBOL, END_SYMBOL = -1, -2   # a test holds them equal to minrnn.h's
MARKERS = [START_SYMBOL, END_SYMBOL]


class Vocab:
    def __init__(self, symbols, encoding="utf8", framed=False):
        """symbols: the text's symbols, or a checkpoint's vocabulary (with START_SYMBOL and
        END_SYMBOL at the end for a framed one)."""
        symbols = [int(s) for s in symbols]
        if symbols[-2:] == MARKERS:
            symbols, framed = symbols[:-2], True
        self.symbols = sorted(symbols)
        self.encoding, self.markers = encoding, list(MARKERS) if framed else []   # their ids follow the symbols'
        self._sorted = np.array(self.symbols, dtype=np.int32)

    @classmethod
    def from_symbols(cls, symbols, encoding, framed=False):
        return cls(np.unique(np.asarray(symbols, dtype=np.int32)), encoding, framed)

    def __len__(self):
        return len(self.symbols) + len(self.markers)

    @property
    def framed(self):
        """Whether it has the start and end tokens (a record model's)."""
        return bool(self.markers)

    @property
    def stored(self):
        """The vocabulary as a checkpoint holds it."""
        return self.symbols + self.markers

    def marker_id(self, marker):
        """The id of START_SYMBOL or END_SYMBOL, or None if the vocabulary has no markers."""
        return len(self.symbols) + self.markers.index(marker) if marker in self.markers else None

    @property
    def start_id(self):
        return self.marker_id(START_SYMBOL)

    @property
    def end_id(self):
        return self.marker_id(END_SYMBOL)

    def _lookup(self, symbols):
        """(ids, known) for an array of symbols: known[i] says whether symbols[i] is in the vocabulary."""
        symbols = np.asarray(symbols, dtype=np.int32)
        ids = np.searchsorted(self._sorted, symbols).astype(np.int32)
        known = self._sorted[np.minimum(ids, len(self.symbols) - 1)] == symbols
        return ids, known

    def encode(self, symbols):
        """symbols -> int32 ids; TextError naming the symbols outside the vocabulary."""
        ids, known = self._lookup(symbols)
        if not known.all():
            unknown = np.unique(np.asarray(symbols, dtype=np.int32)[~known])
            listed = ", ".join(show(int(s), self.encoding) for s in unknown[:20])
            more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
            raise TextError(f"not in the model's vocabulary: {listed}{more}")
        return ids

    def encode_known(self, symbols):
        """(ids of the symbols in the vocabulary, {unknown symbol: count}): for evaluation."""
        ids, known = self._lookup(symbols)
        unknown, counts = np.unique(np.asarray(symbols, dtype=np.int32)[~known], return_counts=True)
        return ids[known], {int(s): int(c) for s, c in zip(unknown, counts)}

    def to_bytes(self, ids):
        """The text of ids; the start and end tokens have none."""
        symbols = [self.symbols[i] for i in ids if i < len(self.symbols)]
        if self.encoding == "bytes":
            return bytes(symbols)
        return "".join(map(chr, symbols)).encode("utf-8")

    def id_of(self, symbol):
        """The id of a symbol, or None if it is not in the vocabulary."""
        ids, known = self._lookup([symbol])
        return int(ids[0]) if known[0] else None


def unescape(text):
    r"""\n, \t and \\ in a command-line string, so a shell user can type a newline."""
    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], text)
