"""minrnn's pure-Python reference: the truth the C core is measured against.

Standard library only. Read it in this order: rng (the shared generator), tensor (list algebra),
cells (one time step of RNN, LSTM, GRU, forward and backward), model (parameters, forward and
backward over B streams, T steps and L layers; records of their own lengths, a condition added to
layer 0, a next-token decoder, a classifier head or none at all), quantize (int8 weights and
products, for inference), optim (clipping, update rules), train
(one step), sampling (temperature, top-k, top-p), seq2seq (an encoder and a decoder, each a model
without an output layer, joined by attention; greedy, sampled and beam-searched translation).
seq2seq's forward and backward keep their module's name: `seq2seq.forward`, `seq2seq.backward`.
"""

from .cells import CELLS, CellKind
from .model import (CONDITIONS, INIT_SCHEMES, LOSSES, REDUCTIONS, TASKS, Config, Forward, backward, cross_entropy, dropout_masks,
                    flatten, forward, init_params, normal_draw, param_count, param_shapes, softmax, unflatten,
                    zero_state, zeros_params)
from .optim import OPTIMIZERS, Optimizer, clip_by_norm, clip_by_value, global_norm, hyperparameters
from .rng import Rng, splitmix64
from .sampling import argmax, sample
from . import quantize, seq2seq
from .seq2seq import ATTENTIONS, Seq2seqConfig
from .train import train_step, update_step

__all__ = ["ATTENTIONS", "CELLS", "CONDITIONS", "CellKind", "Config", "Forward", "OPTIMIZERS", "Optimizer",
           "LOSSES", "REDUCTIONS", "Rng", "Seq2seqConfig", "TASKS", "argmax", "backward", "clip_by_norm", "clip_by_value",
           "cross_entropy", "dropout_masks", "flatten", "forward", "global_norm", "hyperparameters", "INIT_SCHEMES",
           "init_params", "normal_draw", "param_count", "param_shapes", "quantize", "sample", "seq2seq", "softmax", "splitmix64",
           "train_step", "unflatten", "update_step", "zero_state", "zeros_params"]
