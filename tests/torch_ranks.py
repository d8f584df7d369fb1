"""A helper of test_torch_update.py, run by torchrun (or alone): 20 steps of the torch engine's
trainer on fixed batches of a stream language model and of records, then rank 0 writes the
parameters, moments and carried state to the .npz given."""

import sys

import numpy as np

from minrnn import core
from minrnn.reference import Config
from minrnn.torch_engine import TorchTrainer

V, B, T, STEPS = 15, 4, 10, 20


def main(out):
    rng = np.random.default_rng(3)
    results = {}
    for kind, carry in (("streams", True), ("records", False)):
        model = core.Model(Config(vocab_size=V, hidden_size=12, cell="lstm", num_layers=2, embed_size=5), seed=4,
                           threads=1)
        t = TorchTrainer(model, B, T, optimizer="adam", lr=3e-3, clip_norm=1.0, seed=2, carry_state=carry)
        losses = []
        for _ in range(STEPS):
            x, y = (rng.integers(0, V, size=(T, B)).astype(np.int32) for _ in range(2))
            lengths = None if carry else rng.integers(1, T + 1, size=B).astype(np.int32)
            losses.append(t.step(model.batch(x, y, lengths))[0])
        t.flush()
        results.update({f"{kind}_params": model.params, f"{kind}_m": t.m, f"{kind}_state": t.state,
                        f"{kind}_losses": np.array(losses)})
        if t.rank == 0:
            np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1])
