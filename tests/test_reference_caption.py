"""The reference's decoder over a grid of vectors (captioning with attention) and input feeding (the
context of step t-1 fed to step t, for grids and for translation): gradients against central
differences for every parameter and for the grid itself, padding that is never read, inference
that is training's forward one token at a time, and the two models that these extend exactly
(attention "none" over a grid is a record model conditioned on the grid's mean; a decoder fed a
context of zeros is the unfed one)."""

import math

import pytest
from hypothesis import assume, given, settings, strategies as st

from minrnn.reference import Config, Rng, dropout_masks, forward, seq2seq
from minrnn.reference.seq2seq import ATTENTIONS, Seq2seqConfig, decode_step, encode, frame_pairs, translate
from soak import examples
from refutil import MAX_REL_ERROR, central_difference, ragged_lengths, rel_error
from test_reference_seq2seq import SMOOTH_CELLS, Pairs, check_gradients, symbols

CELLS = SMOOTH_CELLS + ["rnn_relu"]
ATTENDING = [a for a in ATTENTIONS if a != "none"]
seed_st = st.integers(0, 2**63)


def grid_config(kind, attention, D=2, V=5, H=2, E=0, L=1, dropout=0.0, A=2, feed=None):
    """A captioner of grids of D-vectors; fed its context whenever it attends, unless feed says."""
    H = D if attention == "dot" else H   # dot scores h . e: the grid's vectors are as wide as h
    return Seq2seqConfig(vocab_size=V, hidden_size=H, cell=kind, embed_size=E, num_layers=L, dropout=dropout,
                         attention=attention, attention_size=A if attention == "additive" else 0, input_size=D,
                         input_feeding=attention != "none" if feed is None else feed)


class Grids(Pairs):
    """Pairs (test_reference_seq2seq) whose sources are grids: for each record n_b in [1, Ts] vectors
    uniform(-1, 1), a caption of m_b - 1 symbols, m_b in [1, Td]; then the decoder's dropout masks (a
    grid has no encoder). The draws' order: the block, the lengths, each record's grid then its caption,
    the masks."""

    def __init__(self, cfg, Ts, Td, B, seed, scale=1.0):
        r = Rng(seed)
        self.cfg, self.B = cfg, B
        self.flat = [(2.0 * r.uniform() - 1.0) * scale for _ in range(seq2seq.param_count(cfg))]
        src_n, tgt_n = ragged_lengths(r, Ts, B), ragged_lengths(r, Td, B)
        self.pairs = [([[2.0 * r.uniform() - 1.0 for _ in range(cfg.input_size)] for _ in range(n)],
                       symbols(r, cfg, m - 1)) for n, m in zip(src_n, tgt_n)]
        self.batch = frame_pairs(cfg, self.pairs)
        self.enc_masks = None
        self.dec_masks = dropout_masks(seq2seq.decoder_config(cfg), r, len(self.batch[2]), B) if cfg.dropout else None


# ---- configuration and block

@pytest.mark.parametrize("fields, message", [
    (dict(input_size=3, attention="dot"), "must be as wide as the hidden state"),
    (dict(attention="none", input_feeding=True), "needs attention"),
    (dict(input_feeding=1), "True or False"),
    (dict(input_size=-1), "input_size must be"),
])
def test_config_rejects_bad_combinations(fields, message):
    with pytest.raises(ValueError, match=message):
        Seq2seqConfig(**{**dict(vocab_size=5, hidden_size=2), **fields})


def test_block_of_a_grid_and_of_feeding():
    # No encoder; the decoder's condition is [mean (D) ; context (M = D)]; the attention's and
    # combine's widths are the grid's
    cfg = Seq2seqConfig(vocab_size=6, hidden_size=3, cell="gru", embed_size=2, attention="additive",
                        attention_size=4, input_size=5, input_feeding=True)
    assert seq2seq.param_shapes(cfg) == [
        ("dec.encoder.weight", (6, 2)), ("dec.cond.weight", (9, 10)), ("dec.weight_ih_l0", (9, 2)),
        ("dec.weight_hh_l0", (9, 3)), ("dec.bias_ih_l0", (9,)), ("dec.bias_hh_l0", (9,)),
        ("attn.query", (4, 3)), ("attn.key", (4, 5)), ("attn.v", (4,)), ("combine.weight", (3, 8)),
        ("combine.bias", (3,)), ("out.weight", (6, 3)), ("out.bias", (6,))]
    general = dict(seq2seq.param_shapes(grid_config("lstm", "general", D=5, H=3, feed=False)))
    assert general["attn.weight"] == (3, 5) and general["dec.cond.weight"] == (12, 5)
    # translation fed its context: the decoder's condition is the context alone (H wide)
    fed = dict(seq2seq.param_shapes(Seq2seqConfig(vocab_size=6, hidden_size=3, attention="dot", input_feeding=True)))
    assert fed["dec.cond.weight"] == (12, 3) and "enc.weight_ih_l0" in fed


# ---- gradients

@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("kind", SMOOTH_CELLS)
@settings(max_examples=examples(3), deadline=None)
@given(D=st.integers(1, 3), H=st.integers(2, 3), E=st.sampled_from([0, 2]), L=st.integers(1, 2),
       Ts=st.integers(1, 4), Td=st.integers(1, 4), B=st.integers(2, 3), dropout=st.booleans(), seed=seed_st)
def test_grid_gradients_match_central_differences(kind, attention, D, H, E, L, Ts, Td, B, dropout, seed):
    # every tensor of a captioner (the decoder's condition weights included: the mean's columns and
    # the fed context's), records of ragged grids and captions, fixed dropout masks
    check_gradients(Grids(grid_config(kind, attention, D=D, H=H, E=E, L=L, dropout=0.5 if dropout else 0.0),
                          Ts, Td, B, seed))


@pytest.mark.parametrize("attention", ATTENDING)
@pytest.mark.parametrize("kind", SMOOTH_CELLS)
@settings(max_examples=examples(3), deadline=None)
@given(H=st.integers(2, 3), E=st.sampled_from([0, 2]), L=st.integers(1, 2), Ts=st.integers(1, 4),
       Td=st.integers(1, 4), B=st.integers(2, 3), dropout=st.booleans(), seed=seed_st)
def test_fed_translation_gradients_match_central_differences(kind, attention, H, E, L, Ts, Td, B, dropout, seed):
    # the encoder's gradient now also flows through every step's fed context
    cfg = Seq2seqConfig(vocab_size=5, hidden_size=H, cell=kind, embed_size=E, num_layers=L,
                        dropout=0.5 if dropout else 0.0, attention=attention,
                        attention_size=2 if attention == "additive" else 0, input_feeding=True)
    check_gradients(Pairs(cfg, Ts, Td, B, seed))


@pytest.mark.parametrize("attention", ATTENTIONS)
@settings(max_examples=examples(4), deadline=None)
@given(kind=st.sampled_from(SMOOTH_CELLS), D=st.integers(1, 3), Ts=st.integers(1, 4), Td=st.integers(1, 3),
       B=st.integers(1, 3), seed=seed_st)
def test_the_gradient_with_respect_to_the_grid(attention, kind, D, Ts, Td, B, seed):
    # what a network under the grid (a CNN's features) would be trained with: through the mean, the
    # keys, the context and the fed context, at every place within each record's grid, 0 past it
    cfg = grid_config(kind, attention, D=D, H=2, L=2)
    pb = Grids(cfg, Ts, Td, B, seed)
    fwd = pb.forward()
    assume(abs(fwd.loss) < 8.0)   # FLOOR's argument takes the loss to be of order one
    src, src_lengths = pb.batch[0], pb.batch[1]
    dgrid = [[[0.0] * D for _ in range(B)] for _ in src]
    seq2seq.backward(cfg, pb.params, fwd, dgrid)
    for s, b, k in ((s, b, k) for s in range(len(src)) for b in range(B) for k in range(D)):
        if s >= src_lengths[b]:
            assert dgrid[s][b][k] == 0.0
            continue

        def loss(x):
            moved = [[[v + (x[0] if (t, c, j) == (s, b, k) else 0.0) for j, v in enumerate(row)]
                      for c, row in enumerate(place)] for t, place in enumerate(src)]
            return pb.forward(batch=(moved, *pb.batch[1:])).loss

        n = central_difference(loss, [0.0], 0)
        assert rel_error(dgrid[s][b][k], n) < MAX_REL_ERROR, (s, b, k, dgrid[s][b][k], n)


# ---- what the new paths are, exactly

@settings(max_examples=examples(8), deadline=None)
@given(kind=st.sampled_from(CELLS), D=st.integers(1, 3), E=st.integers(0, 2), L=st.integers(1, 2),
       Ts=st.integers(1, 4), Td=st.integers(1, 4), B=st.integers(1, 3), seed=seed_st)
def test_no_attention_over_a_grid_is_a_record_model_conditioned_on_its_mean(kind, D, E, L, Ts, Td, B, seed):
    # The lectures' captioning, h = tanh(W_xh x + W_hh h + W_ih v), v the grid's mean: the model's
    # task "lm" with cond "vector" from zeros, out as its decoder. The same operations in the same
    # order, step by step: exactly equal.
    cfg = grid_config(kind, "none", D=D, V=5, H=2, E=E, L=L)
    pb = Grids(cfg, Ts, Td, B, seed)
    fwd = pb.forward()
    params = pb.params
    lm_cfg = Config(vocab_size=5, hidden_size=2, cell=kind, embed_size=E, num_layers=L, cond="vector", cond_size=D)
    lm_params = {**{n[4:]: t for n, t in params.items() if n.startswith("dec.")},
                 "decoder.weight": params["out.weight"], "decoder.bias": params["out.bias"]}
    _, src_lengths, dec_in, targets, tgt_lengths = pb.batch
    means = [seq2seq.mean_vector(memory) for memory in fwd.memories]
    state0 = [[[[0.0] * 2 for _ in range(B)] for _ in range(lm_cfg.num_states)] for _ in range(L)]
    lm = forward(lm_cfg, lm_params, dec_in, targets, state0, None, tgt_lengths, means)
    assert fwd.loss == lm.loss
    assert fwd.logits == [[x if t < tgt_lengths[b] else None for b, x in enumerate(row)]
                          for t, row in enumerate(lm.logits)]


@pytest.mark.parametrize("attention", ATTENDING)
@settings(max_examples=examples(6), deadline=None)
@given(kind=st.sampled_from(CELLS), E=st.integers(0, 2), L=st.integers(1, 2), Ts=st.integers(1, 4),
       Td=st.integers(1, 4), B=st.integers(1, 3), seed=seed_st)
def test_feeding_with_zero_weights_is_the_unfed_model(attention, kind, E, L, Ts, Td, B, seed):
    # The fed context enters only through the decoder's cond.weight: with that zero, every logit,
    # alignment and loss is the unfed model's, exactly (adding W v = 0.0 changes no float)
    fed_cfg = Seq2seqConfig(vocab_size=6, hidden_size=3, cell=kind, embed_size=E, num_layers=L, attention=attention,
                            attention_size=2 if attention == "additive" else 0, input_feeding=True)
    plain_cfg = Seq2seqConfig(**{**fed_cfg.__dict__, "input_feeding": False})
    pb = Pairs(plain_cfg, Ts, Td, B, seed)
    fed_params = {**pb.params, "dec.cond.weight": [[0.0] * 3 for _ in range(seq2seq.decoder_config(fed_cfg).gates * 3)]}
    plain = pb.forward()
    fed = seq2seq.forward(fed_cfg, fed_params, *pb.batch)
    assert (fed.loss, fed.logits, fed.alignments) == (plain.loss, plain.logits, plain.alignments)


@pytest.mark.parametrize("attention", ATTENTIONS)
@settings(max_examples=examples(6), deadline=None)
@given(kind=st.sampled_from(CELLS), D=st.integers(1, 3), E=st.integers(0, 2), L=st.integers(1, 2),
       Ts=st.integers(1, 4), Td=st.integers(2, 4), B=st.integers(2, 3), seed=seed_st)
def test_padding_of_a_grid_is_never_read(attention, kind, D, E, L, Ts, Td, B, seed):
    # Other vectors past each record's places and other ids past its caption: the same loss, logits,
    # alignments and gradients, exactly
    cfg = grid_config(kind, attention, D=D, V=6, H=3, E=E, L=L)
    pb = Grids(cfg, Ts, Td, B, seed)
    src, src_lengths, dec_in, targets, tgt_lengths = pb.batch
    r = Rng(seed + 1)
    other_src = [[row if s < src_lengths[b] else [9.0 * r.uniform() for _ in range(D)] for b, row in enumerate(place)]
                 for s, place in enumerate(src)]
    other = lambda ids: [[x if t < tgt_lengths[b] else int(r.uniform() * cfg.vocab_size)  # noqa: E731
                          for b, x in enumerate(row)] for t, row in enumerate(ids)]
    batch = (other_src, src_lengths, other(dec_in), other(targets), tgt_lengths)
    fwd, moved = pb.forward(), pb.forward(batch=batch)
    assert (fwd.loss, fwd.logits, fwd.alignments) == (moved.loss, moved.logits, moved.alignments)
    assert seq2seq.backward(cfg, pb.params, fwd) == seq2seq.backward(cfg, pb.params, moved)


@pytest.mark.parametrize("attention", ATTENTIONS)
@settings(max_examples=examples(8), deadline=None)
@given(kind=st.sampled_from(CELLS), grid=st.booleans(), feed=st.booleans(), E=st.integers(0, 2), L=st.integers(1, 2),
       Ts=st.integers(1, 4), Td=st.integers(1, 4), B=st.integers(1, 3), seed=seed_st)
def test_decode_step_is_forward_one_token_at_a_time(attention, kind, grid, feed, E, L, Ts, Td, B, seed):
    # encode, then decode_step along dec_in (teacher forcing), each step fed the last one's context
    # when the model is, gives forward's logits and alignments exactly, record by record: translation
    # and captioning, fed or not
    feed = feed and attention != "none"
    if grid:
        cfg = grid_config(kind, attention, D=2, V=6, H=3, E=E, L=L, feed=feed)
        pb = Grids(cfg, Ts, Td, B, seed)
    else:
        cfg = Seq2seqConfig(vocab_size=6, hidden_size=3, cell=kind, embed_size=E, num_layers=L, attention=attention,
                            attention_size=2 if attention == "additive" else 0, input_feeding=feed)
        pb = Pairs(cfg, Ts, Td, B, seed)
    fwd = pb.forward()
    for b, (source, target) in enumerate(pb.pairs):
        memory, state = encode(cfg, pb.params, source)
        assert memory.rows == fwd.memories[b]
        for t, token in enumerate([cfg.start] + target):
            logits, state, alpha = decode_step(cfg, pb.params, memory, state, token)
            assert (logits, alpha) == (fwd.logits[t][b], fwd.alignments[t][b])


def test_a_caption_is_a_translation_of_a_grid():
    # translate takes a grid for a captioner; a grid it cannot read is refused
    cfg = grid_config("gru", "additive", D=2, V=6, H=3)
    params = seq2seq.init_params(cfg, 5)
    ids, logprob, alphas = translate(cfg, params, [[0.5, -1.0], [1.0, 0.25], [0.0, 0.0]], beam=2, max_len=6)
    assert all(0 <= i < cfg.start for i in ids) and logprob <= 0.0
    assert all(len(alpha) == 3 and math.fsum(alpha) == pytest.approx(1.0, abs=1e-15) for alpha in alphas)
    for bad in ([], [[0.5]], [[math.nan, 0.0]]):
        with pytest.raises(ValueError):
            translate(cfg, params, bad)
