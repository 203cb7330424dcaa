# Development tasks. `make test` does everything from a fresh clone: virtualenv, dependencies,
# extension build, Kafka jars, then the whole test suite (unit + integration, real brokers).
#
#   make setup        .venv with kengine's build, runtime and test dependencies (tools/bootstrap.sh)
#   make build        editable install (first time), then an incremental in-place extension build
#   make jars         resolve the Kafka jars with Maven, once (~/.cache/kengine or $KENGINE_KAFKA_HOME)
#   make test         all of the above, then pytest; PYTEST_ARGS="-k harness -x" narrows it
#                     (it includes the scale matrix's slow lane; CI passes -m "not scale_full")
#   make scale        the scale matrix alone (tests/integration/test_scale.py, every cell)
#   make jars-matrix  the jars of every Kafka version the compatibility suite runs on
#   make compat       the compatibility suite (tests/compat) on KAFKA_VERSION, or on every
#                     version of the matrix but the default (which `make test` covers);
#                     COMPAT_RESULTS=DIR writes DIR/<version>.json for python -m tests.compat.table
#   make kafka        start a detached local Kafka (KAFKA_BROKERS=3 for three nodes, KAFKA_VERSION=3.9
#                     for another release), print its address; after `make kafka-stop` it comes
#                     back with the same ports and data (KAFKA_FRESH=1: a new, empty one)
#   make kafka-status / kafka-stop
#   make demo         a local Kafka (left running), a topic, and `kengine perf`: 1,000,000
#                     records of 100 bytes, one send() per record, then send_many() in chunks

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KAFKA_WORKDIR ?= $(CURDIR)/.local-kafka
KAFKA_BROKERS ?= 1
KAFKA_VERSION ?=
KAFKA_FRESH ?=
COMPAT_VERSIONS ?= 4.0.2 3.9.1 3.0.2
COMPAT_RESULTS ?=
PYTEST_ARGS ?=
DEMO_TOPIC ?= kengine-demo
DEMO_PARTITIONS ?= 3
DEMO_RECORDS ?= 1000000
DEMO_RECORD_SIZE ?= 100

SETUP_STAMP := $(VENV)/.kengine-setup
INSTALL_STAMP := $(VENV)/.kengine-editable

.PHONY: test scale setup build jars jars-matrix compat kafka kafka-status kafka-stop demo clean

test: build jars
	@# pytest exits 5 when it collected no test: a suite that ran nothing has failed
	$(PY) -m pytest tests $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest ran no test" >&2; fi; exit $$rc

scale: build jars
	$(PY) -m pytest tests/integration/test_scale.py $(PYTEST_ARGS)

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

jars-matrix: $(INSTALL_STAMP)
	$(PY) -m kengine.localkafka fetch --kafka-version matrix

# One pytest run per version (each starts that version's brokers); exit 5 (no test ran) fails.
compat: build
	@for v in $(or $(KAFKA_VERSION),$(COMPAT_VERSIONS)); do \
		echo "== compatibility suite on Kafka $$v"; \
		$(PY) -m pytest tests/compat --kafka-version $$v \
			$(if $(COMPAT_RESULTS),--compat-results $(COMPAT_RESULTS)) $(PYTEST_ARGS); rc=$$?; \
		if [ $$rc -eq 5 ]; then echo "make compat: pytest ran no test" >&2; fi; \
		[ $$rc -eq 0 ] || exit $$rc; \
	done

kafka: build jars
	$(PY) -m kengine.localkafka start --workdir $(KAFKA_WORKDIR) --brokers $(KAFKA_BROKERS) \
		$(if $(KAFKA_VERSION),--kafka-version $(KAFKA_VERSION)) $(if $(KAFKA_FRESH),--fresh)

kafka-status: $(INSTALL_STAMP)
	$(PY) -m kengine.localkafka status --workdir $(KAFKA_WORKDIR)

kafka-stop: $(INSTALL_STAMP)
	$(PY) -m kengine.localkafka stop --workdir $(KAFKA_WORKDIR)

# Reuses a cluster already running in $(KAFKA_WORKDIR); starts one otherwise. Both runs print
# Java's kafka-producer-perf-test summary line (records/sec, MB/sec, latency percentiles).
demo: build jars
	@$(PY) -m kengine local-kafka status --workdir $(KAFKA_WORKDIR) >/dev/null 2>&1 || \
		$(PY) -m kengine local-kafka start --workdir $(KAFKA_WORKDIR) --brokers $(KAFKA_BROKERS) >/dev/null
	@boot=$$($(PY) -m kengine local-kafka status --workdir $(KAFKA_WORKDIR) | awk '/^bootstrap/ {print $$2}'); \
	perf="$(PY) -m kengine perf --topic $(DEMO_TOPIC) --num-records $(DEMO_RECORDS) \
		--record-size $(DEMO_RECORD_SIZE) --throughput -1 --producer-props bootstrap.servers=$$boot"; \
	$(PY) -m kengine topics create --bootstrap-server $$boot --topic $(DEMO_TOPIC) \
		--partitions $(DEMO_PARTITIONS) --if-not-exists && \
	echo "== Kafka at $$boot, topic $(DEMO_TOPIC): $(DEMO_RECORDS) records of $(DEMO_RECORD_SIZE) bytes" && \
	echo "== one send() per record, with a delivery callback each (as Java's perf tool does)" && \
	$$perf && \
	echo "== send_many() in chunks of 1000 records" && \
	$$perf --bulk
	@echo "== Kafka is still running (make kafka-status); stop it with: make kafka-stop"

clean:
	rm -rf build kengine_ext/_core.c kengine_ext/*.so kengine_ext/*.html .pytest_cache
