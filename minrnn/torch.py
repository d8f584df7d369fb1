"""minrnn's models as PyTorch modules, to continue training where PyTorch runs (GPUs, many machines)
and come back (python -m minrnn export --out m.safetensors; ... ; python -m minrnn import).

Optional: this module needs torch, which minrnn itself never does. The module's parameter names
are those of the exported safetensors file, so `load_state_dict(strict=True)` takes it as it is:

    encoder.weight (V, E)            nn.Embedding, when the model has an embedding (else one-hot input)
    rnn.weight_ih_l0, ...            nn.RNN / nn.LSTM / nn.GRU (time-major), PyTorch's own equations
    decoder.weight, decoder.bias     nn.Linear(H, V): the next character (a language model)
    head.weight, head.bias           nn.Linear(H, K): a classifier of each record's last step

Dropout: between layers (nn.LSTM's own) and before the output layer, as minrnn applies it.
"""

import numpy as np
import torch
from torch import nn

from minrnn.errors import UserError
from minrnn.interop import config_of, read_safetensors

RNNS = {"rnn_tanh": (nn.RNN, "tanh"), "rnn_relu": (nn.RNN, "relu"), "lstm": (nn.LSTM, None), "gru": (nn.GRU, None)}


class CharRNN(nn.Module):
    """A language model or a classifier of minrnn's configuration cfg (a minrnn.reference Config)."""

    def __init__(self, cfg):
        super().__init__()
        if getattr(cfg, "task", None) not in ("lm", "classify") or cfg.cond != "none" or cfg.one_bias:
            raise UserError("minrnn.torch builds language models and classifiers without a condition and with "
                            "both biases (PyTorch's nn.RNN has no single-bias or conditioned form)")
        self.cfg = cfg
        kind, nonlinearity = RNNS[cfg.cell]
        extra = {"nonlinearity": nonlinearity} if nonlinearity else {}
        if cfg.embed_size:
            self.encoder = nn.Embedding(cfg.vocab_size, cfg.embed_size)
        self.rnn = kind(cfg.embed_size or cfg.vocab_size, cfg.hidden_size, cfg.num_layers,
                        dropout=cfg.dropout if cfg.num_layers > 1 else 0.0, **extra)
        self.drop = nn.Dropout(cfg.dropout)
        if cfg.task == "classify":
            self.head = nn.Linear(cfg.hidden_size, cfg.num_classes)
        else:
            self.decoder = nn.Linear(cfg.hidden_size, cfg.vocab_size)

    def forward(self, tokens, state=None, lengths=None):
        """tokens (T, B) int64 -> (logits (T, B, V), or (B, K) for a classifier, and the final state
        as nn.LSTM returns it). lengths (B,): a classifier reads each record's step lengths[b] - 1."""
        x = self.encoder(tokens) if self.cfg.embed_size else nn.functional.one_hot(tokens, self.cfg.vocab_size).float()
        y, state = self.rnn(x, state)
        y = self.drop(y)
        if self.cfg.task == "classify":
            T, B = tokens.shape
            last = (lengths - 1) if lengths is not None else torch.full((B,), T - 1, dtype=torch.long)
            return self.head(y[last, torch.arange(B)]), state
        return self.decoder(y), state


def module_for(cfg):
    return CharRNN(cfg)


def load(path):
    """(the nn.Module, the file's minrnn metadata: vocabulary, encoding, labels, ...) of a file that
    python -m minrnn export --out FILE.safetensors wrote (strict: every tensor, no other)."""
    tensors, info = read_safetensors(path)
    module = module_for(config_of(info, path))
    module.load_state_dict({name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in tensors.items()},
                           strict=True)
    return module, info


def save(module, info, path):
    """Write a module trained in PyTorch back to a safetensors file that python -m minrnn import
    reads: its tensors under their names, with the metadata it was loaded with."""
    import json

    import safetensors.numpy
    tensors = {name: value.detach().cpu().float().numpy() for name, value in module.state_dict().items()}
    safetensors.numpy.save_file(tensors, str(path), metadata={"minrnn": json.dumps(info, sort_keys=True)})
