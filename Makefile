# Two commands: `make demo` and `make test`. Each creates the virtualenv and installs on first use.
# `make docs` executes every notebook (quick parameters) and renders it with its figures into docs/.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PYTHONUNBUFFERED := 1

.PHONY: install demo test lint bench docs clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m keras_convlstm demo --out-dir outputs

test: install lint
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check keras_convlstm tests benchmarks docs notebooks/solutions

bench: install
	$(PY) benchmarks/run_all.py

docs: install
	$(PY) docs/render.py

clean:
	rm -rf $(VENV) outputs runs .pytest_cache
