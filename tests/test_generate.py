"""The library's one generation loop (minrnn_generate_start/next, core.Generation) against the loop
written out in Python (genutil.spec_generate): the same tokens for every kind of language model,
sampler, end, stop and seeding; resumable in pieces of any size; the same for any thread count;
bad arguments refused."""

import gc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from genutil import spec_generate
from minrnn import core
from minrnn.reference import Config
from refutil import KINDS
from soak import examples


def model_of(kind, V, H, layers, embed, cond, C, seed, precision="float32"):
    cfg = Config(cell=kind, vocab_size=V, hidden_size=H, embed_size=embed, num_layers=layers, cond=cond,
                 cond_size=C if cond != "none" else 0)
    model = core.Model(cfg, seed=seed)
    model.params *= 3.0   # sharper distributions than a fresh model's: draws that differ would show
    model.set_precision(precision)
    return model


def condition_of(cond, C, num, r):
    if cond == "label":
        return r.integers(0, C, num).astype(np.int32)
    return r.standard_normal((num, C)).astype(np.float32) if cond == "vector" else None


@st.composite
def generations(draw):
    V = draw(st.integers(3, 12))
    model = dict(kind=draw(st.sampled_from(KINDS)), V=V, H=draw(st.integers(1, 16)), layers=draw(st.integers(1, 2)),
                 embed=draw(st.sampled_from([0, 3])), cond=draw(st.sampled_from(["none", "label", "vector"])),
                 C=draw(st.integers(1, 3)), seed=draw(st.integers(0, 2**32)),
                 precision=draw(st.sampled_from(list(core.PRECISIONS))))
    num = draw(st.integers(1, 5))
    records = draw(st.booleans())   # a record model's: an end token and a start token never drawn
    how = dict(fed=draw(st.lists(st.integers(0, V - 1), min_size=1, max_size=4)), num=num,
               length=draw(st.integers(0, 12)),
               seeds=draw(st.one_of(st.integers(0, 2**64 - 1), st.lists(st.integers(0, 2**64 - 1), min_size=num,
                                                                         max_size=num))),
               temperature=draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])), top_k=draw(st.integers(0, 3)),
               top_p=draw(st.sampled_from([1.0, 0.8])), end=V - 1 if records else None,
               banned=V - 2 if records else None, stop=draw(st.lists(st.integers(0, V - 1), max_size=2)))
    return model, how, draw(st.integers(0, 2**32))


@settings(max_examples=examples(150), deadline=None)
@given(generations())
def test_the_library_loop_is_the_loop_written_out(drawn):
    spec, how, cond_seed = drawn
    model = model_of(**spec)
    cond = condition_of(spec["cond"], spec["C"], how["num"], np.random.default_rng(cond_seed))
    expected = spec_generate(model, **how, cond=cond)
    seeds = how.pop("seeds")
    fed, num, length = how.pop("fed"), how.pop("num"), how.pop("length")
    assert core.Generation(model, num, fed, length, seeds, cond=cond, **how).run() == expected
    # in pieces: the same tokens, step after step, and nothing once it is over
    generation = core.Generation(model, num, fed, length, seeds, cond=cond, **how)
    rows = []
    while len(piece := generation.next(2)):
        rows.append(piece)
    assert len(generation.next(3)) == 0
    drawn = np.concatenate(rows) if rows else np.empty((0, num), np.int32)
    assert [column[column >= 0].tolist() for column in drawn.T] == expected
    assert len(drawn) <= length and all(row.max(initial=0) < model.config.vocab_size for row in drawn)


@st.composite
def joining_streams(draw):
    """A model, and streams of it each with its own fed ids, length, seed, sampler, stop and
    condition, each joining a shared batch at its own step."""
    spec, how, cond_seed = draw(generations())
    V, n = spec["V"], draw(st.integers(1, 5))
    streams = [dict(fed=draw(st.lists(st.integers(0, V - 1), min_size=1, max_size=4)), length=draw(st.integers(0, 10)),
                    seeds=draw(st.integers(0, 2**64 - 1)), temperature=draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])),
                    top_k=draw(st.integers(0, 3)), top_p=draw(st.sampled_from([1.0, 0.8])), end=how["end"],
                    banned=how["banned"], stop=draw(st.lists(st.integers(0, V - 1), max_size=2)),
                    joins=draw(st.integers(0, 6))) for _ in range(n)]
    return spec, streams, cond_seed, draw(st.sampled_from([1, 2]))


@settings(max_examples=examples(100), deadline=None)
@given(joining_streams())
def test_streams_joining_a_batch_draw_what_each_draws_alone(drawn):
    # minrnn_streams_step (core.Slots, the server's continuous batching): each stream, whenever it
    # joins and whoever shares the batch, draws what the loop written out draws for it alone, for
    # any thread count
    spec, streams, cond_seed, threads = drawn
    model = model_of(**spec)
    rng = np.random.default_rng(cond_seed)
    for s in streams:
        s["cond"] = condition_of(spec["cond"], spec["C"], 1, rng)
    alone = [spec_generate(model, s["fed"], 1, s["length"], s["seeds"], s["temperature"], s["top_k"], s["top_p"],
                           s["end"], s["banned"], s["stop"], s["cond"])[0] for s in streams]
    model.threads = threads
    slots = [core.Slot(s["fed"], s["length"], s["seeds"], s["temperature"], s["top_k"], s["top_p"], s["end"],
                       s["banned"], s["stop"], None if s["cond"] is None else s["cond"][0]) for s in streams]
    batch, last_join = core.Slots(model), max(s["joins"] for s in streams)
    for step in range(100):   # 6 steps of joining, then at most 4 fed ids and 10 draws
        for s, spec_s in zip(slots, streams):
            if spec_s["joins"] == step:
                batch.join(s)
        batch.step()
        if step >= last_join and not batch.slots:
            break
    assert [s.drawn for s in slots] == alone
    assert all(s.ended for s in slots) and not batch.slots


def test_a_batch_whose_rebuild_failed_is_rebuilt_at_the_next_step(monkeypatch):
    # Slots keeps the C view of its batch (pointers into its states) while the batch stays; a
    # failure while it rebuilds that view after a join must not leave a half-built one, pointing at
    # the states the join replaced: the next step rebuilds it, and every stream draws what it
    # draws alone
    model = model_of("gru", 7, 8, 2, 3, "none", 0, seed=5)
    alone = [core.Generation(model, 1, [1], 12, seed).run()[0] for seed in (1, 2, 3)]
    slots, batch = [core.Slot([1], 12, seed) for seed in (1, 2, 3)], core.Slots(model)
    batch.join(slots[0]), batch.join(slots[1])
    batch.step()
    batch.join(slots[2])   # a new batch of 3, with new states
    real = model.workspace

    def fails(*args):
        raise MemoryError("no room for the workspace")
    monkeypatch.setattr(model, "workspace", fails)
    with pytest.raises(MemoryError):
        batch.step()
    monkeypatch.setattr(model, "workspace", real)
    while batch.slots:
        batch.step()
    assert slots[2].drawn == alone[2]   # it lost no step: the failed one stepped nobody
    assert slots[0].drawn == alone[0] and slots[1].drawn == alone[1]


def test_a_stream_ends_at_its_stop_and_the_others_go_on():
    model = model_of("lstm", 6, 8, 1, 0, "none", 0, seed=4)
    free = core.Generation(model, 3, [0], 40, [1, 2, 3], temperature=1.0).run()
    stop = free[1][5:7]   # what stream 1 writes at draws 6 and 7
    stopped = core.Generation(model, 3, [0], 40, [1, 2, 3], temperature=1.0, stop=stop).run()
    for alone, ended in zip(free, stopped):   # each stream draws from its own seed: the others are unchanged
        assert ended == until(alone, stop)
    assert stopped[1][-len(stop):] == stop and len(stopped[1]) <= 7


def until(ids, stop):
    """ids up to the first time they end with stop (all of them if they never do)."""
    return next((ids[:n] for n in range(len(stop), len(ids) + 1) if ids[n - len(stop):n] == stop), ids)


def test_the_same_tokens_for_any_thread_count():
    # B = 64 rows of H = 96 take the step's parallel paths
    model = model_of("gru", 40, 96, 2, 8, "none", 0, seed=9)
    drawn = []
    for threads in (1, 2, 3):
        model.threads = threads
        drawn.append(core.Generation(model, 64, [1, 2], 30, 5, temperature=1.0).run())
    assert drawn[0] == drawn[1] == drawn[2]


def test_a_generation_keeps_the_weights_it_started_with():
    # it read its bfloat16 block through a bare pointer: set_precision("float32") freed the block
    # (here 1.5 MB, its own mapping), and the next draw read freed memory
    model = model_of("lstm", 40, 256, 2, 0, "none", 0, seed=3, precision="bfloat16")
    expected = core.Generation(model, 2, [1], 40, 5).run()
    generation = core.Generation(model, 2, [1], 40, 5)
    first = generation.next(10)
    model.set_precision("float32")
    gc.collect()
    junk = [np.full(model.param_count // 2, 0x7fc0, np.uint16) for _ in range(4)]   # NaNs, wherever it was
    rest = generation.run()
    del junk
    assert [[t for t in column if t >= 0] + ids for column, ids in zip(first.T.tolist(), rest)] == expected


@pytest.mark.parametrize("bad, value", [("B", 0), ("prime_length", 0), ("end_id", 6), ("banned_id", -2),
                                        ("max_length", -1), ("num_samplers", 2), ("stop_length", 1)])
def test_a_generation_that_does_not_fit_the_model_is_refused(bad, value):
    model = model_of("lstm", 6, 4, 1, 0, "none", 0, seed=1)
    generation = core.Generation(model, 3, [0, 1], 5, 7)
    setattr(generation.g, bad, value)   # stop_length 1 with no stop ids: NULL stop
    assert core.lib.minrnn_generate_workspace_size(model.c, core.lib.MINRNN_FLOAT32, generation.g) == 0
    with pytest.raises(core.MinrnnError, match="invalid argument"):
        core.check(core.lib.minrnn_generate_start(model.c, *model.weights(), generation.g,
                                                  core._ptr("void *", generation.workspace), 0))


def test_next_needs_a_started_generation():
    model = model_of("gru", 6, 4, 1, 0, "none", 0, seed=1)
    generation = core.Generation(model, 2, [0], 5, 7)
    generation.workspace[:] = 0   # not what start left
    with pytest.raises(core.MinrnnError, match="invalid argument"):
        generation.next(1)
    with pytest.raises(core.MinrnnError, match="invalid argument"):
        core.Generation(model, 2, [0, 9], 5, 7)   # a prime id outside the vocabulary
