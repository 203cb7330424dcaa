# Development tasks. `make test` does everything from a fresh clone: virtualenv, dependencies,
# extension build, Kafka jars, then the whole test suite (unit + integration, real brokers).
#
#   make setup        .venv with kengine's build, runtime and test dependencies (tools/bootstrap.sh)
#   make build        editable install (first time), then an incremental in-place extension build
#   make jars         resolve the Kafka jars with Maven, once (~/.cache/kengine or $KENGINE_KAFKA_HOME)
#   make registry     build the tests' Schema Registry (Apicurio) with Maven, once (~/.cache/kengine)
#   make test         all of the above, then pytest; PYTEST_ARGS="-k harness -x" narrows it
#                     (it includes the scale matrix's slow lane; CI passes -m "not scale_full")
#   make toxiproxy    build the Toxiproxy server (go install, once, into ~/.cache/kengine) for the
#                     network-fault tests (tests/integration/test_network_faults.py) and the soak
#   make netfaults    the network-fault lane at full length: the six scenarios (500,000 records
#                     each), the 5-minute outage and the 3-minute soak (`make test` runs it too)
#   make netfaults-ci the same tests at CI's sizes (NETFAULTS_CI: 100,000 records per scenario,
#                     a 45 s outage, a 3-minute soak with one toxic and one bounce), every
#                     record still read back and counted; .ci/run runs it as a phase of its own
#   make soak         the 30-minute soak (tools/soak.py): the producer at a fixed rate against three
#                     brokers behind Toxiproxy, a broker bounced every 2 minutes, toxics on and off;
#                     RSS, fds, threads and buffer use sampled, charted and checked for growth;
#                     SOAK_MINUTES, SOAK_RATE and SOAK_OUT change its length, rate and output;
#                     SOAK_ARGS="--log FILE" keeps kengine's DEBUG log
#   make scale        the scale matrix alone (tests/integration/test_scale.py, every cell)
#   make ingest-full  `kengine produce --input` on a 10-million-row Parquet file, peak RSS bounded
#                     and every row read back (make test and CI run it with 2,000,000 rows)
#   make eos-chaos    the exactly-once pipeline proof at full size (tests/integration/
#                     test_eos_pipeline.py: 1,000,000 input records on 120 partitions through two
#                     worker processes under worker and broker kills and a paused worker);
#                     `make test` (and CI) run it with 100,000 records on 60 partitions
#   make jars-matrix  the jars of every Kafka version the compatibility suite runs on
#   make compat       the compatibility suite (tests/compat) on KAFKA_VERSION, or on every
#                     version of the matrix but the default (which `make test` covers);
#                     COMPAT_RESULTS=DIR writes DIR/<version>.json for python -m tests.compat.table
#   make kafka        start a detached local Kafka (KAFKA_BROKERS=3 for three nodes, KAFKA_VERSION=3.9
#                     for another release), print its address; after `make kafka-stop` it comes
#                     back with the same ports and data (KAFKA_FRESH=1: a new, empty one)
#   make kafka-status / kafka-stop
#   make kafka-env    the line that points the README's examples at it:
#                     eval "$(make -s kafka-env)" sets KAFKA_BOOTSTRAP_SERVERS
#   make demo         a local Kafka (left running), a topic, and `kengine perf`: 1,000,000
#                     records of 100 bytes, one send() per record, then send_many() in chunks;
#                     also the topic `events` of the README's first example, and it ends with
#                     the line that sets KAFKA_BOOTSTRAP_SERVERS for the README's examples
#   make wheels       the sdist and one manylinux wheel per supported CPython found (pyenv), in
#                     dist/ (tools/build_wheels.py); WHEEL_PYTHONS="3.12 3.13" narrows it
#   make test-wheels  each wheel installed as a user gets it, in a fresh venv of its own
#                     interpreter, then the unit tests and a real-broker smoke test there
#   make check-portability  the platform-specific C built for Linux/macOS/Windows/AArch64 with
#                     zig cc, run natively and under qemu-aarch64 (tools/check_portability.sh)

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
SOAK_MINUTES ?= 30
SOAK_RATE ?= 20000
SOAK_OUT ?= $(CURDIR)/soak-results
SOAK_ARGS ?=
# the network-fault lane's sizes (tests/integration/test_network_faults.py,
# test_long_outage.py and test_soak.py read them): in full, and in CI
NETFAULTS_FULL ?= KENGINE_NETFAULT_RECORDS=500000 KENGINE_OUTAGE_S=300 KENGINE_SOAK_MINUTES=3 \
	KENGINE_SOAK_BOUNCE_S=120
NETFAULTS_CI ?= KENGINE_NETFAULT_RECORDS=100000 KENGINE_OUTAGE_S=45 KENGINE_SOAK_MINUTES=3 \
	KENGINE_SOAK_BOUNCE_S=60
# the exactly-once pipeline proof's size at full length (make eos-chaos); make test runs the
# test's own default (100,000 records)
EOS_FULL ?= KENGINE_EOS_RECORDS=1000000 KENGINE_EOS_SECONDS=200 KENGINE_EOS_PARTITIONS=120
WHEEL_PYTHONS ?=
DEMO_TOPIC ?= kengine-demo
DEMO_PARTITIONS ?= 3
DEMO_RECORDS ?= 1000000
DEMO_RECORD_SIZE ?= 100

SETUP_STAMP := $(VENV)/.kengine-setup
INSTALL_STAMP := $(VENV)/.kengine-editable

.PHONY: test scale ingest-full eos-chaos setup build jars registry toxiproxy netfaults \
	netfaults-ci soak jars-matrix compat kafka kafka-status kafka-stop kafka-env demo clean wheels test-wheels check-portability

test: build jars registry toxiproxy
	@# pytest exits 5 when it collected no test: a suite that ran nothing has failed
	$(PY) -m pytest tests $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest ran no test" >&2; fi; exit $$rc

scale: build jars
	$(PY) -m pytest tests/integration/test_scale.py $(PYTEST_ARGS)

ingest-full: build jars
	KENGINE_INGEST_ROWS=10000000 $(PY) -m pytest tests/integration/test_cli_input_rss.py -s \
		$(PYTEST_ARGS)

eos-chaos: build jars
	$(EOS_FULL) $(PY) -m pytest tests/integration/test_eos_pipeline.py -s $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make eos-chaos: pytest ran no test" >&2; fi; exit $$rc

setup: $(SETUP_STAMP)

$(SETUP_STAMP): pyproject.toml tools/bootstrap.sh
	PYTHON=$(PYTHON) VENV=$(VENV) tools/bootstrap.sh
	touch $@

# The distribution was called "kengine" before it became kengine-kafka: an old editable install
# of that name would leave a second copy of the `kengine` command and metadata behind.
$(INSTALL_STAMP): $(SETUP_STAMP) setup.py pyproject.toml
	@if $(PY) -m pip show -q kengine >/dev/null 2>&1; then $(PY) -m pip uninstall -q -y kengine; fi
	rm -rf kengine.egg-info
	$(PY) -m pip install -q --no-build-isolation -e '.[test]'
	touch $@

# `pip install -e` (the install stamp) has just compiled the extension in place; compile again
# only when a source changed since (Cython and -O3 take minutes; CI paid for both twice)
EXT_SO = kengine_ext/_core$(shell $(PY) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))' 2>/dev/null)

build: $(INSTALL_STAMP)
	@if [ ! -f "$(EXT_SO)" ] || [ -n "$$(find kengine_ext setup.py -newer '$(EXT_SO)' \( -name '*.pyx' \
		-o -name '*.pxd' -o -name '*.pxi' -o -name '*.h' -o -name 'crc32c.c' -o -name setup.py \) \
		-print -quit)" ]; then \
		echo "$(PY) setup.py -q build_ext --inplace"; $(PY) setup.py -q build_ext --inplace; \
	else echo "make build: $(EXT_SO) is newer than every source"; fi

jars: $(INSTALL_STAMP)
	$(PY) -m kengine.localkafka fetch

registry: $(INSTALL_STAMP)
	$(PY) -m tests.support.schema_registry build

toxiproxy: $(INSTALL_STAMP)
	$(PY) -m kengine.localkafka fetch --toxiproxy

netfaults: build jars toxiproxy
	$(NETFAULTS_FULL) $(PY) -m pytest tests -m netfaults $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make netfaults: pytest ran no test" >&2; fi; exit $$rc

netfaults-ci: build jars toxiproxy
	@# exit 5 (no test collected) fails, as in make test
	$(NETFAULTS_CI) $(PY) -m pytest tests -m netfaults $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make netfaults-ci: pytest ran no test" >&2; fi; exit $$rc

soak: build jars toxiproxy
	$(PY) tools/soak.py --minutes $(SOAK_MINUTES) --rate $(SOAK_RATE) --out $(SOAK_OUT) $(SOAK_ARGS)

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
		--record-size $(DEMO_RECORD_SIZE) --throughput -1 --bootstrap-server $$boot"; \
	$(PY) -m kengine topics create --bootstrap-server $$boot --topic $(DEMO_TOPIC) \
		--partitions $(DEMO_PARTITIONS) --if-not-exists && \
	$(PY) -m kengine topics create --bootstrap-server $$boot --topic events \
		--partitions 3 --if-not-exists && \
	echo "== Kafka at $$boot, topic $(DEMO_TOPIC): $(DEMO_RECORDS) records of $(DEMO_RECORD_SIZE) bytes" && \
	echo "== one send() per record, with a delivery callback each (as Java's perf tool does)" && \
	$$perf && \
	echo "== send_many() in chunks of 1000 records" && \
	$$perf --bulk && \
	echo "== Kafka is still running (make kafka-status); stop it with: make kafka-stop" && \
	echo "== the README's examples find it (and its topic events) through this variable:" && \
	echo "export KAFKA_BOOTSTRAP_SERVERS=$$boot"

# The line that points the README's examples at the local Kafka: eval "$(make -s kafka-env)"
kafka-env: $(INSTALL_STAMP)
	@$(PY) -m kengine local-kafka status --workdir $(KAFKA_WORKDIR) | \
		awk '/^bootstrap/ {print "export KAFKA_BOOTSTRAP_SERVERS=" $$2}'

wheels: $(SETUP_STAMP)
	$(PY) tools/build_wheels.py $(if $(WHEEL_PYTHONS),--python $(WHEEL_PYTHONS))

test-wheels: $(SETUP_STAMP) jars
	$(PY) tools/test_wheels.py $(if $(WHEEL_PYTHONS),--python $(WHEEL_PYTHONS)) $(TEST_WHEELS_ARGS)

check-portability: build
	VENV=$(VENV) tools/check_portability.sh

clean:
	rm -rf build dist kengine_ext/_core.c kengine_ext/*.so kengine_ext/*.html .pytest_cache
