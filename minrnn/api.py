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

What a model does is its task's (minrnn/tasks/): Trained checks the arguments and asks it.
Errors are minrnn.errors.UserError with the command line's one-line messages.
"""

import io
import secrets
import sys

from minrnn import core, tasks
from minrnn.errors import UserError
from minrnn.settings import DEFAULTS, RUN, SESSION, USE, engine_and_device, renamed
from minrnn.tasks.classify import ClassifierEvaluation
from minrnn.tasks.lm import TextEvaluation
from minrnn.tasks.records import RecordEvaluation
from minrnn.tasks.seq2seq import PairEvaluation, Translation
from minrnn.text import TextError, add_counts, read_symbols, vocabulary

# what help(minrnn.api) shows: the API, and the results its methods return (defined by their tasks)
__all__ = ["load", "train", "Trained", "TextEvaluation", "RecordEvaluation", "ClassifierEvaluation", "Translation",
           "PairEvaluation"]

ADVICE = {  # what to do about a checkpoint the library refused
    core.lib.MINRNN_ERR_NOT_CHECKPOINT: "give a .ckpt file written by minrnn train",
    core.lib.MINRNN_ERR_TRUNCATED: "was it copied or downloaded completely?",
    core.lib.MINRNN_ERR_CORRUPT: "the file is damaged; use another checkpoint",
    core.lib.MINRNN_ERR_VERSION: "it was written by a newer minrnn",
    core.lib.MINRNN_ERR_OPEN: "check the path",
    core.lib.MINRNN_ERR_NOT_FILE: "give the path of a .ckpt file",
}


def check_use(**values):
    """UserError for an argument outside its rule in settings.USE (None: a default drawn later)."""
    for name, value in values.items():
        if value is not None:
            try:
                USE[name].check(value)
            except ValueError as e:
                raise UserError(f"{name}: {e}") from None


class Trained:
    """A trained model with its vocabulary and task: what a checkpoint holds, ready to use.

    last_seed: the seed of the last call that drew at random (generate, stream, translations at a
    temperature above 0), the one it drew itself when given seed=None.
    last_unknown: {symbol: count} of the characters outside the vocabulary that the last call's
    texts held: every call skips them (a symbol is a code point, or a byte value for a model
    trained with --tokens bytes)."""

    def __init__(self, checkpoint):
        self.checkpoint = checkpoint
        self.model = checkpoint.model
        self.vocab = vocabulary(checkpoint.vocab, checkpoint.encoding)
        self.task = tasks.for_checkpoint(checkpoint)
        self.last_seed, self.last_unknown = None, {}

    @property
    def settings(self):
        """The run's settings, as its checkpoint stored them over the defaults (max_source None
        where it stored none: any length)."""
        stored = self.checkpoint.meta.get("args")
        return {**DEFAULTS, "max_source": None, **(stored if isinstance(stored, dict) else {}),
                "encoding": self.checkpoint.encoding}

    # ---- what the tasks ask of the model's vocabulary

    def symbols(self, text, what):
        """The symbols of text (str, or bytes as a file holds them) as the model reads them."""
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
        try:
            return read_symbols(data, self.vocab.encoding)
        except TextError as e:
            raise UserError(f"{what}: {e}, and this model reads UTF-8 text (it was trained without "
                            "--tokens bytes); give UTF-8") from None

    def ids_of(self, symbols):
        """The ids of symbols (as symbols() gives them) in the vocabulary; what ids() says of the rest."""
        ids, unknown = self.vocab.encode_known(symbols)
        add_counts(self.last_unknown, unknown)
        return ids

    def ids(self, text, what):
        """The ids of text's characters in the vocabulary; the others are skipped, and counted in
        last_unknown. (what: what messages call the text: the prime, text 2, ...)"""
        return self.ids_of(self.symbols(text, what))

    def reads(self):
        """A call that reads texts starts: what the last one skipped is forgotten."""
        self.last_unknown = {}

    def characters(self, ids):
        """Each id's character as a string (U+FFFD for a byte that is part of a longer one)."""
        return [self.vocab.to_bytes([i]).decode("utf-8", "replace") for i in ids]

    def draw_seed(self, seed):
        """seed, or a new one if None; kept as last_seed."""
        self.last_seed = secrets.randbits(63) if seed is None else seed
        return self.last_seed

    # ---- language models

    def generate(self, prime="", length=200, temperature=1.0, top_k=0, top_p=1.0, seed=None, condition=None,
                 num=None):
        """The prime and `length` generated characters as one string (a record model: one record,
        which ends where the model writes its end token). temperature 0 always takes the likeliest
        character. condition: a conditioned model's label (its name) or its feature vector (the D
        raw numbers; they are standardized as in training). num: a list of num samples drawn as one
        batch instead, each with the prime (what sample --num prints)."""
        check_use(length=length, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, num=num)
        self.reads()
        return self.task.generate(self, prime, length, temperature, top_k, top_p, seed, condition, num)

    def stream(self, prime="", length=200, temperature=1.0, top_k=0, top_p=1.0, seed=None):
        """Yield the generated text a piece at a time (each character as it is drawn), after the
        prime; seed None draws a random seed (last_seed). A language model of a text only (records:
        generate)."""
        check_use(length=length, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        self.reads()
        return self.task.stream(self, prime, length, temperature, top_k, top_p, seed)

    def printed(self, prime=b"", num=1, length=200, temperature=1.0, top_k=0, top_p=1.0, seed=None, condition=None,
                stop=b""):
        """The bytes `python -m minrnn sample` prints, a piece at a time (one sample of a text as it
        is drawn). stop: ends a sample once written. The prime is checked, and the seed drawn, at
        the call."""
        check_use(num=num, length=length, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        self.reads()
        return self.task.printed(self, prime, num, length, temperature, top_k, top_p, seed, condition, stop)

    def loss(self, text, batch_size=16, seq_len=256):
        """(nats, bits) per character of predicting text, characters outside the vocabulary skipped."""
        check_use(batch_size=batch_size, seq_len=seq_len)
        self.reads()
        return self.task.loss(self, text, batch_size, seq_len)

    def step(self, text, state=None, condition=None):
        """Feed text (one or more characters) from state (None: a zero state, or the start token of a
        record model; else what step returned): (the next character's probabilities (V,) as
        {character: p}, the new state). condition: a conditioned model's, as generate takes it."""
        self.reads()
        return self.task.step(self, text, state, condition)

    # ---- classifiers and seq2seq models

    def classify(self, texts, top=3):
        """For each text, its `top` likeliest labels with their probabilities ([] for an empty text);
        characters outside the vocabulary are skipped."""
        check_use(top=top)
        self.reads()
        return self.task.classify(self, texts, top)

    def translations(self, texts, beam=1, temperature=0.0, seed=None, max_length=200, alignments=False):
        """Each text's Translation (tasks/seq2seq.py) as soon as it is done (an iterator; the texts
        are checked, and the seed of temperature > 0 drawn, at the call): greedy, beam search, or
        drawn at temperature > 0; None for an empty text. alignments: also each translation's
        attention weights (a model with attention)."""
        check_use(beam=beam, temperature=temperature, seed=seed, max_length=max_length)
        self.reads()
        return self.task.translations(self, texts, beam, temperature, seed, max_length, alignments)

    def translate(self, texts, beam=1, temperature=0.0, seed=None, max_length=200):
        """Each text's translation (greedy, beam search, or drawn at temperature > 0; "" for "")."""
        return [t.text if t else "" for t in self.translations(texts, beam, temperature, seed, max_length)]

    def captions(self, grid, beam=1, temperature=0.0, seed=None, max_length=200, alignments=False):
        """A captioner (trained with --grid) on grid, a numpy array (N, L, D) or (N, Hg, Wg, D) of raw
        vectors as its training grids were given: each grid's Translation (tasks/seq2seq.py; its source
        the places' numbers) as soon as it is done, greedy, beam search, or drawn at temperature > 0.
        alignments: also each caption's attention over the places, (steps, L)."""
        check_use(beam=beam, temperature=temperature, seed=seed, max_length=max_length)
        return self.task.captions(self, grid, beam, temperature, seed, max_length, alignments)

    def caption(self, grid, beam=1, temperature=0.0, seed=None, max_length=200):
        """Each grid's caption as text: see captions."""
        return [t.text for t in self.captions(grid, beam, temperature, seed, max_length)]

    # ---- evaluation

    def evaluate(self, path, batch_size=16, seq_len=256, features=None, beam=1, targets=None, lengths=None, grid=None):
        """What `python -m minrnn eval` reports on a file, as numbers (its report(path) is what eval
        prints): a TextEvaluation for a language model of a text, a RecordEvaluation for one of
        records, a ClassifierEvaluation, or a PairEvaluation for a seq2seq model on
        source<TAB>target lines. batch_size: streams or records at once; seq_len: a text's chunks;
        features: a model conditioned on features needs its .npy file, one row per record; beam: a
        seq2seq model's translations. A classifier of vectors: path is its inputs .npy, targets the
        labels' .npy, lengths the lengths' (or None). A captioner: path its captions, grid the grids'
        .npy (a CaptionEvaluation)."""
        check_use(beam=beam, batch_size=batch_size, seq_len=seq_len)
        if self.task.reads_vectors and targets is None:
            raise UserError("a model of vectors is evaluated against targets: give them (--targets Y.npy)")
        if not self.task.reads_vectors and (targets is not None or lengths is not None):
            raise UserError(f"targets and lengths are for a model of vectors; this checkpoint is {self.task.what}")
        if grid is not None and not self.task.reads_grids:
            raise UserError(f"a grid is for a captioner (trained with --grid); this checkpoint is {self.task.what}")
        self.reads()
        return self.task.evaluate(self, path, batch_size, seq_len, features, beam, targets, lengths, grid)

    def predict(self, x, lengths=None):
        """A model of sequences of vectors, on raw inputs x (N, T, D) (standardized as in training)
        and their lengths (N,) (None: T each): a classifier's (N, K) probabilities of its labels
        (self.labels, in that order), a tagger's (N, T, K) (0 past a length); a regression's values
        in the targets' units, (N, K) or (N, T, K)."""
        return self.task.predict(self, x, lengths)

    def predicted_lines(self, y, lengths=None):
        """predict's y as `python -m minrnn predict` prints it: a line per sequence."""
        return self.task.predicted_lines(self, y, lengths)

    @property
    def labels(self):
        """A classifier's label names, in the order of its outputs."""
        return list(self.checkpoint.labels)


def read_checkpoint(path, threads=0, advice=None):
    """core.load_checkpoint, or UserError saying what is wrong with the file and what to do
    (`advice`, or what ADVICE says for the library's status)."""
    try:
        return core.load_checkpoint(path, threads=threads)
    except core.MinrnnError as e:
        what_to_do = advice or ADVICE.get(e.status)
        raise UserError(f"{e}; {what_to_do}" if what_to_do else str(e)) from None


def load(path, precision=None, threads=0):
    """The model of a checkpoint file, at its own precision or `precision` ("float32", "bfloat16" or "int8");
    threads: for every call (0: the cores other processes leave free)."""
    check_use(precision=precision, threads=threads)
    ck = read_checkpoint(path, threads)
    if precision:
        ck.model.set_precision(precision)
    return Trained(ck)


def train(input=None, out="out", callback=None, resume=False, max_time=None, threads=0, quiet=False, engine="c",
          device=None, **settings):
    """Train as `python -m minrnn train` does, with its settings as keyword arguments (hidden=128,
    layers=1, task="seq2seq", ...: the option names with _ for -). callback(record), if given, is
    called at each evaluation with what metrics.jsonl records. quiet: no progress output. Returns
    the path of the run's best checkpoint. engine, device: as --engine and --device."""
    if "encoding" in settings:   # the name of tokens before minrnn 0.6
        try:
            settings = renamed(settings, "encoding", settings.pop("encoding"))
        except ValueError as e:
            raise UserError(str(e)) from None
    known = {s.name for s in RUN + SESSION}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise UserError(f"unknown settings: {', '.join(unknown)} (the train command's options, with _ for -)")
    given = {}
    for s in RUN + SESSION:
        value = settings.get(s.name)
        try:
            given[s.name] = None if value is None else s.rule.check(value)
        except ValueError as e:
            raise UserError(f"{s.name}: {e}") from None
    from minrnn.training import Run   # the training loop loads the most
    run = Run(given, input, out, resume, max_time, threads, stream=io.StringIO() if quiet else sys.stdout,
              callback=callback, engine=engine_and_device(engine, device))
    run.run()   # Ctrl-C (status 130) saves a checkpoint, which resume=True continues
    return run.best
