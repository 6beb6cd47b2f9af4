# Two commands: `make demo` and `make test`. Each creates the virtualenv and installs on first use.
# `make docs` executes every notebook (quick parameters) and renders it with its figures into docs/.
# `make test` runs the whole suite but the benchmarks' quick runs (marked `bench`, run by `make bench` before it
# measures) on TensorFlow, then the tests marked `backends` on JAX, in TEST_WORKERS parallel
# pytest processes (pytest-xdist; a test file stays in one process, so its module fixtures run once). `make test-torch`
# installs PyTorch (PyPI's Linux wheel depends on the CUDA libraries, so it is not part of `make test`) and runs them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.14.1
TEST_WORKERS ?= 2
PARALLEL := -n $(TEST_WORKERS) --dist loadfile
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PYTHONUNBUFFERED := 1

.PHONY: install demo test test-torch lint bench docs clean

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
	@echo "== Keras backend: tensorflow (the whole suite) =="
	KERAS_BACKEND=tensorflow $(PY) -m pytest $(PARALLEL) -m "not bench"
	@echo "== Keras backend: jax (tests marked backends) =="
	KERAS_BACKEND=jax $(PY) -m pytest $(PARALLEL) -m "backends and not bench"

test-torch: install
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	@echo "== Keras backend: torch (tests marked backends) =="
	KERAS_BACKEND=torch $(PY) -m pytest $(PARALLEL) -m "backends and not bench"

lint: install
	$(PY) -m ruff check keras_convlstm tests benchmarks docs notebooks

bench: install
	$(PY) -m pytest $(PARALLEL) -m bench
	$(PY) benchmarks/run_all.py

docs: install
	$(PY) docs/render.py

clean:
	rm -rf $(VENV) outputs runs .pytest_cache
