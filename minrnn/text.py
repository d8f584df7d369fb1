"""Text to token ids and back.

A vocabulary is a sorted list of symbols: Unicode code points (encoding "utf8") or byte values
(encoding "bytes"); a token id is a symbol's index in it. Symbols and ids are int32 numpy arrays,
4 bytes a character.
"""

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


class Vocab:
    def __init__(self, symbols, encoding="utf8"):
        self.symbols = sorted(int(s) for s in symbols)
        self.encoding = encoding
        self._sorted = np.array(self.symbols, dtype=np.int32)

    @classmethod
    def from_symbols(cls, symbols, encoding):
        return cls(np.unique(np.asarray(symbols, dtype=np.int32)), encoding)

    def __len__(self):
        return len(self.symbols)

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
        if self.encoding == "bytes":
            return bytes(self.symbols[i] for i in ids)
        return "".join(chr(self.symbols[i]) for i in ids).encode("utf-8")

    @property
    def start_id(self):
        """What generation starts from without a prime: a newline if there is one, else id 0."""
        ids, known = self._lookup([10])
        return int(ids[0]) if known[0] else 0
