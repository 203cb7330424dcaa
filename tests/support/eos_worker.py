"""One worker of the exactly-once pipeline proof (tests/integration/test_eos_pipeline.py): a
confluent-kafka consumer in the group, a transactional kengine producer, kengine.eos's loop.

    python -m tests.support.eos_worker BOOTSTRAP INPUT OUTPUT GROUP TRANSACTIONAL_ID \
        MAX_RECORDS RATE

Each input record ``<key>:<seq>`` becomes one output record with the same key and the value
``<key>:<seq>``: the test finds every input's output by value. RATE paces the worker (records
per second, 0: as fast as it goes), so that the faults land while there is work left.

What it prints (one line each, flushed; the test reads them):
  COMMITTED <records>     after its first committed transaction
  ABORTED <error type> <message>   an abortable error: the transaction was aborted, rewound
  PAUSED <member id>      on "pause" from stdin: mid-transaction, after its outputs reached
                          the brokers (flushed), it stops itself with SIGSTOP; the test sends
                          SIGCONT once the group coordinator has removed that member
  FENCED <error type> <message>    a fatal error: the worker exits with status 3
  DONE <json stats>       after SIGTERM: the loop ended after the round in progress
"""
from __future__ import annotations

import faulthandler
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from confluent_kafka import Consumer

from kengine import Producer
from kengine.eos import FATAL_ERRORS, ExactlyOncePipeline, consumer_settings

#: the group's session timeout: a paused worker is out of the group after it
SESSION_TIMEOUT_MS = 6_000


def main() -> int:
    # the test asks for every thread's stack (SIGUSR1, to stderr) when the worker does not say
    # what it waits for in time
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    bootstrap, source, sink, group, txn_id = sys.argv[1:6]
    # kengine's and the pipeline's log lines (aborts, rewinds, coordinator moves) on stderr,
    # which the test shows when it fails
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s {txn_id} pid {os.getpid()} %(name)s %(message)s")
    # every coordinator request and answer (epochs, versions, errors)
    logging.getLogger("kengine.transactions").setLevel(logging.DEBUG)
    max_records, rate = int(sys.argv[6]), float(sys.argv[7])
    pause_requested = threading.Event()

    def read_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "pause":
                pause_requested.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    consumer = Consumer(consumer_settings(bootstrap, group, {
        "session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": 1_000,
        "max.poll.interval.ms": 60_000, "log_level": 3}))
    producer = Producer(bootstrap_servers=bootstrap, transactional_id=txn_id,
                        transaction_timeout_ms=60_000, max_block_ms=60_000,
                        request_timeout_ms=10_000, linger_ms=5)
    started = time.monotonic()
    sent = 0

    def transform(messages: list[Any], p: Producer) -> None:
        nonlocal sent
        for m in messages:
            p.send(sink, m.value(), key=m.key())
        sent += len(messages)
        if pause_requested.is_set():
            pause_requested.clear()
            p.flush(60)     # the outputs are in the log: only the transaction can hide them
            # the member id the group knows it by: the test waits until the group has
            # removed it before it resumes the worker
            print(f"PAUSED {consumer.memberid()}", flush=True)
            os.kill(os.getpid(), signal.SIGSTOP)
        if rate > 0:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)

    def on_abort(exc: Exception) -> None:
        print(f"ABORTED {type(exc).__name__} {exc}".replace("\n", " "), flush=True)

    pipeline = ExactlyOncePipeline(consumer, producer, [source], transform,
                                   max_records=max_records, on_abort=on_abort)
    signal.signal(signal.SIGTERM, lambda *_: pipeline.stop())
    reported = threading.Event()

    def report_first_commit() -> None:
        while not reported.is_set():
            if pipeline.stats.transactions:
                print(f"COMMITTED {pipeline.stats.records}", flush=True)
                return
            time.sleep(0.05)

    threading.Thread(target=report_first_commit, daemon=True).start()
    try:
        with producer:
            stats = pipeline.run()
    except FATAL_ERRORS as exc:
        reported.set()
        print(f"FENCED {type(exc).__name__} {exc}".replace("\n", " "), flush=True)
        return 3
    reported.set()
    print("DONE " + json.dumps(stats.__dict__), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
