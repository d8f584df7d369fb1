"""Builds minrnn._core, the cffi (API mode) binding of the C core, from cext/.

setup.py names this file in cffi_modules, so `pip install .` compiles it. The sources and flags
come from cext/sources.mk, the Makefile's own list; the cdef is the part of the public header
between its cdef markers. So Python and C cannot drift apart.
"""

import pathlib
import re

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent


def make_variables(text):
    """The `NAME := words` lines of a makefile, as {NAME: [words]}."""
    return {m[1]: m[2].split() for m in re.finditer(r"^(\w+)\s*:=(.*)$", text, re.M)}


def header_cdef(text):
    """The declarations between the cdef markers, without preprocessor lines other than integer
    #defines (cffi's cdef understands `#define NAME 123` and nothing else of the preprocessor)."""
    body = text.split("/* ---- cdef:", 1)[1].split("/* ---- end of cdef", 1)[0]
    body = body.split("\n", 1)[1]  # drop the rest of the marker's line
    keep = [line for line in body.splitlines()
            if not line.startswith("#") or re.match(r"#define\s+\w+\s+\d+\b", line)]
    return "\n".join(keep)


BUILD = make_variables((HERE / "sources.mk").read_text())
ffibuilder = FFI()
ffibuilder.cdef(header_cdef((HERE / "minrnn.h").read_text()))
ffibuilder.set_source(
    "minrnn._core",
    '#include "minrnn.h"',
    sources=[f"cext/{name}.c" for name in BUILD["CORE_NAMES"]],
    include_dirs=["cext"],
    extra_compile_args=BUILD["CORE_CFLAGS"] + BUILD["OPENMP_FLAGS"],
    extra_link_args=BUILD["OPENMP_FLAGS"],
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
