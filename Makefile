# psops: `make demo` runs the pipeline under the local stack, `make test` runs the tests.
# Both create or refresh .venv from requirements-dev.txt first.

PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed-requirements

.PHONY: venv demo up down status ui ui-stop test test-db lint bench bench-ingest bench-transform bench-scale soak sandbox screenshots warehouse-stop pins clean help

help:
	@echo "make demo   - set up, start the local stack, run the pipeline under the scheduler, print a summary"
	@echo "make test   - set up, then run the test suite (pytest)"
	@echo "make up     - the local stack: api-server, scheduler, dag-processor, triggerer (+ Celery worker"
	@echo "              when PSOPS_CELERY_BROKER is set); URLs and logins printed"
	@echo "make down   - stop every process of the local stack"
	@echo "make status - what of the local stack runs, its URLs and logs"
	@echo "make sandbox - the source-system sandbox in the foreground (ports and AIRFLOW_CONN_* printed)"
	@echo "make lint   - ruff (with the Airflow 3 AIR rules)"
	@echo "make bench  - benchmarks (parse cost of dags/); bench-ingest, bench-transform, bench-scale"
	@echo "make soak   - 50 cycles of source changes -> ingest -> transform -> write-back under faults"
	@echo "              and kills, invariants checked after each (CYCLES=N SEED=S to vary)"
	@echo "make pins   - re-resolve requirements.txt (runtime) and requirements-dev.txt (runtime + dev tools)"
	@echo "make warehouse-stop - stop the embedded PostgreSQL"

venv: $(STAMP)

# .venv gets the full development set: the runtime pins (requirements.txt, the
# image's) plus the test and lint tools, all locked in requirements-dev.txt. Compiled
# to bytecode at install: every Airflow process (each `dags test`, each task) would
# otherwise compile Airflow's modules again where PYTHONDONTWRITEBYTECODE is set.
$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
	  echo "psops: error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
	  echo "psops: error: $(PYTHON) is not Python 3.11; run 'make PYTHON=/path/to/python3.11 ...'" >&2; exit 1; }
	@if [ -e $(VENV) ] && ! { [ -x $(VENV)/bin/uv ] || $(VENV)/bin/python -m pip --version >/dev/null 2>&1; }; then \
	  echo "psops: $(VENV) is incomplete (an interrupted set-up?); recreating it"; rm -rf $(VENV); fi
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "psops: error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu install python3.11-venv" >&2; exit 1; }
	@test -x $(VENV)/bin/uv || $(VENV)/bin/python -m pip install --quiet "$$(grep -E '^uv==' requirements-dev.txt | cut -d' ' -f1)"
	$(VENV)/bin/uv pip sync --quiet --compile-bytecode --python $(VENV)/bin/python requirements-dev.txt
	@touch $(STAMP)

# The pipeline under the scheduler of the local stack (started when it is not up); the
# stack stays up afterwards with the UI.
demo: venv
	bin/demo

up: venv
	bin/stack up

down: venv
	bin/stack down

status: venv
	bin/stack status

# Kept for habit: the UI is the stack's api-server.
ui: up
ui-stop: down

sandbox: venv
	PYTHONPATH=. $(VENV)/bin/python -m sandbox

# Refresh the screenshots in docs/screenshots (the browser test, writing there).
screenshots: venv
	PSOPS_SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(VENV)/bin/pytest -q -m browser

# Three pytest-xdist workers (whole modules each, the slow modules first; see
# tests/conftest.py): on 2 cores the suite waits on Airflow processes and servers as
# much as it computes. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 3
test: venv
	$(VENV)/bin/pytest -q --durations=15 -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

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

# The whole pipeline at 100,000 / 1,000,000 / 3,000,000 time entries (SIZES=a,b,c).
SIZES ?= 100000,1000000,3000000
bench-scale: venv
	$(VENV)/bin/python benchmarks/pipeline_scale.py --sizes $(SIZES)

# Not part of `make test` (tests/test_soak.py runs 3 cycles there).
soak: venv
	$(VENV)/bin/python benchmarks/soak.py --cycles $(or $(CYCLES),50) --seed $(or $(SEED),7)

warehouse-stop: venv
	$(VENV)/bin/python bin/psops_warehouse.py stop

# Runtime first: requirements-dev.in constrains itself to requirements.txt. The
# current pins are uv's preferences (copied to the output), so only what the .in
# files changed moves; `make pins UPGRADE=1` re-resolves everything to the newest.
PINS_COMPILE = $(VENV)/bin/uv pip compile --quiet --python-version 3.11 --no-header \
	  --annotation-style line $(if $(UPGRADE),--upgrade)

pins: venv
	cp requirements.txt requirements.txt.new
	$(PINS_COMPILE) requirements.in -o requirements.txt.new
	( echo "# Runtime only (the image installs this), fully pinned for Python 3.11: regenerate with 'make pins' (see README)."; \
	  cat requirements.txt.new ) > requirements.txt && rm requirements.txt.new
	cp requirements-dev.txt requirements-dev.txt.new
	$(PINS_COMPILE) requirements-dev.in -o requirements-dev.txt.new
	( echo "# Runtime + development tools (make venv syncs this), fully pinned for Python 3.11: regenerate with 'make pins' (see README)."; \
	  cat requirements-dev.txt.new ) > requirements-dev.txt && rm requirements-dev.txt.new

clean: down
	rm -rf .airflow .warehouse
