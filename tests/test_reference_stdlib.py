"""The reference must run where nothing but Python is installed."""

import ast
import importlib.util
import inspect
import os
import pathlib
import subprocess
import sys
import sysconfig

REFERENCE = pathlib.Path(__file__).resolve().parents[1] / "minrnn" / "reference"
ROOT = REFERENCE.parents[1]


def is_stdlib(name):
    """Whether a top-level module is the standard library's: built in, or found in the interpreter's
    own library folder and not in a site-packages below it. (sys.stdlib_module_names would do, but
    only from Python 3.10, and pyproject promises 3.9.)"""
    if name in sys.builtin_module_names:
        return True
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return False
    if spec.origin in ("built-in", "frozen"):
        return True
    path = os.path.realpath(spec.origin)
    libs = {os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")}
    return any(path.startswith(lib + os.sep) for lib in libs) and "site-packages" not in path


def test_reference_sources_import_only_the_standard_library():
    for path in REFERENCE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [] if node.level > 0 else [node.module]  # relative imports stay inside
            else:
                continue
            for name in names:
                assert is_stdlib(name.split(".")[0]), f"{path.name} imports {name}"
    assert not is_stdlib("numpy") and is_stdlib("math") and is_stdlib("json")


def test_reference_imports_and_runs_with_numpy_missing():
    # A fresh interpreter without site-packages (-S), in which importing numpy fails as well, as if
    # nothing but Python were installed; minrnn itself is found in the working directory.
    code = "import importlib.util, os, sys, sysconfig\n" + inspect.getsource(is_stdlib) + """
class NoNumpy:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "numpy":
            raise ImportError("numpy is not installed here")
sys.meta_path.insert(0, NoNumpy())
import minrnn.reference as R
cfg = R.Config(vocab_size=3, hidden_size=2)
params = R.init_params(cfg, 0)
fwd = R.forward(cfg, params, [[0]], [[1]], R.zero_state(cfg, 1))
R.backward(cfg, params, fwd)
loaded = {m.split(".")[0] for m in list(sys.modules)} - {"minrnn", "__main__"}
print(sorted(m for m in loaded if not is_stdlib(m)))
"""
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
