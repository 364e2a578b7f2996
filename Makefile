# The two commands a new user needs: `make demo` and `make test`. Everything else is set up by them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo platform test test-cluster test-unit test-integration lint format settings-doc faults-long bench cluster install clean

$(STAMP): setup.cfg pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint,demo,export,metrics,postgres,openedx,hiredis]'
	touch $(STAMP)

install: $(STAMP)

## Several services exchanging real events on Redis (starts Redis if none answers on 6379).
demo: $(STAMP)
	$(PY) -m demo

## The whole platform locally until Ctrl-C: migrate, release step, then workers, Flower and relays (honcho).
platform: $(STAMP)
	$(PY) -m demo.platform

## The whole suite: unit tests, then delivery tests on real Redis and RabbitMQ with real workers.
test: $(STAMP)
	$(PY) -m pytest tests

## Broker clusters (docs/cluster.md): quorum queues, Sentinel, the queue migration, nodes SIGKILLed mid-run, and
## per-key ordering under faults (docs/ordering.md) (~12 min; CI runs it after `make test`).
test-cluster: $(STAMP)
	$(PY) -m pytest tests -m "(cluster or ordered) and not long"

## Lint, format check and type check (CI runs it before the tests; a finding fails the build).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## Regenerate the table of every EVENT_TASKS_* setting in docs/settings.md from event_tasks/conf.py.
settings-doc: $(STAMP)
	$(PY) -c 'from event_tasks.settings_doc import write_reference; write_reference("docs/settings.md")'

## Apply ruff's fixes and formatting.
format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit

test-integration: $(STAMP)
	$(PY) -m pytest tests/integration

## The fault suite's nightly run (not part of `make test`): 10,000 events, every variant of tests/faults (the single-node ones, Redis Sentinel without the replica wait).
faults-long: $(STAMP)
	EVENT_TASKS_FAULT_EVENTS=10000 $(PY) -m pytest tests/faults tests/integration/test_fuzzed_intake.py -p no:cacheprovider -m "long or not long or cluster or ordered"

## Benchmarks against plain Celery, plain kombu and the Open edX Redis event bus (bench/README.md); not part of `make test`.
bench: $(STAMP)
	$(PY) -c 'import openedx_events, edx_event_bus_redis' 2>/dev/null || $(PY) -m pip install --quiet -e '.[test,demo,export,metrics,postgres,hiredis,bench]'
	$(PY) -m bench

## A local 3-node RabbitMQ cluster (5682-5684) and Redis behind Sentinel until Ctrl-C; prints the CELERY_BROKER_URL lines.
cluster: $(STAMP)
	$(PY) -m tests.clusters $(ARGS)

clean:
	rm -rf var/ build/ *.egg-info
