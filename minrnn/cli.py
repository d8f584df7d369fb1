"""python -m minrnn {train, sample, eval}: the command line.

Bad input ends in one line on stderr that says what to do, and a non-zero exit; never a traceback.
The options of `train` come from the tables in settings.py.
"""

import argparse
import math
import os
import re
import secrets
import sys
import traceback

from minrnn import core
from minrnn.data import read_file
from minrnn.errors import UserError
from minrnn.inference import check_evaluation_memory, evaluate, generate, load
from minrnn.rundir import last_run_checkpoint
from minrnn.settings import MODEL, POSITIVE, SEED, SESSION, THREADS, TRAINING, Number
from minrnn.text import TextError, Vocab, read_symbols, show
from minrnn.training import Run

class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def arg_type(rule):
    """An argparse type from a settings rule (Number, Choice, OrNone)."""
    def parse(text):
        try:
            return rule.parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


def add_settings(group, settings):
    """One option per setting; the default stays None, so that a run can tell what was given."""
    for s in settings:
        group.add_argument(s.option, type=arg_type(s.rule), metavar=s.metavar,
                           help=s.help.format(default=s.default))


def add_threads(group):
    group.add_argument("--threads", type=arg_type(THREADS), metavar="N", default=0,
                       help="threads; 0 = all cores (default 0)")


def build_parser():
    p = Parser(prog="python -m minrnn", description="Character-level RNN, LSTM and GRU language models.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    t = sub.add_parser("train", help="train a model on a text file", description=(
        "Train a character-level model on a text file. Checkpoints (latest.ckpt, and best.ckpt by "
        "validation loss) and metrics.jsonl go to --out. Ctrl-C saves and tells you how to resume."))
    t.add_argument("input", nargs="?",
                   help="the text file (UTF-8, or any bytes with --encoding bytes); optional with --resume")
    add_settings(t.add_argument_group("model (fixed once a run has started)"), MODEL)
    add_settings(t.add_argument_group("training (fixed once a run has started)"), TRAINING)
    add_settings(t.add_argument_group("when to stop, evaluate and sample (remembered by the run; give them again "
                                      "to change)"), SESSION)
    g = t.add_argument_group("this session")
    g.add_argument("--max-time", type=arg_type(Number(float, 0.0, low_open=True)), metavar="X",
                   help="stop after this many seconds of this session")
    g.add_argument("--out", metavar="DIR", default="out", help="folder for checkpoints and metrics (default out)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    add_threads(g)
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="generate text from a checkpoint", description=(
        "Generate text. Without --checkpoint it uses the best checkpoint of the last training run "
        "started in this folder."))
    s.add_argument("--checkpoint", metavar="FILE", help="the .ckpt file (default: the last run's best.ckpt)")
    s.add_argument("--length", type=arg_type(Number(int, 0)), metavar="N", default=500,
                   help="characters to generate, not counting the prime (default %(default)s)")
    s.add_argument("--temperature", type=arg_type(Number(float, 0.0, low_open=True)), metavar="X", default=1.0,
                   help="below 1: safer, more repetitive; above 1: more varied (default %(default)s)")
    s.add_argument("--top-k", type=arg_type(Number(int, 0, 2**31 - 1)), metavar="N", default=0,
                   help="sample only among the k likeliest characters; 0 = off (default %(default)s)")
    s.add_argument("--top-p", type=arg_type(Number(float, 0.0, 1.0, low_open=True)), metavar="P", default=1.0,
                   help="sample only among the likeliest characters holding this much probability "
                        "(default %(default)s)")
    s.add_argument("--argmax", action="store_true", help="always take the likeliest character (no randomness)")
    s.add_argument("--prime", metavar="TEXT", default="",
                   help="text fed through the model first, and printed (\\n and \\t are understood)")
    s.add_argument("--seed", type=arg_type(SEED), metavar="S",
                   help="the same seed gives the same text (default: random, printed on stderr)")
    s.add_argument("--stop", metavar="TEXT",
                   help="stop once this string has been generated (it is printed; \\n and \\t are understood)")
    add_threads(s)
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("eval", help="loss of a checkpoint on a text file", description=(
        "Loss in nats and bits per character on any text. Characters outside the model's vocabulary "
        "are counted, reported and skipped."))
    e.add_argument("file", help="the text to evaluate on")
    e.add_argument("--checkpoint", metavar="FILE", help="the .ckpt file (default: the last run's best.ckpt)")
    e.add_argument("--batch-size", type=arg_type(POSITIVE), metavar="N", default=16,
                   help="parallel streams (default %(default)s)")
    e.add_argument("--seq-len", type=arg_type(POSITIVE), metavar="N", default=256,
                   help="characters per chunk (default %(default)s)")
    add_threads(e)
    e.set_defaults(func=cmd_eval)
    return p


# ---- commands

def cmd_train(args):
    return Run(args).run()


def unescape(text):
    r"""\n, \t and \\ in a command-line string, so a shell user can type a newline."""
    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], text)


def model_text(data, ck, what):
    """The symbols of `what` (bytes) as the checkpoint's model reads them."""
    try:
        return read_symbols(data, ck.encoding)
    except TextError as e:
        raise TextError(f"{what}: {e}, and this model reads UTF-8 text (it was trained without "
                        "--encoding bytes); give UTF-8") from None


def cmd_sample(args):
    ck = load(args.checkpoint or last_run_checkpoint(), args.threads)
    vocab = Vocab(ck.vocab, ck.encoding)
    prime = unescape(args.prime).encode("utf-8", "surrogateescape")
    prime_ids = vocab.encode(model_text(prime, ck, "--prime")) if prime else []
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
    ck = load(args.checkpoint or last_run_checkpoint(), args.threads)
    vocab = Vocab(ck.vocab, ck.encoding)
    ids, unknown = vocab.encode_known(model_text(read_file(args.file), ck, args.file))
    if len(ids) < 2:
        raise UserError(f"{args.file}: fewer than 2 characters the model knows; nothing to evaluate")
    check_evaluation_memory(ck.model, len(ids), args.batch_size, args.seq_len)
    loss, n = evaluate(ck.model, ids, args.batch_size, args.seq_len)
    print(f"{args.file}: {loss:.4f} nats/char, {loss / math.log(2):.4f} bits/char over {n:,} characters")
    if unknown:
        commonest = sorted(unknown.items(), key=lambda item: -item[1])[:10]
        listed = ", ".join(f"{show(s, ck.encoding)} x{c}" for s, c in commonest)
        print(f"{sum(unknown.values()):,} characters outside the model's vocabulary were skipped "
              f"({len(unknown)} distinct: {listed}{', ...' if len(unknown) > 10 else ''})")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    fail = f"minrnn {args.command}: error:"
    try:
        return args.func(args)
    except (UserError, core.MinrnnError) as e:
        print(f"{fail} {e}", file=sys.stderr)
    except BrokenPipeError:   # the reader went away (sample | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except FloatingPointError as e:
        print(f"{fail} {e}; nothing was saved", file=sys.stderr)
    except MemoryError:
        print(f"{fail} out of memory; use a smaller model, batch or text", file=sys.stderr)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"{fail} {where}{e.strerror or e}", file=sys.stderr)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except Exception as e:   # a bug: still one line, with the way to the whole story
        if os.environ.get("MINRNN_TRACEBACK"):
            traceback.print_exc()
        else:
            print(f"{fail} internal error: {type(e).__name__}: {e} (MINRNN_TRACEBACK=1 shows where; "
                  "please report it)", file=sys.stderr)
        return 70   # EX_SOFTWARE
    return 1
