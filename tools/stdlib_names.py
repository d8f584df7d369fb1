"""Labelled records that every machine has: the public names of Python's standard library.

Each line is "kind<TAB>name": class (CamelCase), function (snake_case) or constant (UPPER_CASE),
from the modules below as the running Python defines them. The demo trains a conditioned record
model on it (which should write names in the style of the label it is given) and a classifier
(which should tell the three apart).

    python tools/stdlib_names.py names.tsv
"""

import importlib
import inspect
import sys

MODULES = """abc argparse array ast asyncio base64 bisect bz2 calendar codecs collections
concurrent.futures configparser contextlib copy csv ctypes datetime dbm decimal difflib doctest email
enum errno filecmp fileinput fnmatch fractions ftplib functools gettext glob gzip hashlib heapq hmac
html http.client imaplib inspect io ipaddress itertools json linecache locale logging lzma math
multiprocessing numbers operator os pathlib pickle platform poplib pprint queue random re reprlib
sched select selectors shelve shutil signal smtplib socket sqlite3 stat statistics string struct
subprocess sys tarfile tempfile textwrap threading time timeit tokenize trace traceback types typing
unittest urllib.parse uuid warnings weakref xml.dom.minidom zipfile zlib""".split()


def kind_of(name, value):
    if inspect.isclass(value) and name[0].isupper() and not name.isupper():
        return "class"
    if (inspect.isfunction(value) or inspect.isbuiltin(value)) and name.islower():
        return "function"
    if name.isupper() and isinstance(value, (int, float, str, bytes)):
        return "constant"
    return None


def names():
    """Sorted, distinct (kind, name) pairs."""
    found = set()
    for module in MODULES:
        try:
            m = importlib.import_module(module)
        except ImportError:   # a Python built without it (ctypes, sqlite3, dbm...)
            continue
        for name in dir(m):
            if not name.startswith("_"):
                kind = kind_of(name, getattr(m, name))
                if kind:
                    found.add((kind, name))
    return sorted(found)


def main(path):
    rows = names()
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{kind}\t{name}\n" for kind, name in rows)
    print(f"{path}: {len(rows)} names", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1])
