"""The README's compatibility table is the one the committed compatibility results give, and the
launcher's per-version Maven set-up is what each Kafka line needs."""
from __future__ import annotations

from pathlib import Path

import pytest

from kengine.localkafka import distribution
from tests.compat import table

ROOT = Path(__file__).resolve().parents[2]


def test_readme_table_matches_the_committed_results() -> None:
    assert table.main(["--check", str(ROOT / "README.md")]) == 0


def test_the_committed_results_cover_every_version_and_feature() -> None:
    results = table.load(table.RESULTS)
    assert set(results) == set(distribution.MATRIX)
    for version, data in results.items():
        assert set(data["features"]) == set(table.FEATURES), version


def test_a_failed_feature_shows_in_the_table(tmp_path: Path) -> None:
    results = table.load(table.RESULTS)
    results["3.0.2"]["features"]["send_offsets_to_transaction"]["outcome"] = "failed"
    rendered = table.render(results)
    line = next(x for x in rendered.splitlines() if x.startswith("| send_offsets"))
    assert line.endswith("✗ fails |")


@pytest.mark.parametrize(("asked", "version", "mode"), [
    (None, distribution.KAFKA_VERSION, "kraft"), ("3.9", "3.9.1", "kraft"),
    ("4.0", "4.0.2", "kraft"), ("3.0", "3.0.2", "zookeeper"), ("3.3.2", "3.3.2", "kraft"),
    ("2.8.2", "2.8.2", "zookeeper")])
def test_versions_and_their_metadata_mode(asked, version, mode) -> None:
    assert distribution.resolve_version(asked) == version
    assert distribution.metadata_mode(version) == mode


def test_a_bad_version_says_what_is_expected() -> None:
    with pytest.raises(ValueError, match="expected X.Y.Z"):
        distribution.resolve_version("latest")


def test_each_version_gets_its_own_pom_and_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("KENGINE_KAFKA_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert distribution.default_home("3.9") == tmp_path / "kengine" / "kafka-3.9.1"
    old, new = distribution.render_pom("3.0.2"), distribution.render_pom()
    assert "<kafka.version>3.0.2</kafka.version>" in old
    # Kafka 3.x: log4j 1 calls go to log4j2 through the bridge; its own binding is excluded
    assert "log4j-1.2-api" in old and "slf4j-log4j12" in old
    assert "log4j-1.2-api" not in new
    assert distribution._pom_digest("3.0.2") != distribution._pom_digest()
