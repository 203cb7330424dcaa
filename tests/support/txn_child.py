"""A transactional producer in a child process, driven over stdin/stdout by the exactly-once
tests (zombie fencing, crash recovery).

    python -m tests.support.txn_child BOOTSTRAP TOPIC TRANSACTIONAL_ID COUNT

Initialises, begins a transaction, sends COUNT records ``zombie-<i>``, flushes, prints READY and
waits for a line on stdin; then commits and prints COMMITTED, or FENCED <message> when the
commit raises ProducerFencedError, or ERROR <type> <message>.
"""
from __future__ import annotations

import sys

from kengine import Producer
from kengine.errors import ProducerFencedError


def main() -> int:
    bootstrap, topic, txn_id, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    p = Producer(bootstrap_servers=bootstrap, transactional_id=txn_id, max_block_ms=60_000,
                 request_timeout_ms=10_000)
    p.init_transactions()
    p.begin_transaction()
    for i in range(count):
        p.send(topic, b"zombie-%d" % i, key=b"%d" % i)
    p.flush(60)
    print("READY", flush=True)
    sys.stdin.readline()
    try:
        p.commit_transaction()
        print("COMMITTED", flush=True)
    except ProducerFencedError as e:
        print(f"FENCED {e}", flush=True)
    except Exception as e:  # reported to the test, which asserts on it
        print(f"ERROR {type(e).__name__} {e}", flush=True)
    try:
        p.close(10)
    except Exception:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
