"""Builds minrnn._core, the cffi (API mode) binding of the C core, from cext/.

setup.py names this file in cffi_modules, so `pip install .` compiles it. The cdef is the part of
the public header between its cdef markers, so Python and C cannot drift apart.
"""

import pathlib
import re

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = ["core.c", "model.c", "cells.c", "optim.c", "sample.c", "gemm.c", "checkpoint.c"]
# C11, OpenMP and warnings; never fast-math flags: the core must stay comparable with the reference.
# -fno-math-errno changes no result (nothing here reads errno); it lets sqrtf vectorize.
CFLAGS = ["-std=c11", "-O2", "-fopenmp", "-fno-math-errno", "-Wall", "-Wextra"]


def header_cdef(text):
    """The declarations between the cdef markers, without preprocessor lines other than integer
    #defines (cffi's cdef understands `#define NAME 123` and nothing else of the preprocessor)."""
    body = text.split("/* ---- cdef:", 1)[1].split("/* ---- end of cdef", 1)[0]
    body = body.split("\n", 1)[1]  # drop the rest of the marker's line
    keep = [line for line in body.splitlines()
            if not line.startswith("#") or re.match(r"#define\s+\w+\s+\d+\b", line)]
    return "\n".join(keep)


ffibuilder = FFI()
ffibuilder.cdef(header_cdef((HERE / "minrnn.h").read_text()))
ffibuilder.set_source(
    "minrnn._core",
    '#include "minrnn.h"',
    sources=[f"cext/{name}" for name in SOURCES],
    include_dirs=["cext"],
    extra_compile_args=CFLAGS,
    extra_link_args=["-fopenmp"],
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
