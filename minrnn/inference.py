"""Running a trained model: loading it, generating text, and measuring its loss on a text."""

import numpy as np

from minrnn import core
from minrnn.errors import UserError
from minrnn.records import frame, record_batch
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


# ---- records

def evaluate_records(model, records, picks, batch_size, cond):
    """Loss of the records `picks` (a RecordSet's indices), dropout off, in batches of batch_size:
    (nats per character, nats per record, characters), where a record of n characters has n + 1
    predictions (the end token too). For a classifier, also the predicted class of each record."""
    total, chars, predicted = 0.0, 0, []
    for a in range(0, len(picks), batch_size):
        chunk = picks[a:a + batch_size]
        tokens, targets, lengths, c = record_batch(records, chunk, model.config.task, cond)
        fwd = model.forward(tokens, targets, lengths=lengths, cond=c, want_logits=model.config.task == "classify")
        count = len(chunk) if model.config.task == "classify" else int(lengths.sum())
        total += fwd.loss * (1 if model.config.reduction == "sum" else count)
        chars += int(lengths.sum())
        if fwd.logits is not None:
            predicted += list(np.argmax(fwd.logits, axis=1))
    per = len(picks) if model.config.task == "classify" else chars
    return total / per, total / len(picks), chars, np.array(predicted, dtype=np.int64)


def generate_records(model, vocab, num, length, seed, temperature=1.0, top_k=0, top_p=1.0, cond=None, prime_ids=()):
    """num records sampled as one batch: each starts from the start token (and the prime) in a
    zero state and ends at the end token, or after `length` characters. At each step the streams
    still running draw their token in order from one generator, so the same seed gives the same
    records. The start token is never drawn (its logit is set to -inf). Returns [ids of each
    record]; the pure-C example program does exactly this."""
    rng = core.Rng(seed)
    state = model.zero_state(num)
    logits = None
    for token in [vocab.start_id] + list(prime_ids):
        logits = model.step(np.full(num, token, dtype=np.int32), state, cond)
    out, running = [[] for _ in range(num)], [True] * num
    tokens = np.full(num, vocab.end_id, dtype=np.int32)
    for n in range(length):
        logits[:, vocab.start_id] = -np.inf
        for b in range(num):
            if running[b]:
                token = core.sample(logits[b], rng, temperature, top_k, top_p)
                if token == vocab.end_id:
                    running[b] = False
                else:
                    out[b].append(token)
                    tokens[b] = token
        if not any(running) or n + 1 == length:
            break
        logits = model.step(tokens, state, cond)
    return out


def generate_streams(model, vocab, num, prime_ids, length, seed, temperature=1.0, top_k=0, top_p=1.0):
    """num streams of `length` token ids sampled as one batch, as generate does for one: every
    stream is fed the prime (or the start symbol), then at each step draws its token in order."""
    rng = core.Rng(seed)
    state = model.zero_state(num)
    logits = None
    for token in (prime_ids if len(prime_ids) else [vocab.start_id]):
        logits = model.step(np.full(num, token, dtype=np.int32), state)
    out = np.empty((num, length), dtype=np.int32)
    for n in range(length):
        out[:, n] = [core.sample(logits[b], rng, temperature, top_k, top_p) for b in range(num)]
        if n + 1 < length:
            logits = model.step(out[:, n], state)
    return out


def class_probabilities(model, vocab, texts, batch_size=64):
    """(len(texts), K) probabilities of a classifier for texts given as id arrays."""
    rows = []
    for a in range(0, len(texts), batch_size):
        tokens, _, lengths = frame(texts[a:a + batch_size], vocab)
        z = model.forward(tokens, lengths=lengths).logits.astype(np.float64)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        rows.append(z / z.sum(axis=1, keepdims=True))
    return np.concatenate(rows)


def length_buckets(lengths):
    """Up to four ranges of source lengths holding about a quarter of the pairs each: [(low, high)]."""
    if len(lengths) == 0:
        return []
    edges = sorted(set(int(x) for x in np.quantile(lengths, [0.25, 0.5, 0.75])))
    bounds, low = [], int(min(lengths))
    for e in edges + [int(max(lengths))]:
        if e >= low:
            bounds.append((low, e))
            low = e + 1
    return bounds
