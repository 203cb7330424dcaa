"""Fixtures for kengine's tests: real Kafka brokers started by the suite, fresh topics, and the
``integration`` marker on everything under ``tests/integration/``.

* ``kafka``: one broker for the whole session.
* ``kafka_cluster``: three brokers for the whole session; topics replicate 3 ways with
  ``min.insync.replicas=2`` unless told otherwise. Nodes a test kills, stops or pauses are
  brought back after that test.
* ``topic_factory(cluster, partitions=1, replication_factor=None, config=None)``: a fresh topic
  with a unique name per call; ``topic``: a fresh one-partition topic on ``kafka``.
* ``certs``: a CA, broker and client certificates made with openssl for this session
  (tests/support/certs.py).

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
from pathlib import Path
from typing import Any

import pytest

from kengine.localkafka import KafkaCluster
from tests.support.certs import Certificates, make_certificates

_INTEGRATION_DIR = Path(__file__).parent / "integration"
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


def _session_cluster(tmp_path_factory: pytest.TempPathFactory, name: str, brokers: int,
                     broker_config: Mapping[str, Any] | None = None) -> Iterator[KafkaCluster]:
    workdir = tmp_path_factory.mktemp(name)
    with KafkaCluster(brokers, workdir, broker_config=broker_config) as cluster:
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
                                {"min.insync.replicas": 2})


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
