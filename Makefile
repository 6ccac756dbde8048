# Two commands a newcomer needs: `make run` (the main job) and `make test`.
# Each builds or refreshes its own virtual environment first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-all lint throughput throughput-peers clean

# uv resolves the same versions from PyPI as pip and installs them in parallel (14 and 15 s
# in two runs here against pip's 24 s in one, 2 cores, empty caches); where uv cannot be
# installed or fails, pip does the install. Bytecode is compiled as pip would, so that no
# test process recompiles jax from source.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	( $(PY) -m pip install --quiet uv \
	  && $(VENV)/bin/uv pip install --quiet --python $(PY) --compile-bytecode -e '.[dev]' ) \
	|| ( $(PY) -m pip install --quiet --upgrade pip && $(PY) -m pip install --quiet -e '.[dev]' )
	touch $(STAMP)

run: $(STAMP)
	$(PY) experiments/bias_variance.py --config configs/bias_variance.toml

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

test-all: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile --run-slow

lint: $(STAMP)
	$(VENV)/bin/ruff check .

throughput: $(STAMP)
	$(PY) -m benchmarks.throughput --config configs/throughput.toml

# The same benchmark with the peer libraries importable, in a separate environment so the
# test environment stays peer-free (torch from its CPU-only index: no CUDA download; where
# that index is unreachable, a torch 2.13.0 wheel already on the machine). TFP on JAX comes
# with distrax, which depends on tfp-nightly; do not add tensorflow-probability (0.25, its
# last release, does not import with jax 0.10 and overwrites tfp-nightly's files, breaking
# distrax too). A peer that does not import is skipped and the report prints why.
PEERS_VENV := .venv-peers
PEERS_PY   := $(PEERS_VENV)/bin/python
$(PEERS_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_PY) -m pip install --quiet --upgrade pip
	$(PEERS_PY) -m pip install --quiet -e '.[dev]' numpyro distrax
	$(PEERS_PY) -m pip install --quiet torch --index-url https://download.pytorch.org/whl/cpu \
	  || $(PEERS_PY) -m pip install --quiet torch==2.13.0
	touch $@

throughput-peers: $(PEERS_VENV)/.installed
	OPENBLAS_NUM_THREADS=1 $(PEERS_PY) -m benchmarks.throughput --config configs/throughput.toml

clean:
	rm -rf $(VENV) $(PEERS_VENV) .pytest_cache .ruff_cache
