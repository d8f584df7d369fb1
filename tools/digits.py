"""The README's digits table: scikit-learn's 1,797 handwritten digits (8x8 images, bundled with the
package) read as sequences, row by row (8 steps of 8 pixels) and pixel by pixel (64 steps of 1),
by an LSTM, a tanh RNN and an IRNN (a relu RNN with an identity recurrence, Le et al. 2015); held-out
accuracy of each, trained for the same number of steps.

    make demo-digits       (installs scikit-learn into .venv, then runs this)
    python tools/digits.py [--steps N] [--out FOLDER]

A seeded fifth of the images is held out; training's own validation split comes from the rest.
"""

import argparse
import pathlib
import shutil
import sys
import time

import numpy as np

from minrnn import api

MODELS = {   # name: the train settings that make it
    "LSTM": dict(cell="lstm"),
    "tanh RNN": dict(cell="rnn_tanh"),
    "IRNN": dict(cell="rnn_relu", init="irnn"),
}
READINGS = {"row by row (8 x 8)": (8, 8), "pixel by pixel (64 x 1)": (64, 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3000, help="training steps per model (default 3000)")
    p.add_argument("--out", default="build/digits", help="where the data and runs go (default build/digits)")
    args = p.parse_args()
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("digits.py: needs scikit-learn: pip install scikit-learn (or make demo-digits)")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    images, labels = digits.images / 16.0, digits.target
    order = np.random.default_rng(0).permutation(len(labels))
    test, train = order[:len(order) // 5], order[len(order) // 5:]
    print(f"{len(train)} training images, {len(test)} held out; {args.steps} steps of 32 per model")
    print("| reading | " + " | ".join(MODELS) + " |")
    print("|---|" + "---|" * len(MODELS))
    for reading, (T, D) in READINGS.items():
        files = {}
        for part, picks in (("train", train), ("test", test)):
            np.save(out / f"{part}_{T}.npy", images[picks].reshape(-1, T, D))
            np.save(out / f"{part}_labels.npy", labels[picks])
            files[part] = (str(out / f"{part}_{T}.npy"), str(out / f"{part}_labels.npy"))
        row = []
        for name, settings in MODELS.items():
            started = time.monotonic()
            run = out / f"{name.replace(' ', '_')}_{T}"
            shutil.rmtree(run, ignore_errors=True)   # this script's own runs: made again each time
            best = api.train(inputs=files["train"][0], targets=files["train"][1], task="classify", hidden=64,
                             layers=1, dropout=0.0, batch_size=32, max_iters=args.steps, epochs=10**6, lr_decay=1.0,
                             eval_every=250, out=str(run), quiet=True, **settings)
            m = api.load(best)
            accuracy = m.evaluate(files["test"][0], targets=files["test"][1]).accuracy
            row.append(f"{accuracy:.3f} ({time.monotonic() - started:.0f} s)")
        print(f"| {reading} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
