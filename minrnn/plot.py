"""python -m minrnn plot: training curves of one or several runs, from their metrics.jsonl.

Two panels: the training loss (the run's moving average) and the validation loss against the
training step, and the same against wall time. matplotlib is an optional extra
(`pip install matplotlib`); without it the command says so in one line.
"""

import json
import pathlib

from minrnn.errors import UserError
from minrnn.rundir import replacing


def read_metrics(run_dir):
    """[(iteration, train loss, validation loss or None, seconds)] of a run folder, in order. A
    resumed run's clock starts again at each session: the seconds are made cumulative. A last line
    without its line end is what a run killed while appending it left: it is left out."""
    path = pathlib.Path(run_dir) / "metrics.jsonl"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file; give the --out folder of a training run") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror})") from None
    lines = data.split(b"\n")[:-1]   # whole lines only
    rows, offset, last = [], 0.0, 0.0
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line.decode("utf-8"))
            iteration, train, val, seconds = int(r["iteration"]), float(r["train_loss"]), r["val_loss"], float(r["elapsed_s"])
        except (ValueError, KeyError, TypeError, RecursionError):   # not UTF-8, not JSON, not a record
            raise UserError(f"{path}: line {n} is not a metrics record") from None
        if seconds < last:   # a new session
            offset += last
        last = seconds
        rows.append((iteration, train, None if val is None else float(val), offset + seconds))
    if not rows:
        raise UserError(f"{path}: no evaluations yet; plot it after the first --eval-every steps")
    return rows


def pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UserError("plot needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")   # files only, no display
    import matplotlib.pyplot as plt
    return plt


def plot_runs(run_dirs, out):
    """Write the curves of run_dirs to out (.png or .svg)."""
    check_image_name(out)
    runs = [(str(d), read_metrics(d)) for d in run_dirs]
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for (name, rows), color in zip(runs, plt.rcParams["axes.prop_cycle"].by_key()["color"] * len(runs)):
        for ax, x in zip(axes, (0, 3)):
            xs = [r[x] / (60.0 if x == 3 else 1.0) for r in rows]
            ax.plot(xs, [r[1] for r in rows], color=color, alpha=0.45, label=f"{name} train")
            val = [(xi, r[2]) for xi, r in zip(xs, rows) if r[2] is not None]
            if val:
                ax.plot(*zip(*val), color=color, marker="o", markersize=3, label=f"{name} validation")
    axes[0].set_xlabel("training step")
    axes[1].set_xlabel("wall time (minutes)")
    axes[0].set_ylabel("loss (nats per character)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize="small")
    fig.tight_layout()
    save(plt, fig, out)


IMAGES = (".png", ".svg")   # what plots are written as (matplotlib's formats that read well anywhere)


def check_image_name(out):
    if pathlib.Path(out).suffix.lower() not in IMAGES:
        raise UserError(f"--out {out}: give a .png or .svg file name")


def save(plt, fig, out):
    """fig into out whole or not at all (a temporary file of the same type, then a rename)."""
    check_image_name(out)
    try:
        with replacing(out) as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)
