"""Running a trained model: loading it, generating text, and measuring its loss on a text."""

import numpy as np

from minrnn import core
from minrnn.errors import UserError
from minrnn.resources import require_memory

ADVICE = {  # what to do about a checkpoint the library refused
    core.lib.MINRNN_ERR_NOT_CHECKPOINT: "give a .ckpt file written by minrnn train",
    core.lib.MINRNN_ERR_TRUNCATED: "was it copied or downloaded completely?",
    core.lib.MINRNN_ERR_CORRUPT: "the file is damaged; use another checkpoint",
    core.lib.MINRNN_ERR_VERSION: "it was written by a newer minrnn",
    core.lib.MINRNN_ERR_OPEN: "check the path",
    core.lib.MINRNN_ERR_NOT_FILE: "give the path of a .ckpt file",
}


def load(path, threads=0, advice=None):
    """The checkpoint at path, or UserError saying what is wrong with the file and what to do
    (`advice`, or what ADVICE says for the library's status)."""
    try:
        return core.load_checkpoint(path, threads=threads)
    except core.MinrnnError as e:
        what_to_do = advice or ADVICE.get(e.status)
        raise UserError(f"{e}; {what_to_do}" if what_to_do else str(e)) from None


def generate(model, vocab, prime_ids, length, seed, temperature=1.0, top_k=0, top_p=1.0):
    """Yield `length` token ids sampled one at a time, after feeding the prime (or the start symbol,
    which is not part of the output) through a zero state. The pure-C example program
    (cext/examples/minrnn_sample.c) does exactly this, so the same seed gives the same text."""
    rng = core.Rng(seed)
    state = model.zero_state(1)
    logits = None
    for token in (prime_ids if len(prime_ids) else [vocab.start_id]):
        logits = model.step([token], state)
    for n in range(length):
        token = core.sample(logits[0], rng, temperature, top_k, top_p)
        yield token
        if n + 1 < length:
            logits = model.step([token], state)


def evaluation_shape(n, streams, seq_len):
    """(streams, stream length, chunk length) for evaluating n ids: at most (n - 1) // 2 streams,
    chunks no longer than a stream."""
    streams = max(1, min(streams, (n - 1) // 2))
    stream_len = (n - 1) // streams
    return streams, stream_len, max(1, min(seq_len, stream_len))


def workspace_bytes(config, B, T):
    """Bytes of the core's workspace for B streams of T steps; UserError beyond what it takes."""
    floats = core.workspace_floats(config, B, T)
    if floats == 0:
        raise UserError(f"batches of {B} x {T} are more than the core takes (B x T <= "
                        f"{core.lib.MINRNN_MAX_BATCH_ROWS}); use a smaller --batch-size or --seq-len")
    return 4 * floats


def check_evaluation_memory(model, n, streams, seq_len):
    """UserError if evaluating n ids in (streams, seq_len) chunks will not fit in memory."""
    streams, _, T = evaluation_shape(n, streams, seq_len)
    require_memory(workspace_bytes(model.config, streams, T), f"evaluating in chunks of {streams} x {T}",
                   "use a smaller --batch-size or --seq-len")


def evaluate(model, ids, streams, seq_len):
    """Mean loss in nats per character of predicting ids[1:] from what precedes, with dropout off.
    The text is cut into `streams` contiguous streams, each run from a zero state in chunks of
    seq_len with the state carried. Returns (loss, characters predicted): the last few characters
    that don't fill a stream (fewer than `streams`) are not predicted."""
    streams, stream_len, T = evaluation_shape(len(ids), streams, seq_len)
    if stream_len < 1:
        return float("nan"), 0
    data = np.stack([ids[b * stream_len:b * stream_len + stream_len + 1] for b in range(streams)])
    state = model.zero_state(streams)
    total = 0.0
    for a in range(0, stream_len, T):
        chunk = data[:, a:a + T + 1]
        tokens, targets = chunk[:, :-1].T, chunk[:, 1:].T
        fwd = model.forward(tokens, targets, state, want_logits=False)
        total += fwd.loss * tokens.size
        state = fwd.final_state
    return total / (streams * stream_len), streams * stream_len
