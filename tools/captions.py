"""The README's captioning table and picture: strips of 2 to 6 of scikit-learn's handwritten digits
(8x8 images, bundled with the package) laid side by side, read as a row of 12 places 4 pixels
apart: a place's vector is the 8 x 8 window of pixels that starts there (what a convolution's unit
would see; windows overlap, as receptive fields do) and where it is (its column over 12); its
caption is the digits' names ("seven two nine"). A captioner with additive attention over the
grid (fed its context at each step) and one without (the grid's mean alone, the lectures' first
captioning) train for the same steps; the table gives held-out exact match by number of digits, and
the picture shows where the attentive one looked for each word.

    make demo-captions     (installs scikit-learn into .venv, then runs this)
    python tools/captions.py [--steps N] [--out FOLDER]

Held out by image: a seeded fifth of the 1,797 images make up the test strips, and no training
strip holds any of them (the bundled digits do not say who wrote which).
"""

import shutil
import time

import numpy as np

from demos import arguments, need
from minrnn import api
from minrnn.picture import CAPTIONS, attention_page, caption_svg

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DIGITS = (2, 6)        # digits per strip, fewest and most
STRIDE = 4             # pixels from one place to the next; each place sees the 8 x 8 window from there
GEOMETRY = (1, 8 * DIGITS[1] // STRIDE)   # (Hg, Wg): every strip is as wide as the longest
MODELS = {"additive attention, fed its context": "additive", "the grid's mean alone (no attention)": "none"}


def strips(images, labels, picks, count, rng):
    """count strips of the images `picks`: (images (N, 8, 48), grids (N, 1, 12, 65), captions)."""
    Hg, Wg = GEOMETRY
    out, captions = np.zeros((count, 8, 8 * DIGITS[1])), []
    for i in range(count):
        chosen = rng.choice(picks, rng.integers(DIGITS[0], DIGITS[1] + 1))
        for k, j in enumerate(chosen):
            out[i, :, 8 * k:8 * k + 8] = images[j]
        captions.append(" ".join(NAMES[labels[j]] for j in chosen))
    padded = np.pad(out, ((0, 0), (0, 0), (0, 8)))   # the last windows run past the strip: blank
    windows = np.stack([padded[:, :, STRIDE * c:STRIDE * c + 8].reshape(count, 64) for c in range(Wg)], axis=1)
    where = np.broadcast_to(np.arange(Wg)[None, :, None] / Wg, (count, Wg, 1))
    return out, np.concatenate([windows, where], axis=-1).reshape(count, Hg, Wg, 65), captions


def save(folder, name, images, grids, captions):
    """folder/name.txt (a caption a line), name_grid.npy, name_images.npy: (the text's and grid's paths)."""
    text, grid = folder / f"{name}.txt", folder / f"{name}_grid.npy"
    text.write_text("".join(c + "\n" for c in captions))
    np.save(grid, grids), np.save(folder / f"{name}_images.npy", images)
    return str(text), str(grid)


def main():
    args = arguments(__doc__, "build/captions", 6000, ("--strips", int, 8000, "training strips"))
    digits = need("sklearn.datasets", "scikit-learn", "demo-captions").load_digits()
    images, labels = digits.images / 16.0, digits.target
    rng = np.random.default_rng(0)
    order = rng.permutation(len(labels))
    test, train = order[:len(order) // 5], order[len(order) // 5:]
    train_files = save(args.out, "train", *strips(images, labels, train, args.strips, rng))
    test_images, test_grids, test_captions = strips(images, labels, test, 1000, rng)
    test_files = save(args.out, "test", test_images, test_grids, test_captions)
    print(f"{args.strips} training strips of {len(train)} images, 1000 held-out strips of the other {len(test)}; "
          f"{args.steps} steps of 32 per model")
    results = {}
    for name, attention in MODELS.items():
        started, run = time.monotonic(), args.out / attention
        shutil.rmtree(run, ignore_errors=True)
        m = api.load(api.train(train_files[0], grid=train_files[1], attention=attention, tokens="words", hidden=128,
                               layers=1, embed=32, dropout=0.0, batch_size=32, max_iters=args.steps, epochs=10**6,
                               lr_decay=1.0, eval_every=500, out=str(run), quiet=True))
        results[name] = (m.evaluate(test_files[0], grid=test_files[1]), time.monotonic() - started)
        if attention != "none":
            picture(m, test_images, test_grids, args.out / "attention.html")
    lengths = [low for low, _, _, _, _ in next(iter(results.values()))[0].by_length]
    print("| model | " + " | ".join(f"{n} digits" for n in lengths) + " | all | time |")
    print("|---|" + "---|" * (len(lengths) + 2))
    for name, (e, seconds) in results.items():
        print(f"| {name} | " + " | ".join(f"{exact:.3f}" for _, _, _, exact, _ in e.by_length) +
              f" | {e.exact:.3f} | {seconds:.0f} s |")
    print(f"held-out exact match by caption length; the picture: {args.out / 'attention.html'} "
          f"(and attention.svg, its first strip)")


def picture(m, images, grids, path, count=4):
    """The attention of the first `count` held-out captions, over their strips, as an HTML page, and
    the first one alone as an SVG file beside it."""
    items = []
    for i, t in enumerate(m.captions(grids[:count], alignments=True)):
        items.append((f"strip {i}", t.text, caption_svg([w.strip() for w in t.written], t.alignments, GEOMETRY,
                                                        images[i], f"strip{i}")))
    path.write_text(attention_page(items, "minrnn: captions of digit strips", CAPTIONS))
    path.with_suffix(".svg").write_text(items[0][2])


if __name__ == "__main__":
    main()
