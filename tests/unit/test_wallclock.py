"""Record timestamps come from the core's wall clock (TSC-extrapolated where the kernel keeps
time with the TSC): it must agree with the system clock to the millisecond."""
from __future__ import annotations

import time

import kengine_ext as k


def test_wall_clock_agrees_with_the_system_clock():
    for _ in range(300):   # spans many ~10 ms re-anchorings
        before = time.time_ns() // 1_000_000
        now = k.wall_clock_ms()
        after = time.time_ns() // 1_000_000
        assert before - 1 <= now <= after + 1
        time.sleep(0.001)


def test_records_get_the_clock_time():
    b = k.RecordBatchBuilder(16384)
    before = time.time_ns() // 1_000_000
    b.append(b"k", b"v")
    after = time.time_ns() // 1_000_000
    (batch,) = k.decode_batches(b.build())
    assert before - 1 <= batch.records[0].timestamp <= after + 1
