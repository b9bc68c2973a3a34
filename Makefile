# Two commands for a new user: `make up` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install up down status test lint bench clean reset

install: $(STAMP)

# Reinstall only when the dependency list changes; an editable install picks up code edits.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,dev]'
	@touch $(STAMP)

up: install
	$(BIN)/engagement-platform up

down: install
	$(BIN)/engagement-platform down

status: install
	$(BIN)/engagement-platform stack status

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check engagement_platform engagement_platform_tests
	$(BIN)/ruff format --check engagement_platform engagement_platform_tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

# Stops the local stack and deletes its data (Postgres, ClickHouse, Redis, CDC offsets).
reset: install
	$(BIN)/engagement-platform down
	rm -rf .local-stack
