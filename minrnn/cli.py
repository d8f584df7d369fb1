"""python -m minrnn {train, sample, eval, classify, predict, translate, caption, export, import,
plot, picture}: the command line.

Bad input ends in one line on stderr that says what to do, and a non-zero exit; never a traceback.
The options of `train` come from the tables in settings.py.
"""

import argparse
import io
import os
import re
import sys
import traceback

import numpy as np

from minrnn import api, core
from minrnn.data import read_array, read_file
from minrnn.errors import UserError
from minrnn.interop import export_safetensors, import_model
from minrnn.picture import CAPTIONS, TRANSLATIONS, attention_page, attention_svg, caption_svg
from minrnn.lectures import activations_page, gradients_plot, temperature_page
from minrnn.plot import IMAGES, plot_runs
from minrnn.rundir import check_output, last_run_checkpoint, write_atomically
from minrnn.settings import (DATA, DEVICES, ENGINES, MODEL, POSITIVE, RENAMED, RUN, SEED, SESSION, THREADS, TRAINING,
                             USE, Flag, Number, engine_and_device, renamed)
from minrnn.tasks.records import read_features
from minrnn.text import skipped, unescape
from minrnn.training import Run

RUN_NAMES = [s.name for s in RUN + SESSION]

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
        if isinstance(s.rule, Flag):
            group.add_argument(s.option, action="store_const", const=True, help=s.help)
        else:
            group.add_argument(s.option, type=arg_type(s.rule), metavar=s.metavar,
                               help=s.help.format(default=s.default))


def add_precision(group):
    group.add_argument("--precision", choices=list(core.PRECISIONS), default=None,
                       help="the weights for this run: bfloat16 rounds each to 16 bits, which halves the bytes read "
                            "per character (sampling 1.4-2.1x faster here); int8 stores each row of a weight matrix "
                            "in bytes with a scale and multiplies in integers (a quarter of the bytes; sampling "
                            "3.4-4.4x faster here, inference only); default: as the checkpoint stores them")


def add_vector_files(group):
    group.add_argument("--inputs", metavar="X.npy", help="a classifier of vectors: the (N, T, D) sequences")
    group.add_argument("--lengths", metavar="L.npy", help="...and their (N,) lengths, when they differ")


def add_search(parser, unit, what):
    """The options of a seq2seq search (translate, caption): --beam, --temperature, --seed,
    --max-length and --scores; unit: what it writes a step at a time, what: what it writes whole."""
    parser.add_argument("--beam", type=arg_type(USE["beam"]), metavar="K", default=1,
                        help="beam search of width K (never less probable than greedy); 1 = greedy (default %(default)s)")
    parser.add_argument("--temperature", type=arg_type(USE["temperature"]), metavar="X", default=0.0,
                        help=f"> 0: draw each {unit} at this temperature instead (with --beam 1) (default 0: greedy)")
    parser.add_argument("--seed", type=arg_type(SEED), metavar="S", help="--temperature's draws: the same seed gives "
                        "the same text (default: random, printed on stderr)")
    parser.add_argument("--max-length", type=arg_type(USE["max_length"]), metavar="N", default=200,
                        help=f"{unit}s at most per {what} (default %(default)s)")
    parser.add_argument("--scores", action="store_true", help=f"after each {what}, a tab and its log probability")


def add_threads(group):
    group.add_argument("--threads", type=arg_type(THREADS), metavar="N", default=0,
                       help="threads; 0 = the cores other processes leave free (default 0)")


def build_parser():
    p = Parser(prog="python -m minrnn", description="Character-level RNN, LSTM and GRU language models.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    t = sub.add_parser("train", help="train a model on a text file", description=(
        "Train a character-level model on a text file. Checkpoints (latest.ckpt, and best.ckpt by "
        "validation loss) and metrics.jsonl go to --out. Ctrl-C saves and tells you how to resume."))
    t.add_argument("input", nargs="?",
                   help="the text file (UTF-8, or any bytes with --tokens bytes); optional with --resume")
    model = t.add_argument_group("model (fixed once a run has started)")
    add_settings(model, MODEL)
    model.add_argument("--encoding", choices=list(RENAMED["encoding"][1]), help="utf8 or bytes: the same as --tokens chars "
                       "or --tokens bytes (the option's name before minrnn 0.6)")
    add_settings(t.add_argument_group("records, labels and conditions (fixed once a run has started)"), DATA)
    add_settings(t.add_argument_group("training (fixed once a run has started)"), TRAINING)
    add_settings(t.add_argument_group("when to stop, evaluate and sample (remembered by the run; give them again "
                                      "to change)"), SESSION)
    g = t.add_argument_group("this session")
    g.add_argument("--max-time", type=arg_type(Number(float, 0.0, low_open=True)), metavar="X",
                   help="stop after this many seconds of this session")
    g.add_argument("--out", metavar="DIR", default="out", help="folder for checkpoints and metrics (default out)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    g.add_argument("--engine", choices=ENGINES, default=ENGINES[0],
                   help="what makes the training steps: c, minrnn's core (the fastest on a CPU), or torch, "
                        "minrnn.torch's module with minrnn's own update rules (the same steps to float32 round-off; "
                        "needs torch); a run resumes on either (default c)")
    g.add_argument("--device", choices=DEVICES, default=None,
                   help="with --engine torch: where it steps, cuda (each torchrun process on its own GPU, "
                        "LOCAL_RANK) or cpu (default auto: cuda when torch sees a GPU)")
    add_threads(g)
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="generate text from a checkpoint", description=(
        "Generate text. Without --checkpoint it uses the best checkpoint of the last training run "
        "started in this folder."))
    s.add_argument("--checkpoint", metavar="FILE", help="the .ckpt file (default: the last run's best.ckpt)")
    s.add_argument("--length", type=arg_type(USE["length"]), metavar="N", default=500,
                   help="characters to generate, not counting the prime (default %(default)s)")
    s.add_argument("--temperature", type=arg_type(Number(float, 0.0, 1e6, low_open=True, single=False)), metavar="X",
                   default=1.0,
                   help="below 1: safer, more repetitive; above 1: more varied (default %(default)s)")
    s.add_argument("--top-k", type=arg_type(USE["top_k"]), metavar="N", default=0,
                   help="sample only among the k likeliest characters; 0 = off (default %(default)s)")
    s.add_argument("--top-p", type=arg_type(USE["top_p"]), metavar="P", default=1.0,
                   help="sample only among the likeliest characters holding this much probability "
                        "(default %(default)s)")
    s.add_argument("--argmax", action="store_true", help="always take the likeliest character (no randomness)")
    s.add_argument("--prime", metavar="TEXT", default="",
                   help="text fed through the model first, and printed (\\n and \\t are understood)")
    s.add_argument("--seed", type=arg_type(SEED), metavar="S",
                   help="the same seed gives the same text (default: random, printed on stderr)")
    s.add_argument("--stop", metavar="TEXT",
                   help="stop once this string has been generated (it is printed; \\n and \\t are understood)")
    s.add_argument("--num", type=arg_type(USE["num"]), metavar="N", default=1,
                   help="samples generated together as one batch: records, one per line, or streams of --length "
                        "characters, separated by a blank line (default %(default)s)")
    c = s.add_argument_group("the condition of a conditioned model (trained with --labels or --features)")
    c.add_argument("--condition", metavar="LABEL", help="generate records of this label")
    c.add_argument("--features", metavar="FILE.npy", help="condition on a row of this (rows, D) array...")
    c.add_argument("--row", type=arg_type(Number(int, 0)), metavar="I", default=0, help="...row I (default 0)")
    c.add_argument("--vector", metavar="NUMBERS", help="...or on these D numbers (separated by spaces or commas)")
    add_precision(s)
    add_threads(s)
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("eval", help="loss of a checkpoint on a text file", description=(
        "Loss in nats and bits per character on any text. Characters outside the model's vocabulary "
        "are counted, reported and skipped."))
    e.add_argument("file", nargs="?", help="the text to evaluate on (a classifier of vectors: --inputs instead)")
    e.add_argument("--checkpoint", metavar="FILE", help="the .ckpt file (default: the last run's best.ckpt)")
    e.add_argument("--batch-size", type=arg_type(POSITIVE), metavar="N", default=16,
                   help="parallel streams (default %(default)s)")
    e.add_argument("--seq-len", type=arg_type(POSITIVE), metavar="N", default=256,
                   help="characters per chunk (default %(default)s)")
    e.add_argument("--features", metavar="FILE.npy", help="a conditioned model's features, one row per record")
    e.add_argument("--beam", type=arg_type(USE["beam"]), metavar="K", default=1,
                   help="a seq2seq model's translations: beam search of width K; 1 = greedy (default %(default)s)")
    add_vector_files(e)
    e.add_argument("--targets", metavar="Y.npy", help="a classifier of vectors: the (N,) labels of the sequences")
    e.add_argument("--grid", metavar="GRID.npy", help="a captioner: the grid of each line of the file, row i for line i")
    add_precision(e)
    add_threads(e)
    e.set_defaults(func=cmd_eval)

    k = sub.add_parser("classify", help="the likeliest labels of texts, from a classifier", description=(
        "Print each text's likeliest labels with their probabilities, from a checkpoint trained with "
        "--task classify."))
    k.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    k.add_argument("--file", metavar="FILE", help="...or the texts of this file, one per line")
    k.add_argument("--checkpoint", metavar="FILE", help="the .ckpt file (default: the last run's best.ckpt)")
    k.add_argument("--top", type=arg_type(USE["top"]), metavar="N", default=3,
                   help="labels shown per text (default %(default)s)")
    add_precision(k)
    add_threads(k)
    k.set_defaults(func=cmd_classify)

    v = sub.add_parser("predict", help="the labels of sequences of vectors, from a classifier of them", description=(
        "Print the likeliest label of each sequence (one line each: the label and its probability), from a "
        "checkpoint trained with --inputs; --out writes every label's probability, (N, K), as a .npy in the order "
        "of the checkpoint's labels."))
    v.add_argument("--checkpoint", metavar="FILE", help="the .ckpt file (default: the last run's best.ckpt)")
    add_vector_files(v)
    v.add_argument("--out", metavar="P.npy", help="write the (N, K) probabilities here")
    add_precision(v)
    add_threads(v)
    v.set_defaults(func=cmd_predict)

    r = sub.add_parser("translate", help="translate texts with a seq2seq checkpoint", description=(
        "Write the translation of each text (one line each, as soon as it is done) with a checkpoint "
        "trained with --task seq2seq: greedy by default, beam search with --beam, or sampled with "
        "--temperature."))
    r.add_argument("texts", nargs="*", metavar="TEXT", help="texts to translate")
    r.add_argument("--file", metavar="FILE", help="...or each line of this file")
    r.add_argument("--checkpoint", metavar="FILE", help="the .ckpt file (default: the last run's best.ckpt)")
    add_search(r, "character", "translation")
    r.add_argument("--picture", metavar="FILE.html",
                   help="also write the attention of every translation as heatmaps in one HTML page")
    add_precision(r)
    add_threads(r)
    r.set_defaults(func=cmd_translate)

    c = sub.add_parser("caption", help="caption grids of vectors with a captioner's checkpoint", description=(
        "Write the caption of each grid (one line each, as soon as it is done) with a checkpoint trained "
        "with --grid: greedy by default, beam search with --beam, or sampled with --temperature."))
    c.add_argument("--checkpoint", metavar="FILE", help="the .ckpt file (default: the last run's best.ckpt)")
    c.add_argument("--grid", metavar="GRID.npy", help="the grids, (N, L, D) or (N, Hg, Wg, D), as in training")
    c.add_argument("--row", type=arg_type(Number(int, 0)), metavar="I", help="only row I of the grids (default: every row)")
    add_search(c, "token", "caption")
    c.add_argument("--picture", metavar="FILE.html",
                   help="also write where the model looked for each token, over each image, in one HTML page")
    c.add_argument("--images", metavar="IMAGES.npy",
                   help="--picture: the (N, h, w) gray images the grids were cut from, drawn under the attention "
                        "(default: the grid's places as cells)")
    add_precision(c)
    add_threads(c)
    c.set_defaults(func=cmd_caption)

    x = sub.add_parser("export", help="write an inference-only copy of a checkpoint, compact by default",
                       description=(
        "Write the model of a checkpoint without its training state (optimizer moments, carried "
        "states), with the weights in bfloat16 by default: about a sixth of a training checkpoint "
        "(--precision int8: about a twelfth). sample, eval, classify and the C library load it as any "
        "checkpoint."))
    x.add_argument("source", nargs="?", metavar="CKPT", help="the checkpoint, as --checkpoint gives it")
    x.add_argument("target", nargs="?", metavar="OUT",
                   help="where to write, as --out gives it (python -m minrnn export best.ckpt m.safetensors)")
    x.add_argument("--checkpoint", metavar="FILE", help="the .ckpt file (default: the last run's best.ckpt)")
    x.add_argument("--out", metavar="FILE",
                   help="where to write the exported checkpoint; a name ending in .safetensors writes the "
                        "parameters in float32 under PyTorch's names (minrnn.torch builds the nn.Module), with "
                        "the configuration and vocabulary as metadata (needs pip install safetensors)")
    x.add_argument("--precision", choices=list(core.PRECISIONS), default="bfloat16",
                   help="how a .ckpt stores the weights (default %(default)s)")
    x.set_defaults(func=cmd_export)

    m = sub.add_parser("import", help="a minrnn checkpoint from a safetensors file or a PyTorch state dict",
                       description=(
        "Turn a model exported to safetensors (python -m minrnn export --out FILE.safetensors, then "
        "perhaps trained further in PyTorch with minrnn.torch) back into a checkpoint that sample, "
        "translate, classify and the C example run. A PyTorch file (torch.save of module.state_dict()) "
        "needs --like for its configuration and vocabulary, unless minrnn.torch.save wrote it."))
    m.add_argument("file", metavar="FILE", help="the .safetensors file, or a PyTorch file (.pt) to import")
    m.add_argument("out", metavar="OUT.ckpt", help="the checkpoint to write")
    m.add_argument("--like", metavar="FILE",
                   help="the checkpoint or .safetensors file the model started from: its configuration, "
                        "vocabulary and labels (the tensors must have its shapes)")
    m.add_argument("--precision", choices=list(core.PRECISIONS), default="float32",
                   help="how to store the weights (default %(default)s)")
    m.set_defaults(func=cmd_import)

    r = sub.add_parser("serve", help="a model behind HTTP, for many users at once, with a page at /", description=(
        "Serve a checkpoint over HTTP: POST JSON to its endpoint (a language model: /generate, which can "
        "stream; a classifier: /classify; a seq2seq model: /translate; a captioner: /caption; a model of "
        "vectors: /predict), or open the page at / in a browser. Concurrent generation requests are stepped "
        "together in one batch; each draws what sample draws with the same seed."))
    r.add_argument("source", nargs="?", metavar="CKPT", help="the .ckpt file (default: the last run's best.ckpt)")
    r.add_argument("--checkpoint", metavar="FILE", help=argparse.SUPPRESS)
    r.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default %(default)s: this machine only)")
    r.add_argument("--port", type=arg_type(Number(int, 0, 65535)), default=8000, metavar="N",
                   help="the port (default %(default)s; 0: any free one, which the first line says)")
    r.add_argument("--max-length", type=arg_type(Number(int, 1, 2**62)), default=10000, metavar="N",
                   help="characters a request may ask for (default %(default)s)")
    r.add_argument("--max-requests", type=arg_type(Number(int, 1, 100000)), default=64, metavar="N",
                   help="requests in progress at once; more are answered 429 (default %(default)s)")
    r.add_argument("--max-body", type=arg_type(Number(int, 1, 2**31 - 1)), default=1 << 20, metavar="BYTES",
                   help="bytes of a request's body (default %(default)s)")
    r.add_argument("--timeout", type=arg_type(Number(float, 0.0, 86400.0, low_open=True)), default=60.0,
                   metavar="SECONDS", help="time a request may take (default %(default)s)")
    add_precision(r)
    add_threads(r)
    r.set_defaults(func=cmd_serve)

    g = sub.add_parser("plot", help="training curves of runs, as a PNG or SVG file", description=(
        "Draw the training and validation loss of one or several runs (their --out folders) against the "
        "training step and against wall time. Needs matplotlib (pip install matplotlib)."))
    g.add_argument("runs", nargs="+", metavar="RUN_DIR", help="the folders of training runs")
    g.add_argument("--out", metavar="FILE", default="loss.png", help="a .png or .svg file (default %(default)s)")
    g.set_defaults(func=cmd_plot)

    q = sub.add_parser("picture", help="the lectures' pictures of a language model", description=(
        "activations: the text coloured by the hidden units that best follow simple features (inside "
        "quotes, inside brackets, position in the line), as an HTML page; gradients: how far back a "
        "loss reaches, the norm of dL_t/dh_k against t - k, one curve per --checkpoint (PNG or SVG, "
        "needs matplotlib); temperature: one prime sampled at several temperatures, as an HTML page."))
    q.add_argument("kind", choices=["activations", "gradients", "temperature"])
    q.add_argument("--checkpoint", metavar="FILE", action="append",
                   help="the .ckpt file (default: the last run's best.ckpt); gradients takes several")
    q.add_argument("--text", metavar="FILE", help="activations and gradients: the text to read")
    q.add_argument("--out", metavar="FILE", required=True, help="the page (.html) or image (.png, .svg) to write")
    q.add_argument("--unit", type=arg_type(Number(int, 0)), metavar="N", help="activations: also show this unit")
    q.add_argument("--distance", type=arg_type(Number(int, 2, 1000)), metavar="N", default=40,
                   help="gradients: how far back (default %(default)s)")
    q.add_argument("--prime", metavar="TEXT", default="", help="temperature: the prime")
    q.add_argument("--length", type=arg_type(Number(int, 1, 100000)), metavar="N", default=300,
                   help="temperature: characters per sample (default %(default)s)")
    q.add_argument("--temperatures", metavar="LIST", default="0.5,1,1.5",
                   help="temperature: comma-separated (default %(default)s)")
    q.add_argument("--seed", type=arg_type(SEED), metavar="S", default=1, help="temperature: the seed (default 1)")
    add_threads(q)
    q.set_defaults(func=cmd_picture)
    return p


# ---- commands

def cmd_train(args):
    given = {name: getattr(args, name) for name in RUN_NAMES}
    if args.encoding is not None:
        try:
            given = renamed(given, "encoding", args.encoding)
        except ValueError as e:
            raise UserError(str(e)) from None
    engine = engine_and_device(args.engine, args.device)
    run = Run(given, args.input, args.out, args.resume or restarted(args), args.max_time, args.threads,
              engine=engine)
    if args.engine == "torch" and os.environ.get("TORCHELASTIC_RESTART_COUNT") == "0" and \
            os.environ.get("RANK") == "0":   # torchrun's first attempt: what restarted() checks later
        token = job_token(create=True)
        if token:
            write_atomically(os.path.join(args.out, TORCHRUN_JOB), token.encode())
    return run.run()


TORCHRUN_JOB = "torchrun-job"   # in a run folder: the token of the torchrun job that trained it last


def job_token(create=False):
    """The token of this torchrun job (minrnn/torch_engine.py: kept in its agent's store, which every
    machine of the job reads and which lasts across its restarts), made anew with create."""
    from minrnn.torch_engine import job_token as token   # torch is optional: loaded only for its engine
    return token(create)


def restarted(args):
    """Whether torchrun restarts this job (--max-restarts) after a failure, and this job wrote the run's
    checkpoint: then the same command resumes, as --resume would (a run another job left there is
    refused, as without torchrun)."""
    again = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") not in ("", "0")
    if args.engine != "torch" or not again or not os.path.exists(os.path.join(args.out, "latest.ckpt")):
        return False
    try:
        with open(os.path.join(args.out, TORCHRUN_JOB)) as f:
            mark = f.read()
    except OSError:
        return False
    return mark == job_token()


def trained_for(args):
    """The model of the checkpoint a command names, at the --precision asked for."""
    return api.load(args.checkpoint or last_run_checkpoint(), args.precision, args.threads)


def say_seed(args, m):
    """The seed the model drew, on stderr, when the command was given none: --seed makes it again."""
    if args.seed is None and m.last_seed is not None:
        print(f"seed {m.last_seed}", file=sys.stderr)


def say_skipped(m):
    """On stderr, the characters the texts held that are outside the vocabulary (the model skips them)."""
    if m.last_unknown:
        print(skipped(m.last_unknown, m.vocab.encoding), file=sys.stderr)


def cmd_sample(args):
    m = trained_for(args)
    pieces = m.printed(unescape(args.prime).encode("utf-8", "surrogateescape"), args.num, args.length,
                       0.0 if args.argmax else args.temperature, args.top_k, args.top_p, args.seed, condition(args),
                       unescape(args.stop).encode("utf-8", "surrogateescape") if args.stop else b"")
    say_seed(args, m)
    out, last = sys.stdout.buffer, b""
    for piece in pieces:
        out.write(piece)
        out.flush()
        last = piece or last
    if out.isatty() and not last.endswith(b"\n"):
        out.write(b"\n")
    out.flush()
    say_skipped(m)
    return 0


def condition(args):
    """The condition the options give, for the API: a label's name (--condition), numbers
    (--vector), or a row of a features file (--features, --row); None if none is given. The model
    checks it."""
    given = [o for o, v in (("--condition", args.condition), ("--vector", args.vector), ("--features", args.features))
             if v is not None]
    if len(given) > 1:
        raise UserError(f"{' and '.join(given)} each give the condition; give one")
    if args.condition is not None:
        return args.condition
    if args.vector is not None:
        try:
            return [float(x) for x in re.split(r"[\s,]+", args.vector.strip())]
        except ValueError:
            raise UserError(f"--vector {args.vector!r}: give numbers separated by spaces or commas") from None
    if args.features is not None:
        rows = read_features(args.features, None)
        if args.row >= len(rows):
            raise UserError(f"--row {args.row}: {args.features} has {len(rows)} rows (0 to {len(rows) - 1})")
        return rows[args.row]
    return None


def save_array(path, a):
    """a as a .npy file at path, whole or not at all."""
    buf = io.BytesIO()
    np.save(buf, a)
    write_atomically(path, buf.getvalue())


def cmd_eval(args):
    if (args.file is None) == (args.inputs is None):
        raise UserError("give the file to evaluate on (a text), or --inputs X.npy --targets Y.npy (sequences of vectors)")
    path = args.file or args.inputs
    m = trained_for(args)
    print(m.evaluate(path, args.batch_size, args.seq_len, args.features, args.beam, args.targets,
                     args.lengths, args.grid).report(path))
    return 0


def cmd_predict(args):
    if args.inputs is None:
        raise UserError("give the sequences: --inputs X.npy (and --lengths L.npy when they differ)")
    m = trained_for(args)
    x, lengths = read_array(args.inputs), None if args.lengths is None else read_array(args.lengths)
    if args.out:
        check_output("--out", args.out, [args.inputs, args.lengths, args.checkpoint or last_run_checkpoint()],
                     (".npy",), "an array")
    p = m.predict(x, lengths)
    sys.stdout.write("".join(line + "\n" for line in m.predicted_lines(p, lengths)))
    if args.out:
        save_array(args.out, p)
    return 0


def read_texts(args, what):
    """The texts a command was given, as bytes: each TEXT (UserError for an empty one), or each line
    of --file (a Windows line end's \r dropped), blank lines included: each gets its line of output,
    so that the output lines up with the input. UserError if there are none."""
    if args.file is not None:
        lines = read_file(args.file).split(b"\n")
        texts = [line[:-1] if line.endswith(b"\r") else line for line in lines[:-1 if lines[-1] == b"" else None]]
    else:
        texts = [t.encode("utf-8", "surrogateescape") for t in args.texts]
        if not all(texts):
            raise UserError(f"text {texts.index(b'') + 1} is empty; give non-empty texts to {what}")
    if not any(texts):
        raise UserError(f"give non-empty texts to {what} (TEXT... or --file FILE)")
    return texts


HTML = (".html", ".htm")   # what pictures are written as (plots: plot.IMAGES)


def cmd_translate(args):
    if args.picture is not None:
        check_output("--picture", args.picture, [args.checkpoint or last_run_checkpoint(), args.file], HTML,
                     "the attention picture, an HTML page,")
    m = trained_for(args)
    texts = read_texts(args, "translate")
    translations = m.translations(texts, args.beam, args.temperature, args.seed, args.max_length,
                                  alignments=args.picture is not None)
    return print_searches(args, m, translations, "translation", TRANSLATIONS, lambda i, t: (
        texts[i].decode("utf-8", "replace"), t.text, attention_svg(t.source, t.written, t.alignments)))


def print_searches(args, m, results, what, about, picture):
    """What translate and caption print: each result (a Translation; None for a blank line) on its
    line as soon as it is done, with --scores its log probability after a tab; with --picture, the
    page of picture(i, result) for each, (title, text, svg). Returns the exit status."""
    say_seed(args, m)
    out, pictures = sys.stdout.buffer, []
    for i, t in enumerate(results):
        out.write(b"\n" if t is None else t.raw + (f"\t{t.logprob:.6f}".encode() if args.scores else b"") + b"\n")
        out.flush()
        if args.picture is not None and t is not None:
            pictures.append(picture(i, t))
    if args.picture is not None:
        write_atomically(args.picture, attention_page(pictures, about=about).encode("utf-8"))
        print(f"attention of {len(pictures)} {what}(s): {args.picture}", file=sys.stderr)
    say_skipped(m)
    return 0


def cmd_caption(args):
    if args.grid is None:
        raise UserError("give the grids to caption: --grid GRID.npy")
    checkpoint = args.checkpoint or last_run_checkpoint()
    if args.picture is not None:
        check_output("--picture", args.picture, [checkpoint, args.grid, args.images], HTML,
                     "the attention picture, an HTML page,")
    if args.images is not None and args.picture is None:
        raise UserError("--images are drawn under the attention: give --picture FILE.html too")
    grid = read_array(args.grid)
    if args.row is not None:
        rows = len(grid) if grid.ndim else 0
        if args.row >= rows:
            has = f"{rows} rows (0 to {rows - 1})" if rows else "no rows"
            raise UserError(f"--row {args.row}: {args.grid} has {has}")
        grid = grid[args.row:args.row + 1]
    images = None if args.images is None else read_array(args.images)
    m = trained_for(args)
    first = args.row or 0
    if images is not None and (images.ndim != 3 or len(images) < first + len(grid) or 0 in images.shape
                               or not np.all(np.isfinite(images))):
        raise UserError(f"--images: give (N, h, w) gray images of finite numbers, one per row of the grids, not "
                        f"{images.shape}")
    geometry = grid.shape[1:3] if grid.ndim == 4 else m.checkpoint.meta.get("grid_shape")
    if args.picture is not None and not geometry:
        raise UserError("--picture needs the places' geometry: give the grids as (N, Hg, Wg, D)")
    captions = m.captions(grid, args.beam, args.temperature, args.seed, args.max_length,
                          alignments=args.picture is not None)
    return print_searches(args, m, captions, "caption", CAPTIONS, lambda i, t: (
        f"grid {first + i}", t.text, caption_svg(t.written, t.alignments, geometry,
                                                 None if images is None else images[first + i], f"grid{first + i}")))


def cmd_serve(args):
    from minrnn.serve import LOOPBACK, Limits, serve
    if args.source and args.checkpoint:
        raise UserError("give the checkpoint once: CKPT, or --checkpoint CKPT")
    args.checkpoint = args.source or args.checkpoint
    m = trained_for(args)
    if not m.task.endpoint:
        raise UserError(f"this checkpoint is {m.task.what}, which the server does not serve")
    if args.host not in LOOPBACK:
        print(f"warning: listening on {args.host}: whoever reaches this machine can use the model (and its "
              "CPU); --host 127.0.0.1 keeps it to this machine", file=sys.stderr)
    try:
        serve(m, args.host, args.port, Limits(args.max_length, args.max_requests, args.max_body, args.timeout))
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    return 0


def cmd_classify(args):
    m = trained_for(args)
    texts = read_texts(args, "classify")
    out = sys.stdout.buffer
    for t, labels in zip(texts, m.classify(texts, top=args.top)):
        out.write(t + b"\t" + "  ".join(f"{label} {p:.3f}" for label, p in labels).encode("utf-8") + b"\n" if t
                  else b"\n")
    out.flush()
    say_skipped(m)
    return 0


def cmd_export(args):
    if args.source:
        if not args.target or args.checkpoint or args.out:
            raise UserError("give the checkpoint and the output as CKPT OUT, or as --checkpoint CKPT --out OUT")
        args.checkpoint, args.out = args.source, args.target
    if not args.out:
        raise UserError("give where to write: --out FILE (.ckpt, or .safetensors for PyTorch)")
    source = args.checkpoint or last_run_checkpoint()
    check_output("--out", args.out, [source])
    ck = api.read_checkpoint(source)
    if str(args.out).endswith(".safetensors"):
        export_safetensors(ck, args.out)
        print(f"{args.out}: {os.path.getsize(args.out) / 1e6:.2f} MB, float32 under PyTorch's names "
              f"(minrnn.torch.load builds its nn.Module)")
        return 0
    core.save_model_of(args.out, ck, args.precision)
    mb = [os.path.getsize(p) / 1e6 for p in (source, args.out)]
    print(f"{args.out}: {mb[1]:.2f} MB, {args.precision}, no training state (from {source}, {mb[0]:.2f} MB)")
    return 0


def cmd_picture(args):
    paths = args.checkpoint or [last_run_checkpoint()]
    if args.kind != "gradients" and len(paths) > 1:
        raise UserError(f"picture {args.kind} takes one --checkpoint")
    if args.kind in ("activations", "gradients") and args.text is None:
        raise UserError(f"picture {args.kind} reads a text: give --text FILE")
    images = args.kind == "gradients"
    check_output("--out", args.out, paths + [args.text], IMAGES if images else HTML,
                 f"the {args.kind} picture, {'a PNG or SVG image' if images else 'an HTML page'},")
    text = read_file(args.text).decode("utf-8", "replace") if args.text else ""
    if args.kind == "gradients":
        curves = gradients_plot([(p, api.load(p, threads=args.threads)) for p in paths], text, args.out,
                                args.distance)
        for path, cell, logs in curves:
            print(f"{path} ({cell}): log10 |dL_t/dh_k| from {logs[0]:.2f} at t - k = 0 to {logs[-1]:.2f} at "
                  f"{len(logs) - 1}")
    else:
        m = api.load(paths[0], threads=args.threads)
        if args.kind == "activations":
            content = activations_page(m, text, args.unit)
        else:
            try:
                temps = [float(x) for x in args.temperatures.split(",")]
            except ValueError:
                raise UserError(f"--temperatures {args.temperatures!r}: give numbers separated by commas") from None
            if not all(0 < t <= 1e6 for t in temps):
                raise UserError("--temperatures: each must be above 0")
            content = temperature_page(m, unescape(args.prime), args.length, temps, args.seed)
        write_atomically(args.out, content.encode("utf-8"))
    print(f"{args.out}: picture of {args.kind}", file=sys.stderr)
    return 0


def cmd_plot(args):
    check_output("--out", args.out, [os.path.join(run, "metrics.jsonl") for run in args.runs], IMAGES,
                 "the plot, a PNG or SVG image,")
    plot_runs(args.runs, args.out)
    print(f"{args.out}: the curves of {len(args.runs)} run(s)")
    return 0


def cmd_import(args):
    check_output("OUT", args.out, [args.file, args.like])
    ck = import_model(args.file, args.like)
    core.save_model_of(args.out, ck, args.precision)
    print(f"{args.out}: {os.path.getsize(args.out) / 1e6:.2f} MB, {args.precision}, from {args.file}")
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
