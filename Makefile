# Development tasks. `make test` does everything from a fresh clone: virtualenv, dependencies,
# extension build, Kafka jars, then the whole test suite (unit + integration, real brokers).
#
#   make setup        .venv with kengine's build, runtime and test dependencies (tools/bootstrap.sh)
#   make build        editable install (first time), then an incremental in-place extension build
#   make jars         resolve the Kafka jars with Maven, once (~/.cache/kengine or $KENGINE_KAFKA_HOME)
#   make test         all of the above, then pytest; PYTEST_ARGS="-k harness -x" narrows it
#   make kafka        start a detached local Kafka (KAFKA_BROKERS=3 for three nodes), print its address
#   make kafka-status / kafka-stop

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KAFKA_WORKDIR ?= $(CURDIR)/.local-kafka
KAFKA_BROKERS ?= 1
PYTEST_ARGS ?=

SETUP_STAMP := $(VENV)/.kengine-setup
INSTALL_STAMP := $(VENV)/.kengine-editable

.PHONY: test setup build jars kafka kafka-status kafka-stop clean

test: build jars
	@# pytest exits 5 when it collected no test: a suite that ran nothing has failed
	$(PY) -m pytest tests $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest ran no test" >&2; fi; exit $$rc

setup: $(SETUP_STAMP)

$(SETUP_STAMP): pyproject.toml tools/bootstrap.sh
	PYTHON=$(PYTHON) VENV=$(VENV) tools/bootstrap.sh
	touch $@

$(INSTALL_STAMP): $(SETUP_STAMP) setup.py
	$(PY) -m pip install -q --no-build-isolation -e '.[test]'
	touch $@

build: $(INSTALL_STAMP)
	$(PY) setup.py -q build_ext --inplace

jars: $(INSTALL_STAMP)
	$(PY) -m kengine.localkafka fetch

kafka: build jars
	$(PY) -m kengine.localkafka start --workdir $(KAFKA_WORKDIR) --brokers $(KAFKA_BROKERS)

kafka-status: $(INSTALL_STAMP)
	$(PY) -m kengine.localkafka status --workdir $(KAFKA_WORKDIR)

kafka-stop: $(INSTALL_STAMP)
	$(PY) -m kengine.localkafka stop --workdir $(KAFKA_WORKDIR)

clean:
	rm -rf build kengine_ext/_core.c kengine_ext/*.so kengine_ext/*.html .pytest_cache
