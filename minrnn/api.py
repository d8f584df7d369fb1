"""minrnn from Python, for notebooks: load a checkpoint and use it, or train without the command line.
The commands sample, eval, classify and translate are this API with options and printing around it.

    import minrnn
    m = minrnn.load("out/best.ckpt")
    print(m.generate(prime="ROMEO:", length=200, temperature=0.8, seed=1))
    for piece in m.stream(length=100, seed=1):
        print(piece, end="")
    m.generate(condition="class", num=8)    # a conditioned record model: 8 records of a label
    m.loss("Some text.")                    # (nats, bits) per character
    m.evaluate("valid.txt")                 # what eval reports, as numbers
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
from dataclasses import dataclass

import numpy as np

from minrnn import core
from minrnn.data import read_file
from minrnn.errors import UserError
from minrnn.inference import (check_evaluation_memory, class_probabilities, evaluate, evaluate_records, generate,
                              generate_records, generate_streams, length_buckets, load as load_checkpoint)
from minrnn.pairs import PairSet, pairs_loss, translate_all, translation_scores
from minrnn.records import RecordSet
from minrnn.settings import RUN, SESSION, USE
from minrnn.text import TextError, Vocab, read_symbols, unescape


class Trained:
    """A trained model with its vocabulary: what a checkpoint holds, ready to use.

    last_seed: the seed of the last call that drew at random (generate, stream, translations at a
    temperature above 0), the one it drew itself when given seed=None."""

    # What error messages call the inputs; the command line puts its options' names here.
    names = {"prime": "prime", "label": "condition", "vector": "condition", "features": "features (a .npy file)"}

    def __init__(self, checkpoint):
        self.checkpoint = checkpoint
        self.model = checkpoint.model
        self.vocab = Vocab(checkpoint.vocab, checkpoint.encoding)
        self.last_seed = None

    @property
    def task(self):
        return self.model.config.task

    @property
    def max_source(self):
        """The longest source a seq2seq model's run trained for (--max-source), or None if it does not say."""
        return self.checkpoint.meta.get("args", {}).get("max_source")

    def _needs(self, task):
        if self.task != task:
            raise UserError(f"this model's task is {self.task}; {task} models do that")

    def _symbols(self, text, what):
        """The symbols of text (str, or bytes as a file holds them) as the model reads them."""
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
        try:
            return read_symbols(data, self.checkpoint.encoding)
        except TextError as e:
            raise TextError(f"{what}: {e}, and this model reads UTF-8 text (it was trained without "
                            "--encoding bytes); give UTF-8") from None

    def _ids(self, text, what="the text"):
        try:
            return self.vocab.encode(self._symbols(text, what))
        except TextError as e:
            raise UserError(f"{what}: {e}") from None

    def _seed(self, seed):
        self.last_seed = secrets.randbits(63) if seed is None else seed
        return self.last_seed

    @staticmethod
    def _check(**values):
        """UserError for an argument outside its rule in settings.USE (None: a default drawn later)."""
        for name, value in values.items():
            if value is not None:
                try:
                    USE[name].check(value)
                except ValueError as e:
                    raise UserError(f"{name}: {e}") from None

    def _characters(self, ids):
        """Each id's character as a string (U+FFFD for a byte that is part of a longer one)."""
        return [self.vocab.to_bytes([i]).decode("utf-8", "replace") for i in ids]

    # ---- language models

    def _prime_ids(self, prime):
        what = self.names["prime"]
        try:
            return self.vocab.encode(self._symbols(prime, what)) if prime else []
        except TextError as e:
            raise UserError(e if str(e).startswith(what) else f"{what}: {e}") from None

    def _condition(self, condition):
        """The condition as the model reads it: a label id (1,) or a standardized vector (1, C)."""
        cfg, labels = self.model.config, self.checkpoint.labels
        if cfg.cond == "none":
            if condition is not None:
                raise UserError("this model has no condition; leave condition out")
            return None
        C, known = cfg.cond_size, ", ".join(labels)
        if condition is None:
            if cfg.cond == "label":
                raise UserError(f"this model is conditioned on a label: give condition, one of {known}")
            raise UserError(f"this model is conditioned on {C} features: give condition, {C} numbers")
        if cfg.cond == "label":
            if not isinstance(condition, str) or condition not in labels:
                raise UserError(f"{self.names['label']} {condition!r} is not one of this model's labels: {known}")
            return np.array([labels.index(condition)], dtype=np.int32)
        try:
            v = np.asarray(condition, dtype=np.float64)
        except (TypeError, ValueError):
            raise UserError(f"{self.names['vector']}: give {C} numbers") from None
        if v.shape != (C,) or not np.all(np.isfinite(v)):
            raise UserError(f"{self.names['vector']} has {v.size} numbers; this model reads {C} finite ones")
        shift, scale = self.checkpoint.cond_scaling
        return ((v - shift) * scale).astype(np.float32)[None, :]

    def stream_bytes(self, prime, length, temperature, top_k, top_p, seed):
        """stream's bytes: each generated character's bytes as it is drawn, what sample writes. The
        prime is checked and the seed drawn at the call, before the first character."""
        self._needs("lm")
        self._check(length=length, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        if self.vocab.framed:
            raise UserError("a record model writes whole records: use generate")
        tokens = generate(self.model, self.vocab, self._prime_ids(prime), length, self._seed(seed), temperature,
                          top_k, top_p)
        return (self.vocab.to_bytes([token]) for token in tokens)

    def samples_bytes(self, prime, num, length, temperature, top_k, top_p, seed, condition):
        """generate's bytes: num samples drawn as one batch, each without the prime."""
        self._needs("lm")
        self._check(num=num, length=length, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        prime_ids = self._prime_ids(prime)
        cond = self._condition(condition)
        seed = self._seed(seed)
        if self.vocab.framed:
            cond = None if cond is None else np.repeat(cond, num, axis=0)
            samples = generate_records(self.model, self.vocab, num, length, seed, temperature, top_k, top_p, cond,
                                       prime_ids)
        else:
            samples = generate_streams(self.model, self.vocab, num, prime_ids, length, seed, temperature, top_k,
                                       top_p)
        return [self.vocab.to_bytes(ids) for ids in samples]

    def stream(self, prime="", length=200, temperature=1.0, top_k=0, top_p=1.0, seed=None):
        """Yield the generated text a piece at a time (each character as it is drawn), after the
        prime; seed None draws a random seed (last_seed). A language model of a text only (records:
        generate)."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pieces = self.stream_bytes(prime, length, temperature, top_k, top_p, seed)
        return (text for text in map(decoder.decode, pieces) if text)

    def generate(self, prime="", length=200, temperature=1.0, top_k=0, top_p=1.0, seed=None, condition=None,
                 num=None):
        """The prime and `length` generated characters as one string (a record model: one record,
        which ends where the model writes its end token). temperature 0 always takes the likeliest
        character. condition: a conditioned model's label (its name) or its feature vector (the D
        raw numbers; they are standardized as in training). num: a list of num samples drawn as one
        batch instead, each with the prime (what sample --num prints)."""
        samples = self.samples_bytes(prime, 1 if num is None else num, length, temperature, top_k, top_p, seed, condition)
        if not isinstance(prime, str):   # bytes, as a file holds them
            prime = bytes(prime).decode("utf-8", "replace")
        texts = [prime + s.decode("utf-8", "replace") for s in samples]
        return texts if num is not None else texts[0]

    def loss(self, text, batch_size=16, seq_len=256):
        """(nats, bits) per character of predicting text, characters outside the vocabulary skipped."""
        self._needs("lm")
        scores = self._evaluate_text(text, batch_size, seq_len, "the text")
        return scores.nats, scores.bits

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
        return {s or f"<{i}>": float(p[i]) for i, s in enumerate(self._characters(range(len(self.vocab))))}, state

    # ---- classifiers and seq2seq models

    def classify(self, texts, top=3):
        """For each text, its `top` likeliest labels with their probabilities; characters outside
        the vocabulary are skipped."""
        self._needs("classify")
        ids = []
        for i, t in enumerate(texts):
            known, _ = self.vocab.encode_known(self._symbols(t, f"text {i + 1}"))
            if len(known) == 0:
                raise UserError(f"text {i + 1}: none of its characters is in the model's vocabulary")
            ids.append(known)
        if not ids:
            return []
        probs = class_probabilities(self.model, self.vocab, ids)
        return [[(self.checkpoint.labels[k], float(p[k])) for k in np.argsort(-p, kind="stable")[:top]] for p in probs]

    def _source_ids(self, text, i):
        symbols = self._symbols(text, f"text {i + 1}")
        if len(symbols) == 0:
            raise UserError(f"text {i + 1} is empty; give a source to translate")
        limit = self.max_source
        if limit is not None and len(symbols) > limit:
            raise UserError(f"text {i + 1} has {len(symbols)} characters; this model reads sources of at most {limit}")
        try:
            return self.vocab.encode(symbols)
        except TextError as e:
            raise UserError(f"text {i + 1}: {e}") from None

    def translations(self, texts, beam=1, temperature=0.0, seed=None, max_length=200, alignments=False):
        """Each text's Translation as soon as it is done (an iterator; the texts are checked, and the
        seed of temperature > 0 drawn, at the call): greedy, beam search, or drawn at temperature > 0.
        alignments: also each translation's attention weights (a model with attention)."""
        self._needs("seq2seq")
        self._check(beam=beam, temperature=temperature, seed=seed, max_length=max_length)
        if temperature > 0 and beam != 1:
            raise UserError("temperature > 0 draws one translation at a time; give beam=1")
        if alignments and self.model.config.attention == "none":
            raise UserError("this model has no attention (trained with --attention none): it has no alignments")
        sources = [self._source_ids(t, i) for i, t in enumerate(texts)]
        rng = core.Rng(self._seed(seed)) if temperature > 0 else None
        return (self._translation(s, beam, temperature, rng, max_length, alignments) for s in sources)

    def _translation(self, source, beam, temperature, rng, max_length, alignments):
        ids, logprob, alphas = self.model.translate(source, beam, max_length, temperature, rng,
                                                    want_alignments=alignments)
        return Translation(self.vocab.to_bytes(ids), logprob, self._characters(source), self._characters(ids), alphas)

    def translate(self, texts, beam=1, temperature=0.0, seed=None, max_length=200):
        """Each text's translation (greedy, beam search, or drawn at temperature > 0)."""
        return [t.text for t in self.translations(texts, beam, temperature, seed, max_length)]

    # ---- evaluation

    def evaluate(self, path, batch_size=16, seq_len=256, features=None, beam=1):
        """What `python -m minrnn eval` reports on a file, as numbers: a TextEvaluation for a
        language model of text, a RecordEvaluation for one of records, a ClassifierEvaluation, or
        a PairEvaluation for a seq2seq model on source<TAB>target lines. batch_size: streams or
        records at once; seq_len: a text's chunks; features: a model conditioned on features
        needs its .npy file, one row per record; beam: a seq2seq model's translations."""
        if self.task == "seq2seq":
            return self._evaluate_pairs(path, batch_size, beam)
        if self.vocab.framed:
            return self._evaluate_records(path, batch_size, features)
        return self._evaluate_text(read_file(path), batch_size, seq_len, str(path))

    def _evaluate_text(self, text, batch_size, seq_len, what):
        ids, unknown = self.vocab.encode_known(self._symbols(text, what))
        if len(ids) < 2:
            raise UserError(f"{what}: fewer than 2 characters the model knows; nothing to evaluate")
        check_evaluation_memory(self.model, len(ids), batch_size, seq_len)
        nats, n = evaluate(self.model, ids, batch_size, seq_len)
        return TextEvaluation(nats, n, unknown)

    def _evaluate_records(self, path, batch_size, features):
        cfg, ck = self.model.config, self.checkpoint
        kind = "labels" if cfg.task == "classify" or cfg.cond == "label" else "features" if cfg.cond == "vector" \
            else "plain"
        if kind == "features" and features is None:
            raise UserError(f"this model is conditioned on features: give {self.names['features']}, one row per record")
        sep = unescape(ck.meta.get("args", {}).get("record_sep", "\n")).encode("utf-8")
        records = RecordSet(path, sep, ck.encoding, val_frac=0.0, kind=kind, features=features, vocab=self.vocab,
                            label_names=list(ck.labels) or None, scaling=ck.cond_scaling)
        picks = np.arange(len(records.ids))
        from minrnn.training import condition_of   # the training loop loads the most
        nats, per_record, chars, predicted = evaluate_records(self.model, records, picks, batch_size,
                                                              condition_of(cfg))
        if cfg.task != "classify":
            return RecordEvaluation(nats, per_record, chars, len(picks))
        K = len(ck.labels)
        confusion = np.zeros((K, K), dtype=np.int64)
        np.add.at(confusion, (records.labels, predicted), 1)
        return ClassifierEvaluation(nats, list(ck.labels), confusion)

    def _evaluate_pairs(self, path, batch_size, beam):
        limit = self.max_source
        pairs = PairSet(path, self.checkpoint.encoding, val_frac=0.0, max_source=math.inf if limit is None else limit,
                        vocab=self.vocab)
        picks = np.arange(len(pairs.source_ids))
        nats = pairs_loss(self.model, pairs, picks, batch_size)
        translations = translate_all(self.model, pairs, picks, beam=beam)
        exact, cer = translation_scores(pairs, picks, translations)
        lengths = np.array([len(s) for s in pairs.source_ids])
        by_length = []
        for low, high in length_buckets(lengths):
            some = picks[(lengths >= low) & (lengths <= high)]
            by_length.append((low, high, len(some), *translation_scores(pairs, some, [translations[i] for i in some])))
        return PairEvaluation(nats, exact, cer, len(picks), beam, by_length)


@dataclass
class Translation:
    """One text's translation."""
    raw: bytes          # as the model writes it (a model trained with --encoding bytes may write any bytes)
    logprob: float      # its log probability (natural), the end token's included
    source: list        # the source's characters as the model read them, a string each
    characters: list    # the translation's characters, a string each
    alignments: object  # with alignments=True: (steps, len(source)) attention weights, a row per character
    #                     written and a last one for the end token when it was written; else None

    @property
    def text(self):
        return self.raw.decode("utf-8", "replace")


@dataclass
class TextEvaluation:
    """A language model on a text."""
    nats: float         # per character predicted
    characters: int     # predicted (the last few that do not fill a stream are not)
    unknown: dict       # {symbol: count} of the characters outside the vocabulary, skipped (a symbol is a
    #                     code point, or a byte value for a model trained with --encoding bytes)

    @property
    def bits(self):
        return self.nats / math.log(2)


@dataclass
class RecordEvaluation:
    """A language model on a file of records."""
    nats: float         # per character, the end of each record included
    per_record: float   # nats per record
    characters: int
    records: int

    @property
    def bits(self):
        return self.nats / math.log(2)


@dataclass
class ClassifierEvaluation:
    """A classifier on a file of label<TAB>text records."""
    nats: float         # per record
    labels: list        # the label names, in the confusion matrix's order
    confusion: object   # (K, K) counts; rows: the true label, columns: the predicted one

    @property
    def records(self):
        return int(self.confusion.sum())

    @property
    def accuracy(self):
        return np.trace(self.confusion) / self.confusion.sum()

    @property
    def majority(self):
        """The accuracy of always saying the commonest label."""
        return self.confusion.sum(axis=1).max() / self.confusion.sum()

    @property
    def precision(self):
        """Per label, the share of the records said to have it that have it (None: none was said to)."""
        said = self.confusion.sum(axis=0)
        return [self.confusion[k, k] / said[k] if said[k] else None for k in range(len(said))]

    @property
    def recall(self):
        """Per label, the share of the records that have it said to have it (None: none has it)."""
        true = self.confusion.sum(axis=1)
        return [self.confusion[k, k] / true[k] if true[k] else None for k in range(len(true))]


@dataclass
class PairEvaluation:
    """A seq2seq model on a file of source<TAB>target pairs."""
    nats: float         # per target character, teacher-forced, the end included
    exact: float        # the share of translations equal to their target
    cer: float          # character error rate: edit distance / target characters
    pairs: int
    beam: int           # the translations' beam width (1: greedy)
    by_length: list     # [(low, high, pairs, exact, cer)]: the same by source length, about a quarter of the pairs each

    @property
    def bits(self):
        return self.nats / math.log(2)


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
