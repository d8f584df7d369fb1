"""What the two language-model tasks (a text, and records) share: drawing samples through the
library's generation loop (core.Generation), the loss of a text, and stepping through one."""

import codecs
import math
from dataclasses import dataclass

import numpy as np

from minrnn import core
from minrnn.errors import UserError
from minrnn.resources import require_memory
from minrnn.tasks.base import Task, probabilities, workspace_bytes
from minrnn.text import TextError, skipped, vocabulary_kind


class LanguageModel(Task):
    """A model that writes text a token at a time. A subclass says what a stream starts from
    (starts, fed), what ends one and what is never drawn (ends), what the condition is
    (condition), and how the sample command prints samples (pieces)."""

    what = "a language model"
    use = "it writes text: python -m minrnn sample --checkpoint CKPT (generate() from Python)"

    def starts(self, vocab):
        """The ids a stream reads from its zero state before any text."""
        return []

    def fed(self, vocab, prime_ids):
        """The ids fed to every stream before its first draw."""
        return self.starts(vocab) + list(prime_ids)

    def pieces(self, prime, generation, vocab):
        """The bytes the sample command prints, a piece at a time: each sample after the prime."""
        raise NotImplementedError

    def ends(self, vocab):
        """(the id that ends a stream, the id never drawn), each or None."""
        return None, None

    def condition(self, m, condition, num):
        """The condition of num streams as the model reads it, or None."""
        if condition is not None:
            raise UserError("this model has no condition; leave the condition out (--condition, --vector, --features)")
        return None

    # ---- drawing

    endpoint = "generate"
    fields = {"prime": ("text", ""), "length": ("int", 200), "temperature": ("number", 1.0), "top_k": ("int", 0),
              "top_p": ("number", 1.0), "seed": ("int", None), "stop": ("text", ""), "condition": ("condition", None),
              "stream": ("bool", False)}

    def slot(self, m, r):
        """The stream `sample --prime P --length N --seed S ...` draws, as a core.Slot."""
        prime_ids = m.ids(r["prime"], "prime") if r["prime"] else []
        cond = self.condition(m, r["condition"], 1)
        end, banned = self.ends(m.vocab)
        return core.Slot(self.fed(m.vocab, prime_ids), r["length"], m.draw_seed(r["seed"]), r["temperature"],
                         r["top_k"], r["top_p"], end, banned, stop_ids(m, r["stop"].encode("utf-8", "surrogateescape")),
                         None if cond is None else cond[0])

    def generation(self, m, prime, num, length, temperature, top_k, top_p, seed, condition, stop=b""):
        """A core.Generation of num samples after the prime (text, or bytes as a file holds them),
        drawn from `seed` (None: a new one, which m.last_seed keeps)."""
        prime_ids = m.ids(prime, "prime") if prime else []
        cond = self.condition(m, condition, num)
        end, banned = self.ends(m.vocab)
        return core.Generation(m.model, num, self.fed(m.vocab, prime_ids), length, m.draw_seed(seed), temperature,
                               top_k, top_p, end, banned, stop_ids(m, stop), cond)

    def generate(self, m, prime, length, temperature, top_k, top_p, seed, condition, num):
        samples = self.generation(m, prime, 1 if num is None else num, length, temperature, top_k, top_p, seed,
                                  condition).run()
        prime = prime if isinstance(prime, str) else bytes(prime).decode("utf-8", "replace")
        texts = [prime + m.vocab.to_bytes(ids).decode("utf-8", "replace") for ids in samples]
        return texts if num is not None else texts[0]

    def printed(self, m, prime, num, length, temperature, top_k, top_p, seed, condition, stop):
        generation = self.generation(m, prime, num, length, temperature, top_k, top_p, seed, condition, stop)
        prime = prime.encode("utf-8", "surrogateescape") if isinstance(prime, str) else bytes(prime)
        return self.pieces(prime, generation, m.vocab)   # checked and seeded now, drawn as it is printed

    def stream(self, m, prime, length, temperature, top_k, top_p, seed):
        pieces = self.stream_bytes(self.generation(m, prime, 1, length, temperature, top_k, top_p, seed, None), m.vocab)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        return (text for text in map(decoder.decode, pieces) if text)

    @staticmethod
    def stream_bytes(generation, vocab):
        """Each token of a generation of one stream as its bytes, as it is drawn."""
        while True:
            drawn = generation.next(1)
            if len(drawn) == 0:
                return
            if drawn[0, 0] >= 0:
                yield vocab.to_bytes([int(drawn[0, 0])])

    # ---- a text's loss, and a step through one

    def loss(self, m, text, batch_size, seq_len):
        scores = evaluate_text(m, text, batch_size, seq_len, "the text")
        return scores.nats, scores.bits

    def step(self, m, text, state, condition):
        fresh = state is None
        shape = m.model.state_shape(1)
        try:
            state = m.model.zero_state(1) if fresh else np.array(state, dtype=np.float32)
        except (TypeError, ValueError):
            state = None
        if state is None or state.shape != shape or not np.all(np.isfinite(state)):
            raise UserError(f"state: give what step returned, finite numbers of shape {shape}")
        cond = self.condition(m, condition, 1)
        ids = (self.starts(m.vocab) if fresh else []) + (list(m.ids(text, "the text")) if text else [])
        if not ids:
            raise UserError("give step at least one character")
        logits = None
        for token in ids:
            logits = m.model.step([token], state, cond)
        p = probabilities(logits[0])
        return {s or f"<{i}>": float(p[i]) for i, s in enumerate(m.characters(range(len(m.vocab))))}, state


def stop_ids(m, stop):
    """The ids of a stop string (bytes), or () if the model can never write it (a symbol outside
    its vocabulary, or not UTF-8 for a model of UTF-8 text): then nothing stops a stream early."""
    if not stop:
        return ()
    try:
        ids = m.vocab.encode(m.symbols(stop, "stop"))
    except (TextError, UserError):
        return ()
    if len(ids) > core.lib.MINRNN_MAX_STOP:
        raise UserError(f"stop: {len(ids)} characters; give at most {core.lib.MINRNN_MAX_STOP}")
    return ids


# ---- the loss of a text: B streams over it, in chunks

def evaluation_shape(n, streams, seq_len):
    """(streams, stream length, chunk length) for evaluating n ids: at most (n - 1) // 2 streams,
    chunks no longer than a stream."""
    streams = max(1, min(streams, (n - 1) // 2))
    stream_len = (n - 1) // streams
    return streams, stream_len, max(1, min(seq_len, stream_len))


def evaluation_memory(cfg, n, streams, seq_len):
    """Bytes of the workspace for evaluating n ids in (streams, seq_len) chunks."""
    streams, _, T = evaluation_shape(n, streams, seq_len)
    return workspace_bytes(cfg, streams, T)


def evaluate(model, ids, streams, seq_len, lengths=None):
    """Mean loss in nats per id of predicting ids[1:] from what precedes, with dropout off.
    The text is cut into `streams` contiguous streams, each run from a zero state in chunks of
    seq_len with the state carried. Returns (loss, ids predicted): the last few ids that don't
    fill a stream (fewer than `streams`) are not predicted; with lengths (the characters each id
    stands for), (loss, ids predicted, characters predicted)."""
    streams, stream_len, T = evaluation_shape(len(ids), streams, seq_len)
    if stream_len < 1:
        return float("nan"), 0
    data = np.stack([ids[b * stream_len:b * stream_len + stream_len + 1] for b in range(streams)])
    state = model.zero_state(streams)
    total = 0.0
    for a in range(0, stream_len, T):
        chunk = data[:, a:a + T + 1]
        tokens, targets = chunk[:, :-1].T, chunk[:, 1:].T
        fwd = model.forward(tokens, targets, state, want_logits=False)
        total += fwd.loss * tokens.size
        state = fwd.final_state
    loss, n = total / (streams * stream_len), streams * stream_len
    if lengths is None:
        return loss, n
    return loss, n, int(sum(lengths[b * stream_len + 1:(b + 1) * stream_len + 1].sum() for b in range(streams)))


def evaluate_text(m, text, batch_size, seq_len, what):
    """A TextEvaluation of m on text (bytes or str), characters outside its vocabulary skipped (a
    word outside it is the unknown word)."""
    symbols = m.symbols(text, what)
    ids = m.ids_of(symbols)
    lengths = m.vocab.lengths(symbols, ids)
    if len(ids) < 2:
        raise UserError(f"{what}: fewer than 2 characters the model knows; nothing to evaluate")
    streams, _, T = evaluation_shape(len(ids), batch_size, seq_len)
    require_memory(evaluation_memory(m.model.config, len(ids), batch_size, seq_len),
                   f"evaluating in chunks of {streams} x {T}", "use a smaller --batch-size or --seq-len")
    nats, n, chars = evaluate(m.model, ids, batch_size, seq_len, lengths)
    return TextEvaluation(nats, n, dict(m.last_unknown), m.vocab.encoding, chars)


@dataclass
class TextEvaluation:
    """A language model on a text."""
    nats: float         # per token predicted: per character, but for a model of words
    characters: int     # tokens predicted (the last few that do not fill a stream are not)
    unknown: dict       # {symbol: count} of the characters outside the vocabulary, skipped (a symbol is a
    #                     code point, or a byte value for a model trained with --tokens bytes), or of the
    #                     words read as the unknown word
    encoding: str = "utf8"
    text_chars: int = None   # characters of the text the tokens predicted stand for (None: characters)

    @property
    def bits(self):
        return self.nats / math.log(2)

    @property
    def nats_per_char(self):
        """The loss per character of the text, total nats over its characters: the scale on which a
        model of words and one of characters compare."""
        return self.nats if self.text_chars is None else per_char(self.nats, self.characters, self.text_chars)

    def report(self, path):
        """What `python -m minrnn eval` prints."""
        chars = f"{self.nats_per_char:.4f} nats/char, {self.nats_per_char / math.log(2):.4f} bits/char"
        if self.encoding != "words":
            return with_skipped(f"{path}: {chars} over {self.characters:,} characters", self.unknown, self.encoding)
        return with_skipped(f"{path}: {self.nats:.4f} nats/token, {self.bits:.4f} bits/token over {self.characters:,} "
                            f"tokens; {chars} over their {self.text_chars:,} characters", self.unknown,
                            self.encoding)


def per_char(nats, predicted, chars):
    """A loss of nats per token over `predicted` tokens, as nats per character of the `chars`
    characters they stand for: the same total."""
    return nats * predicted / chars


def units_of(encoding):
    """(unit, units) of what a model of this encoding reads, in reports: a character, or a token."""
    kind = vocabulary_kind(encoding)
    return kind.unit, kind.units


def with_skipped(report, unknown, encoding):
    """An evaluation's report, and a line about the characters it skipped, if any."""
    return report + (f"\n{skipped(unknown, encoding)}" if unknown else "")
