# Everything a fresh machine needs is installed by the targets themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
REDIS  := runner/redis:bookworm

.PHONY: demo test lint images engine bench fuzz chaos clean venv

demo: venv images
	$(BIN)/runner run examples/redis.yml --image redis=$(REDIS)

test: venv images
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check runner tests bench examples
	$(BIN)/mypy

chaos: venv images
	$(BIN)/python -m tests.chaos --kills 100 --signals 20

fuzz: venv
	FUZZ_EXAMPLES=10000 $(BIN)/pytest -q tests/fuzz

bench: venv images
	$(BIN)/python bench/bench.py

images: engine venv
	bash scripts/images.sh

engine:
	bash scripts/engine.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	-[ -x $(BIN)/runner ] && $(BIN)/runner cleanup
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
