"""kengine perf's pieces: Java's output lines, percentiles, the throughput throttler, payloads
and the --print-metrics table."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from kengine.cli.perf import file_payloads, format_metrics, random_payloads
from kengine.cli.perf_stats import PerfStats
from kengine.cli.throttler import ThroughputThrottler

# kafka-producer-perf-test's lines (Stats.printWindow / Stats.printTotal format strings)
WINDOW = re.compile(r"^\d+ records sent, \d+\.\d records/sec \(\d+\.\d\d MB/sec\), "
                    r"\d+\.\d ms avg latency, \d+\.\d ms max latency\.$")
TOTAL = re.compile(r"^\d+( steady state)? records sent, \d+\.\d{6} records/sec "
                   r"\(\d+\.\d\d MB/sec\), \d+\.\d\d ms avg latency, \d+\.\d\d ms max latency, "
                   r"\d+ ms 50th, \d+ ms 95th, \d+ ms 99th, \d+ ms 99\.9th\.$")


class Clock:
    def __init__(self, now: int = 1_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_window_lines_every_five_seconds_in_javas_format() -> None:
    clock = Clock()
    lines: list[str] = []
    stats = PerfStats(lines.append, clock_ms=clock)
    start = clock.now
    for i in range(100):
        stats.record(10 + i % 5, 100, start + (i + 1) * 50)   # 20 per second, to 5 s
    assert lines == ["100 records sent, 20.0 records/sec (0.00 MB/sec), 12.0 ms avg latency, "
                     "14.0 ms max latency."]
    assert WINDOW.match(lines[0])
    stats.record(30, 100, start + 5100)
    assert len(lines) == 1   # the next window has just begun


def test_total_line_in_javas_format_with_javas_percentile_picks() -> None:
    clock = Clock()
    stats = PerfStats(lambda line: None, clock_ms=clock)
    for latency in range(1, 1001):      # latencies 1..1000 ms, one record each
        stats.record(latency, 1024 * 1024, clock.now)
    clock.now += 2000
    summary = stats.summary()
    # Java: sorted[(int)(q * n)]
    assert (summary["p50_ms"], summary["p95_ms"], summary["p99_ms"], summary["p999_ms"]) == \
        (501, 951, 991, 1000)
    line = PerfStats.total_line(summary)
    assert line == ("1000 records sent, 500.000000 records/sec (500.00 MB/sec), 500.50 ms avg "
                    "latency, 1000.00 ms max latency, 501 ms 50th, 951 ms 95th, 991 ms 99th, "
                    "1000 ms 99.9th.")
    assert TOTAL.match(line)


def test_bulk_records_count_with_weight_and_steady_state_lines() -> None:
    clock = Clock()
    lines: list[str] = []
    steady = PerfStats(lines.append, steady_state=True, clock_ms=clock)
    steady.record(40, 5000, clock.now + 6000, records=50)
    assert lines[0] == "In steady state."
    assert lines[1].startswith("50 records sent, ")
    summary = steady.summary(clock.now + 10_000)
    assert summary["records"] == 50 and summary["avg_latency_ms"] == 40
    assert PerfStats.total_line(summary).startswith("50 steady state records sent, ")


def test_nothing_acknowledged_still_prints_a_total_line() -> None:
    stats = PerfStats(lambda line: None, clock_ms=Clock())
    line = PerfStats.total_line(stats.summary())
    assert line.startswith("0 records sent, 0.000000 records/sec (0.00 MB/sec), NaN ms avg")


class FakeTime:
    def __init__(self) -> None:
        self.ns = 0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.ns += int(seconds * 1e9)

    def clock_ns(self) -> int:
        return self.ns


def test_throttler_sleeps_in_steps_of_at_least_2ms_to_hold_the_rate() -> None:
    t = FakeTime()
    throttler = ThroughputThrottler(1000.0, 0, sleep=t.sleep, clock_ns=t.clock_ns)
    assert not throttler.should_throttle(10, 0)          # no time has passed: never
    assert throttler.should_throttle(10, 5)              # 2000/s > 1000/s
    assert not throttler.should_throttle(5, 5)           # exactly 1000/s
    throttler.throttle()                                 # 1 ms owed: below the 2 ms step
    assert t.slept == []
    throttler.throttle()
    assert t.slept == [pytest.approx(0.002)]
    throttler.throttle(500)                              # a bulk send of 500 records
    assert t.slept[-1] == pytest.approx(0.5)


def test_negative_target_never_throttles_and_zero_is_refused() -> None:
    assert not ThroughputThrottler(-1, 0).should_throttle(10**9, 1)
    with pytest.raises(ValueError, match="-1 for no limit"):
        ThroughputThrottler(0, 0)


def test_random_payloads_are_seeded_upper_case_letters_within_a_memory_bound() -> None:
    payloads = random_payloads(100)
    assert len(payloads) == 1000 and {len(p) for p in payloads} == {100}
    assert set(b"".join(payloads)) <= set(range(65, 91))
    assert len(set(payloads)) == 1000
    assert random_payloads(100) == payloads
    big = random_payloads(4 * 1024 * 1024)
    assert len(big) == 4


def test_payload_file_split_by_a_delimiter_pattern(tmp_path: Path) -> None:
    f = tmp_path / "payloads.txt"
    f.write_bytes(b"one\ntwo\n\nthree\n")
    said: list[str] = []
    assert file_payloads(str(f), "\\n", said.append) == [b"one", b"two", b"three"]
    assert said == [f"Reading payloads from: {f}", "Number of messages read: 3"]
    f.write_bytes(b"a|b||c")
    assert file_payloads(str(f), r"\|+", said.append) == [b"a", b"b", b"c"]


def test_print_metrics_table_in_tools_utils_format() -> None:
    table = format_metrics({
        "client-id": "perf", "record-send-total": 10, "batch-size-avg": 12.5,
        "topics": {"t": {"byte-total": 99}},
        "brokers": {1: {"request-latency-avg": float("nan")}},
        "partitioner": {"hot-keys": 2},
    }).splitlines()
    assert table[0] == ""
    assert table[1].startswith("Metric Name") and table[1].endswith("   Value")
    width = len("producer-node-metrics:request-latency-avg:{client-id=perf, node-id=node-1}")
    assert table[2:] == [
        f"{'partitioner-metrics:hot-keys:{client-id=perf}':<{width}} : 2.000",
        f"{'producer-metrics:batch-size-avg:{client-id=perf}':<{width}} : 12.500",
        f"{'producer-metrics:record-send-total:{client-id=perf}':<{width}} : 10.000",
        f"{'producer-node-metrics:request-latency-avg:{client-id=perf, node-id=node-1}'} : nan",
        f"{'producer-topic-metrics:byte-total:{client-id=perf, topic=t}':<{width}} : 99.000",
    ]
