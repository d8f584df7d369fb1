"""The HTML pictures in a real browser: headless Chromium opens the activations, temperature,
attention and caption pages made from tiny models trained here and takes a screenshot of each,
which must be a PNG of the window's size showing the page (read with zlib: not one colour, and the
page's own colours). Skipped where no Chromium is installed (Debian: apt install chromium)."""

import os
import random
import shutil
import signal
import struct
import subprocess
import zlib

import numpy as np
import pytest

from cliutil import english, minrnn

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt install chromium)")
WINDOW = (800, 600)
TIMEOUT = 60   # seconds for one screenshot; it takes about one


def screenshot(page, out, profile, window=WINDOW):
    """Headless Chromium's picture of the file page, window[0] x window[1] pixels, into out.
    --no-sandbox: Chromium's sandbox refuses to run as root (containers, CI); the page is our own file.
    Its own profile folder, so that it never meets another Chromium's. On a timeout the whole process
    group goes: the launcher script, the browser and its helpers."""
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--force-device-scale-factor=1", f"--user-data-dir={profile}",
            f"--window-size={window[0]},{window[1]}", f"--screenshot={out}", page.as_uri()]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        pytest.fail(f"chromium took more than {TIMEOUT} s for {page}")
    assert p.returncode == 0 and out.exists(), err[-2000:]


def read_png(path):
    """(width, height, rows of (r, g, b) pixels) of an 8-bit RGB or RGBA PNG without interlacing
    (what Chromium writes), decoded with zlib and the five row filters of the PNG specification."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    chunks, pos = [], 8
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        pos += 12 + n
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, (depth, colour_type, interlace)
    bpp = 3 if colour_type == 2 else 4
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * bpp
    assert len(raw) == height * (stride + 1)
    prev, rows = bytearray(stride), []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:     # Sub
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif kind == 2:   # Up
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif kind == 3:   # Average
            for x in range(stride):
                line[x] = (line[x] + (((line[x - bpp] if x >= bpp else 0) + prev[x]) >> 1)) & 255
        elif kind == 4:   # Paeth
            for x in range(stride):
                a, b, c = (line[x - bpp], prev[x], prev[x - bpp]) if x >= bpp else (0, prev[x], 0)
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        else:
            assert kind == 0, f"row {y}: filter {kind}"
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, bpp)])
        prev = line
    return width, height, rows


def coloured(rgb):   # the activations' red and blue backgrounds (text is grey)
    return max(rgb) - min(rgb) > 100


def dark(rgb):       # text
    return max(rgb) < 80


def blue(rgb):       # the attention cells: white to rgb(8,48,107); a row of n cells has one >= 1/n
    return rgb[2] - rgb[0] > 30


def activations(rows):
    return any(coloured(c) for row in rows for c in row)


def temperature(rows):
    """Text side by side: dark pixels in each third of the width (three temperatures, three columns)."""
    width = len(rows[0])
    return all(any(dark(c) for row in rows for c in row[k * width // 3:(k + 1) * width // 3]) for k in range(3))


def attention(rows):
    return any(blue(c) for row in rows for c in row)


def red(rgb):        # the captions' overlay: red over white or grey ink
    return rgb[0] - max(rgb[1], rgb[2]) > 60


def captions(rows):
    """A caption's panels: the red overlay, and the image's dark ink beside it."""
    return any(red(c) for row in rows for c in row) and any(dark(c) for row in rows for c in row)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The four pages, from an LSTM language model, a seq2seq model with attention and a captioner
    of grids (about a second of training together)."""
    folder = tmp_path_factory.mktemp("pages")
    (folder / "text.txt").write_text(english(4000), encoding="utf-8")
    rng = random.Random(5)   # pairs: a word and its reverse
    words = ["".join(rng.choice("abcdefg") for _ in range(rng.randint(1, 9))) for _ in range(240)]
    (folder / "pairs.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in words), encoding="utf-8")
    tiny = ["--hidden", "16", "--layers", "1", "--embed", "8", "--sample-every", "0"]
    grids = np.random.default_rng(3).uniform(-1, 1, size=(60, 2, 3, 4))   # a caption a grid of 2 x 3 places
    np.save(folder / "grids.npy", grids), np.save(folder / "images.npy", grids[..., 0].repeat(4, 1).repeat(4, 2))
    (folder / "captions.txt").write_text("".join("up\n" if g[0, 0, 0] > 0 else "down left\n" for g in grids))
    for args in (["text.txt", "--max-iters", "20", "--batch-size", "4", "--seq-len", "16", "--out", "lm"],
                 ["pairs.tsv", "--task", "seq2seq", "--attention", "additive", "--max-iters", "60",
                  "--eval-every", "60", "--batch-size", "8", "--out", "s2s"],
                 ["captions.txt", "--grid", "grids.npy", "--tokens", "words", "--max-iters", "20", "--batch-size",
                  "8", "--out", "cap"]):
        r = minrnn("train", *args, *tiny, cwd=folder)
        assert r.returncode == 0, r.stderr
    for args in (["picture", "activations", "--checkpoint", "lm/best.ckpt", "--text", "text.txt",
                  "--out", "activations.html"],
                 ["picture", "temperature", "--checkpoint", "lm/best.ckpt", "--prime", "The ", "--length", "200",
                  "--out", "temperature.html"],
                 ["translate", "--checkpoint", "s2s/best.ckpt", "--picture", "attention.html", "abc", "ab"],
                 ["caption", "--checkpoint", "cap/best.ckpt", "--grid", "grids.npy", "--row", "2", "--images",
                  "images.npy", "--picture", "captions.html"]):
        r = minrnn(*args, cwd=folder)
        assert r.returncode == 0, r.stderr
    return folder


def test_an_empty_page_is_one_colour(tmp_path):
    # the check below can fail: a page that shows nothing is all white
    (tmp_path / "empty.html").write_text("<!DOCTYPE html>\n<html><body></body></html>\n", encoding="utf-8")
    screenshot(tmp_path / "empty.html", tmp_path / "empty.png", tmp_path / "profile")
    width, height, rows = read_png(tmp_path / "empty.png")
    assert (width, height) == WINDOW and {c for row in rows for c in row} == {(255, 255, 255)}
    assert not any(shows(rows) for shows in (activations, temperature, attention, captions))


@pytest.mark.parametrize("shows", [activations, temperature, attention, captions])
def test_the_page_in_a_browser(pages, tmp_path, shows):
    name = shows.__name__
    out = tmp_path / f"{name}.png"
    screenshot(pages / f"{name}.html", out, tmp_path / "profile")
    width, height, rows = read_png(out)
    assert (width, height) == WINDOW
    assert shows(rows), f"the screenshot does not show the {name} page"


def test_the_servers_page_streams_what_sample_draws_and_pictures_the_attention(tmp_path):
    # python -m minrnn serve's page, used as a person would: type a prime, a length, a temperature and
    # a seed, click, wait for the text to stream in; it is what sample draws. A seq2seq model's page
    # shows the translation and its attention picture. Screenshots of both must show the page.
    import minrnn
    from cdp import Browser
    from serveutil import Served, alone
    (tmp_path / "t.txt").write_text(english(20000), encoding="utf-8")
    (tmp_path / "pairs.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in ("ab", "abc", "ba", "cab") * 12),
                                        encoding="utf-8")
    tiny = dict(hidden=24, layers=1, batch_size=8, seq_len=16, sample_every=0, eval_every=20, quiet=True)
    lm = minrnn.train(tmp_path / "t.txt", out=tmp_path / "lm", max_iters=40, **tiny)
    s2s = minrnn.train(tmp_path / "pairs.tsv", out=tmp_path / "s2s", task="seq2seq", max_iters=20, **tiny)
    server, browser = Served(lm, cwd=tmp_path), None
    try:
        browser = Browser(CHROMIUM, f"http://127.0.0.1:{server.port}/", tmp_path / "profile")
        browser.wait_for("document.body.dataset.ready === '1'")
        for field, value in (("prime", "The "), ("length", "120"), ("temperature", "0.9"), ("seed", "11")):
            browser.type_into(field, value)
        browser.click("go")
        status = browser.wait_for("(s => s.includes('characters in') && s)(document.getElementById('status').textContent)")
        assert "seed 11" in status
        want = alone(minrnn.load(lm), dict(prime="The ", length=120, temperature=0.9, seed=11))
        assert browser.js("document.getElementById('out').textContent") == want
        browser.screenshot(tmp_path / "lm.png")
        width, height, rows = read_png(tmp_path / "lm.png")
        assert (width, height) == (900, 700) and len({p for row in rows for p in row}) > 2
    finally:
        if browser:
            browser.close()
        server.stop()
    server, browser = Served(s2s, cwd=tmp_path), None
    try:
        browser = Browser(CHROMIUM, f"http://127.0.0.1:{server.port}/", tmp_path / "profile2")
        browser.wait_for("document.body.dataset.ready === '1'")
        browser.type_into("text", "abc")
        browser.click("go")
        browser.wait_for("document.getElementById('status').textContent.startsWith('log probability')")
        want = next(minrnn.load(s2s).translations(["abc"])).text
        assert browser.js("document.getElementById('out').textContent") == want
        assert browser.js("document.querySelectorAll('#picture svg rect').length") > 0
    finally:
        if browser:
            browser.close()
        server.stop()
