"""python -m minrnn plot: valid PNG and SVG files from real runs (a resumed one included), and
one-line errors for what it cannot draw."""

import json
import xml.etree.ElementTree as ET

import pytest

from cliutil import minrnn, one_line_error
from minrnn.plot import read_metrics

RUN = ["--hidden", "8", "--layers", "1", "--batch-size", "2", "--seq-len", "8", "--eval-every", "5",
       "--sample-every", "0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    (folder / "t.txt").write_text("the cat sat on the mat.\n" * 40, encoding="utf-8")
    for name, steps in (("a", "15"), ("b", "10")):
        assert minrnn("train", "t.txt", *RUN, "--max-iters", steps, "--out", name, cwd=folder).returncode == 0
    assert minrnn("train", "--resume", "--max-iters", "20", "--out", "b", cwd=folder).returncode == 0
    return folder


def test_png_and_svg_of_several_runs(runs):
    pytest.importorskip("matplotlib")
    r = minrnn("plot", "a", "b", "--out", "loss.png", cwd=runs)
    assert r.returncode == 0, r.stderr
    assert (runs / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert minrnn("plot", "a", "--out", "loss.svg", cwd=runs).returncode == 0
    root = ET.parse(runs / "loss.svg").getroot()   # well-formed XML
    assert root.tag.endswith("svg")


def test_a_resumed_runs_clock_keeps_going(runs):
    rows = read_metrics(runs / "b")
    assert [r[0] for r in rows] == [5, 10, 15, 20]
    seconds = [r[3] for r in rows]
    assert seconds == sorted(seconds)   # the second session's times follow the first's
    raw = [json.loads(line)["elapsed_s"] for line in (runs / "b" / "metrics.jsonl").read_text().splitlines()]
    if raw[2] < raw[1]:   # the second session's clock started again
        assert seconds[3] == pytest.approx(raw[1] + raw[3])


def test_without_matplotlib_it_says_how_to_install_it(monkeypatch):
    import sys

    from minrnn.errors import UserError
    from minrnn.plot import pyplot
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import matplotlib now raises ImportError
    with pytest.raises(UserError, match="pip install matplotlib"):
        pyplot()


def test_what_it_cannot_draw_is_one_line(runs, tmp_path):
    one_line_error(minrnn("plot", "nowhere", cwd=runs), "metrics.jsonl", "no such file")
    one_line_error(minrnn("plot", "a", "--out", "loss.pdf", cwd=runs), ".png or .svg")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text("")
    one_line_error(minrnn("plot", "empty", cwd=tmp_path), "no evaluations yet")
