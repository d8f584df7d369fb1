"""The README's digits table: scikit-learn's 1,797 handwritten digits (8x8 images, bundled with the
package) read as sequences, row by row (8 steps of 8 pixels) and pixel by pixel (64 steps of 1),
by an LSTM, a tanh RNN and an IRNN (a relu RNN with an identity recurrence, Le et al. 2015); held-out
accuracy of each, trained for the same number of steps.

    make demo-digits       (installs scikit-learn into .venv, then runs this)
    python tools/digits.py [--steps N] [--out FOLDER]

A seeded fifth of the images is held out; training's own validation split comes from the rest.
"""

import time

import numpy as np

from demos import arguments, need, save, trained

MODELS = {   # name: the train settings that make it
    "LSTM": dict(cell="lstm"),
    "tanh RNN": dict(cell="rnn_tanh"),
    "IRNN": dict(cell="rnn_relu", init="irnn"),
}
READINGS = {"row by row (8 x 8)": (8, 8), "pixel by pixel (64 x 1)": (64, 1)}


def main():
    args = arguments(__doc__, "build/digits", 3000)
    digits = need("sklearn.datasets", "scikit-learn", "demo-digits").load_digits()
    images, labels = digits.images / 16.0, digits.target
    order = np.random.default_rng(0).permutation(len(labels))
    test, train = order[:len(order) // 5], order[len(order) // 5:]
    print(f"{len(train)} training images, {len(test)} held out; {args.steps} steps of 32 per model")
    print("| reading | " + " | ".join(MODELS) + " |")
    print("|---|" + "---|" * len(MODELS))
    for reading, (T, D) in READINGS.items():
        files = {part: save(args.out, f"{part}_{T}", images[picks].reshape(-1, T, D), labels[picks])
                 for part, picks in (("train", train), ("test", test))}
        row = []
        for name, settings in MODELS.items():
            started = time.monotonic()
            m = trained(args.out / f"{name.replace(' ', '_')}_{T}", files["train"], "classify", args.steps, **settings)
            accuracy = m.evaluate(files["test"][0], targets=files["test"][1]).accuracy
            row.append(f"{accuracy:.3f} ({time.monotonic() - started:.0f} s)")
        print(f"| {reading} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
