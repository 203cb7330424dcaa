"""The broker compatibility suite: the same tests on every Kafka version of the matrix.

One run covers one version: ``pytest tests/compat --kafka-version 3.9`` (or
``KENGINE_KAFKA_VERSION=3.9``; default: kengine's default version, 4.4). The versions tested are
``kengine.localkafka.MATRIX``; ``.ci/run`` runs the suite once per version.

Fixtures (session-scoped, for the version of the run):

* ``kafka_version``: the full version string, e.g. "3.9.1";
* ``compat_kafka``: one broker with a PLAINTEXT and a SASL_PLAINTEXT listener (SCRAM users
  ``alice``);
* ``compat_cluster``: three brokers, replication factor 3, ``min.insync.replicas=2``.

Each test names the row of the README's compatibility table it backs with
``@pytest.mark.compat_feature("...")``, and may record findings (negotiated versions) with the
``compat_record`` fixture. With ``--compat-results DIR`` (or ``$KENGINE_COMPAT_RESULTS``) the
run writes ``DIR/<version>.json``: every feature's outcome and the findings.
``python -m tests.compat.table`` turns those files into the README table.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kengine.localkafka import KAFKA_VERSION, KafkaCluster, SecureBrokers
from kengine.localkafka.distribution import resolve_version

SCRAM_USERS = {"alice": "alice-secret"}
_RESULTS_KEY = pytest.StashKey[dict[str, Any]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "compat: the broker compatibility suite (tests/compat)")
    config.addinivalue_line("markers", "compat_feature(name): the README compatibility-table "
                                       "row this test backs")
    config.stash[_RESULTS_KEY] = {"features": {}, "findings": {}}


def _version(config: pytest.Config) -> str:
    return resolve_version(config.getoption("--kafka-version")
                           or os.environ.get("KENGINE_KAFKA_VERSION") or None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.compat)
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("compat_feature")
    if marker is None:
        return
    # a feature passes only if every test backing it passed in every phase
    if report.when == "call" or report.failed or report.skipped:
        state = "passed" if report.passed else "skipped" if report.skipped else "failed"
        features = item.config.stash[_RESULTS_KEY]["features"]
        entry = features.setdefault(marker.args[0], {"outcome": "passed", "tests": {}})
        previous = entry["tests"].get(item.nodeid)
        if previous != "failed":
            entry["tests"][item.nodeid] = state
        if state != "passed":
            entry["outcome"] = "failed"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = session.config.getoption("--compat-results") or \
        os.environ.get("KENGINE_COMPAT_RESULTS")
    results = session.config.stash[_RESULTS_KEY]
    if not target or not results["features"]:
        return
    version = _version(session.config)
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{version}.json").write_text(json.dumps(
        {"kafka_version": version, **results}, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="session")
def kafka_version(request: pytest.FixtureRequest) -> str:
    return _version(request.config)


@pytest.fixture
def compat_record(request: pytest.FixtureRequest) -> Any:
    """``compat_record(name, value)``: a finding for the results file (negotiated versions)."""
    findings = request.config.stash[_RESULTS_KEY]["findings"]

    def record(name: str, value: Any) -> None:
        findings[name] = value

    return record


@pytest.fixture(scope="session")
def compat_kafka(tmp_path_factory: pytest.TempPathFactory,
                 kafka_version: str) -> Iterator[KafkaCluster]:
    """One broker of the run's version: PLAINTEXT, and SASL_PLAINTEXT with SCRAM users."""
    secure = SecureBrokers(scram_users=SCRAM_USERS, authorizer=False)
    with KafkaCluster(1, tmp_path_factory.mktemp("compat-kafka"), kafka_version=kafka_version,
                      **secure.cluster_args()) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def compat_cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                   kafka_version: str) -> Iterator[KafkaCluster]:
    """Three brokers of the run's version: replication factor 3, min.insync.replicas=2. On the
    default version that is the whole suite's ``kafka_cluster``: a second three-broker
    cluster beside it would only load the machine."""
    if kafka_version == KAFKA_VERSION:
        yield request.getfixturevalue("kafka_cluster")
        return
    with KafkaCluster(3, tmp_path_factory.mktemp("compat-cluster"), kafka_version=kafka_version,
                      broker_config={"min.insync.replicas": 2}) as cluster:
        yield cluster


@pytest.fixture(autouse=True)
def _heal_compat_cluster(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that killed a broker of ``compat_cluster``, bring it back."""
    yield
    cluster = getattr(request.node, "funcargs", {}).get("compat_cluster")
    if isinstance(cluster, KafkaCluster):
        cluster.heal()
