# make test: create .venv if missing, install minrnn with its test extra, run the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: test clean

test: $(INSTALLED)
	$(PY) -m pytest -q

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall when anything that pip builds changes.
$(INSTALLED): $(PY) pyproject.toml
	$(PY) -m pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
