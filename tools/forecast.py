"""The README's forecast: statsmodels' bundled weekly CO2 series (Mauna Loa, 1958-2001, 2,284 weeks;
its 59 missing weeks filled by linear interpolation) as monthly means (526 months), one month
ahead, by an LSTM trained with
--task regress on windows of the first four fifths of the series, against the naive forecasts on
the last fifth, which it never saw. The model reads and forecasts the monthly change (the level
rises out of the training range; its changes, a seasonal cycle, do not): its forecast of a month
is the last month's value plus the change it forecasts.

    make demo-forecast       (installs statsmodels into .venv, then runs this)
    python tools/forecast.py [--window T] [--steps N] [--out FOLDER]
"""

import numpy as np

from demos import arguments, need, save, trained


def windows(series, T):
    """(X (n, T, 1), Y (n, T)): every window of T months and the same window one month on."""
    n = len(series) - T
    x = np.stack([series[i:i + T] for i in range(n)])
    y = np.stack([series[i + 1:i + T + 1] for i in range(n)])
    return x[:, :, None], y


def main():
    args = arguments(__doc__, "build/forecast", 2000, ("--window", int, 24, "months a window holds"))
    sm = need("statsmodels.api", "statsmodels", "demo-forecast")
    weekly = sm.datasets.co2.load_pandas().data["co2"].interpolate()
    series = weekly.resample("MS").mean().to_numpy(dtype=np.float64)
    change = np.diff(series)   # change[i] = series[i + 1] - series[i]
    cut = len(series) * 4 // 5
    m = trained(args.out / "run", save(args.out, "train", *windows(change[:cut - 1], args.window)), "regress",
                args.steps, cell="lstm")
    # the last month of each held-out window: one forecast per month of the last fifth
    x, _ = windows(change[cut - 1 - args.window:], args.window)
    last = series[cut - 1:-1]                 # the month before each forecast month
    truth = series[cut:]
    guess = last + m.predict(x)[:, -1, 0]
    mean = series[:cut].mean()

    def rmse(a):
        return float(np.sqrt(np.mean((a - truth) ** 2)))
    print(f"CO2, months {cut + 1}-{len(series)} (held out), one month ahead, in ppm:")
    print("| forecast | RMSE | MAE |\n|---|---|---|")
    for name, a in (("LSTM, --task regress (of the monthly change)", guess), ("the last month's value", last),
                    ("the last month's value and the mean change", last + change[:cut - 1].mean()),
                    ("the value a year before and the mean yearly change",
                     series[cut - 12:-12] + (series[12:cut] - series[:cut - 12]).mean()),
                    ("the training mean", mean)):
        a = np.broadcast_to(a, truth.shape)
        print(f"| {name} | {rmse(a):.3f} | {np.abs(a - truth).mean():.3f} |")


if __name__ == "__main__":
    main()
