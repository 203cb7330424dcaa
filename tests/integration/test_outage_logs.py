"""What the log says while a broker is away: one WARNING when it becomes unreachable, one when
it is back, and the records that expire meanwhile summed up per topic instead of a line per
batch. A real broker is stopped and started again; the log lines are counted."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from kengine import Producer
from kengine.errors import DeliveryTimeoutError
from kengine.localkafka import KafkaCluster
from tests.support.readback import read_all

RECORDS = 300       # 100-byte records in batches of at most 1 KiB: about 30 batches


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def warnings(self, pattern: str) -> list[str]:
        return [r.getMessage() for r in self.records
                if r.levelno == logging.WARNING and re.search(pattern, r.getMessage())]


@pytest.fixture
def lines() -> _Lines:
    handler = _Lines()
    logger = logging.getLogger("kengine")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def test_an_outage_is_logged_once_and_expiries_are_summed_up_per_topic(
        tmp_path: Path, lines: _Lines) -> None:
    with KafkaCluster(1, tmp_path / "kafka") as cluster:
        address = cluster.bootstrap_servers
        topic = "outage-logs"
        cluster.create_topic(topic, partitions=3)
        producer = Producer(bootstrap_servers=address, batch_size=1024, linger_ms=0,
                            delivery_timeout_ms=4000, request_timeout_ms=2000,
                            reconnect_backoff_max_ms=200, client_id="outage-test")
        try:
            producer.send(topic, b"before", partition=0).result(timeout=60)
            cluster.stop(1)
            futures = [producer.send(topic, b"x" * 100, partition=i % 3)
                       for i in range(RECORDS)]
            errors = [f.exception(timeout=60) for f in futures]
            assert all(isinstance(e, DeliveryTimeoutError) for e in errors), errors[:3]
            # the error says why: the leader was unreachable, and since when
            assert f"({address}) unreachable for" in str(errors[0]), errors[0]
            assert "failed connection attempt" in str(errors[0])
            down = lines.warnings("is unreachable")
            assert len(down) == 1 and address in down[0], down

            cluster.start(1)
            producer.send(topic, b"after", partition=1).result(timeout=120)
            back = lines.warnings("is reachable again")
            assert len(back) == 1 and address in back[0], back
            assert len(lines.warnings("is unreachable")) == 1
        finally:
            producer.close(timeout=60)
        # the expiries, summed up: fewer lines than batches, and together they count every
        # record (close() writes what was still held back by the rate limit)
        summaries = lines.warnings(f"for topic {topic} .* failed with DeliveryTimeoutError")
        counted = sum(int(re.match(r".*?(\d+) record\(s\) in (\d+) batch", m).group(1))
                      for m in summaries)
        batches = sum(int(re.match(r".*?(\d+) record\(s\) in (\d+) batch", m).group(2))
                      for m in summaries)
        assert counted == RECORDS, summaries
        assert batches >= 10 and len(summaries) <= 2, summaries
        assert not lines.warnings(r"record\(s\) for outage-logs-\d failed")   # per batch
        assert sorted(r.value for r in read_all(address, topic)) == [b"after", b"before"]
