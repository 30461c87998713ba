# The two commands in README.md are the contract: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export DATA_DIR ?= $(CURDIR)/var
export PORT ?= 8000
export SANDBOX_PORT ?= 8001
export MAIL_PORT ?= 8025
export DEBUG ?= true
export PORTAL_BASE_URL ?= http://127.0.0.1:$(PORT)
export VOLTERAS_API_URL ?= http://127.0.0.1:$(SANDBOX_PORT)
export SANDBOX_BASE_URL ?= $(VOLTERAS_API_URL)
export SANDBOX_CLIENT_ID ?= sandbox-client
export SANDBOX_CLIENT_SECRET ?= sandbox-secret
export VOLTERAS_CLIENT_ID ?= $(SANDBOX_CLIENT_ID)
export VOLTERAS_CLIENT_SECRET ?= $(SANDBOX_CLIENT_SECRET)
export SANDBOX_WEBHOOK_SECRET ?= whsec_c2FuZGJveC13ZWJob29rLXNlY3JldC0xMjM0NQ==
export VOLTERAS_WEBHOOK_SECRET ?= $(SANDBOX_WEBHOOK_SECRET)
export SANDBOX_WEBHOOK_URL ?= $(PORTAL_BASE_URL)/webhooks/volteras/
export SANDBOX_SPEED ?= 1
export EMAIL_HOST ?= 127.0.0.1
export EMAIL_PORT ?= $(MAIL_PORT)
export PYTHONUNBUFFERED := 1

.PHONY: run test venv dev-venv lint bench fuzz chaos clean messages

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed
dev-venv: $(VENV)/.installed-dev

# The owner's languages: locale/*/LC_MESSAGES/django.po compiled to .mo with Babel (pure Python).
messages: venv
	$(PY) -m fleet_portal.translations

run: venv messages
	@mkdir -p $(DATA_DIR)
	$(PY) manage.py migrate --no-input -v 0
	$(PY) -m sandbox migrate --no-input -v 0
	$(PY) manage.py seed_demo
	@echo "Portal:  $(PORTAL_BASE_URL)/   Sandbox: $(VOLTERAS_API_URL)/   (Ctrl-C stops all)"
	$(VENV)/bin/honcho start -f Procfile

lint: dev-venv messages
	@mkdir -p $(DATA_DIR)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	DEBUG=true $(PY) manage.py makemigrations --check --dry-run
	$(PY) -m sandbox makemigrations --check --dry-run

# The two passes run side by side (one core each), their logs printed whole when both end.
test: lint
	@echo "=== pytest on SQLite and on PostgreSQL, side by side ==="
	@env -u DATABASE_URL $(VENV)/bin/pytest > $(DATA_DIR)/test-sqlite.log 2>&1 & lite=$$!; \
	$(PY) tests/pg_cluster.py -- $(VENV)/bin/pytest > $(DATA_DIR)/test-postgres.log 2>&1; pg=$$?; \
	wait $$lite; sqlite=$$?; \
	echo "=== pytest on SQLite ==="; cat $(DATA_DIR)/test-sqlite.log; \
	echo "=== pytest on PostgreSQL ==="; cat $(DATA_DIR)/test-postgres.log; \
	test $$sqlite -eq 0 && test $$pg -eq 0

# Property-based conformance of the sandbox at length: >= 5,000 generated
# requests (the suite runs a few per operation); the figures go to var/fuzz.json.
fuzz: dev-venv
	@mkdir -p $(DATA_DIR)
	SANDBOX_FUZZ_EXAMPLES=250 SANDBOX_FUZZ_REPORT=$(DATA_DIR)/fuzz.json \
		env -u DATABASE_URL $(VENV)/bin/pytest tests/sandbox/test_fuzz.py -q -p no:cacheprovider
	@cat $(DATA_DIR)/fuzz.json

bench: dev-venv
	$(PY) bench/run.py

# Thousands of VINs through several workers, SIGKILLed again and again, while the
# sandbox injects faults; prints the figures and exits 1 on any mismatch.
chaos: dev-venv
	$(PY) tests/chaos.py

clean:
	rm -rf $(VENV) var .pytest_cache
