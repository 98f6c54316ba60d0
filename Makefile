# Zhijian: `make demo` sets everything up and runs the nightly job on the demo inbox; `make test` runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= $(CURDIR)/var
DEMO_DATE := 2026-11-20
export ZHIJIAN_DATA_DIR ?= $(DATA)

.PHONY: install demo test lint bench clean

$(BIN)/zhijian: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(BIN)/zhijian

install: $(BIN)/zhijian

demo: install
	$(BIN)/zhijian run --inbox transcripts/inbox --date $(DEMO_DATE)
	$(BIN)/zhijian export --date $(DEMO_DATE) > $(DATA)/results-$(DEMO_DATE).jsonl
	@echo "results: $(DATA)/zhijian.db and $(DATA)/results-$(DEMO_DATE).jsonl"

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check pipeline flows tests bench
	$(BIN)/mypy pipeline flows

bench: install
	$(BIN)/python bench/nightly_vs_bare.py

clean:
	rm -rf $(VENV) $(DATA)
