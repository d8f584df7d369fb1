"""The C core from Python: a thin layer over minrnn._core (cffi, API mode).

It holds numpy buffers, passes them to the C library and turns its status codes into exceptions
carrying the library's own message; it adds no math of its own. Shapes are those of minrnn.h:
tokens (T, B) int32; targets (T, B) int32, or (B,) for a classifier; lengths (B,) int32; a
condition: labels (B,) int32 or vectors (B, C) float32; states (L, S, B, H) float32; logits
(T, B, V), or (B, K) for a classifier, float32. A sequence to sequence model (Seq2seq) reads
Pairs: source (Ts, B), inputs and targets (Td, B), and their lengths (B,).
"""

import dataclasses
import json
import os
from dataclasses import dataclass

import numpy as np

# OpenMP's idle threads spin before they sleep; libgomp's own default is about 3 ms after every
# parallel region, in which a spinning thread takes a core that another process, or this one's
# working thread, needs. 10,000 spins (about 0.1 ms, by libgomp's own estimate of 100,000 a ms)
# still catch the regions of a step, back to back, on an idle machine (2 threads train 1.8 times
# and sample 1.8 times as fast as 1, as with libgomp's default), and let the cores go soon when
# others need them. With that alone, beside one busy process per core, 2 threads took 0.9 to 1.1
# times the time of 1 on tools/bench.py's load row, but 0.8 to 5 times on a smaller model; so the
# default thread count also follows the cores other processes leave free (minrnn.cores). libgomp
# reads this once, when the extension below loads it (unless another module loaded libgomp first);
# a user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from minrnn._core import ffi, lib  # noqa: E402   (after the environment it reads)
from minrnn import cores  # noqa: E402
from minrnn.reference import Config, hyperparameters
from minrnn.reference.optim import HYPERPARAMETERS
from minrnn.reference.seq2seq import Seq2seqConfig


def _cell_codes():
    """{cell name: (cell, nonlinearity) of minrnn_config}, from the library's own table."""
    codes, info = {}, ffi.new("minrnn_cell *")
    while lib.minrnn_cell_info(len(codes), info) == lib.MINRNN_OK:
        codes[ffi.string(info.name).decode()] = (info.cell, info.nonlinearity)
    return codes


CELL_CODES = _cell_codes()
# the C library's codes for the reference's names (a test holds the names equal)
INITS = {"default": lib.MINRNN_INIT_DEFAULT, "irnn": lib.MINRNN_INIT_IRNN, "normal": lib.MINRNN_INIT_NORMAL}
TASK_CODES = {"lm": lib.MINRNN_TASK_LM, "classify": lib.MINRNN_TASK_CLASSIFY, "encode": lib.MINRNN_TASK_ENCODE,
              "seq2seq": lib.MINRNN_TASK_SEQ2SEQ}
ATTENTION_CODES = {"none": lib.MINRNN_ATTENTION_NONE, "dot": lib.MINRNN_ATTENTION_DOT,
                   "general": lib.MINRNN_ATTENTION_GENERAL, "additive": lib.MINRNN_ATTENTION_ADDITIVE}
COND_CODES = {"none": lib.MINRNN_COND_NONE, "label": lib.MINRNN_COND_LABEL, "vector": lib.MINRNN_COND_VECTOR}
REDUCTION_CODES = {"mean": lib.MINRNN_MEAN, "sum": lib.MINRNN_SUM}
LOSS_CODES = {"cross_entropy": lib.MINRNN_CROSS_ENTROPY, "squared_error": lib.MINRNN_SQUARED_ERROR}
OPTIMIZER_CODES = {"sgd": lib.MINRNN_SGD, "adagrad": lib.MINRNN_ADAGRAD, "rmsprop": lib.MINRNN_RMSPROP,
                   "adam": lib.MINRNN_ADAM}
ENCODINGS = {"utf8": lib.MINRNN_UTF8, "bytes": lib.MINRNN_BYTES, "words": lib.MINRNN_WORDS}
# How parameters are stored: bfloat16 and int8 (compact) are for inference, a half and a quarter of
# the bytes per weight; int8 also multiplies in integers (cext/int8.c).
PRECISIONS = {"float32": lib.MINRNN_FLOAT32, "bfloat16": lib.MINRNN_BFLOAT16, "int8": lib.MINRNN_INT8}
# statuses after which errno says why
FILE_ERRORS = {lib.MINRNN_ERR_OPEN, lib.MINRNN_ERR_READ, lib.MINRNN_ERR_WRITE, lib.MINRNN_ERR_RENAME}


def _name_of(table, value):
    return next(name for name, v in table.items() if v == value)


class MinrnnError(Exception):
    """A status code from the C library, with its message (and errno's, for file errors)."""

    def __init__(self, status, context="", errno=0, message=None):
        self.status, self.errno = status, errno
        text = message or ffi.string(lib.minrnn_strerror(status)).decode()
        if errno:
            text += f" ({os.strerror(errno)})"
        super().__init__(f"{context}: {text}" if context else text)


class NonFiniteError(MinrnnError):
    """The loss or gradient of a training step was NaN or infinite; nothing was updated."""


def check(status, context=""):
    if status == lib.MINRNN_OK:
        return
    if status == lib.MINRNN_ERR_NONFINITE:
        raise NonFiniteError(status, context)
    raise MinrnnError(status, context, ffi.errno if status in FILE_ERRORS else 0)


def version():
    return ffi.string(lib.minrnn_version()).decode()


# ---- buffers

# Where the arrays the library reads row by row start: on a cache line. A row of weights or states
# that starts mid-line makes every other vector load of it straddle two lines; measured, 32 streams
# of make run's LSTM stepped 8-11% slower with the weights, states and workspace 16 bytes past a line.
ALIGN = 64


def aligned(shape, dtype=np.float32, fill=None):
    """An array of that shape and dtype starting on an ALIGN-byte boundary (filled when fill is given)."""
    dtype, shape = np.dtype(dtype), tuple(np.atleast_1d(shape).tolist())
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(size + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    out = raw[start:start + size].view(dtype).reshape(shape)
    if fill is not None:
        out[...] = fill
    return out


def _ptr(ctype, array):
    return ffi.cast(ctype, ffi.from_buffer(array)) if array is not None else ffi.NULL


def _fptr(array):
    return _ptr("float *", array)


def _iptr(array):
    return _ptr("int32_t *", array)


class _Pointers:
    """float pointers to the arrays a call takes at every step, made again only when one of them is
    another array: from_buffer and cast cost about a microsecond each, a tenth of a small model's
    training step."""

    def __init__(self):
        self.ids, self.arrays, self.pointers = (), (), ()

    def __call__(self, *arrays):
        ids = tuple(map(id, arrays))   # unique while self.arrays holds the arrays
        if ids != self.ids:
            self.ids, self.arrays, self.pointers = ids, arrays, tuple(_fptr(a) for a in arrays)
        return self.pointers


def _floats(x, shape, what):
    """x as contiguous float32 of that shape (None: any shape)."""
    a = np.ascontiguousarray(x, dtype=np.float32)
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{what} must have shape {tuple(shape)}, not {a.shape}")
    return a


def _tokens(x, what, ndim):
    a = np.ascontiguousarray(x, dtype=np.int32)
    if a.ndim != ndim:
        raise ValueError(f"{what} must have {ndim} dimensions, not {a.ndim}")
    return a


# minrnn_config's fields and the reference's Config (or Seq2seqConfig) fields are the same names; a
# field whose values are names has its codes here ("cell" is two C fields, cell and nonlinearity).
# c_config and py_config are this one list, both ways.
FIELD_CODES = {"task": TASK_CODES, "cond": COND_CODES, "reduction": REDUCTION_CODES, "attention": ATTENTION_CODES,
               "loss": LOSS_CODES}
CONFIGS = {"seq2seq": Seq2seqConfig}   # the Python config of a C task code's name; Config otherwise


def c_config(cfg):
    """minrnn_config of a reference Config or Seq2seqConfig (whose task, "seq2seq", is a class
    attribute), checked by the library."""
    c = ffi.new("minrnn_config *")
    c.cell, c.nonlinearity = CELL_CODES[cfg.cell]
    c.task = TASK_CODES[cfg.task]
    for f in dataclasses.fields(cfg):
        if f.name != "cell":
            value = getattr(cfg, f.name)
            setattr(c, f.name, FIELD_CODES[f.name][value] if f.name in FIELD_CODES else value)
    check(lib.minrnn_config_check(c), "model configuration")
    return c


def py_config(c):
    task = _name_of(TASK_CODES, c.task)
    kind = CONFIGS.get(task, Config)
    values = {"cell": _name_of(CELL_CODES, (c.cell, c.nonlinearity))}
    for f in dataclasses.fields(kind):
        if f.name != "cell":
            value = getattr(c, f.name)
            values[f.name] = _name_of(FIELD_CODES[f.name], value) if f.name in FIELD_CODES else f.type(value)
    return kind(**values)


def config_kind(cfg):
    """What a saved configuration's "kind" says it is: "seq2seq", or "model" (a Config)."""
    return "seq2seq" if cfg.task == "seq2seq" else "model"


# The fields added to a kind's configuration since files first described it, with the one value every
# file written before had: an older export lacks them, and means that value.
ADDED_FIELDS = {"model": {"input_size": 0, "loss": "cross_entropy"}, "seq2seq": {"input_size": 0, "input_feeding": False}}


def config_of_kind(kind, fields):
    """The configuration of that kind (config_kind's) with exactly these fields (those ADDED_FIELDS
    names may be absent): ValueError if they are not one (another field left out would take a
    default the model was not made with)."""
    if kind not in ("model", *CONFIGS) or not isinstance(fields, dict):
        raise ValueError(f"no kind (model or {', '.join(CONFIGS)}) and config fields (an object)")
    fields = {**ADDED_FIELDS.get(kind, {}), **fields}
    names = {f.name for f in dataclasses.fields(CONFIGS.get(kind, Config))}
    missing, unknown = sorted(names - set(fields)), sorted(set(fields) - names)
    if missing or unknown:
        raise ValueError(f"{'it lacks ' + ', '.join(missing) if missing else 'it has ' + ', '.join(unknown)}; a {kind} "
                         f"config has exactly {', '.join(sorted(names))}")
    return CONFIGS.get(kind, Config)(**fields)


def tensor_shapes(config):
    """[(name, shape)] of a configuration's parameter block, from the library, allocating nothing."""
    c, info, out = c_config(config), ffi.new("minrnn_tensor *"), []
    for i in range(lib.minrnn_tensor_count(c)):
        check(lib.minrnn_tensor_info(c, i, info))
        out.append((ffi.string(info.name).decode(), (info.rows, info.cols)[:info.ndim]))
    return out


def param_count(config):
    return lib.minrnn_param_count(c_config(config))


def workspace_floats(config, B, T):
    """Floats of scratch for B streams of T steps; 0 if B * T is out of the library's range."""
    return lib.minrnn_workspace_size(c_config(config), B, T)


# ---- random numbers

class Rng:
    """The shared xorshift64* generator, held in a C struct so the core can draw from it."""

    def __init__(self, seed=0):
        self.c = ffi.new("minrnn_rng *")
        lib.minrnn_rng_seed(self.c, seed & (2**64 - 1))

    @property
    def state(self):
        return int(self.c.state)

    @state.setter
    def state(self, value):
        self.c.state = value

    def next_u64(self):
        return int(lib.minrnn_rng_next(self.c))

    def uniform(self):
        return float(lib.minrnn_rng_uniform(self.c))


# ---- the parameter block, and the models that run it

def _condition(config, cond, B):
    """The condition of B streams as minrnn_batch takes it: labels (B,) int32 or vectors (B, C)
    float32, checked against the model's; None for a model without one."""
    if (cond is None) != (config.cond == "none"):
        raise ValueError(f"this model's condition is {config.cond!r}: " + ("give cond" if cond is None else "give no cond"))
    if config.cond == "label":
        labels = _tokens(cond, "condition labels", 1)
        if labels.shape != (B,):
            raise ValueError(f"condition labels must have shape {(B,)}, not {labels.shape}")
        return labels
    if config.cond == "vector":
        return _floats(cond, (B, config.cond_size), "condition vectors")
    return None


def _put_condition(config, c, cond):
    """Point minrnn_batch's or minrnn_generation's condition at cond (from _condition)."""
    if config.cond == "label":
        c.labels = _iptr(cond)
    elif config.cond == "vector":
        c.vectors = _fptr(cond)


class Batch:
    """The twin of minrnn_batch: (T, B) tokens (a model of vectors: (T, B, D) inputs), targets ((T, B), or (B,) for a classifier, or None),
    lengths (B,) or None, and the condition: labels (B,) or vectors (B, C), or None. Holds the
    arrays, checked for shape, and the C struct pointing at them."""

    def __init__(self, config, tokens, targets=None, lengths=None, cond=None):
        self.tokens = self.inputs = None   # tokens, or a model of vectors' inputs (T, B, D) float32
        if config.input_size:
            self.inputs = np.ascontiguousarray(tokens, dtype=np.float32)
            if self.inputs.ndim != 3 or self.inputs.shape[2] != config.input_size:
                raise ValueError(f"inputs must have shape (T, B, {config.input_size}), not {self.inputs.shape}")
            T, B = self.inputs.shape[:2]
        else:
            self.tokens = _tokens(tokens, "tokens", 2)
            T, B = self.tokens.shape
        self.targets = self.values = self.lengths = None
        if targets is not None and config.loss == "squared_error":   # values, K (V) a row
            shape = (B, config.num_classes) if config.task == "classify" else (T, B, config.vocab_size)
            self.values = _floats(targets, shape, "targets (values)")
        elif targets is not None:
            shape = (B,) if config.task == "classify" else (T, B)
            self.targets = _tokens(targets, "targets", len(shape))
            if self.targets.shape != shape:
                raise ValueError(f"targets must have shape {shape}, not {self.targets.shape}")
        if lengths is not None:
            self.lengths = _tokens(lengths, "lengths", 1)
            if self.lengths.shape != (B,):
                raise ValueError(f"lengths must have shape {(B,)}, not {self.lengths.shape}")
        self.cond = _condition(config, cond, B)
        c = self.c = ffi.new("minrnn_batch *")
        c.B, c.T = B, T
        c.tokens, c.targets, c.lengths = _iptr(self.tokens), _iptr(self.targets), _iptr(self.lengths)
        c.inputs, c.values = _fptr(self.inputs), _fptr(self.values)
        _put_condition(config, c, self.cond)

    @property
    def shape(self):
        return (self.c.T, self.c.B)


@dataclass
class Forward:
    """What Model.forward computed (the reference's forward returns its twin). It also holds the
    workspace that Model.backward needs; the library's stamp in that workspace makes a backward of
    anything but this forward pass an error."""
    loss: float          # mean (or summed) cross-entropy, or None without targets
    logits: np.ndarray   # (T, B, V) or (B, K), or None if not asked for
    final_state: np.ndarray   # (L, S, B, H)
    batch: Batch
    masks: np.ndarray
    workspace: np.ndarray

    @property
    def tokens(self):
        return self.batch.tokens

    @property
    def targets(self):
        """The batch's targets: class ids, or values (a model with loss squared_error), or None."""
        return self.batch.targets if self.batch.values is None else self.batch.values


class Block:
    """Parameters in one float32 block with named views (PyTorch's names), gradients in the same
    layout, the precision inference reads them at, and the scratch of the calls that run them. A
    Model and a Seq2seq are each one block.

    threads: for every call (0: the cores other processes leave free); results do not depend on it.
    """

    MAX_WORKSPACES = 4   # shapes whose scratch is kept (training, evaluation, sampling, ...)

    def __init__(self, config, params=None, seed=0, init="default", threads=0):
        n = param_count(config)
        if params is None:
            params = aligned(n)
            check(lib.minrnn_init_params(c_config(config), _fptr(params), seed & (2**64 - 1), INITS[init]), "init")
        else:
            given, params = _floats(params, (n,), "params"), aligned(n)
            params[:] = given
        self.config, self.c, self.threads = config, c_config(config), threads
        self.params, self.grads = params, aligned(n, fill=0)
        self.tensors = self.views(self.params)
        self._workspaces = {}
        self._compact = None   # the block that inference reads, after set_precision("bfloat16" or "int8")
        self._precision = "float32"

    @property
    def call_threads(self):
        """The threads a call runs on: threads, or for 0 the cores other processes leave free
        (minrnn.cores)."""
        return cores.threads(self.threads)

    @property
    def precision(self):
        return self._precision

    def set_precision(self, precision):
        """Store the weights at `precision` for inference: "bfloat16" rounds every parameter (to
        nearest, ties to even), "int8" quantizes each row of every weight matrix (cext/int8.c). The
        block that inference streams is kept, and its exact values in params, so forward, eval and
        step all compute with the same weights; with int8 they also quantize each product's input
        and multiply in integers, as the step does (an int8 model has no backward). Rounding cannot
        be undone: "float32" after it keeps the rounded values."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        if precision == "float32":
            self._compact, self._precision = None, precision
            return
        block = compact_block(self.c, self.params, precision)
        check(lib.minrnn_params_expand(self.c, PRECISIONS[precision], _ptr("void *", block), _fptr(self.params)),
              "expand")   # exact
        self._compact, self._precision = block, precision

    def block(self):
        """The array that inference reads: the parameters, or their compact block."""
        return self.params if self._compact is None else self._compact

    def weights(self):
        """(precision code, pointer) of block(); the pointer does not keep the block alive."""
        return PRECISIONS[self._precision], _ptr("void *", self.block())

    def inference_only(self, what):
        """Raise if this model's precision has no training math (int8): `what` needs float32."""
        if self._precision == "int8":
            raise MinrnnError(lib.MINRNN_ERR_ARG, what, message="it needs float32 or bfloat16 weights; this model "
                              "is int8, which is for inference (load it at --precision float32)")

    @property
    def param_count(self):
        return self.params.size

    def views(self, block):
        """Named views into a block with the parameter layout (parameters, gradients, moments)."""
        out = {}
        info = ffi.new("minrnn_tensor *")
        for i in range(lib.minrnn_tensor_count(self.c)):
            check(lib.minrnn_tensor_info(self.c, i, info))
            shape = (info.rows, info.cols)[:info.ndim]
            out[ffi.string(info.name).decode()] = block[info.offset:info.offset + info.rows * info.cols].reshape(shape)
        return out

    def state_shape(self, B):
        cfg = self.config
        return (cfg.num_layers, cfg.num_states, B, cfg.hidden_size)

    def zero_state(self, B):
        return aligned(self.state_shape(B), fill=0)

    def _workspace(self, shape, floats, dtype=np.float32):
        """The scratch buffer for a call of this shape, kept for reuse (the last few shapes)."""
        ws = self._workspaces.pop(shape, None)
        if ws is None:
            size = floats()
            if size == 0:
                raise ValueError(f"sizes {shape} are out of range for this model")
            if len(self._workspaces) >= self.MAX_WORKSPACES:
                self._workspaces.pop(next(iter(self._workspaces)))   # the least recently used
            ws = aligned(size, dtype)
        self._workspaces[shape] = ws   # now the most recently used
        return ws


def compact_block(c, params, precision):
    """The block of params (config c) at a compact precision; MinrnnError (ERR_ARG) if it cannot hold
    them."""
    code, size = PRECISIONS[precision], lib.minrnn_params_size(c, PRECISIONS[precision])
    if size == 0:
        raise MinrnnError(lib.MINRNN_ERR_ARG, precision, message="int8 takes weight rows of at most 133,144 "
                          "numbers (their integer sums must fit 32 bits), and this model's are longer: keep it at "
                          "float32 or bfloat16")
    block = aligned(size, np.uint8)
    if lib.minrnn_params_compact(c, _fptr(params), code, _ptr("void *", block)) != lib.MINRNN_OK:
        raise MinrnnError(lib.MINRNN_ERR_ARG, precision, message=(
            f"these weights cannot be stored as {precision}: a parameter is not finite"
            + (" or is beyond 127 * 2^100" if precision == "int8" else "") + "; keep them at float32"))
    return block


class Model(Block):
    """A recurrent model (minrnn.h's minrnn_forward, minrnn_backward, minrnn_step, ...): a language
    model, a classifier, or a part of a Seq2seq (task "encode")."""

    @property
    def outputs(self):
        """Logits per row: V for a language model, K for a classifier."""
        return self.config.num_classes if self.config.task == "classify" else self.config.vocab_size

    def workspace(self, B, T):
        """The scratch buffer for B streams and T steps."""
        return self._workspace((B, T), lambda: lib.minrnn_workspace_size(self.c, B, T))

    def batch(self, tokens, targets=None, lengths=None, cond=None):
        return Batch(self.config, tokens, targets, lengths, cond)

    def forward(self, tokens, targets=None, state=None, masks=None, want_logits=True, lengths=None, cond=None):
        """Run (T, B) tokens from state (zeros if None); returns a Forward."""
        batch = self.batch(tokens, targets, lengths, cond)
        T, B = batch.shape
        state = self.zero_state(B) if state is None else _floats(state, self.state_shape(B), "state")
        if masks is not None:
            masks = _floats(masks, (self.config.num_layers, T, B, self.config.hidden_size), "masks")
        out_state = aligned(state.shape)
        shape = (B, self.outputs) if self.config.task == "classify" else (T, B, self.outputs)
        logits = np.empty(shape, dtype=np.float32) if want_logits else None
        loss = ffi.new("float *") if targets is not None else ffi.NULL
        workspace = self.workspace(B, T)
        if self.precision == "int8":   # the step's integer products: inference only, no masks
            if masks is not None:
                self.inference_only("dropout")
            check(lib.minrnn_forward_compact(self.c, *self.weights(), batch.c, _fptr(state), _fptr(out_state),
                                             _fptr(logits), loss, _fptr(workspace), self.call_threads), "forward")
        else:
            check(lib.minrnn_forward(self.c, _fptr(self.params), batch.c, _fptr(state), _fptr(out_state),
                                     _fptr(masks), _fptr(logits), loss, _fptr(workspace), self.call_threads),
                  "forward")
        return Forward(float(loss[0]) if targets is not None else None, logits, out_state, batch, masks, workspace)

    def backward(self, fwd, dfinal=None):
        """Gradients of fwd.loss (if it had targets) plus sum(dfinal * final state) (if dfinal is
        given): adds into self.grads; returns (dstate0 (L, S, B, H), dvectors (B, C) for a vector
        condition, else None). Raises MinrnnError if fwd's workspace no longer holds it (another
        forward or step of its shape ran since, the parameters changed, or it was used already)."""
        self.inference_only("backward")
        if fwd.targets is None and dfinal is None:
            raise MinrnnError(lib.MINRNN_ERR_ARG, "backward",
                              message="this forward pass had no targets: give dfinal, the gradient of its final states")
        T, B = fwd.batch.shape
        if dfinal is not None:
            dfinal = _floats(dfinal, self.state_shape(B), "dfinal")
        dstate0 = np.empty(self.state_shape(B), dtype=np.float32)
        dvectors = np.empty((B, self.config.cond_size), np.float32) if self.config.cond == "vector" else None
        check(lib.minrnn_backward(self.c, _fptr(self.params), fwd.batch.c, _fptr(fwd.masks), _fptr(dfinal),
                                  _fptr(fwd.workspace), _fptr(self.grads), _fptr(dstate0), _fptr(dvectors),
                                  self.call_threads), "backward")
        return dstate0, dvectors

    def dropout_masks(self, rng, T, B):
        masks = np.empty((self.config.num_layers, T, B, self.config.hidden_size), dtype=np.float32)
        check(lib.minrnn_dropout_masks(self.c, B, T, rng.c, _fptr(masks)), "dropout masks")
        return masks

    def step(self, tokens, state, cond=None):
        """One token per stream: tokens (B,); state (L, S, B, H) moves on in place. Returns logits
        (B, V), or (B, K) for a classifier."""
        tokens = _tokens(tokens, "tokens", 1)
        B = tokens.shape[0]
        if state.dtype != np.float32 or state.shape != self.state_shape(B) or not state.flags.c_contiguous:
            raise ValueError(f"state must be a contiguous float32 array of shape {self.state_shape(B)}")
        batch = self.batch(tokens[None, :], cond=cond)
        logits = np.empty((B, self.outputs), dtype=np.float32)
        precision, params = self.weights()
        check(lib.minrnn_step_compact(self.c, precision, params, batch.c, _fptr(state), _fptr(logits),
                                      _fptr(self.workspace(B, 1)), self.call_threads), "step")
        return logits

    def train_step(self, trainer, batch):
        """minrnn_train_step on a Batch with the trainer's optimizer, generator and carried state:
        (loss, gradient norm)."""
        self.inference_only("training")
        T, B = batch.shape
        if B != trainer.B or (trainer.carry_state and T != trainer.T):
            raise ValueError(f"tokens must have shape {(trainer.T, trainer.B)}, not {(T, B)}")
        params, grads, m, v, state, workspace = trainer.pointers(self.params, self.grads, trainer.m, trainer.v,
                                                                 trainer.state, self.workspace(B, T))
        out = trainer.out
        check(lib.minrnn_train_step(self.c, params, grads, m, v, trainer.opt, trainer.rng.c, batch.c, state, out,
                                    out + 1, workspace, self.call_threads), "training step")
        return float(out[0]), float(out[1])


# ---- sequence to sequence

class Pairs:
    """The twin of minrnn_pairs: source (Ts, B) ids, or a grid (Ts, B, D) of floats, and its lengths
    (B,), the decoder's inputs [START, target] (Td, B), targets [target, END] (Td, B) or None, and
    their lengths (B,)."""

    def __init__(self, source, source_lengths, inputs, targets, target_lengths):
        grid = np.asarray(source).dtype.kind == "f"
        self.source = _floats(source, None, "grid") if grid else _tokens(source, "source", 2)
        if grid and self.source.ndim != 3:
            raise ValueError(f"a grid must be (Ts, B, D), not {self.source.shape}")
        self.inputs = _tokens(inputs, "inputs", 2)
        (Ts, B), (Td, B2) = self.source.shape[:2], self.inputs.shape
        self.source_lengths = _tokens(source_lengths, "source lengths", 1)
        self.target_lengths = _tokens(target_lengths, "target lengths", 1)
        self.targets = None if targets is None else _tokens(targets, "targets", 2)
        if B2 != B or self.source_lengths.shape != (B,) or self.target_lengths.shape != (B,) or (
                self.targets is not None and self.targets.shape != (Td, B)):
            raise ValueError(f"pairs: source {self.source.shape} and inputs {self.inputs.shape} need B = {B} "
                             "lengths each, and targets shaped like inputs")
        c = self.c = ffi.new("minrnn_pairs *")
        c.B, c.Ts, c.Td = B, Ts, Td
        if grid:
            c.grid = _fptr(self.source)
        else:
            c.source = _iptr(self.source)
        c.source_lengths = _iptr(self.source_lengths)
        c.inputs, c.targets, c.target_lengths = _iptr(self.inputs), _iptr(self.targets), _iptr(self.target_lengths)

    @property
    def shape(self):
        """(B, Ts, Td)"""
        return self.source.shape[1], self.source.shape[0], self.inputs.shape[0]


@dataclass
class Seq2seqForward:
    """What Seq2seq.forward computed, with the workspace that Seq2seq.backward needs."""
    loss: float               # mean cross-entropy over the target positions, or None without targets
    logits: np.ndarray        # (Td, B, V) or None
    alignments: np.ndarray    # (Td, B, Ts): each decoder step's attention over the source, or None
    pairs: Pairs
    masks: np.ndarray
    workspace: np.ndarray


class Seq2seq(Block):
    """An encoder and a decoder joined by attention (minrnn.h's MINRNN_TASK_SEQ2SEQ), in one block:
    the encoder's and the decoder's parameters (each a model of the configuration's cell and sizes
    with task "encode": tensors enc.* and dec.*), then the attention's, combine's and out's. It
    reads Pairs; its calls run the three together (minrnn_seq2seq_forward, ...)."""

    @property
    def outputs(self):
        return self.config.vocab_size

    def checked(self, pairs):
        """pairs, if they hold what this model reads: ids, or grids of its D (the core reads Ts*B*D floats)."""
        D = self.config.input_size
        if (pairs.source.ndim == 3) != bool(D) or (D and pairs.source.shape[2] != D):
            raise ValueError(f"this model reads {'grids of ' + str(D) + '-vectors' if D else 'source ids'}, and the "
                             f"pairs' source has shape {pairs.source.shape}")
        return pairs

    def pairs_workspace(self, B, Ts, Td):
        return self._workspace(("pairs", B, Ts, Td), lambda: lib.minrnn_seq2seq_workspace_size(self.c, B, Ts, Td))

    def encoder_steps(self, Ts):
        """The steps the encoder's dropout masks cover: Ts, none for a grid."""
        return 0 if self.config.input_size else Ts

    def dropout_masks(self, rng, B, Ts, Td):
        """The encoder's masks (L, Ts, B, H) (none for a grid), then the decoder's (L, Td, B, H), in one array."""
        L, H, Te = self.config.num_layers, self.config.hidden_size, self.encoder_steps(Ts)
        masks = np.empty(L * (Te + Td) * B * H, dtype=np.float32)
        if Te:
            check(lib.minrnn_dropout_masks(self.c, B, Te, rng.c, _fptr(masks)), "dropout masks")
        check(lib.minrnn_dropout_masks(self.c, B, Td, rng.c, _fptr(masks[L * Te * B * H:])), "dropout masks")
        return masks

    def forward(self, pairs, masks=None, want_logits=True, want_alignments=False):
        if self.precision == "int8":   # minrnn_seq2seq_forward has no integer path; translate has
            raise MinrnnError(lib.MINRNN_ERR_ARG, "int8", message="a seq2seq model at int8 translates and "
                              "captions, but its loss is computed in float32 or bfloat16 only (give --precision "
                              "float32 or bfloat16)")
        B, Ts, Td = self.checked(pairs).shape
        if masks is not None:
            size = self.config.num_layers * (self.encoder_steps(Ts) + Td) * B * self.config.hidden_size
            masks = _floats(masks, (size,), "masks")
        logits = np.empty((Td, B, self.outputs), np.float32) if want_logits else None
        alignments = np.empty((Td, B, Ts), np.float32) if want_alignments else None
        loss = ffi.new("float *") if pairs.targets is not None else ffi.NULL
        workspace = self.pairs_workspace(B, Ts, Td)
        check(lib.minrnn_seq2seq_forward(self.c, _fptr(self.params), pairs.c, _fptr(masks), _fptr(logits),
                                         _fptr(alignments), loss, _fptr(workspace), self.call_threads), "forward")
        return Seq2seqForward(float(loss[0]) if pairs.targets is not None else None, logits, alignments, pairs,
                              masks, workspace)

    def backward(self, fwd):
        """Adds the gradient of fwd.loss into self.grads."""
        check(lib.minrnn_seq2seq_backward(self.c, _fptr(self.params), fwd.pairs.c, _fptr(fwd.masks),
                                          _fptr(fwd.workspace), _fptr(self.grads), self.call_threads), "backward")

    def train_step(self, trainer, pairs):
        """minrnn_seq2seq_train_step on Pairs with the trainer's optimizer and generator: (loss,
        gradient norm). Every pair starts from zero states: nothing is carried."""
        self.inference_only("training")
        B, Ts, Td = self.checked(pairs).shape
        if B != trainer.B:
            raise ValueError(f"pairs must be {trainer.B} to a batch, not {B}")
        loss, norm = ffi.new("float *"), ffi.new("float *")
        check(lib.minrnn_seq2seq_train_step(self.c, _fptr(self.params), _fptr(self.grads), _fptr(trainer.m),
                                            _fptr(trainer.v), trainer.opt, trainer.rng.c, pairs.c, loss, norm,
                                            _fptr(self.pairs_workspace(B, Ts, Td)), self.call_threads), "training step")
        return float(loss[0]), float(norm[0])

    def translate(self, source, beam=1, max_length=100, temperature=0.0, rng=None, want_alignments=False):
        """One source's translation (minrnn_seq2seq_translate: greedy, sampling with temperature > 0
        and rng, or beam search), or one grid's caption (n, D) for a model of grids
        (minrnn_seq2seq_caption), at the model's precision: (ids without END, log probability,
        alignments (steps, n) or None)."""
        grid = bool(self.config.input_size)
        source = _floats(source, None, "grid") if grid else _tokens(source, "source", 1)
        if grid and (source.ndim != 2 or source.shape[1] != self.config.input_size):
            raise ValueError(f"a grid must be (n, {self.config.input_size}), not {source.shape}")
        n = source.shape[0]
        workspace = self._workspace(("translate", n, beam, max_length),
                                    lambda: lib.minrnn_seq2seq_translate_size(self.c, n, beam, max_length), np.uint8)
        out = np.empty(max_length, np.int32)
        alignments = np.empty((max_length, n), np.float32) if want_alignments else None
        result = ffi.new("minrnn_translation *")
        precision, params = self.weights()
        search = lib.minrnn_seq2seq_caption if grid else lib.minrnn_seq2seq_translate
        check(search(self.c, precision, params, _fptr(source) if grid else _iptr(source), n, beam, max_length,
                     temperature, rng.c if rng is not None else ffi.NULL, _iptr(out), result,
                     _fptr(alignments), _ptr("void *", workspace), self.call_threads),
              "caption" if grid else "translate")
        ids = out[:result.length].tolist()
        return ids, float(result.logprob), None if alignments is None else alignments[:result.steps].copy()


MODELS = {"seq2seq": Seq2seq}   # the block of a config's task; Model otherwise


def model_for(config, **kw):
    """A Model, or a Seq2seq for a Seq2seqConfig."""
    return MODELS.get(config.task, Model)(config, **kw)


# ---- sampling: one token, or a whole generation through the library's loop

def sample(logits, rng, temperature=1.0, top_k=0, top_p=1.0):
    """A token from logits (V,) with the core's sampler; see minrnn.reference.sampling.sample."""
    logits = np.ascontiguousarray(logits, dtype=np.float32).ravel()
    V = logits.size
    scratch = ffi.new("double[]", max(1, -(-lib.minrnn_sample_scratch_size(V) // 8)))   # aligned for doubles
    token = ffi.new("int32_t *")
    check(lib.minrnn_sample(_fptr(logits), V, temperature, top_k, top_p, rng.c, scratch, token), "sample")
    return int(token[0])


class Generation:
    """B streams of a language model generating together through the library's one loop
    (minrnn_generate_start, then minrnn_generate_next as far as `next` asks): each is fed the
    prime, then draws up to max_length tokens, each fed back. end: the id whose drawing ends a
    stream (it is not output), or None; banned: an id never drawn, or None; stop: ids whose
    drawing, in a row, ends a stream (they are output); cond: the streams' condition (B,) labels or
    (B, C) vectors. seed: one generator draws every stream's tokens, in stream order at each step;
    a list of B seeds: each stream draws from its own."""

    def __init__(self, model, B, prime, max_length, seed=0, temperature=1.0, top_k=0, top_p=1.0, end=None,
                 banned=None, stop=(), cond=None):
        seeds = list(seed) if isinstance(seed, (list, tuple)) else [seed]
        if len(seeds) not in (1, B):
            raise ValueError(f"give one seed, or one for each of the {B} streams")
        self.model, self.B = model, B
        self.samplers = ffi.new("minrnn_sampler[]", len(seeds))
        for s, value in zip(self.samplers, seeds):
            s.temperature, s.top_k, s.top_p = temperature, top_k, top_p
            lib.minrnn_rng_seed(ffi.addressof(s, "rng"), value & (2**64 - 1))
        self._prime = _tokens(prime, "prime", 1)
        self._stop = _tokens(list(stop), "stop", 1)
        self._cond = _condition(model.config, cond, B)
        g = self.g = ffi.new("minrnn_generation *")
        g.B, g.prime, g.prime_length = B, _iptr(self._prime), self._prime.size
        g.end_id, g.banned_id = -1 if end is None else end, -1 if banned is None else banned
        g.stop, g.stop_length = (_iptr(self._stop), self._stop.size) if self._stop.size else (ffi.NULL, 0)
        g.max_length = max_length
        g.samplers, g.num_samplers = self.samplers, len(seeds)
        _put_condition(model.config, g, self._cond)
        # the block this generation reads, held here whatever happens to the model's (set_precision)
        self._block, self._weights = model.block(), model.weights()
        size = lib.minrnn_generate_workspace_size(model.c, self._weights[0], g)
        if size == 0:
            raise MinrnnError(lib.MINRNN_ERR_ARG, "generate")
        self.workspace = np.empty(size, np.uint8)
        check(lib.minrnn_generate_start(model.c, *self._weights, g, _ptr("void *", self.workspace),
                                        model.call_threads), "generate")

    def next(self, steps):
        """Up to `steps` more steps: (steps taken, B) ids, -1 where a stream drew nothing (it had
        ended, or it drew the end); fewer rows than asked only once the generation is over."""
        out = np.empty((steps, self.B), np.int32)
        taken = ffi.new("int64_t *")
        check(lib.minrnn_generate_next(self.model.c, *self._weights, self.g, _ptr("void *", self.workspace), steps,
                                       _iptr(out), taken, self.model.call_threads), "generate")
        return out[:taken[0]]

    RUN_CHUNK = 1 << 20   # ids drawn per call of run: what is held grows with what is drawn, not with max_length

    def run(self):
        """The rest of the generation: [the ids of stream b] for each stream."""
        out, steps = [[] for _ in range(self.B)], max(1, self.RUN_CHUNK // self.B)
        while len(rows := self.next(steps)):
            for ids, column in zip(out, rows.T):
                ids += column[column >= 0].tolist()
        return out


class Slot:
    """One stream that joins a shared batch (Slots) at any step and leaves it when it ends: a
    minrnn_stream, which draws what Generation(model, 1, fed, max_length, seed, ...) draws, token for
    token, whatever else the batch steps (the server's tests check it against `sample`). cond: the
    stream's condition as Generation takes it for B=1. drawn: the ids it wrote so far."""

    def __init__(self, fed, max_length, seed=0, temperature=1.0, top_k=0, top_p=1.0, end=None, banned=None, stop=(),
                 cond=None):
        self._fed, self._stop = _tokens(fed, "fed", 1), _tokens(list(stop), "stop", 1)
        self._tail = np.zeros(max(1, self._stop.size), np.int32)
        c = self.c = ffi.new("minrnn_stream *")
        c.fed, c.fed_length = _iptr(self._fed), self._fed.size
        c.end_id, c.banned_id = -1 if end is None else end, -1 if banned is None else banned
        c.stop, c.stop_length, c.tail = (_iptr(self._stop) if self._stop.size else ffi.NULL), self._stop.size, \
            _iptr(self._tail)
        c.max_length = max_length
        c.sampler.temperature, c.sampler.top_k, c.sampler.top_p = temperature, top_k, top_p
        lib.minrnn_rng_seed(ffi.addressof(c.sampler, "rng"), seed & (2**64 - 1))
        self.seed, self.cond, self.drawn, self.cancelled = seed, cond, [], False   # cancelled: set by another thread
        self.empty = max_length == 0   # ended before it starts

    @property
    def ended(self):
        return self.empty or bool(self.c.ended)

    @property
    def error(self):
        """The MinrnnError that ended it (its draw failed: logits that are not finite), or None."""
        return MinrnnError(self.c.status, "sample") if self.c.status else None


class Slots:
    """Continuous batching: the streams (Slot) of a language model stepped together by
    minrnn_streams_step, one token each per step; a stream joins at the next step and leaves when it
    ends or is cancelled. The states of the streams in the batch are one (L, S, n, H) array, a row
    per stream."""

    def __init__(self, model):
        self.model, self.slots, self._streams, self.stepped = model, [], None, 0
        self.state = model.zero_state(0)
        self.scratch = ffi.new("double[]", max(1, -(-lib.minrnn_sample_scratch_size(model.outputs) // 8)))

    def join(self, slot):
        """slot takes a row from the next step on (a zero state)."""
        _condition(self.model.config, None if slot.cond is None else np.asarray(slot.cond)[None], 1)   # checked now
        self.slots.append(slot)
        state = self.model.zero_state(len(self.slots))
        state[:, :, :-1] = self.state
        self.state = state
        self._streams = None

    def step(self):
        """One step of every stream: [(slot, the id it wrote or None)] of the streams in the batch;
        those that ended or were cancelled leave it (their rows with them)."""
        # before the step: streams cancelled since the last, and those of length 0
        gone = [(s, None) for s in self.leave(lambda s: s.cancelled or s.ended)]
        B = len(self.slots)
        if B == 0:
            return gone
        if self._streams is None:   # the batch changed: its C view and its buffers, kept while it stays
            streams = ffi.new("minrnn_stream *[]", [s.c for s in self.slots])
            conds = None if self.slots[0].cond is None else np.stack([np.asarray(s.cond) for s in self.slots])
            cond, kind = _condition(self.model.config, conds, B), self.model.config.cond
            tokens, logits, workspace = np.empty(B, np.int32), np.empty((B, self.model.outputs), np.float32), \
                self.model.workspace(B, 1)
            args = (streams, B, _iptr(cond) if kind == "label" else ffi.NULL,
                    _fptr(cond) if kind == "vector" else ffi.NULL, _fptr(self.state), _fptr(logits),
                    _fptr(workspace), self.scratch, _iptr(tokens))
            # all at once, after anything that can raise: a half-built view would point at freed states;
            # _keep holds what the pointers point into
            self._streams, self._args, self._tokens = streams, args, tokens
            self._keep = (cond, logits, workspace, self.state)
        self.stepped = B   # the streams of the last step
        check(lib.minrnn_streams_step(self.model.c, *self.model.weights(), *self._args, self.model.call_threads),
              "streams step")
        out = []
        for s, token in zip(self.slots, self._tokens.tolist()):
            if token >= 0:
                s.drawn.append(token)
            out.append((s, token if token >= 0 else None))
        self.leave(lambda s: s.c.ended)
        return gone + out

    def leave(self, gone):
        """The streams for which gone(slot) holds leave the batch; returns them."""
        flags = [gone(s) for s in self.slots]
        if not any(flags):
            return []
        keep = [i for i, flag in enumerate(flags) if not flag]
        left = [s for s, flag in zip(self.slots, flags) if flag]
        if left:
            self.slots = [self.slots[i] for i in keep]
            state = self.model.zero_state(len(keep))
            state[...] = self.state[:, :, keep]
            self.state = state
            self._streams = None
        return left


# ---- training

# The minrnn_optimizer fields that a training step reads or changes.
OPTIMIZER_FIELDS = ("kind",) + HYPERPARAMETERS + ("clip_value", "clip_norm", "step")


@dataclass
class TrainerState:
    """Copies of everything a Trainer's steps read and change."""
    params: np.ndarray
    m: np.ndarray
    v: np.ndarray
    state: np.ndarray
    optimizer: tuple     # the values of OPTIMIZER_FIELDS
    rng: int
    epoch: int
    position: int


class Trainer:
    """A model with everything a training step changes: optimizer moments and step count, the
    dropout generator, the carried state of B streams of T steps, and the data cursor (epoch, and
    position within it). A trainer of records (carry_state False) starts every batch from zero
    states, and its batches may have any T."""

    def __init__(self, model, batch_size, seq_len, optimizer="adam", clip_value=0.0, clip_norm=0.0, seed=0,
                 carry_state=True, **hyper):
        """hyper: any of HYPERPARAMETERS (lr, momentum, ...); the rest are OPTIMIZERS' defaults."""
        self.model = model
        self.B, self.T = batch_size, seq_len
        self.carry_state = carry_state
        self.opt = ffi.new("minrnn_optimizer *")
        self.opt.kind = OPTIMIZER_CODES[optimizer]
        for name, value in hyperparameters(optimizer, **hyper).items():
            setattr(self.opt, name, value)
        self.opt.clip_value, self.opt.clip_norm, self.opt.step = clip_value, clip_norm, 0
        self.m, self.v = aligned(model.param_count, fill=0), aligned(model.param_count, fill=0)
        self.rng = Rng(seed)
        self.state = model.zero_state(batch_size)
        self.epoch = 0
        self.position = 0
        self.pointers, self.out = _Pointers(), ffi.new("float[2]")   # for the model's train_step: loss, norm

    @property
    def optimizer(self):
        return _name_of(OPTIMIZER_CODES, self.opt.kind)

    @property
    def lr(self):
        return float(self.opt.lr)

    @lr.setter
    def lr(self, value):
        self.opt.lr = value

    @property
    def steps(self):
        return int(self.opt.step)

    def step(self, batch):
        """One training step on a batch (model.batch(...), or Pairs for a Seq2seq); returns (loss,
        gradient norm). Raises NonFiniteError (with nothing updated) when the loss or gradient is
        not finite."""
        if not self.carry_state:
            self.reset_state()
        return self.model.train_step(self, batch)

    def step_next(self, batches):
        """A step on batch `position` of the epoch (batches.batch(epoch, i) gives it; len(batches)
        per epoch), then on to the next batch; after the last, the next epoch starts from a zero
        state. Returns (loss, gradient norm); on NonFiniteError nothing has moved."""
        result = self.step(batches.batch(self.epoch, self.position))
        self.position += 1
        if self.position == len(batches):
            self.epoch, self.position = self.epoch + 1, 0
            self.reset_state()
        return result

    def reset_state(self):
        self.state[...] = 0.0

    def flush(self):
        """Bring model.params, m, v and the carried state up to date: they are (another engine's
        trainer keeps its own copies while it steps)."""

    def get_state(self):
        return TrainerState(self.model.params.copy(), self.m.copy(), self.v.copy(), self.state.copy(),
                            tuple(getattr(self.opt, name) for name in OPTIMIZER_FIELDS), self.rng.state,
                            self.epoch, self.position)

    def set_state(self, s):
        for dst, src in ((self.model.params, s.params), (self.m, s.m), (self.v, s.v), (self.state, s.state)):
            dst[...] = src
        for name, value in zip(OPTIMIZER_FIELDS, s.optimizer):
            setattr(self.opt, name, value)
        self.rng.state, self.epoch, self.position = s.rng, s.epoch, s.position


# ---- checkpoints

@dataclass
class Checkpoint:
    model: Block
    vocab: list          # symbols: code points, or byte values, or words (each its code points and
    #                      TOKEN_END); START_SYMBOL, END_SYMBOL last (text.vocabulary reads it)
    encoding: str        # "utf8", "bytes" or "words"
    meta: dict
    trainer: Trainer = None
    labels: list = ()    # names of the K classes, then of the C condition labels
    cond_scaling: tuple = None   # vector condition: (shift, scale), (C,) each: the model reads
                                 # (v - shift) * scale
    precision: str = "float32"   # how the file stores the parameters (a key of PRECISIONS)
    input_scaling: tuple = None  # a model of vectors: (shift, scale), (D,) each: it reads (x - shift) * scale


START_SYMBOL, END_SYMBOL, TOKEN_END = lib.MINRNN_START_SYMBOL, lib.MINRNN_END_SYMBOL, lib.MINRNN_TOKEN_END
# A trainer's state in a checkpoint, as (minrnn_checkpoint field, Trainer attribute): what save
# writes and load reads back, this one list both ways (the optimizer is its struct, whole).
TRAINER_SCALARS = (("batch_size", "B"), ("seq_len", "T"), ("epoch", "epoch"), ("position", "position"))
TRAINER_BUFFERS = ("m", "v", "state")


def save_checkpoint(path, model, vocab, encoding="utf8", meta=None, trainer=None, labels=(), cond_scaling=None,
                    precision="float32", input_scaling=None):
    """Write atomically (temporary file, then rename); trainer adds the state for an exact resume.
    precision "bfloat16" or "int8" stores the parameters rounded or quantized, for inference (no
    trainer)."""
    meta_bytes = json.dumps(meta or {}, sort_keys=True).encode("utf-8")
    label_bytes = "".join(name + "\n" for name in labels).encode("utf-8")
    vocab = np.ascontiguousarray(vocab, dtype=np.int32)
    ids = vocab_ids(model.config)
    if encoding != "words" and len(vocab) != ids:   # the library reads that many (its 0 means V)
        raise ValueError(f"vocab has {len(vocab)} symbols and the model {ids}")
    ck = ffi.new("minrnn_checkpoint *")
    ck.config = model.c[0]
    ck.encoding, ck.vocab_length = ENCODINGS[encoding], len(vocab)
    ck.precision = PRECISIONS[precision]
    if precision == "int8":
        compact_block(model.c, model.params, precision)   # the library's refusal, with its reason
    ck.meta_size, ck.labels_size = len(meta_bytes), len(label_bytes)
    meta_buf, label_buf = ffi.from_buffer(meta_bytes), ffi.from_buffer(label_bytes)
    ck.vocab, ck.params, ck.meta = _iptr(vocab), _fptr(model.params), ffi.cast("char *", meta_buf)
    ck.labels = ffi.cast("char *", label_buf)
    if cond_scaling is not None:
        shift, scale = (_floats(x, (model.config.cond_size,), "condition scaling") for x in cond_scaling)
        ck.cond_shift, ck.cond_scale = _fptr(shift), _fptr(scale)
    if input_scaling is not None:
        ishift, iscale = (_floats(x, (model.config.input_size,), "input scaling") for x in input_scaling)
        ck.input_shift, ck.input_scale = _fptr(ishift), _fptr(iscale)
    if trainer is not None:
        ck.has_train_state, ck.optimizer, ck.rng_state = 1, trainer.opt[0], trainer.rng.state
        for field, attribute in TRAINER_SCALARS:
            setattr(ck, field, getattr(trainer, attribute))
        for name in TRAINER_BUFFERS:
            setattr(ck, name, _fptr(getattr(trainer, name)))
    check(lib.minrnn_checkpoint_save(os.fsencode(path), ck), f"saving {path}")


def save_model_of(path, ck, precision="float32"):
    """A Checkpoint's model and what it reads with (no training state) at path, at `precision`."""
    save_checkpoint(path, ck.model, ck.vocab, ck.encoding, meta=ck.meta, labels=ck.labels,
                    cond_scaling=ck.cond_scaling, precision=precision, input_scaling=ck.input_scaling)


def checked_contents(cfg, vocab, encoding, labels, scaling):
    """(vocab, encoding, labels, scaling) as save_checkpoint takes them, checked by checkpoint.c's
    rules for a model of cfg, one field at a time: ValueError naming the first that breaks one."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding is {encoding!r}, not one of {', '.join(ENCODINGS)}")
    if not isinstance(vocab, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in vocab):
        raise ValueError("vocab is not a list of whole numbers (symbols)")
    symbols = vocab[:-2] if vocab[-2:] == [START_SYMBOL, END_SYMBOL] else vocab
    if cfg.task == "seq2seq" and symbols is vocab:
        raise ValueError("vocab lacks the start and end markers a seq2seq model's has")
    words = encoding == "words"
    if words and not vocab_ids(cfg):
        raise ValueError("encoding is words, and a model of vectors has no vocabulary (give utf8)")
    ids = (symbols.count(TOKEN_END) if words else len(symbols)) + len(vocab) - len(symbols)
    expected = vocab_ids(cfg)
    if ids != expected:
        raise ValueError(f"vocab has {ids} {'words' if words else 'symbols'} and its config {expected}")
    top, kind = (255, "byte values") if encoding == "bytes" else (0x10FFFF, "Unicode scalar values")
    if words:
        checked_words(symbols)
        return vocab, encoding, *checked_names(cfg, labels, scaling)
    for i, s in enumerate(symbols):
        if not 0 <= s <= top or 0xD800 <= s <= 0xDFFF and encoding == "utf8" or i and s <= symbols[i - 1]:
            raise ValueError(f"vocab[{i}] = {s} is not a symbol in order ({kind}, each once, increasing)")
    return vocab, encoding, *checked_names(cfg, labels, scaling)


def vocab_ids(cfg):
    """The ids of a model's vocabulary (checkpoint.c's vocab_ids): V, or none for a model of vectors
    (whose V, if any, counts its outputs; a captioner of grids reads vectors and has one)."""
    return 0 if getattr(cfg, "input_size", 0) and cfg.task != "seq2seq" else cfg.vocab_size


def checked_words(stored):
    """ValueError unless stored (a word vocabulary without its markers) is what checkpoint.c takes:
    tokens of at most MAX_TOKEN_CHARS Unicode scalar values, each ended by TOKEN_END, the first
    empty, in strictly increasing order."""
    if stored and stored[-1] != TOKEN_END:
        raise ValueError("vocab's last word is not ended by its end mark (-3)")
    tokens, token = [], []
    for i, s in enumerate(stored):
        if s == TOKEN_END:
            if (tokens and token <= tokens[-1]) or (not tokens and token) or len(token) > lib.MINRNN_MAX_TOKEN_CHARS:
                raise ValueError(f"vocab's word {len(tokens)} is not a word in order (the first empty, then each "
                                 f"of 1 to {lib.MINRNN_MAX_TOKEN_CHARS} code points, once, increasing)")
            tokens.append(token)
            token = []
        elif not 0 <= s <= 0x10FFFF or 0xD800 <= s <= 0xDFFF:
            raise ValueError(f"vocab[{i}] = {s} is not a Unicode scalar value")
        else:
            token.append(s)


def label_count(cfg):
    """The names a checkpoint holds (checkpoint.c's label_count): the classes of a classifier (a
    tagger of vectors: of its V classes; values have none), then the condition's labels."""
    classes = getattr(cfg, "loss", "cross_entropy") == "cross_entropy"
    outputs = cfg.num_classes if cfg.task == "classify" else cfg.vocab_size if cfg.task == "lm" and cfg.input_size else 0
    return (outputs if classes else 0) + (cfg.cond_size if cfg.cond == "label" else 0)


def checked_names(cfg, labels, scaling):
    """(labels, scaling) as save_checkpoint takes them, checked for a model of cfg."""
    count = label_count(cfg)
    if not isinstance(labels, list) or len(labels) != count or len(set(labels)) < count or not all(
            isinstance(x, str) and x and not set(x) & set("\t\n\r\0") for x in labels):
        raise ValueError(f"labels must be {count} different names without tabs or line breaks")
    if (scaling is None) != (cfg.cond != "vector"):
        raise ValueError(f"cond_scaling must be {'given' if scaling is None else 'absent'} for condition {cfg.cond}")
    return labels, checked_scaling(scaling, cfg.cond_size if cfg.cond == "vector" else 0, "cond_scaling")


def checked_scaling(scaling, n, what):
    """(shift, scale) as float32 arrays of n finite numbers each, or None when n is 0 (a scaling
    given then is an error); ValueError naming `what` otherwise."""
    if (scaling is None) != (n == 0):
        raise ValueError(f"{what} must be {'given' if scaling is None else 'absent'} for this model")
    if scaling is None:
        return None
    try:
        scaling = tuple(np.array(a, dtype=np.float32) for a in scaling)
    except (TypeError, ValueError):
        raise ValueError(f"{what} is not two lists of numbers") from None
    if len(scaling) != 2 or any(a.shape != (n,) or not np.all(np.isfinite(a)) for a in scaling):
        raise ValueError(f"{what} must be two lists of {n} finite numbers")
    return scaling


def load_checkpoint(path, threads=0):
    """Read a checkpoint through one open file, so that a training run replacing it meanwhile does
    no harm; raises MinrnnError with the library's message if it can't."""
    try:   # O_NONBLOCK: a FIFO is refused by the library rather than waited on
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise MinrnnError(lib.MINRNN_ERR_OPEN, str(path), e.errno) from None
    try:
        return _load_fd(fd, path, threads)
    finally:
        os.close(fd)


def _load_fd(fd, path, threads):
    ck = ffi.new("minrnn_checkpoint *")
    check(lib.minrnn_checkpoint_peek_fd(fd, ck), str(path))
    config = py_config(ck.config)
    model = model_for(config, params=np.zeros(param_count(config), np.float32), threads=threads)
    vocab = np.empty(ck.vocab_length, dtype=np.int32)
    meta, labels = bytearray(ck.meta_size), bytearray(ck.labels_size)
    ck.vocab, ck.params = _iptr(vocab), _fptr(model.params)
    ck.meta = ffi.cast("char *", ffi.from_buffer(meta)) if ck.meta_size else ffi.NULL
    ck.labels = ffi.cast("char *", ffi.from_buffer(labels)) if ck.labels_size else ffi.NULL
    scaling = None
    if config.cond == "vector":
        scaling = (np.empty(config.cond_size, np.float32), np.empty(config.cond_size, np.float32))
        ck.cond_shift, ck.cond_scale = _fptr(scaling[0]), _fptr(scaling[1])
    input_scaling = None
    if ck.config.input_size:
        D = ck.config.input_size
        input_scaling = (np.empty(D, np.float32), np.empty(D, np.float32))
        ck.input_shift, ck.input_scale = _fptr(input_scaling[0]), _fptr(input_scaling[1])
    trainer = None
    if ck.has_train_state:
        trainer = Trainer(model, ck.batch_size, ck.seq_len)   # the caller sets carry_state
        for name in TRAINER_BUFFERS:
            setattr(ck, name, _fptr(getattr(trainer, name)))
    check(lib.minrnn_checkpoint_load_fd(fd, ck), str(path))
    precision = _name_of(PRECISIONS, ck.precision)
    if precision != "float32":
        model.set_precision(precision)   # the values are already the block's: this keeps them, compact
    if trainer is not None:
        trainer.opt[0], trainer.rng.state = ck.optimizer, ck.rng_state
        for field, attribute in TRAINER_SCALARS:
            setattr(trainer, attribute, getattr(ck, field))
    return Checkpoint(model, [int(s) for s in vocab], _name_of(ENCODINGS, ck.encoding), parse_meta(meta, path),
                      trainer, labels.decode("utf-8").split("\n")[:-1], scaling, precision, input_scaling)


def parse_meta(raw, path):
    """The metadata section: a JSON object, or MinrnnError saying that it is not one."""
    if not raw:
        return {}
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):   # RecursionError: nested too deeply
        raise MinrnnError(lib.MINRNN_ERR_CORRUPT, str(path), message="its metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise MinrnnError(lib.MINRNN_ERR_CORRUPT, str(path), message="its metadata is not a JSON object")
    return meta
