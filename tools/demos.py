"""What the README's demos of vectors (digits.py, forecast.py) share: their command line, the
package each needs, the files they write, and one training run at the settings they compare."""

import argparse
import importlib
import pathlib
import shutil
import sys

import numpy as np

from minrnn import api


def arguments(doc, out, steps, *extra):
    """The parsed command line: --steps, --out, then each extra (option, type, default, help); out
    is made."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    for option, kind, default, what in (*extra, ("--steps", int, steps, "training steps per model"),
                                        ("--out", str, out, "where the data and the runs go")):
        p.add_argument(option, type=kind, default=default, help=f"{what} (default {default})")
    args = p.parse_args()
    args.out = pathlib.Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def need(module, package, target):
    """The module, or a one-line exit naming the package to install and the make target that does."""
    try:
        return importlib.import_module(module)
    except ImportError:
        sys.exit(f"{pathlib.Path(sys.argv[0]).name}: needs {package}: pip install {package} (or make {target})")


def save(folder, name, x, y):
    """x and y as folder/name_x.npy and name_y.npy: (their paths)."""
    paths = (str(folder / f"{name}_x.npy"), str(folder / f"{name}_y.npy"))
    np.save(paths[0], x), np.save(paths[1], y)
    return paths


def trained(run, files, task, steps, **settings):
    """The model of a fresh run in folder run (one of the demo's own, made again each time) on
    files (inputs, targets): 64 units, one layer, no dropout, Adam at its constant default rate,
    `steps` steps of 32."""
    shutil.rmtree(run, ignore_errors=True)
    return api.load(api.train(inputs=files[0], targets=files[1], task=task, hidden=64, layers=1, dropout=0.0,
                              batch_size=32, max_iters=steps, epochs=10**6, lr_decay=1.0, eval_every=250,
                              out=str(run), quiet=True, **settings))
