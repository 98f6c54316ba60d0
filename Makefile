# Zhijian: `make demo` sets everything up and runs the nightly job on the demo inbox; `make test` runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DATE := 2026-11-20
# The demo uses the same data directory as hand-typed `zhijian` commands (ZHIJIAN_DATA_DIR if set, else
# ~/.local/share/zhijian), so `zhijian export --date 2026-11-20` right after it finds the demo's night.
DATA = $(shell $(BIN)/zhijian db info --data-dir)

.PHONY: install demo web test lint bench clean

$(BIN)/zhijian: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(BIN)/zhijian

install: $(BIN)/zhijian

demo: install
	$(BIN)/zhijian run --inbox transcripts/inbox --date $(DEMO_DATE)
	$(BIN)/zhijian export --date $(DEMO_DATE) > "$(DATA)/results-$(DEMO_DATE).jsonl"
	@echo "results: $(DATA)/zhijian.db and $(DATA)/results-$(DEMO_DATE).jsonl"

# The review workbench on the demo store (`make demo` first, if it has not run): one demo account per role,
# all with the password below. The demo's recordings are from $(DEMO_DATE), so appeals are kept open for it.
DEMO_PASSWORD ?= zhijian-demo
WEB_PORT ?= 8000
web: install
	@test -f "$(DATA)/zhijian.db" || $(MAKE) demo
	@for role in admin supervisor reviewer trainer agent; do \
	  echo "$(DEMO_PASSWORD)" | $(BIN)/zhijian users add $$role --role $$role --password-stdin \
	    $$( [ $$role = agent ] && echo --agent-id A102 ) >/dev/null || exit 1; done
	@echo "质检工作台: open http://127.0.0.1:$(WEB_PORT)/ and sign in as admin, supervisor, reviewer, trainer or"
	@echo "agent (座席 A102), password $(DEMO_PASSWORD). Ctrl-C stops it."
	ZHIJIAN_REVIEW__APPEAL_WINDOW_DAYS=36500 $(BIN)/zhijian web --inbox transcripts/inbox --port $(WEB_PORT)

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check pipeline flows tests bench
	$(BIN)/mypy pipeline flows

bench: install
	$(BIN)/python bench/nightly_vs_bare.py

clean:
	rm -rf $(VENV) var
