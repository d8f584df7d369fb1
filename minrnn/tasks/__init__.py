"""The kinds of data minrnn learns from, each a task object (tasks/base.py's Task): a text
(stream.py), records with or without a condition (records.py), a classifier of records
(classify.py), pairs for sequence to sequence (seq2seq.py), records written from a grid of vectors
each (caption.py), and a classifier of sequences of vectors, a label per step, or values
(vectors.py). The training loop, minrnn.load,
the commands and their checks ask the task; nothing outside this package, the bindings (core.py,
and torch.py, which builds each task's model as an nn.Module) and the settings table branches on
which task runs (tests/test_structure.py).

Adding a task: a module with a Task subclass, and its line in TASKS.
"""

from minrnn.errors import UserError
from minrnn.tasks.caption import Caption
from minrnn.tasks.classify import Classify
from minrnn.tasks.records import Records
from minrnn.tasks.seq2seq import Seq2seq
from minrnn.tasks.stream import Stream
from minrnn.tasks.vectors import VectorClassify, VectorRegress, VectorTag

TASKS = (Stream(), Records(), Classify(), Seq2seq(), Caption(), VectorClassify(), VectorTag(), VectorRegress())

# the values of --task, in order, with what each learns (two tasks may share one: lm is a text or records)
OPTIONS = {}
for _task in TASKS:
    OPTIONS.setdefault(_task.option, _task.option_help)


def for_settings(s):
    """The task a run's settings (settled: settings.settle) choose."""
    task = next((t for t in TASKS if t.chosen_by(s)), None)
    if task is None:   # an option of vectors' alone, without them
        raise ValueError(f"--task {s['task']} reads sequences of vectors: give --inputs X.npy and --targets Y.npy")
    return task


def for_checkpoint(ck):
    """The task of a core.Checkpoint's model; UserError for a model the checkpoint format allows
    but no task writes or reads (a classifier with a condition, say)."""
    for t in TASKS:
        if t.holds(ck):
            return t
    cfg = ck.model.config
    raise UserError(f"this checkpoint holds a model of task {cfg.task} with condition {cfg.cond}, which no command "
                    "of this minrnn trains or uses; train one with python -m minrnn train")
