"""A language model of one text (char-rnn's): the text is cut into B contiguous streams walked T
characters at a time, the state carried from one batch to the next; the end of the text
validates. Sampling writes text of any length.

Shapes: a batch is tokens and targets, each (T, B) int32, time-major; targets are tokens shifted
by one character. Stream b of an epoch holds characters [b n, (b + 1) n] of the training text,
where n is the stream length.
"""

import numpy as np

from minrnn import core
from minrnn.data import DataError, read_file
from minrnn.reference import Config
from minrnn.resources import require_memory
from minrnn.tasks.base import Rows, check_training_memory, workspace_bytes
from minrnn.tasks.lm import LanguageModel, evaluate, evaluate_text, evaluation_shape
from minrnn.text import Reading, vocabulary


class Text:
    """A text as token ids, with its vocabulary, split into training text and a validation tail."""

    def __init__(self, path, reading=Reading("utf8"), val_frac=0.1, vocab=None):
        rows = Rows(path, reading, lambda data: [[data]], vocab)
        self.path, self.fingerprint, self.vocab = rows.path, rows.fingerprint, rows.vocab
        ids = rows.rows[0][0]
        n_val = int(len(ids) * val_frac)
        self.train, self.val = ids[:len(ids) - n_val], ids[len(ids) - n_val:]


class Batches:
    """Training batches of B streams by T steps over the training text, in order."""

    def __init__(self, ids, batch_size, seq_len, model=None):
        self.B, self.T, self.model = batch_size, seq_len, model
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

    def arrays(self, i):
        """Batch i of every epoch: (tokens, targets), each (T, B)."""
        a = i * self.T
        chunk = self.streams[:, a:a + self.T + 1]
        return np.ascontiguousarray(chunk[:, :-1].T), np.ascontiguousarray(chunk[:, 1:].T)

    def batch(self, epoch, i):
        return self.model.batch(*self.arrays(i))


def too_short_message(n, batch_size, seq_len):
    need = batch_size * seq_len + 1
    options = [(batch_size, (n - 1) // batch_size), ((n - 1) // seq_len, seq_len), (1, n - 1)]
    fits = [f"--batch-size {b} --seq-len {t}" for b, t in options if b >= 1 and t >= 1][:2]
    hint = f"; sizes that fit: {' or '.join(fits)}" if fits else "; the text needs at least 2 characters"
    return (f"the training text has {n} characters, too short for one batch of "
            f"{batch_size} x {seq_len} (+1) = {need}{hint}")


def require_samples_memory(num, length):
    """Room for num samples of length characters held whole: their ids, then their text."""
    require_memory(24 * length * num, f"generating {num} sample(s) of {length:,} characters",
                   "ask for fewer or shorter samples (or stream one)")


class Stream(LanguageModel):
    name = "lm"
    option = "lm"
    option_help = "learn to write the text"
    unit, noun = "chars", "{units}"
    carries_state = pictured = True

    def chosen_by(self, s):
        return s["task"] == self.option and not s["records"]

    def holds(self, ck):
        cfg = ck.model.config
        return cfg.task == "lm" and cfg.cond == "none" and cfg.input_size == 0 and \
            not vocabulary(ck.vocab, ck.encoding).framed

    # ---- training

    def read(self, path, s, like=None):
        return Text(path, Reading.of(s), s["val_frac"], vocab=like and like.vocab)

    def config(self, s, data):
        return Config(vocab_size=len(data.vocab), hidden_size=s["hidden"], cell=s["cell"], embed_size=s["embed"],
                      num_layers=s["layers"], dropout=s["dropout"], one_bias=s["biases"] == 1, reduction=s["loss"])

    def batches(self, data, s, model):
        return Batches(data.train, s["batch_size"], s["seq_len"], model)

    def batch_shape(self, s):
        return f"{s['batch_size']} x {s['seq_len']}"

    def check_memory(self, cfg, s, data):
        """A step's workspace, and validation's when a short validation text gives it another shape."""
        B, T = s["batch_size"], s["seq_len"]
        need = workspace_bytes(cfg, B, T)
        if len(data.val) >= 2:
            streams, _, chunk = evaluation_shape(len(data.val), B, T)
            if (streams, chunk) != (B, T):
                need += workspace_bytes(cfg, streams, chunk)
        check_training_memory(cfg, need, f"training a {s['layers']}-layer {s['cell']} of {s['hidden']} units in "
                              f"batches of {B} x {T}", "use a smaller --hidden, --layers, --embed, --batch-size or "
                              "--seq-len")

    def validate(self, model, data, s):
        if len(data.val) < 2:
            return None, ""
        loss, _ = evaluate(model, data.val, s["batch_size"], s["seq_len"])
        return loss, ""

    def sample(self, model, data, seed):
        generation = core.Generation(model, 1, self.fed(data.vocab, []), 200, seed, temperature=0.8)
        return data.vocab.to_bytes(generation.run()[0]).decode("utf-8", errors="replace")

    # ---- use

    def fed(self, vocab, prime_ids):
        """The prime; without one, a newline (or the first symbol, if the text has none)."""
        if len(prime_ids):
            return list(prime_ids)
        newline = vocab.id_of(ord("\n"))
        return [0 if newline is None else newline]

    def generate(self, m, prime, length, temperature, top_k, top_p, seed, condition, num):
        require_samples_memory(num or 1, length)
        return super().generate(m, prime, length, temperature, top_k, top_p, seed, condition, num)

    def pieces(self, prime, generation, vocab):
        """One sample: the prime, then each character as it is drawn; several: each the prime and
        its characters, a blank line between two."""
        if generation.B == 1:
            yield prime
            yield from self.stream_bytes(generation, vocab)
            return
        require_samples_memory(generation.B, generation.g.max_length)
        yield b"\n\n".join(prime + vocab.to_bytes(ids) for ids in generation.run()) + b"\n"

    def evaluate(self, m, path, batch_size, seq_len, features, beam, targets=None, lengths=None, grid=None):
        return evaluate_text(m, read_file(path), batch_size, seq_len, str(path))
