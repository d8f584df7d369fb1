"""Sequence to sequence: a file of `source<TAB>target` lines, one pair per line, and a model that
translates a source into its target (an encoder, a decoder and attention: core.Seq2seq).

One vocabulary holds the symbols of both sides, then the start and end tokens (a framed Vocab).
The encoder reads a source's n ids; the decoder reads [START, y1..ym] and learns [y1..ym, END].
Shapes of a batch of B pairs (time-major, as the core's): source (Ts, B), inputs and targets
(Td, B) int32, padded with 0 (never read); source_lengths (B,) = n and target_lengths (B,) = m + 1.
"""

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from minrnn import core
from minrnn.data import DataError
from minrnn.errors import UserError
from minrnn.reference.seq2seq import Seq2seqConfig
from minrnn.picture import attention_svg
from minrnn.tasks.base import REQUIRED, Rows, ShuffledBatches, Task, check_training_memory, shuffled_split, split_records
from minrnn.tasks.lm import units_of, with_skipped
from minrnn.text import Reading, add_counts

VAL_TRANSLATIONS = 500   # validation pairs a run translates at each evaluation


def split_pairs(lines, path):
    """[b"source\\ttarget"] -> [[source, target]] as bytes; DataError naming the first line without
    a tab, or with an empty side."""
    pairs = []
    for i, line in enumerate(lines):
        source, tab, target = line.partition(b"\t")
        if not tab:
            raise DataError(f"{path}: line {i + 1} has no tab; seq2seq pairs are source<TAB>target")
        if not source or not target:
            raise DataError(f"{path}: line {i + 1} has an empty {'source' if not source else 'target'}; "
                            "seq2seq pairs are source<TAB>target, both non-empty")
        pairs.append([source, target])
    return pairs


class Targets:
    """What a set of records with targets (ids, target_ids) and sources (source_ids) answers alike,
    whatever its sources are (texts here, grids in caption.py)."""

    @property
    def longest_target(self):
        return max(len(t) for t in self.target_ids)

    def chars(self, picks):
        """Positions with a loss in these records: m + 1 each (the end token too)."""
        return int(sum(len(self.target_ids[i]) + 1 for i in picks))


class PairSet(Targets):
    """Pairs as token ids with their vocabulary, split into training and validation pairs by a
    seeded shuffle. A trained model's vocabulary can be given (to resume or evaluate); max_source
    None: sources of any length."""

    def __init__(self, path, reading=Reading("utf8"), val_frac=0.1, seed=1, max_source=200, vocab=None, skip_unknown=False):
        rows = Rows(path, reading, lambda data: split_pairs(split_records(data, b"\n", path), path), vocab,
                    framed=True, fields=("source", "target"), skip_unknown=skip_unknown)
        self.path, self.fingerprint, self.vocab, self.unknown = rows.path, rows.fingerprint, rows.vocab, rows.unknown
        self.source_ids = [source for source, _ in rows.rows]
        self.target_ids = [target for _, target in rows.rows]
        for i, s in enumerate(self.source_ids):
            if len(s) == 0:   # only with a trained model's vocabulary, its characters skipped
                raise DataError(f"{path}: line {i + 1}: none of its source's characters is in the model's vocabulary")
            if max_source is not None and len(s) > max_source:
                raise DataError(f"{path}: line {i + 1} has a source of {len(s)} characters, longer than "
                                f"--max-source {max_source}; shorten it, or train with a larger --max-source")
        self.train, self.val = shuffled_split(len(self.source_ids), val_frac, seed)

    @property
    def longest_source(self):
        return max(len(s) for s in self.source_ids)

    def pairs(self, picks):
        """core.Pairs of the pairs `picks`, framed and padded."""
        return frame_pairs([self.source_ids[i] for i in picks], [self.target_ids[i] for i in picks], self.vocab)


def frame_pairs(sources, targets, vocab):
    """core.Pairs for sources and targets given as id arrays: see the module's shapes."""
    B = len(sources)
    source_lengths = np.array([len(s) for s in sources], dtype=np.int32)
    target_lengths = np.array([len(t) + 1 for t in targets], dtype=np.int32)
    Ts, Td = int(source_lengths.max()), int(target_lengths.max())
    source = np.zeros((Ts, B), dtype=np.int32)
    inputs = np.zeros((Td, B), dtype=np.int32)
    out = np.zeros((Td, B), dtype=np.int32)
    for b, (s, t) in enumerate(zip(sources, targets)):
        source[:len(s), b] = s
        inputs[0, b] = vocab.start_id
        inputs[1:len(t) + 1, b] = t
        out[:len(t), b] = t
        out[len(t), b] = vocab.end_id
    return core.Pairs(source, source_lengths, inputs, out, target_lengths)


# ---- evaluation

def edit_distance(a, b):
    """Levenshtein distance between two id sequences (insertions, deletions, substitutions)."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (x != y))
    return row[-1]


def pairs_loss(model, pairs, picks, batch_size):
    """Nats per target character (END included) on the pairs `picks`, teacher-forced, dropout off."""
    total, chars = 0.0, 0
    for a in range(0, len(picks), batch_size):
        chunk = picks[a:a + batch_size]
        fwd = model.forward(pairs.pairs(chunk), want_logits=False)
        count = pairs.chars(chunk)
        total += fwd.loss * count
        chars += count
    return total / max(chars, 1)


def translation_scores(pairs, picks, translations):
    """(exact-match accuracy, character error rate = edit distance / target characters) of the
    translations of the pairs `picks`."""
    exact = errors = length = 0
    for i, out in zip(picks, translations):
        truth = pairs.target_ids[i].tolist()
        exact += out == truth
        errors += edit_distance(out, truth)
        length += len(truth)
    return exact / max(len(picks), 1), errors / max(length, 1)


def translate_all(model, pairs, picks, beam=1):
    """The translations (ids) of the sources of the pairs `picks`, each at most twice as long as
    the longest target and 10 more."""
    max_length = 2 * max((len(t) for t in pairs.target_ids), default=0) + 10
    return [model.translate(pairs.source_ids[i], beam=beam, max_length=max_length)[0] for i in picks]


def scored(m, data, batch_size, beam, lengths, bounds):
    """What a PairEvaluation holds of m on all of data's pairs (PairSet, or caption.py's Captions):
    the loss, exact match and error rate of its translations overall, and by_length over the ranges
    `bounds` of `lengths` (one per pair); the skipped characters are counted into m.last_unknown."""
    add_counts(m.last_unknown, data.unknown)
    picks = np.arange(len(data.target_ids))
    nats = pairs_loss(m.model, data, picks, batch_size)
    translations = translate_all(m.model, data, picks, beam=beam)
    by_length = []
    for low, high in bounds:
        some = picks[(lengths >= low) & (lengths <= high)]
        by_length.append((low, high, len(some), *translation_scores(data, some, [translations[i] for i in some])))
    return (nats, *translation_scores(data, picks, translations), len(picks), beam, by_length, dict(m.last_unknown),
            m.vocab.encoding)


def length_buckets(lengths):
    """Up to four ranges of source lengths holding about a quarter of the pairs each: [(low, high)]."""
    if len(lengths) == 0:
        return []
    edges = sorted(set(int(x) for x in np.quantile(lengths, [0.25, 0.5, 0.75])))
    bounds, low = [], int(min(lengths))
    for e in edges + [int(max(lengths))]:
        if e >= low:
            bounds.append((low, e))
            low = e + 1
    return bounds


class Seq2seq(Task):
    name = "seq2seq"
    option = "seq2seq"
    option_help = ("learn to write each line's target from its source, from lines source<TAB>target "
                   "(python -m minrnn translate)")
    what = "a seq2seq model"
    use = "it translates texts: python -m minrnn translate --checkpoint CKPT TEXT (translate() from Python)"
    unit = noun = "pairs"
    swings = True
    endpoint = "translate"
    fields = {"text": ("text", REQUIRED), "beam": ("int", 1), "temperature": ("number", 0.0), "seed": ("int", None),
              "max_length": ("int", 200), "alignments": ("bool", False)}

    def answer(self, m, r):
        t = next(m.translations([r["text"]], r["beam"], r["temperature"], r["seed"], r["max_length"], r["alignments"]))
        return searched(t, r, lambda: attention_svg(t.source, t.written, t.alignments))

    def chosen_by(self, s):
        return s["task"] == self.option

    def holds(self, ck):
        return ck.model.config.task == "seq2seq" and not ck.model.config.input_size

    def check(self, s):
        if s["labels"] or s["features"] or s["init"] != "default" or s["biases"] != 2 or s["loss"] != "mean":
            raise ValueError("--task seq2seq reads source<TAB>target lines, with the default --init, --biases and "
                             "--loss; drop --labels, --features, --init, --biases and --loss")
        if s["input_feeding"] and s["attention"] == "none":
            raise ValueError("--input-feeding feeds the attention's context to the next step: give an --attention")

    # ---- training

    def read(self, path, s, like=None):
        return PairSet(path, Reading.of(s), s["val_frac"], s["seed"], s["max_source"], like and like.vocab)

    def config(self, s, data):
        additive = s["attention"] == "additive"
        return Seq2seqConfig(vocab_size=len(data.vocab), hidden_size=s["hidden"], cell=s["cell"], embed_size=s["embed"],
                             num_layers=s["layers"], dropout=s["dropout"], attention=s["attention"],
                             attention_size=(s["attention_size"] or s["hidden"]) if additive else 0,
                             input_feeding=s["input_feeding"])

    def batches(self, data, s, model):
        return ShuffledBatches(data.train, s["batch_size"], s["seed"], data.path, data.pairs, data.chars)

    def check_memory(self, cfg, s, data):
        """BLOCKS parameter blocks and a step's workspace for B pairs of the longest sources and targets."""
        B, Ts, Td = s["batch_size"], data.longest_source, data.longest_target + 1
        floats = core.lib.minrnn_seq2seq_workspace_size(core.c_config(cfg), B, Ts, Td)
        if floats == 0:
            raise UserError(f"batches of {B} pairs of {Ts} and {Td} steps are more than the core takes; use a smaller "
                            "--batch-size or --max-source")
        check_training_memory(cfg, 4 * floats, f"training a {s['layers']}-layer {self.describe(s)} of {s['hidden']} "
                              f"units on {self.noun} of up to {Ts} and {Td - 1} tokens, {B} at a time",
                              f"use a smaller --batch-size, --hidden or --layers, or shorter {self.noun}")

    def describe(self, s):
        fed = ", fed its context" if s["input_feeding"] else ""
        return f"{s['cell']} encoder and decoder ({s['attention']} attention{fed})"

    def validate(self, model, data, s):
        """The loss, and greedy translations of the first VAL_TRANSLATIONS validation pairs."""
        val = data.val
        if len(val) == 0:
            return None, ""
        loss = pairs_loss(model, data, val, s["batch_size"])
        some = val[:VAL_TRANSLATIONS]
        exact, cer = translation_scores(data, some, translate_all(model, data, some))
        return loss, f" | exact {exact:.3f}, CER {cer:.4f} (greedy, {min(len(val), VAL_TRANSLATIONS)} pairs)"

    def sample(self, model, data, seed):
        """Greedy translations of a few validation (or training) sources."""
        text = lambda ids: data.vocab.to_bytes(ids).decode("utf-8", "replace")   # noqa: E731
        picks = (data.val if len(data.val) else data.train)[:4]
        return "\n".join(text(data.source_ids[i]) + " -> " + text(model.translate(data.source_ids[i])[0])
                         for i in picks)

    # ---- use

    def source_ids(self, m, text, i):
        """The ids of text i's characters in the vocabulary (None for an empty text)."""
        if len(text) == 0:
            return None
        ids = m.ids(text, f"text {i + 1}")
        if len(ids) == 0:
            raise UserError(f"text {i + 1}: none of its characters is in the model's vocabulary")
        limit = m.settings["max_source"]
        if limit is not None and len(ids) > limit:
            raise UserError(f"text {i + 1} has {len(ids)} characters; this model reads sources of at most {limit}")
        return ids

    def translations(self, m, texts, beam, temperature, seed, max_length, alignments):
        if temperature > 0 and beam != 1:
            raise UserError("temperature > 0 draws one translation at a time: give beam=1 (drop --beam)")
        if alignments and m.model.config.attention == "none":
            raise UserError("this model has no attention (trained with --attention none): it has no alignments to "
                            "draw")
        sources = [self.source_ids(m, t, i) for i, t in enumerate(texts)]
        rng = core.Rng(m.draw_seed(seed)) if temperature > 0 else None
        return (None if s is None else self.translation(m, s, beam, temperature, rng, max_length, alignments)
                for s in sources)

    @staticmethod
    def translation(m, source, beam, temperature, rng, max_length, alignments, places=None):
        """source: ids, or a captioner's grid (n, D), whose places' names (n) are given."""
        ids, logprob, alphas = m.model.translate(source, beam, max_length, temperature, rng,
                                                 want_alignments=alignments)
        return Translation(m.vocab.to_bytes(ids), logprob, places or m.characters(source), m.characters(ids), alphas)

    def evaluate(self, m, path, batch_size, seq_len, features, beam, targets=None, lengths=None, grid=None):
        pairs = PairSet(path, Reading(m.vocab.encoding), val_frac=0.0, max_source=m.settings["max_source"], vocab=m.vocab,
                        skip_unknown=True)
        lengths = np.array([len(s) for s in pairs.source_ids])
        return PairEvaluation(*scored(m, pairs, batch_size, beam, lengths, length_buckets(lengths)))


def searched(t, r, picture):
    """The server's reply of a Translation t (None: an empty text) for request r: the text, its log
    probability, and with alignments the weights, what each row wrote and picture(), an SVG."""
    if t is None:
        return {"text": "", "logprob": 0.0}
    reply = {"text": t.text, "logprob": t.logprob}
    if r["temperature"] > 0:   # drawn: the seed draws it again
        reply["seed"] = r["seed"]
    if r["alignments"]:
        reply.update(alignments=np.asarray(t.alignments).tolist(), written=t.written, svg=picture())
    return reply


@dataclass
class Translation:
    """One text's translation."""
    raw: bytes          # as the model writes it (a model trained with --tokens bytes may write any bytes)
    logprob: float      # its log probability (natural), the end token's included
    source: list        # the source's characters as the model read them, a string each
    characters: list    # the translation's characters, a string each
    alignments: object  # with alignments=True: (steps, len(source)) attention weights, a row per character
    #                     written and a last one for the end token when it was written; else None

    @property
    def text(self):
        return self.raw.decode("utf-8", "replace")

    @property
    def written(self):
        """What each row of the alignments wrote: the characters, then "</s>" for the end token."""
        return self.characters + ["</s>"] * (len(self.alignments) - len(self.characters))


@dataclass
class PairEvaluation:
    """A seq2seq model on a file of source<TAB>target pairs."""
    nats: float         # per target character (token, for a model of words), teacher-forced, the end included
    exact: float        # the share of translations equal to their target
    cer: float          # character (token) error rate: edit distance / target characters (tokens)
    pairs: int
    beam: int           # the translations' beam width (1: greedy)
    by_length: list     # [(low, high, pairs, exact, cer)]: the same by source length, about a quarter of the pairs each
    unknown: dict = dataclasses.field(default_factory=dict)   # the characters skipped, as TextEvaluation's
    encoding: str = "utf8"
    length_of = "source length"   # what by_length's ranges are of
    noun = "pairs"                # what it counts

    @property
    def bits(self):
        return self.nats / math.log(2)

    def report(self, path):
        """Exact match and character error rate, overall and by length (length_of's), and the loss."""
        how = "greedy" if self.beam == 1 else f"beam {self.beam}"
        unit, units = units_of(self.encoding)
        rate = "token error rate" if unit == "token" else "character error rate"
        lines = [f"{path}: exact match {self.exact:.4f}, {rate} {self.cer:.4f} over {self.pairs:,} "
                 f"{self.noun} ({how}); loss {self.nats:.4f} nats/{unit} ({self.bits:.4f} bits/{unit}, teacher-forced, the "
                 f"end included)", f"by {self.length_of}: {units:>{24 - len(self.length_of)}}  {self.noun:>7}  exact match     {'TER' if unit == 'token' else 'CER'}"]
        for low, high, pairs, exact, cer in self.by_length:
            lines.append(f"{'':18}{low:>5}-{high:<5} {pairs:8,}  {exact:11.4f}  {cer:6.4f}")
        return with_skipped("\n".join(lines), self.unknown, self.encoding)
