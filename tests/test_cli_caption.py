"""Captioning through the real command line: train --grid, caption (greedy, beam, sampling, a row,
the attention picture), eval --grid, the API on numpy arrays, the C example's byte-for-byte
agreement, exact resume, the same bits for any thread count, seq2seq's --input-feeding, and
one-line errors for bad grids."""

import subprocess

import numpy as np
import pytest

import minrnn as api
from cliutil import ROOT, command, environment, minrnn, one_line_error
from minrnn import core
from minrnn.errors import UserError

NAMES = ["red", "green", "blue", "cyan"]
GEOMETRY = (1, 4)   # a strip of 4 places
TRAIN = ["--tokens", "words", "--hidden", "16", "--layers", "1", "--embed", "8", "--batch-size", "8",
         "--eval-every", "100", "--sample-every", "0", "--epochs", "1000"]


def strips(n, seed):
    """n records of 1 to 4 objects in a row: (captions, grids (n, 1, 4, 6)): a place holds its
    object's prototype (4 numbers) plus noise, or zeros, then where it is (twice, over 4)."""
    rng = np.random.default_rng(seed)
    prototypes = np.eye(4) * 2.0 - 0.5
    grids, captions = np.zeros((n, 1, 4, 6)), []
    for i in range(n):
        objects = rng.integers(0, 4, size=rng.integers(1, 5))
        for j, k in enumerate(objects):
            grids[i, 0, j, :4] = prototypes[k] + 0.3 * rng.standard_normal(4)
        grids[i, 0, :, 4:] = np.arange(4)[:, None] / 4
        captions.append(" ".join(NAMES[k] for k in objects))
    return captions, grids


def write(folder, name, n, seed):
    captions, grids = strips(n, seed)
    (folder / f"{name}.txt").write_text("".join(c + "\n" for c in captions))
    np.save(folder / f"{name}.npy", grids)
    return captions, grids


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A captioner with additive attention, and one with none, each trained once a module; and a
    held-out set (test.txt, test.npy)."""
    folder = tmp_path_factory.mktemp("caption")
    write(folder, "train", 400, 1)
    write(folder, "test", 40, 2)
    for attention in ("additive", "none"):
        r = minrnn("train", "train.txt", "--grid", "train.npy", *TRAIN, "--attention", attention, "--max-iters",
                   "1200", "--out", attention, cwd=folder, timeout=300)
        assert r.returncode == 0, r.stderr
        assert "exact" in r.stdout and "captioner" in r.stdout, r.stdout
    return folder


@pytest.fixture(scope="module")
def example():
    subprocess.run(["make", "-s", "example"], cwd=ROOT, check=True, capture_output=True)
    return ROOT / "build" / "minrnn_sample"


def caption(folder, ckpt, *args):
    r = subprocess.run(command("caption", "--checkpoint", ckpt, "--grid", "test.npy", *args), cwd=folder,
                       env=environment(), capture_output=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_captions_rows_and_the_api(trained):
    out = caption(trained, "additive/best.ckpt").decode().splitlines()
    assert len(out) == 40 and all(set(line.split()) <= set(NAMES) for line in out)
    assert caption(trained, "additive/best.ckpt", "--row", "7").decode() == out[7] + "\n"
    m = api.load(trained / "additive" / "best.ckpt")
    grids = np.load(trained / "test.npy")
    assert m.caption(grids) == out   # numpy arrays in, the same captions
    assert m.caption(grids.reshape(40, 4, 6)) == out   # (N, L, D): the places without their geometry
    beam = caption(trained, "additive/best.ckpt", "--beam", "4", "--scores").decode().splitlines()
    greedy = caption(trained, "additive/best.ckpt", "--scores").decode().splitlines()
    assert all(float(b.split("\t")[1]) >= float(g.split("\t")[1]) for b, g in zip(beam, greedy))
    drawn = [caption(trained, "additive/best.ckpt", "--temperature", "0.8", "--seed", "3") for _ in range(2)]
    assert drawn[0] == drawn[1]


def exact_match(folder, run):
    r = minrnn("eval", "--checkpoint", f"{run}/best.ckpt", "--grid", "test.npy", "test.txt", cwd=folder)
    assert r.returncode == 0, r.stderr
    assert "by caption length" in r.stdout, r.stdout
    return float(r.stdout.split("exact match ")[1].split(",")[0])


def test_attention_learns_what_the_mean_cannot(trained):
    # The mean of a strip says which objects it holds, never in which order; attention reads the
    # order. 1200 steps each, measured: exact match 0.975 with attention, 0.400 with the mean alone
    # (the runs are the same bits on every machine, so these are regression bounds, not luck's)
    truth = (trained / "test.txt").read_text().splitlines()
    attention, mean = exact_match(trained, "additive"), exact_match(trained, "none")
    out = caption(trained, "additive/best.ckpt").decode().splitlines()
    assert attention == sum(a == b for a, b in zip(out, truth)) / len(truth)
    assert attention >= 0.9 and attention - mean >= 0.3, (attention, mean)


def test_the_c_example_captions_what_the_cli_captions(trained, example):
    for run in ("additive", "none"):
        ckpt = trained / run / "best.ckpt"
        for cli_args, c_args in ((), ()), (("--beam", "3"), ("--beam", "3")), (("--row", "5"), ("--row", "5")), \
                (("--temperature", "0.7", "--seed", "9"), ("-t", "0.7", "-s", "9")), \
                (("--precision", "bfloat16", "--max-length", "2"), ("--precision", "bfloat16", "--max-length", "2")), \
                (("--precision", "int8", "--beam", "2"), ("--precision", "int8", "--beam", "2")):
            c = subprocess.run([example, ckpt, "--grid", trained / "test.npy", *c_args], capture_output=True)
            assert c.returncode == 0, c.stderr
            assert c.stdout == caption(trained, ckpt, *cli_args), (run, cli_args)


def test_the_attention_picture(trained):
    r = minrnn("caption", "--checkpoint", "additive/best.ckpt", "--grid", "test.npy", "--row", "3", "--picture",
               "look.html", cwd=trained)
    assert r.returncode == 0, r.stderr
    page = (trained / "look.html").read_text()
    words = r.stdout.split()
    assert page.count("<svg") == 1 and page.count("<use ") == len(words) + 1   # a panel per word and the end
    assert 'id="grid3"' in page
    one_line_error(minrnn("caption", "--checkpoint", "additive/best.ckpt", "--grid", "test.npy", "--picture",
                          "additive/best.ckpt", cwd=trained), "--picture")
    one_line_error(minrnn("caption", "--checkpoint", "none/best.ckpt", "--grid", "test.npy", "--picture",
                          "none.html", cwd=trained), "no attention")


def test_runs_resume_exactly_and_threads_change_no_bit(tmp_path):
    write(tmp_path, "t", 120, 4)
    # 96 units in batches of 16: the products are large enough to share between threads (cext's
    # threads_for), so --threads 2 runs them on two
    args = ["t.txt", "--grid", "t.npy", *TRAIN, "--dropout", "0.3", "--eval-every", "10", "--hidden", "96",
            "--batch-size", "16"]
    for out, steps, extra in (("whole", 20, []), ("split", 10, []), ("two", 20, ["--threads", "2"])):
        r = minrnn("train", *args, "--max-iters", steps, "--out", out, *extra, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    r = minrnn("train", *args, "--max-iters", "20", "--out", "split", "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    whole, split, two = (core.load_checkpoint(tmp_path / d / "latest.ckpt") for d in ("whole", "split", "two"))
    assert np.array_equal(whole.model.params, split.model.params)
    assert np.array_equal(whole.model.params, two.model.params)
    assert all(np.array_equal(a, b) for a, b in zip(whole.input_scaling, split.input_scaling))


def test_seq2seq_input_feeding(tmp_path, example):
    # a fed translator trains, translates, and the C example translates it the same, byte for byte
    (tmp_path / "p.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in ("abc", "bca", "cab", "aab", "bba") * 20))
    r = minrnn("train", "p.tsv", "--task", "seq2seq", "--input-feeding", "--attention", "general", "--hidden", "12",
               "--layers", "1", "--batch-size", "8", "--max-iters", "30", "--out", "fed", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "fed its context" in r.stdout
    ck = core.load_checkpoint(tmp_path / "fed" / "best.ckpt")
    assert ck.model.config.input_feeding and "dec.cond.weight" in ck.model.tensors
    cli = subprocess.run(command("translate", "--checkpoint", "fed/best.ckpt", "--beam", "2", "abc", "cab"),
                         cwd=tmp_path, env=environment(), capture_output=True)
    c = subprocess.run([example, tmp_path / "fed" / "best.ckpt", "--beam", "2", "abc", "cab"], capture_output=True)
    assert cli.returncode == 0 and c.returncode == 0 and c.stdout == cli.stdout, (cli.stderr, c.stderr)
    one_line_error(minrnn("train", "p.tsv", "--task", "seq2seq", "--input-feeding", "--attention", "none", "--out",
                          "x", cwd=tmp_path), "--input-feeding", "--attention")
    one_line_error(minrnn("train", "p.tsv", "--input-feeding", "--out", "y", cwd=tmp_path), "--task seq2seq")


def test_bad_grids_are_one_line(trained, example, tmp_path):
    folder = trained
    np.save(tmp_path / "flat.npy", np.zeros((40, 6)))
    np.save(tmp_path / "nan.npy", np.full((40, 4, 6), np.nan))
    np.save(tmp_path / "wide.npy", np.zeros((40, 4, 7)))
    np.save(tmp_path / "short.npy", np.zeros((39, 4, 6)))
    np.save(tmp_path / "long.npy", np.zeros((40, 5, 6)))   # 5 places where the model learnt 4
    head = (tmp_path / "long.npy").read_bytes()   # a header that claims 8 TB of data the file does not hold
    (tmp_path / "claims.npy").write_bytes(head.replace(b"(40, 5, 6)", b"(40, 99999999999, 6)")[:200])
    for grid, fragment in (("flat.npy", "not a grid per row"), ("nan.npy", "NaN"), ("wide.npy", "this model reads 6"),
                           ("short.npy", "39 grids for 40 lines"), ("long.npy", "trained on grids of 4")):
        one_line_error(minrnn("eval", "--checkpoint", "additive/best.ckpt", "--grid", tmp_path / grid, "test.txt",
                              cwd=folder), fragment)
    for grid, fragment in (("flat.npy", "(N, L, 6)"), ("nan.npy", "finite"), ("wide.npy", "(N, L, 6)"),
                           ("long.npy", "trained on grids of 4")):
        one_line_error(minrnn("caption", "--checkpoint", "additive/best.ckpt", "--grid", tmp_path / grid, cwd=folder),
                       fragment)
    one_line_error(minrnn("caption", "--checkpoint", "additive/best.ckpt", "--grid", "test.npy", "--row", "40",
                          cwd=folder), "--row 40", "0 to 39")
    one_line_error(minrnn("caption", "--checkpoint", "additive/best.ckpt", cwd=folder), "--grid")
    np.save(tmp_path / "huge.npy", np.full((40, 4, 6), 1e300))   # finite in float64, not once standardized
    np.save(tmp_path / "blank.npy", np.zeros((40, 0, 5)))
    one_line_error(minrnn("caption", "--checkpoint", "additive/best.ckpt", "--grid", tmp_path / "huge.npy",
                          cwd=folder), "too large for float32")
    one_line_error(minrnn("train", "test.txt", "--grid", tmp_path / "huge.npy", "--out", tmp_path / "h", cwd=folder),
                   "too large to standardize")
    one_line_error(minrnn("caption", "--checkpoint", "additive/best.ckpt", "--grid", "test.npy", "--images",
                          "test.npy", cwd=folder), "--picture")
    one_line_error(minrnn("caption", "--checkpoint", "additive/best.ckpt", "--grid", "test.npy", "--picture",
                          tmp_path / "p.html", "--images", tmp_path / "blank.npy", cwd=folder), "--images")
    with pytest.raises(UserError, match="array of numbers"):
        api.load(folder / "additive" / "best.ckpt").caption("abc")
    one_line_error(minrnn("train", "test.txt", "--grid", tmp_path / "short.npy", "--out", tmp_path / "r", cwd=folder),
                   "39 grids for 40 lines")
    one_line_error(minrnn("train", "test.txt", "--grid", "test.npy", "--task", "classify", "--out", tmp_path / "r",
                          cwd=folder), "--grid", "--task caption")
    one_line_error(minrnn("train", "test.txt", "--grid", "test.npy", "--attention", "dot", "--out", tmp_path / "r",
                          cwd=folder), "--attention dot", "--hidden 6")
    one_line_error(minrnn("translate", "--checkpoint", "additive/best.ckpt", "abc", cwd=folder), "captioner")
    for c_args, fragment in (([], b"--grid"), (["--grid", tmp_path / "wide.npy"], b"(N, L, 6)"),
                             (["--grid", tmp_path / "nan.npy"], b"NaN"), (["--grid", "test.npy", "--row", "40"], b"0 to 39"),
                             (["--grid", tmp_path / "long.npy"], b"trained on grids of 4"),
                             (["--grid", tmp_path / "claims.npy"], b"not a whole .npy"),
                             (["--grid", "test.txt"], b"not a whole .npy")):
        c = subprocess.run([example, "additive/best.ckpt", *c_args], cwd=folder, capture_output=True)
        assert c.returncode != 0 and c.stderr.count(b"\n") == 1 and fragment in c.stderr, c.stderr
