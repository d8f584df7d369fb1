"""A helper of test_torch_update.py, run by torchrun (or alone): 20 steps of the torch engine's
trainer on fixed batches of a stream language model, of records, of a seq2seq model fed its
context and of a captioner over grids, then rank 0 writes the parameters, moments and carried
state to the .npz given."""

import sys

import numpy as np

from minrnn import core
from minrnn.reference import Config
from minrnn.reference.seq2seq import Seq2seqConfig
from minrnn.torch_engine import TorchTrainer

V, B, T, STEPS = 15, 4, 10, 20
TS, D = 6, 3   # the pairs' source length, a grid's vector size


def pairs(rng, grid):
    """A batch of pairs: token sources, or grids of TS places of D numbers."""
    source = rng.standard_normal((TS, B, D)).astype(np.float32) if grid else \
        rng.integers(0, V - 2, size=(TS, B)).astype(np.int32)
    inputs, targets = (rng.integers(0, V - 2, size=(T, B)).astype(np.int32) for _ in range(2))
    inputs[0] = V - 2
    sl, tl = (rng.integers(1, n + 1, size=B).astype(np.int32) for n in (TS, T))
    return core.Pairs(source, sl, inputs, targets, tl)


def main(out):
    rng = np.random.default_rng(3)
    results = {}
    for kind in ("streams", "records", "seq2seq", "captions"):
        if kind in ("streams", "records"):
            model = core.Model(Config(vocab_size=V, hidden_size=12, cell="lstm", num_layers=2, embed_size=5), seed=4,
                               threads=1)
        else:
            model = core.Seq2seq(Seq2seqConfig(vocab_size=V, hidden_size=12, cell="gru", embed_size=5,
                                               attention="additive", attention_size=6, input_feeding=True,
                                               input_size=D if kind == "captions" else 0), seed=4, threads=1)
        t = TorchTrainer(model, B, T, optimizer="adam", lr=3e-3, clip_norm=1.0, seed=2, carry_state=kind == "streams")
        losses = []
        for _ in range(STEPS):
            if kind in ("seq2seq", "captions"):
                batch = pairs(rng, kind == "captions")
            else:
                x, y = (rng.integers(0, V, size=(T, B)).astype(np.int32) for _ in range(2))
                batch = model.batch(x, y, None if kind == "streams" else rng.integers(1, T + 1, size=B).astype(np.int32))
            losses.append(t.step(batch)[0])
        t.flush()
        results.update({f"{kind}_params": model.params, f"{kind}_m": t.m, f"{kind}_state": t.state,
                        f"{kind}_losses": np.array(losses)})
    if t.rank == 0:
        np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1])
