"""Fixtures for kengine's tests: real Kafka brokers started by the suite, fresh topics, the
``integration`` marker on everything under ``tests/integration/``, and ``fakebroker`` on
everything under ``tests/fakebroker/`` (the producer against tests/support/fake_broker.py, a
Kafka stand-in that misbehaves on purpose: no JVM, so ``-m "not integration"`` runs them with
the unit tests).

* ``kafka``: one broker for the whole session.
* ``kafka_cluster``: three brokers for the whole session; topics replicate 3 ways with
  ``min.insync.replicas=2`` unless told otherwise. Nodes a test kills, stops or pauses are
  brought back after that test. Besides its plain listener (replication, topic creation,
  read-back) it has a proxied client listener, ``CLIENT``.
* ``proxied_cluster``: ``kafka_cluster`` behind a Toxiproxy server started for the session:
  one proxy per broker on its ``CLIENT`` listener, whose metadata advertises the proxies, so a
  client bootstrapped from ``proxied_cluster.bootstrap_servers`` sends every byte through
  them while replication does not. Toxics and disabled proxies are reset after each test.
* ``topic_factory(cluster, partitions=1, replication_factor=None, config=None)``: a fresh topic
  with a unique name per call; ``topic``: a fresh one-partition topic on ``kafka``.
* ``certs``: a CA, broker and client certificates made with openssl for this session
  (tests/support/certs.py).
* ``schema_registry``: a real Confluent-compatible Schema Registry (Apicurio Registry, built with
  Maven once, tests/support/schema_registry.py) for the session; isolate tests by subject
  (topic) names.

Brokers start only when a test asks for them. Without Java or Maven the fixtures *error*: an
integration test never passes by skipping. When a test using a cluster fails, the tail of the
broker logs is attached to its report.
"""
from __future__ import annotations

import itertools
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kengine.localkafka import KafkaCluster, Listener, Proxy, Toxiproxy
from tests.support.certs import Certificates, make_certificates
from tests.support.schema_registry import SchemaRegistryServer

_INTEGRATION_DIR = Path(__file__).parent / "integration"
_FAKE_BROKER_DIR = Path(__file__).parent / "fakebroker"
_CLUSTER_FIXTURES = ("kafka", "kafka_cluster")
_LOG_TAIL_LINES = 60


def pytest_addoption(parser: pytest.Parser) -> None:
    # here, not in tests/compat/conftest.py: options must be known before collection starts
    group = parser.getgroup("kengine compatibility suite (tests/compat)")
    group.addoption("--kafka-version", default=None,
                    help="Kafka version the compatibility suite runs against (default "
                         "$KENGINE_KAFKA_VERSION, else kengine's default)")
    group.addoption("--compat-results", default=None,
                    help="directory for its <version>.json result files (default "
                         "$KENGINE_COMPAT_RESULTS; none: not written)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)
        elif _FAKE_BROKER_DIR in item.path.parents:
            item.add_marker(pytest.mark.fakebroker)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    for name in _CLUSTER_FIXTURES:
        cluster = funcargs.get(name)
        if isinstance(cluster, KafkaCluster):
            report.sections.append((f"{name} broker logs ({cluster.workdir})",
                                    cluster.logs(tail=_LOG_TAIL_LINES)))


#: the proxied client listener of ``kafka_cluster`` (see ``proxied_cluster``)
PROXIED_LISTENER = "CLIENT"


def _session_cluster(tmp_path_factory: pytest.TempPathFactory, name: str, brokers: int,
                     broker_config: Mapping[str, Any] | None = None,
                     listeners: list[Listener] | None = None) -> Iterator[KafkaCluster]:
    workdir = tmp_path_factory.mktemp(name)
    with KafkaCluster(brokers, workdir, broker_config=broker_config,
                      listeners=listeners) as cluster:
        yield cluster
    # keep the logs for a post-mortem, drop the data
    for data in workdir.glob("node-*/data"):
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """One Kafka broker (combined with its controller) for the session."""
    yield from _session_cluster(tmp_path_factory, "kafka", 1)


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Three Kafka nodes for the session: replication factor 3, min.insync.replicas=2."""
    yield from _session_cluster(tmp_path_factory, "kafka_cluster", 3,
                                {"min.insync.replicas": 2},
                                [Listener(), Listener(PROXIED_LISTENER, proxied=True)])


@pytest.fixture(scope="session")
def toxiproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Toxiproxy]:
    """A Toxiproxy server for the session (built once into the cache; killed by pid)."""
    with Toxiproxy(workdir=tmp_path_factory.mktemp("toxiproxy")) as server:
        yield server


@dataclass
class ProxiedCluster:
    """``kafka_cluster`` with a proxy in front of each broker's client listener."""

    cluster: KafkaCluster
    toxiproxy: Toxiproxy
    #: node id -> the proxy every client byte to and from that broker passes
    proxies: dict[int, Proxy]

    @property
    def bootstrap_servers(self) -> str:
        """The proxies: a client bootstrapped here only ever talks through them."""
        return self.cluster.bootstrap_servers_for(PROXIED_LISTENER)

    @property
    def direct_bootstrap_servers(self) -> str:
        """The brokers' plain listener, past the proxies (read-back, admin)."""
        return self.cluster.bootstrap_servers


@pytest.fixture(scope="session")
def _cluster_proxies(kafka_cluster: KafkaCluster, toxiproxy: Toxiproxy) -> dict[int, Proxy]:
    return toxiproxy.front(kafka_cluster, PROXIED_LISTENER)


@pytest.fixture
def proxied_cluster(kafka_cluster: KafkaCluster, toxiproxy: Toxiproxy,
                    _cluster_proxies: dict[int, Proxy]) -> Iterator[ProxiedCluster]:
    """``kafka_cluster`` behind one proxy per broker; every toxic is removed and every proxy
    enabled again after the test."""
    toxiproxy.reset()
    yield ProxiedCluster(kafka_cluster, toxiproxy, _cluster_proxies)
    toxiproxy.reset()


@pytest.fixture(autouse=True)
def _heal_kafka_cluster(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that used a shared cluster, bring back whatever it killed or paused."""
    yield
    for name in _CLUSTER_FIXTURES:
        # absent when the cluster failed to start: that error is reported once, at setup
        cluster = getattr(request.node, "funcargs", {}).get(name)
        if isinstance(cluster, KafkaCluster):
            cluster.heal()


TopicFactory = Callable[..., str]


@pytest.fixture
def topic_factory(request: pytest.FixtureRequest) -> TopicFactory:
    """``topic_factory(cluster, partitions=1, replication_factor=None, config=None)`` creates a
    topic named after the test (unique per call) and returns its name."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:100]
    counter = itertools.count()

    def create(cluster: KafkaCluster, partitions: int = 1, replication_factor: int | None = None,
               config: Mapping[str, Any] | None = None) -> str:
        name = f"{stem}-{next(counter)}-{uuid.uuid4().hex[:8]}"
        return cluster.create_topic(name, partitions, replication_factor, config)

    return create


@pytest.fixture
def topic(kafka: KafkaCluster, topic_factory: TopicFactory) -> str:
    """A fresh one-partition topic on ``kafka``."""
    return topic_factory(kafka)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """TLS certificates made for this session (a CA, a broker, clients, an untrusted CA)."""
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def schema_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaRegistryServer]:
    """A Schema Registry (Confluent's REST API at ``.url``) for the session, empty at start,
    compatibility level BACKWARD (Confluent's default; Apicurio's own is NONE)."""
    with SchemaRegistryServer(tmp_path_factory.mktemp("schema-registry")) as registry:
        registry.set_compatibility("BACKWARD")
        yield registry
