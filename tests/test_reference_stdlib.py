"""The reference must run where nothing but Python is installed."""

import ast
import pathlib
import subprocess
import sys

REFERENCE = pathlib.Path(__file__).resolve().parents[1] / "minrnn" / "reference"
ROOT = REFERENCE.parents[1]


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
                assert name.split(".")[0] in sys.stdlib_module_names, f"{path.name} imports {name}"


def test_reference_imports_and_runs_with_numpy_missing():
    # A fresh interpreter without site-packages (-S), in which importing numpy fails as well, as if
    # nothing but Python were installed; minrnn itself is found in the working directory.
    code = """
import sys
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
outside = sorted({m.split(".")[0] for m in sys.modules} - set(sys.stdlib_module_names) - {"minrnn", "__main__"})
print(outside)
"""
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
