"""How the code is put together: each fact in one place, cells as data, twin names, modules that
know one thing, and a library that exports nothing but its API."""

import ast
import pathlib
import re
import subprocess
import sys
import sysconfig

import pytest

from minrnn import core
from minrnn import reference as R
from minrnn.cli import build_parser
from minrnn.settings import DEFAULTS, RUN

ROOT = pathlib.Path(__file__).resolve().parents[1]
CEXT = ROOT / "cext"


def test_model_c_never_asks_which_cell_it_runs():
    # neither by name nor by looking at the config's cell fields (which a new cell would need)
    model_c = (CEXT / "model.c").read_text()
    assert not re.search(r"MINRNN_(RNN|LSTM|GRU|TANH|RELU)\b|cfg->(cell|nonlinearity)\b", model_c)


def test_the_cell_tables_agree():
    # C's table (minrnn_cell_info), the reference's CELLS, the binding's codes and the command line
    # list the same cells, in the same order, with the same gates and states.
    c_cells = []
    info = core.ffi.new("minrnn_cell *")
    while core.lib.minrnn_cell_info(len(c_cells), info) == core.lib.MINRNN_OK:
        c_cells.append((core.ffi.string(info.name).decode(), info.gates, info.states))
    assert c_cells == [(name, k.gates, k.states) for name, k in R.CELLS.items()]
    assert list(core.CELL_CODES) == list(R.CELLS)
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    cell_option = next(a for a in train._actions if a.dest == "cell")
    for name in R.CELLS:
        assert cell_option.type(name) == name
    with pytest.raises(Exception):
        cell_option.type("irnn")   # an init scheme, not a cell: --cell rnn_relu --init irnn


def test_every_cell_runs_through_the_binding_with_pytorchs_shapes():
    for name, kind in R.CELLS.items():
        model = core.Model(R.Config(vocab_size=5, hidden_size=3, cell=name, embed_size=2))
        assert model.tensors["weight_hh_l0"].shape == (kind.gates * 3, 3)
        assert model.tensors["bias_ih_l0"].shape == (kind.gates * 3,)   # a vector: the library's ndim says so
        assert model.state_shape(2) == (1, kind.states, 2, 3)
        assert core.py_config(model.c) == model.config


def test_the_extension_and_the_makefile_build_from_one_source_list():
    sys.path.insert(0, str(CEXT))
    try:
        import ffi_build
    finally:
        sys.path.pop(0)
    table = ffi_build.make_variables((CEXT / "sources.mk").read_text())
    makefile = (ROOT / "Makefile").read_text()
    assert "include cext/sources.mk" in makefile and "core.c" not in makefile
    assert not re.search(r"-std=|-fopenmp|-O2", makefile.replace("-O2=-O1", ""))   # flags only in sources.mk
    assert sorted(p.name for p in CEXT.glob("*.c")) == sorted(f"{n}.c" for n in table["CORE_NAMES"])
    assert "-fopenmp" in table["OPENMP_FLAGS"] and "-ffast-math" not in " ".join(sum(table.values(), []))
    # The extension's build puts Python's own CFLAGS first; where they carry -fwrapv (CPython's do),
    # GCC vectorizes none of the cells' loops unless the core's flags undo it (3x slower LSTM steps).
    python_flags = (sysconfig.get_config_var("CFLAGS") or "").split()
    if "-fwrapv" in python_flags:
        assert "-fno-wrapv" in table["CORE_CFLAGS"]


def test_run_defaults_and_help_come_from_the_settings_table():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    helps = {a.dest: a.help for a in train._actions}
    for s in RUN:
        assert s.help.format(default=s.default) == helps[s.name]
        if "{default}" in s.help:
            assert f"default {s.default}" in helps[s.name]
    for name, settings in R.OPTIMIZERS.items():
        assert f"{name} {settings['lr']:g}" in helps["lr"]
    assert DEFAULTS["cell"] in R.CELLS


def test_the_binding_names_what_the_reference_names():
    assert set(core.OPTIMIZER_CODES) == set(R.OPTIMIZERS) and set(core.INITS) == set(R.INIT_SCHEMES)


@pytest.mark.parametrize("kind", list(R.OPTIMIZERS))
def test_the_trainer_takes_the_reference_optimizer_defaults(kind):
    model = core.Model(R.Config(vocab_size=3, hidden_size=2))
    trainer = core.Trainer(model, 1, 1, optimizer=kind)
    ref = R.Optimizer(kind, 1)
    for name in R.optim.HYPERPARAMETERS:
        assert getattr(trainer.opt, name) == pytest.approx(getattr(ref, name), rel=1e-7), name   # float32


def c_functions(text):
    return set(re.findall(r"^(?:static )?(?:inline )?void (\w+_step_(?:forward|backward))\(", text, re.M))


def test_cell_steps_have_twin_names_in_c_and_python():
    c_steps = c_functions((CEXT / "cells.c").read_text())
    py_steps = {name for name in vars(R.cells) if re.fullmatch(r"\w+_step_(forward|backward)", name)}
    assert {"lstm_step_forward", "gru_step_backward", "rnn_step_forward"} <= c_steps & py_steps
    # the C wrappers per nonlinearity (rnn_tanh_step_forward) stand for the Python function with relu=...
    assert {re.sub(r"_(tanh|relu)_", "_", name) for name in c_steps} == py_steps


def test_no_constant_means_two_things():
    # One name for one meaning across the core's files (a unit chunk is not an I/O chunk).
    seen = {}
    for path in CEXT.glob("*.[ch]"):
        for name in set(re.findall(r"^#define (\w+)", path.read_text(), re.M)):   # #if/#else pairs: once
            assert name not in seen, f"{name} in {path.name} and {seen[name]}"
            seen[name] = path.name
    # "dg" is the g gate's gradient in the reference; the C cells name gate gradients dgx/dgh/da*
    assert not re.search(r"\bdg\b", (CEXT / "cells.c").read_text())
    # L is the layer count; data.py's stream length is stream_len
    assert not re.search(r"\bL\b", (ROOT / "minrnn" / "data.py").read_text())


def imports_of(module_path):
    names = set()
    for node in ast.walk(ast.parse(module_path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_text_and_data_know_nothing_of_the_c_core():
    for name in ("text.py", "data.py", "errors.py", "resources.py", "rundir.py"):
        mods = imports_of(ROOT / "minrnn" / name)
        assert not {"minrnn.core", "minrnn._core", "minrnn.inference"} & mods, name
    code = "import sys, minrnn.text, minrnn.data; print('minrnn._core' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def defined_globals(path, dynamic):
    out = subprocess.run(["nm", "-D" if dynamic else "-g", "--defined-only", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if len(line.split()) == 3}


def test_the_library_exports_only_its_api():
    subprocess.run(["make", "-s", "lib"], cwd=ROOT, check=True, capture_output=True)
    header = (CEXT / "minrnn.h").read_text()
    api = set(re.findall(r"\b(minrnn_\w+)\(", header))
    for path, dynamic in ((ROOT / "build" / "libminrnn.a", False), (ROOT / "build" / "libminrnn.so", True)):
        symbols = defined_globals(path, dynamic)
        assert symbols == api, (path.name, sorted(symbols ^ api))


def test_one_name_for_each_code_shared_with_the_library():
    # text.py is pure (no cffi): its reserved symbols restate minrnn.h's, and must stay equal
    from minrnn import core, text
    from minrnn.reference import CONDITIONS, INIT_SCHEMES, TASKS
    assert (text.START_SYMBOL, text.END_SYMBOL) == (core.lib.MINRNN_START_SYMBOL, core.lib.MINRNN_END_SYMBOL)
    assert (core.START_SYMBOL, core.END_SYMBOL) == (text.START_SYMBOL, text.END_SYMBOL)
    assert (text.TOKEN_END, text.MAX_TOKEN_CHARS) == (core.lib.MINRNN_TOKEN_END, core.lib.MINRNN_MAX_TOKEN_CHARS)
    assert tuple(text.TOKENS.values()) == tuple(core.ENCODINGS)[:1] + ("words", "bytes")
    assert tuple(core.TASK_CODES) == tuple(TASKS) + ("seq2seq",) and tuple(core.COND_CODES) == tuple(CONDITIONS)
    assert tuple(core.INITS) == tuple(INIT_SCHEMES)


# ---- the tasks: nothing outside minrnn/tasks/, the binding and the settings table asks which runs

TASK_WORDS = {"lm", "classify", "seq2seq", "encode", "records", "label", "vector"}   # tasks, and conditions
TASK_ATTRIBUTES = {"task", "framed", "cond", "records"}
ALLOWED = {"core.py", "settings.py", "torch.py"}   # the bindings (to the C core, to PyTorch) and the table


def task_branches(path):
    """The lines of a module that decide on the task: a comparison or a test reading a task's name or
    one of TASK_ATTRIBUTES (as a value: `m.task.swings` asks the task, `m.task == ...` decides on
    it), a table keyed by a task's name, an isinstance of a configuration, model or task class."""
    tree = ast.parse(path.read_text())
    asked = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}   # x in x.y

    def decides(node):
        return any(isinstance(n, ast.Constant) and n.value in TASK_WORDS or
                   isinstance(n, ast.Attribute) and n.attr in TASK_ATTRIBUTES and id(n) not in asked
                   for n in ast.walk(node))

    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and decides(node) or \
                isinstance(node, (ast.If, ast.IfExp, ast.While)) and decides(node.test):
            found.add(node.lineno)
        elif isinstance(node, ast.Dict) and {k.value for k in node.keys if isinstance(k, ast.Constant)} & TASK_WORDS:
            found.add(node.lineno)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and \
                re.search(r"Config|Seq2seq|Model|Task|Stream|Records|Classify", ast.unparse(node.args[1])):
            found.add(node.lineno)
    return sorted(found)


def test_only_the_tasks_know_which_task_runs():
    package = ROOT / "minrnn"
    modules = [p for p in package.glob("*.py") if p.name not in ALLOWED]
    assert {p.name for p in modules} >= {"api.py", "cli.py", "training.py", "lectures.py", "interop.py", "text.py"}
    for path in modules:
        assert task_branches(path) == [], path.name


def test_the_structure_test_sees_a_branch_on_the_task(tmp_path):
    # every form it looks for, each caught where it is
    sample = tmp_path / "sample.py"
    sample.write_text("if cfg.task == 'classify':\n    pass\n"
                      "x = 1 if vocab.framed else 2\n"
                      "USES = {'lm': 1}\n"
                      "isinstance(cfg, Seq2seqConfig)\n"
                      "if s['records']:\n    pass\n")
    assert task_branches(sample) == [1, 3, 4, 5, 6]
    sample.write_text("limit = 1 if self.task.swings else 2\nself.task.generate(m)\n")   # asking the task
    assert task_branches(sample) == []


def test_a_task_is_one_module_and_one_registry_line():
    from minrnn import tasks
    for task in tasks.TASKS:
        module = sys.modules[type(task).__module__]
        assert module.__name__.startswith("minrnn.tasks.") and type(task).__name__ in tasks.__doc__ + \
            (ROOT / "minrnn" / "tasks" / "__init__.py").read_text()
    assert list(tasks.OPTIONS) == ["lm", "classify", "seq2seq", "caption", "tag", "regress"]
    lines = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "minrnn").glob("*.py")}
    assert lines["training.py"] <= 310 and lines["api.py"] <= 310, lines   # the "about 300"


def test_the_package_and_the_library_have_one_version():
    # pyproject.toml reads the package's version from minrnn.__version__; the library says its own
    from minrnn import __version__, core
    assert __version__ == core.version()
