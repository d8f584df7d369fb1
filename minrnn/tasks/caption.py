"""Captioning with attention: a file of captions, one per line, and a grid of vectors for each (a
.npy of shape (N, L, D), or (N, Hg, Wg, D) when the places have a geometry, Hg x Wg = L: the
features of an image's patches); row i of the grid conditions line i. The model is the seq2seq
core's decoder over the grid instead of an encoder's outputs (core.Seq2seq with input_size D):
at each step it scores the L places from its state, writes a token from o = tanh(W_c [c ; h]),
and is fed the context c at its next step (input feeding, whenever it attends); every step is
also conditioned on the grid's mean. With --attention none the grid's mean is all it reads:
the lectures' captioning with one vector.

Each grid feature is standardized with the training grids' mean and deviation (the checkpoint's
scaling section, as a model of vectors' inputs). Shapes of a batch of B records: grid (L, B, D)
float32 time-major as the core reads it, inputs and targets (Td, B) ids, lengths (B,).
"""

from dataclasses import dataclass

import numpy as np

from minrnn import core
from minrnn.data import DataError, fingerprint_files, read_array
from minrnn.errors import UserError
from minrnn.reference.seq2seq import Seq2seqConfig
from minrnn.tasks.base import Rows, shuffled_split, split_records
from minrnn.picture import caption_svg
from minrnn.tasks.base import REQUIRED
from minrnn.tasks.seq2seq import PairEvaluation, Seq2seq, Targets, scored, searched
from minrnn.tasks.sequences import scaled, standardization
from minrnn.text import Reading


def grid_of(raw, what, N=None, D=None, L=None):
    """(grid (N, L, D) float64, geometry (Hg, Wg) or None) of an array of grids, a file's or a
    caller's (`what` names it); DataError for a wrong rank, NaN, a row count that is not N, or
    places and a width that are not a trained model's L and D."""
    shapes = f"(N, L, {D or 'D'}) or (N, Hg, Wg, {D or 'D'})"
    if raw.ndim not in (3, 4) or 0 in raw.shape:
        raise DataError(f"{what}: {raw.shape} is not a grid per row; give an array of shape {shapes}")
    geometry = raw.shape[1:3] if raw.ndim == 4 else None
    grid = raw.reshape(raw.shape[0], -1, raw.shape[-1]).astype(np.float64)
    if N is not None and grid.shape[0] != N:
        raise DataError(f"{what}: {grid.shape[0]} grids for {N} lines; give one grid per line, row i for line i")
    if D is not None and grid.shape[2] != D:
        raise DataError(f"{what}: vectors of {grid.shape[2]} numbers; this model reads {D}: give an array of shape "
                        f"{shapes}")
    if L is not None and grid.shape[1] != L:
        raise DataError(f"{what}: grids of {grid.shape[1]} places; this model was trained on grids of {L}")
    if not np.all(np.isfinite(grid)):
        raise DataError(f"{what}: holds NaN or infinite values; give finite numbers")
    return grid, geometry and tuple(int(x) for x in geometry)


class Captions(Targets):
    """Captions as token ids with their vocabulary (one per line, framed by start and end tokens),
    and the grids that condition them, standardized; split into training and validation records by
    a seeded shuffle. A trained model's vocabulary, grid scaling and D may be given (to resume, or
    evaluate); without its scaling, the training grids' own."""

    def __init__(self, path, grid_path, reading=Reading("utf8"), val_frac=0.1, seed=1, vocab=None, scaling=None, D=None,
                 L=None, skip_unknown=False):
        rows = Rows(path, reading, lambda data: [[line] for line in split_records(data, b"\n", path)],
                    vocab, framed=True, fields=("caption",), skip_unknown=skip_unknown)
        self.path, self.vocab, self.unknown = rows.path, rows.vocab, rows.unknown
        self.target_ids = [caption for caption, in rows.rows]
        raw, self.geometry = grid_of(read_array(grid_path), grid_path, len(self.target_ids), D, L)
        self.fingerprint = fingerprint_files([path, grid_path])
        self.train, self.val = shuffled_split(len(self.target_ids), val_frac, seed)
        self.scaling = scaling if scaling is not None else standardization(raw[self.train].reshape(-1, raw.shape[2]),
                                                                           grid_path)
        self.grid = scaled(raw, self.scaling, grid_path)
        self.source_ids = list(self.grid)   # what translate_all reads: each record's grid (L, D)

    @property
    def longest_source(self):
        return self.grid.shape[1]

    def pairs(self, picks):
        """core.Pairs of the records `picks`: their grids (L, B, D) and framed captions."""
        B, (L, Td) = len(picks), (self.grid.shape[1], 1 + max(len(self.target_ids[i]) for i in picks))
        inputs, targets = np.zeros((Td, B), np.int32), np.zeros((Td, B), np.int32)
        for b, i in enumerate(picks):
            t = self.target_ids[i]
            inputs[0, b], inputs[1:len(t) + 1, b] = self.vocab.start_id, t
            targets[:len(t), b], targets[len(t), b] = t, self.vocab.end_id
        lengths = np.array([len(self.target_ids[i]) + 1 for i in picks], np.int32)
        return core.Pairs(np.ascontiguousarray(self.grid[picks].transpose(1, 0, 2)), np.full(B, L, np.int32), inputs,
                          targets, lengths)


class Caption(Seq2seq):
    name = option = "caption"
    option_help = "--grid GRID.npy: learn to write each line from its grid of vectors (python -m minrnn caption)"
    what = "a captioner of grids"
    use = "it captions grids of vectors: python -m minrnn caption --checkpoint CKPT --grid GRID.npy (caption())"
    unit = noun = "records"
    reads_grids = True

    def chosen_by(self, s):
        return s["task"] == self.option   # (--grid alone says --task caption: settings.settle)

    def holds(self, ck):
        return ck.model.config.task == "seq2seq" and ck.model.config.input_size > 0

    def check(self, s):
        if s["grid"] is None:
            raise ValueError("--task caption learns from a grid per line: give --grid GRID.npy")
        if s["records"] or s["inputs"] is not None or s["input_feeding"]:
            raise ValueError("--grid conditions each line of the file on its grid (one caption per line); drop "
                             "--records, --labels, --features, --inputs and --input-feeding (a captioner is fed "
                             "its context whenever it attends)")
        if s["init"] != "default" or s["biases"] != 2 or s["loss"] != "mean":
            raise ValueError("--grid trains with the default --init, --biases and --loss; drop them")

    # ---- training

    def read(self, path, s, like=None):
        return Captions(path, s["grid"], Reading.of(s), s["val_frac"], s["seed"], like and like.vocab)

    def config(self, s, data):
        attention, D = s["attention"], data.grid.shape[2]
        if attention == "dot" and D != s["hidden"]:
            raise UserError(f"--attention dot scores h . e: the grid's vectors ({D} numbers) must be as wide as "
                            f"--hidden ({s['hidden']}); give --hidden {D}, or --attention general or additive")
        return Seq2seqConfig(vocab_size=len(data.vocab), hidden_size=s["hidden"], cell=s["cell"], embed_size=s["embed"],
                             num_layers=s["layers"], dropout=s["dropout"], attention=attention,
                             attention_size=(s["attention_size"] or s["hidden"]) if attention == "additive" else 0,
                             input_size=D, input_feeding=attention != "none")

    def describe(self, s):
        return f"{s['cell']} captioner ({s['attention']} attention over the grid)"

    def saved(self, data):
        return dict(input_scaling=data.scaling)

    def meta(self, data):
        """The places of the training grids, and their geometry (None if the file did not give one)."""
        return {"grid_places": data.grid.shape[1], "grid_shape": list(data.geometry) if data.geometry else None}

    @staticmethod
    def places(m):
        """The places of the grids a checkpoint's run trained on (None: not said, as by an import)."""
        return m.checkpoint.meta.get("grid_places")

    def check_resume(self, ck, data, s):
        if any(not np.array_equal(a, b) for a, b in zip(ck.input_scaling, data.scaling)):
            raise DataError(f"{s['grid']}: its standardization is not this run's; give the run's files")

    def sample(self, model, data, seed):
        """Greedy captions of a few validation (or training) grids."""
        picks = (data.val if len(data.val) else data.train)[:4]
        text = lambda ids: data.vocab.to_bytes(ids).decode("utf-8", "replace")   # noqa: E731
        return "\n".join(f"grid {i}: {text(model.translate(data.grid[i])[0])}  (truth: {text(data.target_ids[i])})"
                         for i in picks)

    # ---- use

    def translations(self, m, texts, beam, temperature, seed, max_length, alignments):
        raise self.refuse("a seq2seq model of texts")

    endpoint = "caption"
    fields = dict((k, v) for k, v in Seq2seq.fields.items() if k != "text")
    fields["grid"] = ("numbers", REQUIRED)   # one grid: (L, D) or (Hg, Wg, D) raw numbers

    def answer(self, m, r):
        try:
            grid = np.asarray(r["grid"], dtype=np.float64)
        except ValueError:
            raise UserError("grid: give one grid of vectors, (L, D) or (Hg, Wg, D) numbers") from None
        t = next(m.captions(grid[None], r["beam"], r["temperature"], r["seed"], r["max_length"], r["alignments"]))
        geometry = grid.shape[:2] if grid.ndim == 3 else m.checkpoint.meta.get("grid_shape")   # the picture's
        return searched(t, r, lambda: geometry and caption_svg(t.written, t.alignments, tuple(geometry)))

    def captions(self, m, grid, beam, temperature, seed, max_length, alignments):
        """Captions of grid (N, L, D) or (N, Hg, Wg, D), raw as the training grid file's rows: a
        Translation each (its source: the places' numbers)."""
        try:
            grid = np.asarray(grid, dtype=np.float64)
        except (TypeError, ValueError):
            raise UserError("grid: give an array of numbers, (N, L, D) or (N, Hg, Wg, D)") from None
        D = m.model.config.input_size
        grid, _ = grid_of(grid, "grid", D=D, L=self.places(m))
        if temperature > 0 and beam != 1:
            raise UserError("temperature > 0 draws one caption at a time: give beam=1 (drop --beam)")
        if alignments and m.model.config.attention == "none":
            raise UserError("this model has no attention (trained with --attention none): it has no alignments to "
                            "draw")
        rows = scaled(grid, m.checkpoint.input_scaling, "grid")
        rng = core.Rng(m.draw_seed(seed)) if temperature > 0 else None
        places = [str(s) for s in range(rows.shape[1])]
        return (Seq2seq.translation(m, row, beam, temperature, rng, max_length, alignments, places) for row in rows)

    def evaluate(self, m, path, batch_size, seq_len, features, beam, targets=None, lengths=None, grid=None):
        if grid is None:
            raise UserError("a captioner is evaluated on captions and their grids: give --grid GRID.npy")
        if features is not None:
            raise UserError("features are for a model of records conditioned on them; a captioner reads --grid")
        data = Captions(path, grid, Reading(m.vocab.encoding), val_frac=0.0, vocab=m.vocab,
                        scaling=m.checkpoint.input_scaling, D=m.model.config.input_size, L=self.places(m),
                        skip_unknown=True)
        lengths = np.array([len(t) for t in data.target_ids])   # by caption length, each its own row
        bounds = [(n, n) for n in sorted(set(lengths.tolist()))]
        return CaptionEvaluation(*scored(m, data, batch_size, beam, lengths, bounds))


@dataclass
class CaptionEvaluation(PairEvaluation):
    """A captioner on a file of captions and their grids: PairEvaluation's, by caption length."""
    length_of = "caption length"
    noun = "records"

