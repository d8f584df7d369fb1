"""python -m minrnn {train, sample, eval}: the command line.

Bad input ends in one line on stderr that says what to do, and a non-zero exit; never a traceback.
"""

import argparse
import json
import math
import os
import re
import secrets
import sys

from minrnn import core
from minrnn.data import DataError, evaluate, read_file
from minrnn.text import TextError, Vocab, generate, read_symbols
from minrnn.training import DEFAULTS, LAST_RUN, Run

ADVICE = {  # what to do about a checkpoint the library refused
    core.lib.MINRNN_ERR_NOT_CHECKPOINT: "give a .ckpt file written by minrnn train",
    core.lib.MINRNN_ERR_TRUNCATED: "was it copied or downloaded completely?",
    core.lib.MINRNN_ERR_CORRUPT: "the file is damaged; use another checkpoint",
    core.lib.MINRNN_ERR_VERSION: "it was written by a newer minrnn",
    core.lib.MINRNN_ERR_IO: "check the path",
}


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def number(kind, low=None, high=None, low_open=False, high_open=False, what="a number"):
    """An argparse type: kind(text) within [low, high] (or open at either end)."""
    def parse(text):
        try:
            x = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, not {text!r}") from None
        if (math.isnan(x) or (low is not None and (x <= low if low_open else x < low))
                or (high is not None and (x >= high if high_open else x > high))):
            raise argparse.ArgumentTypeError(f"expected {what}, not {text}")
        return x
    return parse


positive = number(int, 1, what="a positive whole number")
count = number(int, 0, what="a whole number >= 0")
positive_float = number(float, 0.0, low_open=True, what="a number > 0")
nonneg_float = number(float, 0.0, what="a number >= 0")
dropout_p = number(float, 0.0, 1.0, high_open=True, what="a probability in [0, 1)")
val_fraction = number(float, 0.0, 0.5, what="a fraction in [0, 0.5]")
top_p_type = number(float, 0.0, 1.0, low_open=True, what="a probability in (0, 1]")
seed_type = number(int, 0, 2**64 - 1, what="a whole number in [0, 2^64)")


def build_parser():
    p = Parser(prog="python -m minrnn", description="Character-level RNN, LSTM and GRU language models.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    d = DEFAULTS

    t = sub.add_parser("train", help="train a model on a text file", description=(
        "Train a character-level model on a text file. Checkpoints (latest.ckpt, and best.ckpt by "
        "validation loss) and metrics.jsonl go to --out. Ctrl-C saves and tells you how to resume."))
    t.add_argument("input", nargs="?",
                   help="the text file (UTF-8, or any bytes with --encoding bytes); optional with --resume")
    g = t.add_argument_group("model (fixed once a run has started)")
    g.add_argument("--cell", choices=["lstm", "gru", "rnn", "irnn"],
                   help=f"recurrent cell; irnn is a relu RNN with identity init (default {d['cell']})")
    g.add_argument("--hidden", type=positive, metavar="N", help=f"units per layer (default {d['hidden']})")
    g.add_argument("--layers", type=positive, metavar="N", help=f"stacked layers (default {d['layers']})")
    g.add_argument("--embed", type=count, metavar="N",
                   help=f"embedding size; 0 feeds characters one-hot (default {d['embed']}: an embedding "
                        "learns much faster than one-hot input at PyTorch's initialization)")
    g.add_argument("--dropout", type=dropout_p, metavar="P",
                   help=f"dropout between layers and before the output, in training (default {d['dropout']})")
    g.add_argument("--encoding", choices=["utf8", "bytes"],
                   help="read the text as UTF-8 characters or as raw bytes (default utf8)")
    g = t.add_argument_group("training (fixed once a run has started)")
    g.add_argument("--seq-len", type=positive, metavar="N",
                   help=f"characters per stream per step: how far back gradients flow (default {d['seq_len']})")
    g.add_argument("--batch-size", type=positive, metavar="N",
                   help=f"parallel streams per step (default {d['batch_size']})")
    g.add_argument("--optimizer", choices=["adam", "adagrad", "rmsprop", "sgd"],
                   help=f"update rule (default {d['optimizer']})")
    g.add_argument("--lr", type=positive_float, metavar="X",
                   help="learning rate (default: adam 0.003, rmsprop 0.002, adagrad 0.1, sgd 0.1)")
    g.add_argument("--lr-decay", type=number(float, 0.0, 1.0, low_open=True, what="a factor in (0, 1]"),
                   metavar="F", help=f"multiply the learning rate by this at each epoch after --lr-decay-after "
                                     f"(default {d['lr_decay']})")
    g.add_argument("--lr-decay-after", type=count, metavar="N",
                   help=f"epochs at the full learning rate (default {d['lr_decay_after']})")
    g.add_argument("--clip-norm", type=nonneg_float, metavar="X",
                   help=f"scale gradients down to this global norm; 0 = off (default {d['clip_norm']})")
    g.add_argument("--clip-value", type=nonneg_float, metavar="X",
                   help="clip each gradient element to +-this; 0 = off (default 0)")
    g.add_argument("--val-frac", type=val_fraction, metavar="F",
                   help=f"the end of the text kept for validation (default {d['val_frac']})")
    g.add_argument("--seed", type=seed_type, metavar="S",
                   help=f"seed for initialization and dropout (default {d['seed']})")
    g = t.add_argument_group("when to stop, evaluate and sample (remembered by the run; give them again "
                             "to change)")
    g.add_argument("--max-iters", type=positive, metavar="N", help="stop after this many training steps in total")
    g.add_argument("--epochs", type=positive, metavar="N",
                   help="stop after this many passes over the text (default 10)")
    g.add_argument("--eval-every", type=positive, metavar="N",
                   help="validate and checkpoint every N steps (default 250)")
    g.add_argument("--sample-every", type=count, metavar="N",
                   help="print a sample every N steps; 0 = never (default 1000)")
    g = t.add_argument_group("this session")
    g.add_argument("--max-time", type=positive_float, metavar="X",
                   help="stop after this many seconds of this session")
    g.add_argument("--out", metavar="DIR", default="out", help="folder for checkpoints and metrics (default out)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    g.add_argument("--threads", type=count, metavar="N", default=0, help="threads; 0 = all cores (default 0)")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="generate text from a checkpoint", description=(
        "Generate text. Without --checkpoint it uses the best checkpoint of the last training run "
        "started in this folder."))
    s.add_argument("--checkpoint", metavar="FILE", help="the .ckpt file (default: the last run's best.ckpt)")
    s.add_argument("--length", type=count, metavar="N", default=500,
                   help="characters to generate, not counting the prime (default 500)")
    s.add_argument("--temperature", type=positive_float, metavar="X", default=1.0,
                   help="below 1: safer, more repetitive; above 1: more varied (default 1.0)")
    s.add_argument("--top-k", type=count, metavar="N", default=0,
                   help="sample only among the k likeliest characters; 0 = off (default 0)")
    s.add_argument("--top-p", type=top_p_type, metavar="P", default=1.0,
                   help="sample only among the likeliest characters holding this much probability (default 1.0)")
    s.add_argument("--argmax", action="store_true", help="always take the likeliest character (no randomness)")
    s.add_argument("--prime", metavar="TEXT", default="",
                   help="text fed through the model first, and printed (\\n and \\t are understood)")
    s.add_argument("--seed", type=seed_type, metavar="S",
                   help="the same seed gives the same text (default: random, printed on stderr)")
    s.add_argument("--stop", metavar="TEXT",
                   help="stop once this string has been generated (it is printed; \\n and \\t are understood)")
    s.add_argument("--threads", type=count, metavar="N", default=0, help="threads; 0 = all cores (default 0)")
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("eval", help="loss of a checkpoint on a text file", description=(
        "Loss in nats and bits per character on any text. Characters outside the model's vocabulary "
        "are counted, reported and skipped."))
    e.add_argument("file", help="the text to evaluate on")
    e.add_argument("--checkpoint", metavar="FILE", help="the .ckpt file (default: the last run's best.ckpt)")
    e.add_argument("--batch-size", type=positive, metavar="N", default=16, help="parallel streams (default 16)")
    e.add_argument("--seq-len", type=positive, metavar="N", default=256, help="characters per chunk (default 256)")
    e.add_argument("--threads", type=count, metavar="N", default=0, help="threads; 0 = all cores (default 0)")
    e.set_defaults(func=cmd_eval)
    return p


# ---- commands

def cmd_train(args):
    return Run(args).run()


def default_checkpoint():
    """The best checkpoint of the last run started in this folder."""
    out = "out"
    try:
        with open(LAST_RUN) as f:
            out = json.load(f)["out"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    for name in ("best.ckpt", "latest.ckpt"):
        path = os.path.join(out, name)
        if os.path.exists(path):
            return path
    raise DataError("no checkpoint given and no training run found here; pass --checkpoint FILE, "
                    "or train first: python -m minrnn train FILE")


def load(path, threads):
    try:
        return core.load_checkpoint(path, threads=threads)
    except core.MinrnnError as e:
        advice = ADVICE.get(e.status)
        raise DataError(f"{e}; {advice}" if advice else str(e)) from None


def unescape(text):
    r"""\n, \t and \\ in a command-line string, so a shell user can type a newline."""
    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], text)


def cmd_sample(args):
    ck = load(args.checkpoint or default_checkpoint(), args.threads)
    vocab = Vocab(ck.vocab, ck.encoding)
    prime = unescape(args.prime).encode("utf-8", "surrogateescape")
    prime_ids = vocab.encode(read_symbols(prime, ck.encoding)) if prime else []
    seed = args.seed
    if seed is None:
        seed = secrets.randbits(63)
        print(f"seed {seed}", file=sys.stderr)
    temperature = 0.0 if args.argmax else args.temperature
    stop = unescape(args.stop).encode("utf-8", "surrogateescape") if args.stop else b""
    out = sys.stdout.buffer
    out.write(prime)
    tail = b""
    for token in generate(ck.model, vocab, prime_ids, args.length, seed, temperature, args.top_k, args.top_p):
        piece = vocab.to_bytes([token])
        out.write(piece)
        out.flush()
        if stop:
            tail = (tail + piece)[-(len(stop) + 4):]
            if stop in tail:
                break
    if out.isatty():
        out.write(b"\n")
    out.flush()
    return 0


def cmd_eval(args):
    ck = load(args.checkpoint or default_checkpoint(), args.threads)
    vocab = Vocab(ck.vocab, ck.encoding)
    ids, unknown = vocab.encode_known(read_symbols(read_file(args.file), ck.encoding))
    if len(ids) < 2:
        raise DataError(f"{args.file}: fewer than 2 characters the model knows; nothing to evaluate")
    loss, n = evaluate(ck.model, ids, args.batch_size, args.seq_len)
    print(f"{args.file}: {loss:.4f} nats/char, {loss / math.log(2):.4f} bits/char over {n:,} characters")
    if unknown:
        from minrnn.text import show
        commonest = sorted(unknown.items(), key=lambda item: -item[1])[:10]
        listed = ", ".join(f"{show(s, ck.encoding)} x{c}" for s, c in commonest)
        print(f"{sum(unknown.values()):,} characters outside the model's vocabulary were skipped "
              f"({len(unknown)} distinct: {listed}{', ...' if len(unknown) > 10 else ''})")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, TextError) as e:
        print(f"minrnn {args.command}: error: {e}", file=sys.stderr)
    except core.MinrnnError as e:
        print(f"minrnn {args.command}: error: {e}", file=sys.stderr)
    except BrokenPipeError:   # the reader went away (sample | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except FloatingPointError as e:
        print(f"minrnn {args.command}: error: {e}; nothing was saved", file=sys.stderr)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"minrnn {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    return 1
