# The README's two commands: `make demo` (set up, then run the main job on the embedded default) and
# `make test` (set up, then run the suite). `.ci/run` calls `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/altcraft-sync demo

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Static checks (`.ci/run` runs them before `make test`): ruff's rules and line length, mypy on the packages.
lint: setup
	$(BIN)/ruff check altcraft_sync cli connectors engine runner flows transforms sandbox bench tests
	$(BIN)/mypy

# The pipeline against its floor (bench/run.py), then side by side with drt and dlt (bench/compare.py, which
# installs each peer into its own virtualenv under bench/.work/venvs), on PostgreSQL too when SHOP_TEST_PG_URL is set.
BENCH_DIALECTS := $(if $(SHOP_TEST_PG_URL),--dialect sqlite --dialect postgresql,)
bench: setup
	$(BIN)/python bench/run.py $(BENCH_DIALECTS)
	$(BIN)/python bench/compare.py $(BENCH_DIALECTS)

clean:
	rm -rf $(VENV) .altcraft-sync .pytest_cache
