"""Text to token ids and back.

A vocabulary is a sorted list of symbols: Unicode code points (encoding "utf8", --tokens chars),
byte values (encoding "bytes") or words (encoding "words", class WordVocab); a token id is a
symbol's index in it. Character and byte symbols and ids are int32 numpy arrays, 4 bytes a
character. The vocabulary of a record model (framed) has two more ids after the symbols: the start
and the end token, which no text contains; a checkpoint stores them as the symbols START_SYMBOL
and END_SYMBOL (minrnn.h's MINRNN_START_SYMBOL, MINRNN_END_SYMBOL).

Words: a text is cut into tokens by one rule (split_words; cext/examples/minrnn_sample.c has its
twin), and the tokens put end to end give the text back exactly: a word is a run of letters (any
code point that is neither whitespace nor punctuation; a longer run is cut every
MAX_TOKEN_CHARS - 1) with the one space before it if there is one (" cat"), a punctuation mark likewise (" (" or ","), and
every other whitespace character is a token of its own ("\n"). The vocabulary keeps the
commonest --vocab-size tokens that occur --min-count times or more; id 0 is the unknown word,
which every other token reads as and which is written "<unk>".
"""

import re
from typing import NamedTuple

import numpy as np

from minrnn.errors import UserError


class TextError(UserError):
    """Text that can't be read or encoded."""


# --tokens: what each value reads, as a checkpoint's encoding calls it
TOKENS = {"chars": "utf8", "words": "words", "bytes": "bytes"}
MAX_TOKEN_CHARS = 64   # minrnn.h's MINRNN_MAX_TOKEN_CHARS
TOKEN_END = -3         # ... MINRNN_TOKEN_END: ends each word of a stored vocabulary
UNKNOWN_WORD = "<unk>"
WHITESPACE = " \t\n\r\f\v"
# ASCII punctuation, Latin-1's (no-break space, inverted marks, guillemets, ...), the General
# Punctuation block (dashes, quotes, ellipsis, and its spaces) and CJK punctuation
PUNCTUATION = "!-/:-@\\[-`{-~\u00a0-\u00bf\u2000-\u206f\u3000-\u303f"
WORD_PATTERN = re.compile(f" ?[^{WHITESPACE}{PUNCTUATION}]{{1,{MAX_TOKEN_CHARS - 1}}}| ?[{PUNCTUATION}]|[{WHITESPACE}]")


def split_words(text):
    """str -> the list of its word tokens (module docstring); "".join of them is text."""
    return WORD_PATTERN.findall(text)


def read_symbols(data, encoding):
    """bytes -> its symbols: an int32 array of code points or byte values, or a list of word
    tokens. Invalid UTF-8 raises TextError with the byte offset; the caller says what to do about
    it."""
    if encoding == "bytes":
        return np.frombuffer(data, dtype=np.uint8).astype(np.int32)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TextError(f"invalid UTF-8 at byte offset {e.start}") from None
    if encoding == "words":
        return split_words(text)
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int32)


def show(symbol, encoding):
    """A symbol as a person can read it in an error message."""
    if encoding == "bytes":
        return f"byte 0x{symbol:02x}"
    return repr(symbol if encoding == "words" else chr(symbol))


def skipped(unknown, encoding):
    """What is said of the symbols outside a model's vocabulary, {symbol: count}: "N characters
    outside the model's vocabulary were skipped (K distinct: 'x' x2, ...)"; words are read as the
    unknown word instead."""
    commonest = sorted(unknown.items(), key=lambda item: -item[1])[:10]
    listed = ", ".join(f"{show(s, encoding)} x{c}" for s, c in commonest)
    what = ("words outside the model's vocabulary were read as the unknown word" if encoding == "words"
            else "characters outside the model's vocabulary were skipped")
    return f"{sum(unknown.values()):,} {what} ({len(unknown)} distinct: {listed}{', ...' if len(unknown) > 10 else ''})"


def add_counts(into, counts):
    """into += counts, as {key: count}."""
    for key, n in counts.items():
        into[key] = into.get(key, 0) + n


START_SYMBOL, END_SYMBOL = -1, -2   # a test holds them equal to minrnn.h's
MARKERS = [START_SYMBOL, END_SYMBOL]


class Vocab:
    unit, units = "char", "characters"   # what an id stands for, in messages

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

    def lengths(self, symbols, ids):
        """How many characters each of ids, encode_known(symbols)'s, stands for: one each."""
        return np.ones(len(ids), dtype=np.int64)

    def char_count(self, symbols, ids):
        """The characters ids, encode_known(symbols)'s, stand for: lengths(symbols, ids).sum()."""
        return len(ids)


class WordVocab(Vocab):
    """A vocabulary of word tokens (module docstring): symbols are strings, sorted by code point,
    the first the empty string, which stands for the unknown word (id 0). Stored, each token is its
    code points and TOKEN_END."""
    unit, units = "token", "tokens"

    def __init__(self, stored, encoding="words", framed=False):
        stored = [int(s) for s in stored]
        if stored[-2:] == MARKERS:
            stored, framed = stored[:-2], True
        tokens, token = [], []
        for s in stored:
            if s == TOKEN_END:
                tokens.append("".join(map(chr, token)))
                token = []
            else:
                token.append(s)
        self.symbols, self.encoding, self.markers = tokens, "words", list(MARKERS) if framed else []
        self._index = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def learn(cls, pieces, framed=False, size=None, min_count=1):
        """The vocabulary of the tokens of pieces (lists of them): the commonest (ties: first in
        code point order) that occur min_count times or more, size ids in all with the unknown
        word (and the markers, framed)."""
        counts = {}
        for piece in pieces:
            for token in piece:
                counts[token] = counts.get(token, 0) + 1
        kept = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
        if size is not None:
            kept = kept[:max(0, size - 1 - 2 * framed)]
        return cls(store_words([""] + sorted(kept)), framed=framed)

    @property
    def stored(self):
        return store_words(self.symbols) + self.markers

    def encode(self, symbols):
        """Word tokens -> int32 ids, the unknown word's (0) for a token outside the vocabulary."""
        return np.array([self._index.get(t, 0) for t in symbols], dtype=np.int32)

    def encode_known(self, symbols):
        ids = self.encode(symbols)
        unknown = {}
        for i in np.flatnonzero(ids == 0):
            unknown[symbols[i]] = unknown.get(symbols[i], 0) + 1
        return ids, unknown

    def to_bytes(self, ids):
        return "".join(self.symbols[i] or UNKNOWN_WORD for i in ids if i < len(self.symbols)).encode("utf-8")

    def id_of(self, symbol):
        return self._index.get(chr(symbol) if isinstance(symbol, int) else symbol)

    def lengths(self, symbols, ids):
        return np.array([len(t) for t in symbols], dtype=np.int64)   # (an unknown word: its own)

    def char_count(self, symbols, ids):
        return sum(map(len, symbols))


def store_words(tokens):
    """Word tokens as a checkpoint stores them: each one's code points, then TOKEN_END."""
    return [s for t in tokens for s in [*map(ord, t), TOKEN_END]]


class Reading(NamedTuple):
    """How a data file becomes symbols and a vocabulary: the encoding, and the limits on a
    vocabulary of words (learn's size and min_count)."""
    encoding: str
    size: int = None
    min_count: int = 1

    @classmethod
    def of(cls, s):
        """A run's settings' (settings.py, settled)."""
        return cls(TOKENS[s["tokens"]], s["vocab_size"], s["min_count"] or 1)


def vocabulary_kind(encoding):
    """The class of a vocabulary of this encoding: Vocab, or WordVocab."""
    return WordVocab if encoding == "words" else Vocab


def vocabulary(stored, encoding):
    """The Vocab (or WordVocab) of a checkpoint's vocabulary."""
    return vocabulary_kind(encoding)(stored, encoding)


def learn(pieces, encoding, framed=False, size=None, min_count=1):
    """The vocabulary of a training file's symbols (pieces: what read_symbols gave for each of its
    parts): every character or byte, or the commonest words (WordVocab.learn)."""
    if encoding == "words":
        return WordVocab.learn(pieces, framed, size, min_count)
    return Vocab.from_symbols(np.concatenate(pieces), encoding, framed)


def unescape(text):
    r"""\n, \t and \\ in a command-line string, so a shell user can type a newline."""
    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], text)
