"""minrnn from Python, for notebooks: load a checkpoint and use it, or train without the command line.

    import minrnn
    m = minrnn.load("out/best.ckpt")
    print(m.generate(prime="ROMEO:", length=200, temperature=0.8, seed=1))
    for piece in m.stream(length=100, seed=1):
        print(piece, end="")
    m.loss("Some text.")                    # (nats, bits) per character
    probs, state = m.step("ROMEO")          # the next character's probabilities, and the state after
    m.classify(["HTTPServer"])              # a classifier: [[(label, probability), ...]]
    m.translate(["5 Nov 1955"], beam=3)     # a seq2seq model: ["1955-11-05"]
    best = minrnn.train("input.txt", out="run", hidden=128, max_iters=500, callback=print)

Errors are minrnn.errors.UserError with the command line's one-line messages.
"""

import argparse
import codecs
import io
import math
import secrets
import sys

import numpy as np

from minrnn import core
from minrnn.errors import UserError
from minrnn.inference import class_probabilities, evaluate, generate, generate_records, load as load_checkpoint
from minrnn.settings import RUN, SESSION
from minrnn.text import TextError, Vocab, read_symbols


class Trained:
    """A trained model with its vocabulary: what a checkpoint holds, ready to use."""

    def __init__(self, checkpoint):
        self.checkpoint = checkpoint
        self.model = checkpoint.model
        self.vocab = Vocab(checkpoint.vocab, checkpoint.encoding)

    @property
    def task(self):
        return self.model.config.task

    def _ids(self, text, what="the text"):
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
        try:
            return self.vocab.encode(read_symbols(data, self.checkpoint.encoding))
        except TextError as e:
            raise UserError(f"{what}: {e}") from None

    def _needs(self, task):
        if self.task != task:
            raise UserError(f"this model's task is {self.task}; {task} models do that")

    def stream(self, prime="", length=200, temperature=1.0, top_k=0, top_p=1.0, seed=None):
        """Yield the generated text a piece at a time (each character as it is drawn), after the
        prime; seed None draws a random seed. A language model of a text only (records: generate)."""
        self._needs("lm")
        if self.vocab.framed:
            raise UserError("a record model writes whole records: use generate")
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        seed = secrets.randbits(63) if seed is None else seed
        for token in generate(self.model, self.vocab, self._ids(prime, "the prime") if prime else [], length, seed,
                              temperature, top_k, top_p):
            piece = decoder.decode(self.vocab.to_bytes([token]))
            if piece:
                yield piece

    def generate(self, prime="", length=200, temperature=1.0, top_k=0, top_p=1.0, seed=None):
        """The prime and `length` generated characters as one string (a record model: one record,
        which ends where the model writes its end token)."""
        if self.vocab.framed:
            self._needs("lm")
            if self.model.config.cond != "none":
                raise UserError("a conditioned model needs its condition: python -m minrnn sample --condition")
            seed = secrets.randbits(63) if seed is None else seed
            ids = generate_records(self.model, self.vocab, 1, length, seed, temperature, top_k, top_p,
                                   prime_ids=self._ids(prime, "the prime") if prime else ())[0]
            return prime + self.vocab.to_bytes(ids).decode("utf-8", "replace")
        return prime + "".join(self.stream(prime, length, temperature, top_k, top_p, seed))

    def loss(self, text, batch_size=16, seq_len=256):
        """(nats, bits) per character of predicting text, characters outside the vocabulary skipped."""
        self._needs("lm")
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
        ids, _ = self.vocab.encode_known(read_symbols(data, self.checkpoint.encoding))
        if len(ids) < 2:
            raise UserError("fewer than 2 characters the model knows; nothing to evaluate")
        nats, _ = evaluate(self.model, ids, batch_size, seq_len)
        return nats, nats / math.log(2)

    def step(self, text, state=None):
        """Feed text (one or more characters) from state (None: a zero state, or the start token of a
        record model): (the next character's probabilities (V,) as {character: p}, the new state)."""
        self._needs("lm")
        fresh = state is None
        state = self.model.zero_state(1) if fresh else np.array(state, dtype=np.float32)
        ids = list(self._ids(text)) if text else []
        if fresh and self.vocab.framed:   # a record starts with its start token
            ids = [self.vocab.start_id] + ids
        if not ids:
            raise UserError("give step at least one character")
        logits = None
        for token in ids:
            logits = self.model.step([token], state)
        z = logits[0].astype(np.float64)
        p = np.exp(z - z.max())
        p /= p.sum()
        symbols = [self.vocab.to_bytes([i]).decode("utf-8", "replace") for i in range(len(self.vocab))]
        return {s or f"<{i}>": float(p[i]) for i, s in enumerate(symbols)}, state

    def classify(self, texts, top=3):
        """For each text, its `top` likeliest labels with their probabilities."""
        self._needs("classify")
        probs = class_probabilities(self.model, self.vocab, [self._ids(t, f"text {i + 1}") for i, t in enumerate(texts)])
        return [[(self.checkpoint.labels[k], float(p[k])) for k in np.argsort(-p, kind="stable")[:top]] for p in probs]

    def translate(self, texts, beam=1, temperature=0.0, seed=None, max_length=200):
        """Each text's translation (greedy, beam search, or drawn at temperature > 0)."""
        self._needs("seq2seq")
        rng = core.Rng(secrets.randbits(63) if seed is None else seed) if temperature > 0 else None
        out = []
        for i, t in enumerate(texts):
            ids, _, _ = self.model.translate(self._ids(t, f"text {i + 1}"), beam, max_length, temperature, rng)
            out.append(self.vocab.to_bytes(ids).decode("utf-8", "replace"))
        return out


def load(path, precision=None, threads=0):
    """The model of a checkpoint file, at its own precision or `precision` ("float32" or "bfloat16")."""
    ck = load_checkpoint(path, threads)
    if precision:
        ck.model.set_precision(precision)
    return Trained(ck)


def train(input=None, out="out", callback=None, resume=False, max_time=None, threads=0, quiet=False, **settings):
    """Train as `python -m minrnn train` does, with its settings as keyword arguments (hidden=128,
    layers=1, task="seq2seq", ...: the option names with _ for -). callback(record), if given, is
    called at each evaluation with what metrics.jsonl records. quiet: no progress output. Returns
    the path of the run's best checkpoint."""
    known = {s.name for s in RUN + SESSION}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise UserError(f"unknown settings: {', '.join(unknown)} (the train command's options, with _ for -)")
    checked = {}
    for s in RUN + SESSION:
        value = settings.get(s.name)
        try:
            checked[s.name] = None if value is None else s.rule.check(value)
        except ValueError as e:
            raise UserError(f"{s.name}: {e}") from None
    args = argparse.Namespace(input=input, out=str(out), resume=resume, max_time=max_time, threads=threads,
                              **checked)
    from minrnn.training import Run   # the training loop loads the most
    run = Run(args, stream=io.StringIO() if quiet else sys.stdout, callback=callback)
    run.run()   # Ctrl-C (status 130) saves a checkpoint, which resume=True continues
    return run.best
