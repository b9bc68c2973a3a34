# Two commands for a new user: `make up` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Apache Kafka (broker + Connect) and Debezium's Postgres connector, from Maven Central
JVM_DIR  := $(VENV)/jvm
JARS     := $(JVM_DIR)/.installed
POM_DIR  := engagement_platform/local_stack/jvm
POMS     := $(POM_DIR)/kafka/pom.xml $(POM_DIR)/debezium-postgres/pom.xml
MVN_LOG  := $(VENV)/mvn.log
# quiet unless it fails (then its whole log is shown)
MVN_COPY := mvn -B dependency:copy-dependencies
# The peers of `bench enrich` (Faust, Quix Streams): a venv of their own, see below
PEERS       ?= .venv-peers
PEERS_STAMP := $(PEERS)/.installed
PEERS_LOG   := $(PEERS)/pip.log

.PHONY: install up down status test test-cluster lint bench clean reset browser

install: $(STAMP) $(JARS) $(PEERS_STAMP)

# Reinstall only when the dependency list changes; an editable install picks up code edits.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,dev]'
	@touch $(STAMP)

# Re-fetched only when a pom changes. The JVM that runs them is checked here too.
$(JARS): $(POMS) | $(STAMP)
	@command -v mvn >/dev/null 2>&1 || { echo "error: Maven (mvn) is required to fetch Apache Kafka and Debezium from Maven Central; install it (Debian/Ubuntu: apt-get install maven)" >&2; exit 1; }
	@$(BIN)/python -m engagement_platform.local_stack.jvm check
	@rm -rf $(JVM_DIR)
	@echo "fetching Apache Kafka and Debezium jars from Maven Central into $(JVM_DIR)/ ..."
	@{ $(MVN_COPY) -f $(POM_DIR)/kafka/pom.xml -DoutputDirectory=$(abspath $(JVM_DIR))/kafka && \
	   $(MVN_COPY) -f $(POM_DIR)/debezium-postgres/pom.xml \
	     -DoutputDirectory=$(abspath $(JVM_DIR))/connect-plugins/debezium-connector-postgres; \
	 } > $(MVN_LOG) 2>&1 || { cat $(MVN_LOG) >&2; echo "error: fetching the jars failed (log above, and in $(MVN_LOG))" >&2; exit 1; }
	@echo "$$(ls $(JVM_DIR)/kafka | wc -l) Kafka jars, $$(ls $(JVM_DIR)/connect-plugins/debezium-connector-postgres | wc -l) Debezium plugin jars"
	@touch $@

# quixstreams pins confluent-kafka below the platform's, so the peers get a venv of their own:
# this project without its dependencies (they use its pure modules), then its `peers` extra.
# Reinstalled when the dependency list changes; quiet unless it fails (then its log is shown).
$(PEERS_STAMP): pyproject.toml
	@test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	@$(PYTHON) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["peers"]))' > $(PEERS)/requirements.txt
	@{ $(PEERS)/bin/python -m pip install --quiet --upgrade pip && \
	   $(PEERS)/bin/python -m pip install --quiet --no-deps -e . && \
	   $(PEERS)/bin/python -m pip install --quiet -r $(PEERS)/requirements.txt; \
	 } > $(PEERS_LOG) 2>&1 || { cat $(PEERS_LOG) >&2; echo "error: installing the bench enrich peers (faust-streaming, quixstreams) into $(PEERS)/ failed (log above, and in $(PEERS_LOG))" >&2; exit 1; }
	@touch $@

up: install
	$(BIN)/engagement-platform up

down: install
	$(BIN)/engagement-platform down

status: install
	$(BIN)/engagement-platform stack status

test: install lint browser
	$(BIN)/python -m pytest

# The fault tests on a three-broker Kafka cluster (pytest's `cluster` marker), left out of
# `make test` by pyproject's addopts: a module of their own, run after it by CI
test-cluster: install
	$(BIN)/python -m pytest -m cluster

# The dashboard's browser test drives Debian's Chromium (Playwright downloads no browser here):
# installed when missing and running as root, otherwise the test says what is missing.
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the dashboard's browser test ..."; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null \
	      || { echo "error: apt-get install chromium failed" >&2; exit 1; }; \
	  else echo "note: /usr/bin/chromium is missing (apt-get install chromium); the browser test will fail"; fi; }

lint: install
	$(BIN)/ruff check engagement_platform engagement_platform_tests
	$(BIN)/ruff format --check engagement_platform engagement_platform_tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(PEERS) .pytest_cache .ruff_cache .mypy_cache *.egg-info

# Stops the local stack and deletes its data (Postgres, ClickHouse, Redis, CDC offsets).
reset: install
	$(BIN)/engagement-platform down
	rm -rf .local-stack
