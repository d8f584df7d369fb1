"""The README's pictures, from the model that `make run` trains: make images.

    python tools/readme_images.py [--run build/run] [--text build/pydoc_topics.txt] [--out tools/images]

writes into --out, with the real commands:
    loss.svg          python -m minrnn plot RUN
    activations.png   python -m minrnn picture activations of RUN/best.ckpt on the text, as headless
                      Chromium shows it, each section cut to a few lines so that one window holds all
    gradients.svg     python -m minrnn picture gradients on the text of a 64-unit RNN, LSTM and GRU
                      trained for 300 steps each (into RUN/../images/), and of RUN/best.ckpt
    serve.png         python -m minrnn serve RUN/best.ckpt's page, after a prime typed and a click (the
                      text streamed in), as headless Chromium shows it (driven by tests/cdp.py)
and prints what the pictures say (the units the activations page found, the gradients' fall).
Needs matplotlib (pip install matplotlib) and Chromium (Debian: apt install chromium).
"""

import argparse
import html
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile

WINDOW = (900, 580)    # the screenshot, in pixels
SKIP, LINES = 6, 6     # each section shows lines 7 to 12 of the text: quotes, brackets, indented lines
TIMEOUT = 120          # seconds for the screenshot
CELLS = ("rnn_tanh", "lstm", "gru")
SMALL = ("--hidden", "64", "--layers", "1", "--max-iters", "300", "--eval-every", "300", "--sample-every", "0",
         "--seed", "1")


def minrnn(*args, env=None):
    """Run python -m minrnn; what it prints on stdout, or exit with its error."""
    r = subprocess.run([sys.executable, "-m", "minrnn", *map(str, args)], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"python -m minrnn {' '.join(map(str, args))}: {r.stderr.strip()}")
    return r.stdout


def small_model(cell, text, folder):
    """The best checkpoint of a 64-unit model of cell trained for 300 steps on text (trained once)."""
    run = folder / cell
    if not (run / "best.ckpt").exists():
        minrnn("train", text, "--cell", cell, *SMALL, "--out", run)
    return run / "best.ckpt"


def cut(page, skip, lines):
    """The page with each coloured text cut to `lines` lines after its first `skip` characters, and
    without its introduction (the README says what the colours mean), by style rules (one span per
    character; the page's line-height is 1.5): nothing else changes."""
    rules = (f"body>p{{display:none}} pre span:nth-child(-n+{skip}){{display:none}} "
             f"pre{{max-height:{1.5 * lines}em;overflow:hidden}}")
    return page.replace("</style>", rules + "</style>", 1)


def screenshot(chromium, page, out, window):
    """Headless Chromium's picture of the file page into out, which a failure leaves as it was.
    --no-sandbox: its sandbox refuses to run as root."""
    with tempfile.TemporaryDirectory() as profile:
        shot = pathlib.Path(profile) / "screenshot.png"
        args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                "--force-device-scale-factor=1", f"--user-data-dir={profile}",
                f"--window-size={window[0]},{window[1]}", f"--screenshot={shot}", page.resolve().as_uri()]
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
        try:
            _, err = p.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)   # the launcher script, the browser and its helpers
            sys.exit(f"chromium took more than {TIMEOUT} s for {page}")
        if p.returncode != 0 or not shot.exists():
            sys.exit(f"chromium could not take a screenshot of {page}: {err.strip()[-500:]}")
        shutil.move(shot, out)


def serve_screenshot(chromium, ckpt, out):
    """The server's page with a generation streamed in, typed and clicked as a person would."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
    from cdp import Browser
    from serve_load import start_server
    server, port = start_server(ckpt)
    try:
        with tempfile.TemporaryDirectory() as profile:
            browser = Browser(chromium, f"http://127.0.0.1:{port}/", profile, window=(WINDOW[0], 600))
            try:
                browser.wait_for("document.body && document.body.dataset.ready === '1'")
                for field, value in (("prime", "The "), ("length", "300"), ("temperature", "0.7"), ("seed", "1")):
                    browser.type_into(field, value)
                browser.click("go")
                browser.wait_for("document.getElementById('status').textContent.includes('characters in')")
                browser.screenshot(out)
            finally:
                browser.close()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=pathlib.Path, default=pathlib.Path("build/run"), help="make run's run folder")
    p.add_argument("--text", type=pathlib.Path, default=pathlib.Path("build/pydoc_topics.txt"))
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("tools/images"))
    args = p.parse_args()
    ckpt = args.run / "best.ckpt"
    if not ckpt.exists():
        sys.exit(f"{ckpt}: no such file; train it first with make run")
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("no chromium on PATH for the screenshot (Debian: apt install chromium)")
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        # SVG files that change only when the pictures do: no date, the same clip-path ids each time
        (pathlib.Path(tmp) / "matplotlibrc").write_text("svg.hashsalt: minrnn\n", encoding="utf-8")
        same = dict(os.environ, SOURCE_DATE_EPOCH="0", MATPLOTLIBRC=tmp)
        minrnn("plot", args.run, "--out", args.out / "loss.svg", env=same)
        cells = []
        for cell in CELLS:   # the lectures' comparison: the same small model of each cell, the same steps
            cells += ["--checkpoint", small_model(cell, args.text, args.run.parent / "images")]
        print(minrnn("picture", "gradients", *cells, "--checkpoint", ckpt, "--text", args.text,
                     "--out", args.out / "gradients.svg", env=same).strip())
        page = pathlib.Path(tmp) / "activations.html"
        minrnn("picture", "activations", "--checkpoint", ckpt, "--text", args.text, "--out", page)
        content = page.read_text(encoding="utf-8")
        for title in re.findall(r"<h2>(.*?)</h2>", content):
            print(html.unescape(title))
        skip = sum(len(line) + 1 for line in args.text.read_text(encoding="utf-8").split("\n")[:SKIP])
        page.write_text(cut(content, skip, LINES), encoding="utf-8")
        screenshot(chromium, page, args.out / "activations.png", WINDOW)
    serve_screenshot(chromium, ckpt, args.out / "serve.png")
    for name in ("loss.svg", "activations.png", "gradients.svg", "serve.png"):
        print(f"{args.out / name}: {(args.out / name).stat().st_size / 1000:.0f} KB")


if __name__ == "__main__":
    main()
