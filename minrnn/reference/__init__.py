"""minrnn's pure-Python reference: the truth the C core is measured against.

Standard library only. Read it in this order: rng (the shared generator), tensor (list algebra),
cells (one time step of RNN, LSTM, GRU, forward and backward), model (parameters, forward and
backward over B streams, T steps and L layers; records of their own lengths, a condition added to
layer 0, a next-token decoder or a classifier head), optim (clipping, update rules), train (one step),
sampling (temperature, top-k, top-p).
"""

from .cells import CELLS, CellKind
from .model import (CONDITIONS, INIT_SCHEMES, REDUCTIONS, TASKS, Config, Forward, backward, cross_entropy, dropout_masks,
                    flatten, forward, init_params, normal_draw, param_count, param_shapes, softmax, unflatten,
                    zero_state, zeros_params)
from .optim import OPTIMIZERS, Optimizer, clip_by_norm, clip_by_value, global_norm, hyperparameters
from .rng import Rng, splitmix64
from .sampling import argmax, sample
from .train import train_step

__all__ = ["CELLS", "CONDITIONS", "CellKind", "Config", "Forward", "OPTIMIZERS", "Optimizer", "REDUCTIONS", "Rng", "TASKS",
           "argmax", "backward", "clip_by_norm", "clip_by_value", "cross_entropy", "dropout_masks", "flatten", "forward",
           "global_norm", "hyperparameters", "INIT_SCHEMES", "init_params", "normal_draw", "param_count", "param_shapes",
           "sample", "softmax", "splitmix64", "train_step", "unflatten", "zero_state", "zeros_params"]
