"""What every task shares: Task, the questions the training loop, minrnn.load and the commands ask
of a task (each answered here for tasks that do not do that thing); the one reading of a data
file; the shuffled split and batches of a file of records; and the memory a run needs."""

import math
from dataclasses import dataclass

import numpy as np

from minrnn import core
from minrnn.data import DataError, fingerprint, read_file
from minrnn.errors import UserError
from minrnn.reference import Rng
from minrnn.resources import require_memory
from minrnn.text import TextError, add_counts, learn, read_symbols


class Task:
    """One kind of data and what is learnt from it. A subclass answers each question below that
    its kind can; the others refuse with a message that says which kind of model does that."""

    name = ""            # what messages and the registry call it
    option = ""          # its --task value (two tasks may share one: lm is a text or records)
    option_help = ""     # what that value learns, for --help (the first task's of an option)
    what = ""            # what a checkpoint of it is: "a language model"
    use = ""             # what such a checkpoint is for, and the command that does it
    unit = "records"     # what a training file counts, in its metadata's keys: chars, records or pairs
    noun = "records"     # ... and in messages ({units}: the vocabulary's, text.Vocab.units)
    loss_unit = "nats/{unit}"   # ({unit}: the vocabulary's, text.Vocab.unit)
    carries_state = False   # whether a training batch starts from the states the last one ended in
    swings = False       # whether batch losses swing far from their average (divergence: only
    #                      a loss worse than guessing counts then)
    pictured = False     # whether the lectures' pictures (python -m minrnn picture) show its models
    reads_vectors = False   # whether its data are sequences of vectors (--inputs, --targets, --lengths)
    reads_grids = False     # whether its records come with a grid of vectors each (--grid)

    # ---- which task: of a run's settings, of a checkpoint

    def chosen_by(self, s):
        """Whether the settings s (settled: settings.settle) choose this task."""
        raise NotImplementedError

    def holds(self, ck):
        """Whether core.Checkpoint ck is a model of this task."""
        raise NotImplementedError

    def check(self, s):
        """ValueError for settings this task does not take."""

    # ---- training (minrnn/training.py)

    def read(self, path, s, like=None):
        """The data file as a dataset; like: a checkpoint of this task to read it as (its
        vocabulary, labels, scaling: to resume or evaluate)."""
        raise NotImplementedError

    def config(self, s, data):
        """The model configuration the settings give for this data."""
        raise NotImplementedError

    def batches(self, data, s, model):
        """The training batches: len() per epoch, batch(epoch, i) -> what model.train_step reads,
        chars_per_step."""
        raise NotImplementedError

    def check_memory(self, cfg, s, data):
        """UserError, before anything is allocated, if a run will not fit in memory."""

    def describe(self, s):
        """What is trained, for the first line of a run: "lstm", "classifier", ..."""
        return s["cell"]

    def batch_shape(self, s):
        """A training batch's shape, for the first line of a run."""
        return f"{s['batch_size']} {self.noun}"

    def validate(self, model, data, s):
        """(validation loss or None, a note for people) on data's validation part."""
        raise NotImplementedError

    def sample(self, model, data, seed):
        """A few lines of what the model does now, or None."""
        return None

    def saved(self, data):
        """What a checkpoint holds beyond the model and vocabulary: core.save_checkpoint's labels
        and cond_scaling."""
        return {}

    def guessing(self, model):
        """The loss of guessing (uniformly among the outputs): what a diverging run does worse than."""
        return math.log(model.outputs)

    def meta(self, data):
        """What the run's metadata holds beyond the run's record (the task's own facts)."""
        return {}

    def check_resume(self, ck, data, s):
        """DataError if data is not what ck's run was trained on (beyond the file's fingerprint)."""

    # ---- use (minrnn.load's Trained asks these; m is the Trained)

    def refuse(self, does):
        """The error for asking this task's model what a model of another kind does."""
        return UserError(f"this checkpoint is {self.what}, not {does}; {self.use}")

    def evaluate(self, m, path, batch_size, seq_len, features, beam, targets=None, lengths=None, grid=None):
        raise NotImplementedError

    def printed(self, m, prime, num, length, temperature, top_k, top_p, seed, condition, stop):
        raise self.refuse("a language model")

    def generate(self, m, prime, length, temperature, top_k, top_p, seed, condition, num):
        raise self.refuse("a language model")

    def stream(self, m, prime, length, temperature, top_k, top_p, seed):
        raise self.refuse("a language model")

    def loss(self, m, text, batch_size, seq_len):
        raise self.refuse("a language model")

    def step(self, m, text, state, condition):
        raise self.refuse("a language model")

    def classify(self, m, texts, top):
        raise self.refuse("a classifier")

    def captions(self, m, grid, beam, temperature, seed, max_length, alignments):
        raise self.refuse("a captioner of grids")

    def translations(self, m, texts, beam, temperature, seed, max_length, alignments):
        raise self.refuse("a seq2seq model")

    def predict(self, m, x, lengths):
        raise self.refuse("a model of sequences of vectors")

    # ---- serving (python -m minrnn serve: minrnn/serve.py)

    endpoint = ""        # its models answer POST /{endpoint}
    fields = {}          # {field: (kind, default)} a request of that endpoint takes (kinds: serve.KINDS;
    #                      REQUIRED: no default)

    def slot(self, m, request):
        """The request (its fields checked, the defaults filled in) as a core.Slot, for a model whose
        requests the server steps together in one batch; None for the others (answer)."""
        return None

    def answer(self, m, request):
        """The JSON reply to a request of a model the server does not batch."""
        raise NotImplementedError


REQUIRED = ...   # a request field without a default


def probabilities(logits):
    """Softmax over the last axis of logits, in double: the probabilities step and classify report."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


@dataclass
class Known:
    """What a trained model fixes about the data it reads: its vocabulary (a Vocab), its label
    names, and the scaling of its features (None: computed from the data, as in training)."""
    vocab: object
    labels: list = None
    scaling: tuple = None


# ---- a data file, read once: bytes -> fingerprint -> records of fields -> symbols -> vocabulary -> ids

class Rows:
    """A data file as the model reads it: path, fingerprint (of its bytes), the vocabulary, and
    rows: for each record (a text's one) the ids of each of its fields (a pair: source, target),
    text_chars the characters all of them stand for;
    unknown: {symbol: count} of the symbols outside a given vocabulary that were skipped."""

    def __init__(self, path, reading, split, vocab=None, framed=False, fields=(None,), skip_unknown=False):
        """reading: a text.Reading; split(data) -> [[bytes of each field] for each record]; fields:
        what messages call them (None: nothing). With a trained model's vocabulary, a symbol
        outside it is an error (resuming: the file must be the run's), or skipped and counted
        (skip_unknown: evaluating); a word outside it reads as the unknown word either way."""
        encoding = reading.encoding
        data = read_file(path)
        self.path, self.fingerprint = str(path), fingerprint(data)
        records = split(data)
        del data
        symbols = [[self._decode(part, encoding, vocab, path, field) for part, field in zip(row, fields)]
                   for row in records]
        del records
        self.vocab = vocab or learn([x for row in symbols for x in row], encoding, framed, reading.size,
                                    reading.min_count)
        self.unknown = {}
        try:
            self.rows = [[self.encoded(x, skip_unknown) for x in row] for row in symbols]
        except TextError as e:   # only with a vocabulary from a checkpoint
            raise DataError(f"{path}: {e}") from None
        self.text_chars = sum(self.vocab.char_count(x, ids) for row, id_row in zip(symbols, self.rows)
                              for x, ids in zip(row, id_row))

    def encoded(self, symbols, skip_unknown):
        if not skip_unknown:
            return self.vocab.encode(symbols)
        ids, unknown = self.vocab.encode_known(symbols)
        add_counts(self.unknown, unknown)
        return ids

    @staticmethod
    def _decode(part, encoding, vocab, path, field):
        try:
            return read_symbols(part, encoding)
        except TextError as e:
            hint = "; use --tokens bytes to read raw bytes" if encoding != "bytes" and vocab is None else ""
            raise DataError(f"{path}: {f'a {field}: ' if field else ''}{e}{hint}") from None


def split_records(data, sep, path):
    """bytes -> [bytes] on sep; a trailing separator ends the last record rather than starting an
    empty one, and with sep b"\\n" a Windows line end's b"\\r" is dropped. DataError for an empty
    record."""
    parts = data.split(sep)
    if parts and parts[-1] == b"":
        parts.pop()
    if sep == b"\n":
        parts = [p[:-1] if p.endswith(b"\r") else p for p in parts]
    where = "line" if sep == b"\n" else "record"
    for i, p in enumerate(parts):
        if not p:
            raise DataError(f"{path}: {where} {i + 1} is an empty record; remove it (records need at "
                            "least one character)")
    if not parts:
        raise DataError(f"{path}: no records")
    return parts


def permutation(n, seed):
    """Fisher-Yates from the shared generator: the same order for the same seed, everywhere."""
    order, rng = list(range(n)), Rng(seed)
    for i in range(n - 1, 0, -1):
        j = min(int(rng.uniform() * (i + 1)), i)
        order[i], order[j] = order[j], order[i]
    return np.array(order, dtype=np.int64)


def epoch_seed(seed, epoch):
    """The seed of an epoch's order: different for every epoch, and for the validation split."""
    return (seed * 0x9E3779B97F4A7C15 + epoch + 1) % 2**64


def shuffled_split(n, val_frac, seed):
    """(training, validation) indices of n records, split by a seeded shuffle (a file sorted by
    label still validates on every label)."""
    order = permutation(n, epoch_seed(seed, -1))
    n_val = int(n * val_frac)
    return order[:n - n_val], order[n - n_val:]


class ShuffledBatches:
    """Training batches of B records, in an order shuffled for each epoch from the run's seed (so a
    resumed run sees the same order). The last len % B records of an epoch's order sit out that
    epoch (different ones each epoch). make(picks) builds the batch of the records `picks`;
    positions(picks) counts their predictions."""

    def __init__(self, train, batch_size, seed, path, make, positions):
        self.train, self.B, self.seed, self.make, self.positions = train, batch_size, seed, make, positions
        self.per_epoch = len(train) // batch_size
        if self.per_epoch < 1:
            raise DataError(f"{path}: {len(train)} training records, fewer than one batch of "
                            f"{batch_size}; use --batch-size {max(1, len(train))} or more records")
        self._epoch, self._order = None, None

    def __len__(self):
        return self.per_epoch

    def picks(self, epoch, i):
        if epoch != self._epoch:
            self._epoch, self._order = epoch, self.train[permutation(len(self.train), epoch_seed(self.seed, epoch))]
        return self._order[i * self.B:(i + 1) * self.B]

    def batch(self, epoch, i):
        return self.make(self.picks(epoch, i))

    @property
    def chars_per_step(self):
        return self.positions(self.train) / len(self.train) * self.B


# ---- memory

BLOCKS = 7   # parameters, gradients, two optimizer moments, and rollback copies of parameters and moments


def workspace_bytes(config, B, T):
    """Bytes of the core's workspace for B streams of T steps; UserError beyond what it takes."""
    floats = core.workspace_floats(config, B, T)
    if floats == 0:
        raise UserError(f"batches of {B} x {T} are more than the core takes (B x T <= "
                        f"{core.lib.MINRNN_MAX_BATCH_ROWS}); use a smaller --batch-size or --seq-len")
    return 4 * floats


def training_memory(cfg, workspace):
    """Bytes a training run holds: BLOCKS parameter blocks and the workspace of its steps."""
    return 4 * BLOCKS * core.param_count(cfg) + workspace


def check_training_memory(cfg, workspace, what, advice):
    require_memory(training_memory(cfg, workspace), what, advice)
