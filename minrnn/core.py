"""The C core from Python: a thin layer over minrnn._core (cffi, API mode).

It holds numpy buffers, passes them to the C library and turns its status codes into exceptions
carrying the library's own message; it adds no math of its own. Shapes are those of minrnn.h:
tokens and targets (T, B) int32, states (L, S, B, H), logits (T, B, V), all float32.
"""

import json
import os
from dataclasses import dataclass

import numpy as np

from minrnn._core import ffi, lib
from minrnn.reference import Config
from minrnn.reference.optim import DEFAULT_EPS, DEFAULT_LR

CELLS = {"rnn": lib.MINRNN_RNN, "lstm": lib.MINRNN_LSTM, "gru": lib.MINRNN_GRU}
NONLINEARITIES = {"tanh": lib.MINRNN_TANH, "relu": lib.MINRNN_RELU}
INITS = {"default": lib.MINRNN_INIT_DEFAULT, "irnn": lib.MINRNN_INIT_IRNN}
OPTIMIZERS = {"sgd": lib.MINRNN_SGD, "adagrad": lib.MINRNN_ADAGRAD, "rmsprop": lib.MINRNN_RMSPROP,
              "adam": lib.MINRNN_ADAM}
ENCODINGS = {"utf8": lib.MINRNN_UTF8, "bytes": lib.MINRNN_BYTES}


def _name_of(table, value):
    return next(name for name, v in table.items() if v == value)


class MinrnnError(Exception):
    """A status code from the C library, with its message."""

    def __init__(self, status, context=""):
        self.status = status
        message = ffi.string(lib.minrnn_strerror(status)).decode()
        super().__init__(f"{context}: {message}" if context else message)


class NonFiniteError(MinrnnError):
    """The loss or gradient of a training step was NaN or infinite; nothing was updated."""


def check(status, context=""):
    if status == lib.MINRNN_ERR_NONFINITE:
        raise NonFiniteError(status, context)
    if status != lib.MINRNN_OK:
        raise MinrnnError(status, context)


def version():
    return ffi.string(lib.minrnn_version()).decode()


# ---- buffers

def _ptr(ctype, array):
    return ffi.cast(ctype, ffi.from_buffer(array)) if array is not None else ffi.NULL


def _fptr(array):
    return _ptr("float *", array)


def _iptr(array):
    return _ptr("int32_t *", array)


def _floats(x, shape, what):
    a = np.ascontiguousarray(x, dtype=np.float32)
    if a.shape != tuple(shape):
        raise ValueError(f"{what} must have shape {tuple(shape)}, not {a.shape}")
    return a


def _tokens(x, what, ndim):
    a = np.ascontiguousarray(x, dtype=np.int32)
    if a.ndim != ndim:
        raise ValueError(f"{what} must have {ndim} dimensions, not {a.ndim}")
    return a


def c_config(cfg):
    c = ffi.new("minrnn_config *")
    c.cell, c.nonlinearity = CELLS[cfg.cell], NONLINEARITIES[cfg.nonlinearity]
    c.vocab_size, c.embed_size, c.hidden_size = cfg.vocab_size, cfg.embed_size, cfg.hidden_size
    c.num_layers, c.dropout = cfg.num_layers, cfg.dropout
    check(lib.minrnn_config_check(c), "model configuration")
    return c


def py_config(c):
    return Config(vocab_size=c.vocab_size, hidden_size=c.hidden_size, cell=_name_of(CELLS, c.cell),
                  nonlinearity=_name_of(NONLINEARITIES, c.nonlinearity), embed_size=c.embed_size,
                  num_layers=c.num_layers, dropout=c.dropout)


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


# ---- the model

class Model:
    """Parameters in one float32 block with named views (PyTorch's names), and the calls that run it.

    threads: passed to every call (0 = OpenMP's default); results do not depend on it.
    """

    def __init__(self, config, params=None, seed=0, init="default", threads=0):
        self.config = config
        self.c = c_config(config)
        self.threads = threads
        n = lib.minrnn_param_count(self.c)
        if params is None:
            self.params = np.empty(n, dtype=np.float32)
            check(lib.minrnn_init_params(self.c, _fptr(self.params), seed & (2**64 - 1), INITS[init]), "init")
        else:
            self.params = _floats(params, (n,), "params").copy()
        self.grads = np.zeros(n, dtype=np.float32)
        self.tensors = self.views(self.params)
        self._workspace = None
        self._workspace_shape = None

    @property
    def param_count(self):
        return self.params.size

    def views(self, block):
        """Named views into a block with the parameter layout (parameters, gradients, moments)."""
        out = {}
        info = ffi.new("minrnn_tensor *")
        for i in range(lib.minrnn_tensor_count(self.c)):
            check(lib.minrnn_tensor_info(self.c, i, info))
            name = ffi.string(info.name).decode()
            view = block[info.offset:info.offset + info.rows * info.cols]
            is_vector = name.startswith("bias") or name == "decoder.bias"
            out[name] = view if is_vector else view.reshape(info.rows, info.cols)
        return out

    def state_shape(self, B):
        cfg = self.config
        return (cfg.num_layers, cfg.num_states, B, cfg.hidden_size)

    def zero_state(self, B):
        return np.zeros(self.state_shape(B), dtype=np.float32)

    def workspace(self, B, T):
        """The scratch buffer for B streams and T steps, kept for reuse (backward needs forward's)."""
        if self._workspace_shape != (B, T):
            size = lib.minrnn_workspace_size(self.c, B, T)
            if size == 0:
                raise ValueError(f"B = {B} and T = {T} are out of range for this model")
            self._workspace = np.empty(size, dtype=np.float32)
            self._workspace_shape = (B, T)
        return self._workspace

    def forward(self, tokens, targets=None, state=None, masks=None, want_logits=True):
        """Returns (loss or None, logits (T, B, V) or None, final state (L, S, B, H))."""
        tokens = _tokens(tokens, "tokens", 2)
        T, B = tokens.shape
        if targets is not None:
            targets = _tokens(targets, "targets", 2)
            if targets.shape != tokens.shape:
                raise ValueError("targets must have the shape of tokens")
        state = self.zero_state(B) if state is None else _floats(state, self.state_shape(B), "state")
        if masks is not None:
            masks = _floats(masks, (self.config.num_layers, T, B, self.config.hidden_size), "masks")
        out_state = np.empty_like(state)
        logits = np.empty((T, B, self.config.vocab_size), dtype=np.float32) if want_logits else None
        loss = ffi.new("float *") if targets is not None else ffi.NULL
        check(lib.minrnn_forward(self.c, _fptr(self.params), B, T, _iptr(tokens), _iptr(targets),
                                 _fptr(state), _fptr(out_state), _fptr(masks), _fptr(logits), loss,
                                 _fptr(self.workspace(B, T)), self.threads), "forward")
        self._last = (tokens, targets, masks)
        return (float(loss[0]) if targets is not None else None), logits, out_state

    def backward(self):
        """Gradients of the last forward's loss: adds into self.grads; returns dstate0 (L, S, B, H)."""
        tokens, targets, masks = self._last
        T, B = tokens.shape
        dstate0 = np.empty(self.state_shape(B), dtype=np.float32)
        check(lib.minrnn_backward(self.c, _fptr(self.params), B, T, _iptr(tokens), _iptr(targets),
                                  _fptr(masks), _fptr(self.workspace(B, T)), _fptr(self.grads),
                                  _fptr(dstate0), self.threads), "backward")
        return dstate0

    def dropout_masks(self, rng, T, B):
        masks = np.empty((self.config.num_layers, T, B, self.config.hidden_size), dtype=np.float32)
        check(lib.minrnn_dropout_masks(self.c, B, T, rng.c, _fptr(masks)), "dropout masks")
        return masks

    def step(self, tokens, state):
        """One token per stream: tokens (B,); state (L, S, B, H) moves on in place. Returns logits (B, V)."""
        tokens = _tokens(tokens, "tokens", 1)
        B = tokens.shape[0]
        if state.dtype != np.float32 or state.shape != self.state_shape(B) or not state.flags.c_contiguous:
            raise ValueError(f"state must be a contiguous float32 array of shape {self.state_shape(B)}")
        logits = np.empty((B, self.config.vocab_size), dtype=np.float32)
        check(lib.minrnn_step(self.c, _fptr(self.params), B, _iptr(tokens), _fptr(state), _fptr(logits),
                              _fptr(self.workspace(B, 1)), self.threads), "step")
        return logits


def sample(logits, rng, temperature=1.0, top_k=0, top_p=1.0):
    """A token from logits (V,) with the core's sampler; see minrnn.reference.sampling.sample."""
    logits = np.ascontiguousarray(logits, dtype=np.float32).ravel()
    V = logits.size
    scratch = ffi.new("char[]", max(1, lib.minrnn_sample_scratch_size(V)))
    token = ffi.new("int32_t *")
    check(lib.minrnn_sample(_fptr(logits), V, temperature, top_k, top_p, rng.c, scratch, token), "sample")
    return int(token[0])


# ---- training

class Trainer:
    """A model with everything a training step changes: optimizer moments and step count, the
    dropout generator, the carried state of B streams of T steps, and the data position."""

    def __init__(self, model, batch_size, seq_len, optimizer="adam", lr=None, momentum=0.9, alpha=0.95,
                 beta1=0.9, beta2=0.999, eps=None, clip_value=0.0, clip_norm=0.0, seed=0):
        self.model = model
        self.B, self.T = batch_size, seq_len
        self.opt = ffi.new("minrnn_optimizer *")
        o = self.opt
        o.kind = OPTIMIZERS[optimizer]
        o.lr = DEFAULT_LR[optimizer] if lr is None else lr
        o.momentum, o.alpha, o.beta1, o.beta2 = momentum, alpha, beta1, beta2
        o.eps = DEFAULT_EPS[optimizer] if eps is None else eps
        o.clip_value, o.clip_norm, o.step = clip_value, clip_norm, 0
        self.m = np.zeros(model.param_count, dtype=np.float32)
        self.v = np.zeros(model.param_count, dtype=np.float32)
        self.rng = Rng(seed)
        self.state = model.zero_state(batch_size)
        self.epoch = 0
        self.position = 0

    @property
    def optimizer(self):
        return _name_of(OPTIMIZERS, self.opt.kind)

    @property
    def lr(self):
        return float(self.opt.lr)

    @lr.setter
    def lr(self, value):
        self.opt.lr = value

    @property
    def steps(self):
        return int(self.opt.step)

    def step(self, tokens, targets):
        """One training step on (T, B) tokens and targets; returns (loss, gradient norm).
        Raises NonFiniteError (with nothing updated) when the loss or gradient is not finite."""
        tokens = _tokens(tokens, "tokens", 2)
        targets = _tokens(targets, "targets", 2)
        if tokens.shape != (self.T, self.B) or targets.shape != (self.T, self.B):
            raise ValueError(f"tokens and targets must have shape {(self.T, self.B)}")
        mdl = self.model
        loss, norm = ffi.new("float *"), ffi.new("float *")
        check(lib.minrnn_train_step(mdl.c, _fptr(mdl.params), _fptr(mdl.grads), _fptr(self.m), _fptr(self.v),
                                    self.opt, self.rng.c, self.B, self.T, _iptr(tokens), _iptr(targets),
                                    _fptr(self.state), loss, norm, _fptr(mdl.workspace(self.B, self.T)),
                                    mdl.threads), "training step")
        return float(loss[0]), float(norm[0])

    def reset_state(self):
        self.state[...] = 0.0


# ---- checkpoints

@dataclass
class Checkpoint:
    model: Model
    vocab: list          # symbols: code points, or byte values
    encoding: str        # "utf8" or "bytes"
    meta: dict
    trainer: Trainer = None


def save_checkpoint(path, model, vocab, encoding="utf8", meta=None, trainer=None):
    """Write atomically (temporary file, then rename); trainer adds the state for an exact resume."""
    meta_bytes = json.dumps(meta or {}, sort_keys=True).encode("utf-8")
    vocab = np.ascontiguousarray(vocab, dtype=np.int32)
    ck = ffi.new("minrnn_checkpoint *")
    ck.config = model.c[0]
    ck.encoding = ENCODINGS[encoding]
    ck.meta_size = len(meta_bytes)
    meta_buf = ffi.from_buffer(meta_bytes)
    ck.vocab, ck.params, ck.meta = _iptr(vocab), _fptr(model.params), ffi.cast("char *", meta_buf)
    if trainer is not None:
        ck.has_train_state = 1
        ck.optimizer = trainer.opt[0]
        ck.rng_state = trainer.rng.state
        ck.batch_size, ck.seq_len = trainer.B, trainer.T
        ck.epoch, ck.position = trainer.epoch, trainer.position
        ck.m, ck.v, ck.state = _fptr(trainer.m), _fptr(trainer.v), _fptr(trainer.state)
    check(lib.minrnn_checkpoint_save(os.fsencode(path), ck), f"saving {path}")


def load_checkpoint(path, threads=0):
    """Read a checkpoint; raises MinrnnError with the library's message if it can't."""
    ck = ffi.new("minrnn_checkpoint *")
    check(lib.minrnn_checkpoint_peek(os.fsencode(path), ck), str(path))
    n = lib.minrnn_param_count(ffi.addressof(ck, "config"))
    model = Model(py_config(ck.config), params=np.zeros(n, np.float32), threads=threads)
    vocab = np.empty(ck.config.vocab_size, dtype=np.int32)
    meta = bytearray(ck.meta_size)
    ck.vocab, ck.params = _iptr(vocab), _fptr(model.params)
    ck.meta = ffi.cast("char *", ffi.from_buffer(meta)) if ck.meta_size else ffi.NULL
    trainer = None
    if ck.has_train_state:
        trainer = Trainer(model, ck.batch_size, ck.seq_len)
        ck.m, ck.v, ck.state = _fptr(trainer.m), _fptr(trainer.v), _fptr(trainer.state)
    check(lib.minrnn_checkpoint_load(os.fsencode(path), ck), str(path))
    if trainer is not None:
        trainer.opt[0] = ck.optimizer
        trainer.rng.state = ck.rng_state
        trainer.epoch, trainer.position = ck.epoch, ck.position
    try:
        meta_dict = json.loads(meta.decode("utf-8")) if meta else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MinrnnError(lib.MINRNN_ERR_CORRUPT, f"{path}: metadata") from None
    return Checkpoint(model, [int(s) for s in vocab], _name_of(ENCODINGS, ck.encoding), meta_dict, trainer)
