# minrnn. The two commands a fresh machine needs:
#   make run    train a small model on text every machine has, then sample from it
#   make test   create .venv, install minrnn (building the C core), run the C and Python tests
# For C programs: make lib (build/libminrnn.a, .so, minrnn.pc) and make example.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

CC := gcc
include cext/sources.mk
CFLAGS := $(CORE_CFLAGS) $(OPENMP_FLAGS)
ASAN_FLAGS := $(CORE_CFLAGS:-O2=-O1) $(OPENMP_FLAGS) -g -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
LIB_SRC := $(CORE_NAMES:%=cext/%.c)
LIB_HDR := cext/minrnn.h cext/internal.h cext/gemm.h
OBJ := $(CORE_NAMES:%=build/obj/%.o)
ASAN_OBJ := $(CORE_NAMES:%=build/asan/%.o)
SERIAL_OBJ := $(CORE_NAMES:%=build/serial/%.o)
C_TESTS := test_core test_seq2seq test_gemm test_checkpoint
header_number = $(shell sed -n 's/^\#define MINRNN_VERSION_$(1) \([0-9]*\).*/\1/p' cext/minrnn.h)
VERSION := $(call header_number,MAJOR).$(call header_number,MINOR).$(call header_number,PATCH)
# While the major version is 0, a minor version may change the ABI: the soname carries both.
SONAME := libminrnn.so.$(call header_number,MAJOR).$(call header_number,MINOR)

.PHONY: all lib example run demo demo-digits demo-forecast demo-captions images bench bench-torch dist test test-py test-oldest test-c test-asan test-serial test-torch test-dist \
	test-soak clean
.SECONDARY:

all: lib example

# ---- the demo: about a minute of training on English that ships with every CPython (the text of
# its pydoc help topics), then a sample. A fresh run each time: build/run is replaced.
DEMO_TEXT := build/pydoc_topics.txt

run: $(INSTALLED) $(DEMO_TEXT)
	rm -rf build/run
	$(PY) -m minrnn train $(DEMO_TEXT) --out build/run --hidden 256 --max-time 60 --eval-every 100 --sample-every 0
	@echo "---- python -m minrnn sample --checkpoint build/run/best.ckpt --temperature 0.7 --prime 'The '"
	$(PY) -m minrnn sample --checkpoint build/run/best.ckpt --length 600 --temperature 0.7 --prime "The " --seed 1
	@echo

$(DEMO_TEXT): | $(PY)
	@mkdir -p $(@D)
	$(PY) -c "from pydoc_data.topics import topics; open('$@', 'w', encoding='utf-8').write('\n'.join(topics[k] for k in sorted(topics)))"

# ---- speed against PyTorch (installed into .venv from the local CPU build if missing) and numpy
# Records, a condition and a classifier on the public names of Python's standard library (README: Records).
DEMO_MODEL = --hidden 128 --layers 1 --embed 32 --epochs 1000 --max-time 60 --eval-every 200 --sample-every 0
# Dates in many human formats -> ISO 8601 (README: Sequence to sequence), with and without attention.
DATES_MODEL = --hidden 128 --layers 1 --embed 32 --epochs 4 --eval-every 1000 --sample-every 0
demo: $(INSTALLED)
	mkdir -p build/demo
	$(PY) tools/stdlib_names.py build/demo/names.tsv
	rm -rf build/demo/gen build/demo/cls
	$(PY) -m minrnn train build/demo/names.tsv --labels $(DEMO_MODEL) --out build/demo/gen
	for label in class function constant; do \
	  echo "---- python -m minrnn sample --condition $$label"; \
	  $(PY) -m minrnn sample --checkpoint build/demo/gen/best.ckpt --condition $$label --num 8 --seed 1 \
	    --temperature 0.8 | paste -sd' '; \
	done
	$(PY) -m minrnn train build/demo/names.tsv --task classify $(DEMO_MODEL) --out build/demo/cls
	$(PY) -m minrnn classify --checkpoint build/demo/cls/best.ckpt HTTPServer make_archive O_RDONLY
	$(PY) tools/dates.py build/demo/dates.tsv --num 20000 --seed 1
	$(PY) tools/dates.py build/demo/dates_test.tsv --num 2000 --seed 2
	for attention in additive none; do \
	  rm -rf build/demo/dates-$$attention; \
	  $(PY) -m minrnn train build/demo/dates.tsv --task seq2seq --attention $$attention $(DATES_MODEL) \
	    --out build/demo/dates-$$attention || exit 1; \
	  echo "---- python -m minrnn eval build/demo/dates_test.tsv (attention $$attention)"; \
	  $(PY) -m minrnn eval build/demo/dates_test.tsv --checkpoint build/demo/dates-$$attention/best.ckpt || exit 1; \
	done
	$(PY) -m minrnn translate --checkpoint build/demo/dates-additive/best.ckpt --picture build/demo/attention.html \
	  "Thursday, the fifth of March, nineteen eighty-seven" "5 Nov 1955" "30-jul-57"

# The README's digits table: scikit-learn's bundled digits read as sequences (tools/digits.py); a
# minute or two. scikit-learn is the demo's alone, installed here, never a dependency of minrnn.
demo-digits: $(INSTALLED)
	$(PY) -c "import sklearn" 2>/dev/null || $(PY) -m pip install -q scikit-learn   # pyproject's demo extra
	$(PY) tools/digits.py

# The README's forecast: statsmodels' bundled CO2 series, a month ahead (tools/forecast.py); seconds.
demo-forecast: $(INSTALLED)
	$(PY) -c "import statsmodels" 2>/dev/null || $(PY) -m pip install -q statsmodels   # pyproject's demo extra
	$(PY) tools/forecast.py

# The README's captioning table and picture: strips of scikit-learn's bundled digits cut into grids of
# patches, captioned with and without attention (tools/captions.py); a few minutes. The picture is
# build/captions/attention.html (and .svg: the README's tools/images/captions.svg is its copy).
demo-captions: $(INSTALLED)
	$(PY) -c "import sklearn" 2>/dev/null || $(PY) -m pip install -q scikit-learn   # pyproject's demo extra
	$(PY) tools/captions.py

# The README's pictures (tools/images/) of make run's model: its loss curves, a screenshot of its activations
# page, and its gradient reach beside a small RNN, LSTM and GRU's. Run make run first; needs matplotlib and
# Chromium (apt install chromium).
# About a minute and a half: the activations page steps through the whole text a character at a time.
images: $(INSTALLED) $(DEMO_TEXT)
	$(PY) tools/readme_images.py --run build/run --text $(DEMO_TEXT) --out tools/images

bench: $(INSTALLED)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q 'torch==2.13.0'
	$(PY) tools/bench.py $(BENCH_ARGS)

# The torch engine's training rate beside the C engine's, on a GPU where torch sees one (else the CPU)
bench-torch: $(INSTALLED)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q 'torch==2.13.0'
	$(PY) tools/bench.py --only engine $(BENCH_ARGS)

# The PyTorch interop tests (test_interop.py), with torch installed into .venv from the local CPU build;
# make test runs them too whenever torch is there.
test-torch: $(INSTALLED)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q 'torch==2.13.0'
	$(PY) -m pytest -q tests/test_interop.py tests/test_torch_update.py

# ---- packaging: an sdist and a wheel in dist/ (PyPA's build, installed into .venv if missing);
# test-dist installs the wheel into a fresh virtualenv, away from the source tree, which trains and samples
dist: $(INSTALLED)
	$(PY) -m build --version >/dev/null 2>&1 || $(PY) -m pip install -q build
	rm -rf dist
	$(PY) -m build --outdir dist .

test-dist: dist $(DEMO_TEXT)
	rm -rf build/distcheck
	$(PYTHON) -m venv build/distcheck/venv
	build/distcheck/venv/bin/pip install -q dist/*.whl
	cd build/distcheck && venv/bin/python -m minrnn train ../pydoc_topics.txt --hidden 32 --layers 1 --max-iters 20 \
	  --eval-every 20 --sample-every 0 --out run && venv/bin/python -m minrnn sample --checkpoint run/best.ckpt \
	  --length 60 --seed 1

# ---- Python: the package with its test extra, in .venv; the suite again on the oldest Python that
# pyproject.toml promises (requires-python), with a fifth of each property test's examples
# (tests/soak.py): found on PATH or in pyenv's versions; said loudly when this machine lacks it.
# Its virtualenv holds only the dependencies (pyproject's, with the test extra): the suite imports
# minrnn from the source tree, with the extension module .venv's editable install built. That
# module is abi3 (Python's stable ABI), one file for every version; building it again with the
# oldest Python cost 25 s of the test's critical path and replaced the module that .venv's install
# had put there. What the oldest's own install would add is the build script's run on that
# version: test-oldest runs it (without the compiler, which is the same gcc with the same flags).
OLDEST := $(shell sed -n 's/^requires-python = ">=\([0-9.]*\)"/\1/p' pyproject.toml)
PYTHON_OLDEST ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/$(OLDEST).*/bin/python$(OLDEST)) python$(OLDEST))
VENV_OLDEST := .venv-$(OLDEST)
HAVE_OLDEST := $(shell $(PYTHON_OLDEST) -c 'import sys; assert sys.version_info[:2] == tuple(map(int, "$(OLDEST)".split(".")))' \
	2>/dev/null && echo yes)
OLDEST_READY := $(if $(HAVE_OLDEST),$(VENV_OLDEST)/.ready)
TEST_DEPS := $(shell sed -n 's/^dependencies = \[\(.*\)\]/\1/p; s/^test = \[\(.*\)\]/\1/p' pyproject.toml | tr -d '",')

# Two lanes, one a core, each target's output printed whole when it ends: the virtualenv, the suite
# on this Python, the C tests without OpenMP, then plainly; the C tests under AddressSanitizer, then
# the suite on the oldest Python (skimming its property tests: tests/soak.py). The lanes take about
# the same time (a fresh clone: 322 and 305 s; with the plain C tests in the second, they ended
# 34 s apart).
# A suite starts only once the library and the example are built (tests run make lib and make
# example, which must find them done) and .venv's install has written the extension module, which
# nothing changes after. OpenMP's idle threads wait passively: spinning, they would hold the core
# the other lane needs (measured: the two Python suites side by side took 200 s each spinning,
# 130 s passive).
test:
	OMP_WAIT_POLICY=passive $(MAKE) --no-print-directory -j2 --output-sync=target TEST_LANES=1 \
	  test-py test-asan test-serial test-c test-oldest

ifdef TEST_LANES
test-py test-oldest: lib example
test-serial: | test-py
test-c: | test-serial
$(OLDEST_READY): | test-asan
endif

# Each suite compiles minrnn's modules first: where PYTHONDONTWRITEBYTECODE is set, every interpreter
# a test starts (tests/forkserver.py's servers, background runs) would otherwise compile them again.
test-py: $(INSTALLED)
	$(PY) -m compileall -q minrnn
	$(PY) -m pytest -q

# The property tests (hypothesis) with 20 times their examples, under each of SOAK_SEEDS, two seeds
# at a time (each pytest keeps one core busy): 37-39 minutes a seed on a 2-core Zen 3. make test runs
# them derandomized (tests/conftest.py); this finds the draws that pass by luck.
SOAK_SEEDS ?= 1 2 3 4
test-soak: $(INSTALLED)
	@mkdir -p build
	printf '%s\n' $(SOAK_SEEDS) | OMP_WAIT_POLICY=passive xargs -P 2 -I{} sh -c \
	  'MINRNN_SOAK=20 $(PY) -m pytest -q -m property -p no:cacheprovider --hypothesis-seed={} > build/soak-{}.log 2>&1 \
	   && echo "soak seed {}: passed" || { echo "soak seed {}: FAILED (build/soak-{}.log)"; tail -40 build/soak-{}.log; exit 1; }'

test-oldest: $(INSTALLED) $(OLDEST_READY)
	@if [ -z "$(HAVE_OLDEST)" ]; then echo "test-oldest: NOT RUN: no Python $(OLDEST) here (set PYTHON_OLDEST=/path/to/python$(OLDEST))"; \
	else echo "pytest on Python $(OLDEST)" && $(VENV_OLDEST)/bin/python -c 'import runpy; runpy.run_path("cext/ffi_build.py")' && \
	  $(VENV_OLDEST)/bin/python -m compileall -q minrnn && \
	  MINRNN_SKIM=5 $(VENV_OLDEST)/bin/python -m pytest -q -p no:cacheprovider; fi

$(VENV_OLDEST)/.ready: pyproject.toml
	[ -x $(VENV_OLDEST)/bin/python ] || $(PYTHON_OLDEST) -m venv $(VENV_OLDEST)
	$(VENV_OLDEST)/bin/python -m pip install -q $(foreach dep,$(sort $(TEST_DEPS)),'$(dep)')
	touch $@

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall (rebuilding the extension) when anything pip builds changes.
$(INSTALLED): $(PY) pyproject.toml setup.py cext/ffi_build.py cext/sources.mk $(LIB_SRC) $(LIB_HDR)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# ---- the C library for other programs
lib: build/libminrnn.a build/libminrnn.so build/minrnn.pc build/include/minrnn.h

build/obj/%.o: cext/%.c $(LIB_HDR) cext/sources.mk
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fPIC -c $< -o $@

# The archive holds one object in which everything but minrnn.h's functions is local, so that no
# internal name (mm_pack, model_views, ...) can clash with a host program's.
build/libminrnn.a: $(OBJ)
	rm -f $@
	ld -r -o build/minrnn.o $^
	objcopy --localize-hidden build/minrnn.o
	ar rcs $@ build/minrnn.o

# Only the public minrnn_* functions are exported from the shared library (visibility does it;
# the version script makes sure).
build/libminrnn.so: $(OBJ)
	printf '{ global: minrnn_*; local: *; };\n' > build/exports.map
	$(CC) -shared $(OPENMP_FLAGS) -Wl,-soname,$(SONAME) -Wl,--version-script=build/exports.map -o build/$(SONAME) $^ -lm
	ln -sf $(SONAME) $@

build/include/minrnn.h: cext/minrnn.h
	@mkdir -p $(@D)
	cp $< $@

# pkg-config for the build tree: PKG_CONFIG_PATH=build pkg-config --cflags --libs minrnn
build/minrnn.pc: Makefile cext/minrnn.h
	@mkdir -p $(@D)
	printf '%s\n' 'prefix=$(CURDIR)/build' 'libdir=$${prefix}' 'includedir=$${prefix}/include' '' \
	  'Name: minrnn' 'Description: minimal character-level RNN, LSTM and GRU language models' \
	  'Version: $(VERSION)' 'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -Wl,-rpath,$${libdir} -lminrnn' \
	  'Libs.private: -lgomp -lm' > $@

example: build/minrnn_sample

build/minrnn_sample: cext/examples/minrnn_sample.c build/libminrnn.a cext/minrnn.h
	$(CC) $(CFLAGS) -Icext $< build/libminrnn.a -lm -o $@

# ---- C tests, no Python: plain, without OpenMP, and under AddressSanitizer + UndefinedBehaviorSanitizer.
# They link the objects, not the archive: test_gemm calls internal functions.
test-c: $(C_TESTS:%=build/tests/%)
	@for t in $^; do echo "$$t"; ./$$t || exit 1; done

build/tests/%: cext/tests/%.c $(OBJ) $(LIB_HDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Icext $< $(OBJ) -lm -o $@

# The library builds and passes without OpenMP (one thread; the same results).
test-serial: $(C_TESTS:%=build/serial/tests/%)
	@for t in $^; do echo "$$t (no OpenMP)"; ./$$t --quick || exit 1; done

build/serial/%.o: cext/%.c $(LIB_HDR) cext/sources.mk
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) $(SERIAL_FLAGS) -Werror -c $< -o $@

build/serial/tests/%: cext/tests/%.c $(SERIAL_OBJ) $(LIB_HDR)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) $(SERIAL_FLAGS) -Icext $< $(SERIAL_OBJ) -lm -o $@

build/asan/%.o: cext/%.c $(LIB_HDR) cext/sources.mk
	@mkdir -p $(@D)
	$(CC) $(ASAN_FLAGS) -c $< -o $@

build/asan/tests/%: cext/tests/%.c $(ASAN_OBJ) $(LIB_HDR)
	@mkdir -p $(@D)
	$(CC) $(ASAN_FLAGS) -Icext $< $(ASAN_OBJ) -lm -o $@

test-asan: $(C_TESTS:%=build/asan/tests/%)
	@for t in $^; do echo "$$t (asan)"; ./$$t --quick || exit 1; done

clean:
	rm -rf $(VENV) .venv-* build dist *.egg-info .pytest_cache .hypothesis minrnn/_core*.so
