"""Text to token ids and back, and generating text from a model.

A vocabulary is a sorted list of symbols: Unicode code points (encoding "utf8") or byte values
(encoding "bytes"); a token id is a symbol's index in it.
"""

import numpy as np

from minrnn import core


class TextError(ValueError):
    """Text that can't be read or encoded, with a message that says what to do."""


def read_symbols(data, encoding):
    """bytes -> list of symbols. Invalid UTF-8 raises TextError with the byte offset."""
    if encoding == "bytes":
        return list(data)
    try:
        return [ord(c) for c in data.decode("utf-8")]
    except UnicodeDecodeError as e:
        raise TextError(f"invalid UTF-8 at byte offset {e.start}; "
                        "use --encoding bytes to read raw bytes") from None


def show(symbol, encoding):
    """A symbol as a person can read it in an error message."""
    if encoding == "bytes":
        return f"byte 0x{symbol:02x}"
    return repr(chr(symbol))


class Vocab:
    def __init__(self, symbols, encoding="utf8"):
        self.symbols = sorted(symbols)
        self.encoding = encoding
        self.index = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def from_symbols(cls, symbols, encoding):
        return cls(set(symbols), encoding)

    def __len__(self):
        return len(self.symbols)

    def encode(self, symbols):
        """symbols -> int32 ids; TextError naming the symbols outside the vocabulary."""
        unknown = sorted(set(symbols) - self.index.keys())
        if unknown:
            listed = ", ".join(show(s, self.encoding) for s in unknown[:20])
            more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
            raise TextError(f"not in the model's vocabulary: {listed}{more}")
        return np.array([self.index[s] for s in symbols], dtype=np.int32)

    def encode_known(self, symbols):
        """(ids of the symbols in the vocabulary, {unknown symbol: count}): for evaluation."""
        ids, unknown = [], {}
        for s in symbols:
            i = self.index.get(s)
            if i is None:
                unknown[s] = unknown.get(s, 0) + 1
            else:
                ids.append(i)
        return np.array(ids, dtype=np.int32), unknown

    def to_bytes(self, ids):
        if self.encoding == "bytes":
            return bytes(self.symbols[i] for i in ids)
        return "".join(chr(self.symbols[i]) for i in ids).encode("utf-8")

    @property
    def start_id(self):
        """What generation starts from without a prime: a newline if there is one, else id 0."""
        return self.index.get(10, 0)


def generate(model, vocab, prime_ids, length, seed, temperature=1.0, top_k=0, top_p=1.0):
    """Yield `length` token ids sampled one at a time, after feeding the prime (or the start symbol,
    which is not part of the output) through a zero state. The pure-C example program
    (cext/examples/minrnn_sample.c) does exactly this, so the same seed gives the same text."""
    rng = core.Rng(seed)
    state = model.zero_state(1)
    logits = None
    for token in (prime_ids if len(prime_ids) else [vocab.start_id]):
        logits = model.step([token], state)
    for n in range(length):
        token = core.sample(logits[0], rng, temperature, top_k, top_p)
        yield token
        if n + 1 < length:
            logits = model.step([token], state)
