"""minrnn's models as PyTorch modules, to continue training where PyTorch runs (GPUs, many machines)
and come back (python -m minrnn export --out m.safetensors; ... ; python -m minrnn import).

Optional: this module needs torch, which minrnn itself never does. A module's state_dict() has the
names and shapes of the exported safetensors file, so `load_state_dict(strict=True)` takes it as it is:

    encoder.weight (V, E)            nn.Embedding, when the model has an embedding (else one-hot input)
    rnn.weight_ih_l0, ...            nn.RNN / nn.LSTM / nn.GRU (time-major), PyTorch's own equations
    cond.weight (G*H, C)             a condition: W_cond v joins every gate's input part in layer 0
    decoder.weight, decoder.bias     nn.Linear(H, V): the next character (a language model)
    head.weight, head.bias           nn.Linear(H, K): a classifier of each record's last step
    enc.*, dec.*                     a seq2seq model's encoder and decoder (each as above, no output layer;
                                     a captioner of grids has no encoder, and its decoder a condition)
    attn.*, combine.*, out.*         its attention (attn.weight, or attn.query, attn.key, attn.v),
                                     o = tanh(combine [c; h]) and out: nn.Linear(H, V)

Two of minrnn's forms have no nn.RNN twin, and the file keeps minrnn's layout for them: a condition
(layer 0 reads x ++ v, and its weight_ih is [W_ih | W_cond], split into rnn.weight_ih_l0 and
cond.weight in the state dict) and one bias (min-char-rnn: bias_hh is a frozen zero, left out of
the state dict). parameters() is the module's own layout; state_dict() and load_state_dict() the file's.

Dropout: between layers (nn.LSTM's own) and on the top layer's outputs, as minrnn applies it.
"""

import json
import types

import numpy as np
import torch
from torch import nn

from minrnn.errors import UserError
from minrnn.interop import config_of, read_model_file, safetensors_module
from minrnn.reference.seq2seq import decoder_config, encoder_config
from minrnn.rundir import replacing

RNNS = {"rnn_tanh": (nn.RNN, "tanh"), "rnn_relu": (nn.RNN, "relu"), "lstm": (nn.LSTM, None), "gru": (nn.GRU, None)}


class CharRNN(nn.Module):
    """A language model, a classifier, or a seq2seq half (task "encode": the top layer's outputs)
    of minrnn's configuration cfg (a minrnn.reference Config)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        kind, nonlinearity = RNNS[cfg.cell]
        extra = {"nonlinearity": nonlinearity} if nonlinearity else {}
        if cfg.embed_size:
            self.encoder = nn.Embedding(cfg.vocab_size, cfg.embed_size)
        self.inputs = cfg.input_size or cfg.embed_size or cfg.vocab_size    # what layer 0 reads besides the condition
        self.conditions = cfg.cond_size if cfg.cond != "none" else 0
        self.rnn = kind(self.inputs + self.conditions, cfg.hidden_size, cfg.num_layers,
                        dropout=cfg.dropout if cfg.num_layers > 1 else 0.0, **extra)
        if cfg.one_bias:
            with torch.no_grad():
                for k in range(cfg.num_layers):
                    getattr(self.rnn, f"bias_hh_l{k}").zero_().requires_grad_(False)
        self.drop = nn.Dropout(cfg.dropout)
        if cfg.task == "classify":
            self.head = nn.Linear(cfg.hidden_size, cfg.num_classes)
        elif cfg.task == "lm":
            self.decoder = nn.Linear(cfg.hidden_size, cfg.vocab_size)
        self.register_state_dict_post_hook(to_file_layout)
        self.register_load_state_dict_pre_hook(from_file_layout)

    def forward(self, tokens, state=None, lengths=None, cond=None):
        """tokens (T, B) int64 (a model of vectors: (T, B, D) floats, standardized with the checkpoint's
        input_scaling) -> (logits (T, B, V), or (B, K) for a classifier, or the top layer's
        outputs (T, B, H) for "encode"; and the final state as nn.LSTM returns it).
        lengths (B,): a classifier reads each record's step lengths[b] - 1, and "encode" returns each
        record's own final state (its steps past lengths[b] are not run).
        cond: the condition, as minrnn's core reads it: label ids (B,), or vectors (B, C) already
        standardized with the checkpoint's cond_scaling, (v - shift) * scale."""
        cfg = self.cfg
        if cfg.input_size:
            x = tokens.float()
        else:
            x = self.encoder(tokens) if cfg.embed_size else nn.functional.one_hot(tokens, cfg.vocab_size).float()
        if (cond is None) != (cfg.cond == "none"):
            raise ValueError(f"this model's condition is {cfg.cond!r}: " + ("give cond" if cond is None else "no cond"))
        if cond is not None:
            v = nn.functional.one_hot(cond.long(), self.conditions).float() if cfg.cond == "label" else cond.float()
            x = torch.cat([x, v.expand(x.shape[0], *v.shape)], dim=2)
        if cfg.task == "encode" and lengths is not None:
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
            y, state = self.rnn(packed, state)
            y, _ = nn.utils.rnn.pad_packed_sequence(y, total_length=x.shape[0])
        else:
            y, state = self.rnn(x, state)
        y = self.drop(y)
        if cfg.task == "classify":
            T, B = tokens.shape[:2]
            last = (lengths - 1) if lengths is not None else torch.full((B,), T - 1, dtype=torch.long,
                                                                        device=tokens.device)
            return self.head(y[last, torch.arange(B, device=tokens.device)]), state
        return (self.decoder(y) if cfg.task == "lm" else y), state


def to_file_layout(module, state_dict, prefix, local_metadata):
    """state_dict()'s hook: the module's layout -> minrnn's (layer 0's joined weight split, no bias_hh)."""
    if module.conditions:
        joined = state_dict[prefix + "rnn.weight_ih_l0"]
        # copies: a column slice is no contiguous tensor, which safetensors would write as raw memory
        state_dict[prefix + "rnn.weight_ih_l0"] = joined[:, :module.inputs].contiguous()
        state_dict[prefix + "cond.weight"] = joined[:, module.inputs:].contiguous()
    if module.cfg.one_bias:
        for k in range(module.cfg.num_layers):
            del state_dict[prefix + f"rnn.bias_hh_l{k}"]


def from_file_layout(module, state_dict, prefix, *_):
    """load_state_dict()'s hook: minrnn's layout -> the module's. What is missing or misshapen is
    left for load_state_dict's own checks to name."""
    w_ih, w_cond = prefix + "rnn.weight_ih_l0", prefix + "cond.weight"
    if module.conditions and w_ih in state_dict and w_cond in state_dict:
        if state_dict[w_ih].shape[0] == state_dict[w_cond].shape[0]:
            state_dict[w_ih] = torch.cat([state_dict[w_ih], state_dict.pop(w_cond)], dim=1)
    if module.cfg.one_bias:
        for k in range(module.cfg.num_layers):
            name = prefix + f"rnn.bias_hh_l{k}"
            if name in state_dict:
                raise UserError(f"tensor {name!r}: this model has one bias per layer (bias_ih only)")
            state_dict[name] = torch.zeros_like(getattr(module.rnn, f"bias_hh_l{k}"))


class Attention(nn.Module):
    """The scores of Luong's global attention: attn.weight (general) or attn.query, attn.key, attn.v
    (additive); dot has no parameters."""

    def __init__(self, cfg):
        super().__init__()
        H, A, M = cfg.hidden_size, cfg.attention_size, cfg.memory_size
        self.kind = cfg.attention
        if self.kind == "general":
            self.weight = nn.Parameter(torch.empty(H, M))
        elif self.kind == "additive":
            self.query, self.key, self.v = (nn.Parameter(torch.empty(*s)) for s in ((A, H), (A, M), (A,)))
        for p in self.parameters():   # nn.Linear's bound (the file's values replace these)
            nn.init.uniform_(p, -p.shape[-1] ** -0.5, p.shape[-1] ** -0.5)

    def forward(self, h, e):
        """h (Td, B, H), e (Ts, B, M) -> scores (Td, B, Ts): h.e, h.W_a e, or v.tanh(W_q h + W_k e)."""
        if self.kind == "dot":
            return torch.einsum("tbh,sbh->tbs", h, e)
        if self.kind == "general":
            return torch.einsum("tbh,sbh->tbs", h, e @ self.weight.T)
        q, k = h @ self.query.T, e @ self.key.T                     # (Td, B, A), (Ts, B, A)
        u = torch.tanh(q[:, :, None, :] + k.transpose(0, 1)[None])   # (Td, B, Ts, A)
        return u @ self.v


class Seq2seq(nn.Module):
    """An encoder and a decoder joined by attention, as minrnn's seq2seq model (Seq2seqConfig); for a
    captioner (input_size D) the memory is the grid itself and the decoder, started from zeros, is
    conditioned on the grid's mean; with input feeding it runs a step at a time, each step's context
    part of the next step's condition (see minrnn/reference/seq2seq.py)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        if not cfg.input_size:
            self.enc = CharRNN(encoder_config(cfg))
        self.dec = CharRNN(decoder_config(cfg))
        if cfg.attention != "none":
            self.attn = Attention(cfg)
            self.combine = nn.Linear(cfg.memory_size + cfg.hidden_size, cfg.hidden_size)
        self.out = nn.Linear(cfg.hidden_size, cfg.vocab_size)

    def forward(self, source, source_lengths, inputs):
        """source (Ts, B) ids, or a grid (Ts, B, D) of floats standardized with the checkpoint's
        input_scaling, and source_lengths (B,); inputs (Td, B): [START, y1..ym] padded (START is
        vocab_size - 2, END vocab_size - 1) -> (logits (Td, B, V), alignments (Td, B, Ts) or None).
        The decoder starts from each record's own final encoder state (zeros for a grid); positions
        past a source's length get no attention."""
        cfg = self.cfg
        beyond = torch.arange(source.shape[0], device=source.device)[None, :] >= source_lengths[:, None]   # (B, Ts)
        if cfg.input_size:   # padding is never read: zeros, whatever is there (a NaN times 0 would not be)
            e, state = source.float().masked_fill(beyond.T[:, :, None], 0.0), None
            mean = e.sum(0) / source_lengths[:, None].float()   # (B, D)
        else:
            (e, state), mean = self.enc(source, lengths=source_lengths), None
        if not cfg.input_feeding:
            h, _ = self.dec(inputs, state, cond=mean)
            if cfg.attention == "none":
                return self.out(h), None
            o, alpha = self.attend(h, e, beyond)
            return self.out(o), alpha
        fed, outputs, alphas = torch.zeros(inputs.shape[1], cfg.memory_size, device=e.device), [], []
        for t in range(inputs.shape[0]):   # each step reads the last one's context
            h, state = self.dec(inputs[t:t + 1], state, cond=fed if mean is None else torch.cat([mean, fed], dim=1))
            o, alpha = self.attend(h, e, beyond)
            fed = torch.einsum("bs,sbm->bm", alpha[0], e)
            outputs.append(o), alphas.append(alpha)
        return self.out(torch.cat(outputs)), torch.cat(alphas)

    def attend(self, h, e, beyond):
        """(o (Td, B, H), alpha (Td, B, Ts)) of decoder outputs h over the memory e."""
        alpha = torch.softmax(self.attn(h, e).masked_fill(beyond[None], float("-inf")), dim=2)
        c = torch.einsum("tbs,sbm->tbm", alpha, e)
        return torch.tanh(self.combine(torch.cat([c, h], dim=2))), alpha


def module_for(cfg):
    """The nn.Module of a minrnn configuration (Config or Seq2seqConfig), with fresh parameters."""
    return {"seq2seq": Seq2seq}.get(cfg.task, CharRNN)(cfg)


def load(path):
    """(the nn.Module, the file's minrnn metadata: vocabulary, encoding, labels, ...) of a file that
    python -m minrnn export --out FILE.safetensors or save() wrote (strict: every tensor, no other)."""
    tensors, info = read_model_file(path)
    if info is None:
        raise UserError(f"{path}: no minrnn metadata; load reads files that export or minrnn.torch.save wrote")
    module = module_for(config_of(info, path))
    module.load_state_dict({name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in tensors.items()},
                           strict=True)
    return module, info


def save(module, info, path):
    """Write a module trained in PyTorch where python -m minrnn import reads it: its state dict and
    the metadata it was loaded with, as safetensors (a name ending in .safetensors; float32) or else
    as torch.save's file {"state_dict": ..., "minrnn": the metadata as JSON}. The file is replaced
    whole or not at all."""
    text = json.dumps(info, sort_keys=True)
    with replacing(path) as tmp:
        if str(path).endswith(".safetensors"):
            tensors = {name: np.ascontiguousarray(value.detach().cpu().float().numpy())
                       for name, value in module.state_dict().items()}
            safetensors_module().save_file(tensors, str(tmp), metadata={"minrnn": text})
        else:
            torch.save({"state_dict": module.state_dict(), "minrnn": text}, str(tmp))


# ---- a training step's loss, as the C core defines it

def masked_sum(rows, inside):
    """(the sum of per-row losses `rows` where `inside` (bool, their shape) holds, how many rows that is)."""
    return (rows * inside.float()).sum(), int(inside.sum())


def batch_loss(module, batch, state=None):
    """(total, count, final state) of module (module.cfg: its configuration) on a core batch
    (core.Batch, or core.Pairs for a seq2seq model, or batch_part's of either): the sum of the
    cross-entropies (or squared errors) at the positions within each record (every position without
    lengths), and how many: the core's loss is total / count (total with reduction "sum").
    state: a stream model's carried state, as nn.LSTM takes it, or None. The batch's arrays go to
    the device of the module's parameters."""
    cfg = module.cfg
    device = next(module.parameters()).device
    def on(a, ids=False):   # noqa: E306: a numpy array of the batch, on the module's device
        t = torch.from_numpy(np.ascontiguousarray(a)).to(device)
        return t.long() if ids else t
    if cfg.task == "seq2seq":
        logits, _ = module(on(batch.source, not cfg.input_size), on(batch.source_lengths, True), on(batch.inputs, True))
        targets, lengths = on(batch.targets, True), on(batch.target_lengths, True)
        rows = nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab_size), targets.reshape(-1), reduction="none")
        inside = torch.arange(len(targets), device=device)[:, None] < lengths[None, :]
        return (*masked_sum(rows, inside.reshape(-1)), None)
    x = on(batch.inputs) if cfg.input_size else on(batch.tokens, True)
    T, B = x.shape[:2]
    cond = None if batch.cond is None else on(batch.cond)
    lengths = None if batch.lengths is None else on(batch.lengths, True)
    out, state = module(x, state, lengths=lengths, cond=cond)
    if cfg.task == "classify":
        if batch.values is not None:
            rows = (out - on(batch.values)).square()
            return (*masked_sum(rows, torch.ones_like(rows, dtype=torch.bool)), state)
        rows = nn.functional.cross_entropy(out, on(batch.targets, True), reduction="none")
        return (*masked_sum(rows, torch.ones(B, dtype=torch.bool, device=device)), state)
    inside = torch.ones(T, B, dtype=torch.bool, device=device) if lengths is None else \
        torch.arange(T, device=device)[:, None] < lengths[None, :]
    if batch.values is not None:
        rows = (out - on(batch.values)).square()
        return (*masked_sum(rows, inside[:, :, None].expand_as(rows)), state)
    rows = nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), on(batch.targets, True).reshape(-1),
                                       reduction="none")
    return (*masked_sum(rows, inside.reshape(-1)), state)


# what a batch's arrays hold one of per record (axis 0); the others are time-major (axis 1)
PER_RECORD = ("lengths", "cond", "source_lengths", "target_lengths")


def batch_part(cfg, batch, rank, world):
    """Rank `rank`'s share of a core batch among `world` processes: its B / world records (or
    streams) in order, every array sliced along its B axis; the same fields as the batch's."""
    B = len(batch.target_lengths) if cfg.task == "seq2seq" else \
        (batch.tokens if batch.tokens is not None else batch.inputs).shape[1]
    if B % world:
        raise ValueError(f"a batch of {B} cannot be shared evenly among {world} processes")
    part, n = {}, B // world
    names = ("source", "source_lengths", "inputs", "targets", "target_lengths") if cfg.task == "seq2seq" else \
        ("tokens", "inputs", "targets", "values", "lengths", "cond")
    for name in names:
        a = getattr(batch, name, None)
        per_record = name in PER_RECORD or (cfg.task == "classify" and name in ("targets", "values"))
        part[name] = None if a is None else np.ascontiguousarray(
            a[rank * n:(rank + 1) * n] if per_record else a[:, rank * n:(rank + 1) * n])
    return types.SimpleNamespace(**part)
