# psops: `make demo` runs the pipeline, `make test` runs the tests.
# Both create or refresh .venv from requirements.txt first.

PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed-requirements

.PHONY: venv demo ui ui-stop test test-db lint bench bench-ingest bench-transform sandbox screenshots warehouse-stop pins clean help

help:
	@echo "make demo   - set up, then run the psops pipeline end to end and print a summary"
	@echo "make test   - set up, then run the test suite (pytest)"
	@echo "make ui     - the Airflow UI with psops' finance pages, in the foreground (URL and login printed)"
	@echo "make ui-stop - stop the UI that make demo left running in the background"
	@echo "make sandbox - the source-system sandbox in the foreground (ports and AIRFLOW_CONN_* printed)"
	@echo "make lint   - ruff (with the Airflow 3 AIR rules)"
	@echo "make bench  - benchmarks (parse cost of dags/)"
	@echo "make pins   - re-resolve requirements.txt from requirements.in"
	@echo "make warehouse-stop - stop the embedded PostgreSQL"

venv: $(STAMP)

$(STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
	  echo "psops: error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
	  echo "psops: error: $(PYTHON) is not Python 3.11; run 'make PYTHON=/path/to/python3.11 ...'" >&2; exit 1; }
	@if [ -e $(VENV) ] && ! { [ -x $(VENV)/bin/uv ] || $(VENV)/bin/python -m pip --version >/dev/null 2>&1; }; then \
	  echo "psops: $(VENV) is incomplete (an interrupted set-up?); recreating it"; rm -rf $(VENV); fi
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "psops: error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu install python3.11-venv" >&2; exit 1; }
	@test -x $(VENV)/bin/uv || $(VENV)/bin/python -m pip install --quiet "$$(grep -E '^uv==' requirements.txt | cut -d' ' -f1)"
	$(VENV)/bin/uv pip sync --quiet --python $(VENV)/bin/python requirements.txt
	@touch $(STAMP)

# The pipeline, then the UI in the background (PSOPS_DEMO_UI=0 skips the UI).
demo: venv
	bin/demo
	@if [ "$${PSOPS_DEMO_UI:-1}" != "0" ]; then bin/ui --background; fi

ui: venv
	bin/ui

ui-stop: venv
	bin/ui --stop

sandbox: venv
	PYTHONPATH=include $(VENV)/bin/python -m sandbox

# Refresh the screenshots in docs/screenshots (the browser test, writing there).
screenshots: venv
	PSOPS_SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(VENV)/bin/pytest -q -m browser

test: venv
	$(VENV)/bin/pytest -q

# The database tests only (CI runs them again against an external PostgreSQL).
test-db: venv
	$(VENV)/bin/pytest -q -m db

lint: venv
	$(VENV)/bin/ruff check .

bench: venv
	$(VENV)/bin/python benchmarks/parse_dags.py

bench-ingest: venv
	$(VENV)/bin/python benchmarks/ingest_throughput.py

bench-transform: venv
	$(VENV)/bin/python benchmarks/transform_scale.py

warehouse-stop: venv
	PYTHONPATH=plugins $(VENV)/bin/python -m psops.warehouse stop

pins: venv
	$(VENV)/bin/uv pip compile --quiet --python-version 3.11 --no-header \
	  --annotation-style line requirements.in -o requirements.txt.new
	( echo "# Fully pinned for Python 3.11: regenerate with 'make pins' (see README)."; \
	  cat requirements.txt.new ) > requirements.txt && rm requirements.txt.new

clean: ui-stop
	rm -rf .airflow .warehouse
