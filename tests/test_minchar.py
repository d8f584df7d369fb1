"""--preset min-char-rnn is Karpathy's gist: the same losses, step after step, as the gist's own
numpy code (tools/minchar_numpy.py, float64) started from the same weights on the same text."""

import sys

import numpy as np

from cliutil import ROOT, english, minrnn
from minrnn import core
from minrnn.tasks.stream import Batches, Text

sys.path.insert(0, str(ROOT / "tools"))
from minchar_numpy import MinCharRNN  # noqa: E402

# The gist's training is chaotic at first: Adagrad's first updates move every weight by about
# lr = 0.1 and the summed loss jumps from 100 to 250 nats, so any difference grows about tenfold
# per step. The gist's own code run in float32 leaves its float64 run by 1e-8, 1e-6, 4e-6, 4e-5,
# 2e-4 at steps 1 to 5 and by 20% at step 8. So the first STEPS steps are where "the same to
# float32 round-off" can be checked: within ROUND_OFF_FACTOR times the float32 gist's distance.
STEPS = 6
ROUND_OFF_FACTOR = 10


def float32_copy(gist):
    gist.p = {k: v.astype(np.float32) for k, v in gist.p.items()}
    gist.mem = {k: v.astype(np.float32) for k, v in gist.mem.items()}
    gist.hprev = gist.hprev.astype(np.float32)
    return gist


def test_preset_follows_the_gists_losses(tmp_path):
    path = tmp_path / "input.txt"
    path.write_text(english(3000), encoding="utf-8")
    run = minrnn("train", path, "--preset", "min-char-rnn", "--max-iters", STEPS, "--eval-every", STEPS,
                 "--sample-every", 0, "--out", tmp_path / "run", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    ck = core.load_checkpoint(tmp_path / "run" / "latest.ckpt")
    cfg = ck.model.config
    assert (cfg.cell, cfg.hidden_size, cfg.embed_size, cfg.one_bias, cfg.reduction) == ("rnn_tanh", 100, 0, True, "sum")
    assert "bias_hh_l0" not in ck.model.tensors   # one hidden bias, as the gist's bh

    # The run's start: the preset's initialization from the run's seed (1), weights N(0, 0.01^2).
    start = core.Model(cfg, seed=1, init="normal")
    w = start.tensors["weight_hh_l0"]
    assert abs(w.std() - 0.01) < 0.0005 and not start.tensors["bias_ih_l0"].any()   # 10^4 draws: std within 5%
    gist = MinCharRNN.from_minrnn(start.tensors, lr=0.1)
    gist32 = float32_copy(MinCharRNN.from_minrnn(start.tensors, lr=0.1))
    ours = core.Trainer(start, 1, 25, optimizer="adagrad", lr=0.1, clip_value=5.0)   # eps 1e-8 by default
    batches = Batches(Text(path, val_frac=0.0).train, 1, 25, start)
    for i in range(STEPS):
        tokens, targets = batches.arrays(i)
        expected = gist.step(list(tokens[:, 0]), list(targets[:, 0]))
        round_off = abs(gist32.step(list(tokens[:, 0]), list(targets[:, 0])) - expected)
        loss, _ = ours.step(start.batch(tokens, targets))
        # the floor: float32's relative precision on a sum of 25 losses
        assert abs(loss - expected) <= ROUND_OFF_FACTOR * round_off + 1e-6 * expected, (i, loss, expected, round_off)
    # and the command line ran exactly these steps
    assert np.array_equal(ck.model.params, start.params)
