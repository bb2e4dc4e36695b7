# loralab: `make demo` runs the default run, `make test` runs the checks and test suite.
# Both create .venv when missing and install into it; a stamp keeps repeat runs instant.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.loralab-installed
# torch: where nvidia-smi answers (or GPU=1), PyPI's CUDA build and bitsandbytes (model.
# quantization=nf4); elsewhere (or GPU=) the CPU build. TORCH_INDEX=<url> adds a wheel index,
# e.g. https://download.pytorch.org/whl/cpu for the CPU wheel where pip has none at hand.
GPU ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
CONSTRAINTS := constraints/$(if $(GPU),gpu,cpu).txt
comma := ,
EXTRAS := $(if $(GPU),dev$(comma)nf4,dev)
TORCH_INDEX ?=

.PHONY: setup demo test lint format bench clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) -e '.[$(EXTRAS)]'
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/loralab-train $(ARGS)

# two worker processes (the suite's runs are single-threaded), a test file's tests on one
test: setup lint
	$(PY) -m pytest -q -n 2 --dist loadfile $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	$(PY) -m benchmarks.train_step $(ARGS)

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
