"""kengine.dask.to_kafka() on a real distributed.LocalCluster (two worker processes, one
thread each) against the three-broker Kafka: exactly once per row under a worker SIGKILLed in
the middle of a partition, a worker SIGKILLed after its partition committed but before Dask
heard of it, a task raising on its first attempt, and a partition leader killed during the
job; at least once (nothing lost) with a worker killed. Every row is read back by
confluent-kafka with read_committed: each exactly once (or at least once), and the rows of one
key from one Dask partition in their order. A zombie attempt (paused, transaction open) is fenced
by the next attempt of its partition.

Sizes are CI's: 24 Dask partitions of 1,500 rows into a 120-partition topic, 500 rows per
send call so that a kill lands between chunks of a partition."""
from __future__ import annotations

import time

import dask.bag as db
import dask.dataframe as dd
import pytest
from distributed import Client, LocalCluster

from kengine.dask import IngestResult, to_kafka
from kengine.errors import IngestError
from tests.support.dask_data import bag_partition, check_read_back, frame_partition
from tests.support.dask_faults import FirstAttemptFault, SentSignal
from tests.support.readback import read_all

PARTITIONS = 24          # Dask partitions
ROWS = 1_500             # rows per Dask partition
CHUNK = 500              # rows per send call: three chunks per partition
TOPIC_PARTITIONS = 120


@pytest.fixture(scope="module")
def dask_client():
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                      dashboard_address=None, memory_limit="1GiB") as cluster, \
            Client(cluster) as client:
        yield client


@pytest.fixture
def big_topic(kafka_cluster, topic_factory):
    name = topic_factory(kafka_cluster, partitions=TOPIC_PARTITIONS)
    yield name
    kafka_cluster.delete_topic(name)   # a broker holds files per partition: give them back


def _frame(partitions: int = PARTITIONS, rows: int = ROWS) -> dd.DataFrame:
    return dd.from_map(frame_partition, range(partitions), rows=rows)


def _config(cluster) -> dict:
    return {"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 5}


def _read(cluster, topic: str, expect: int) -> list:
    return read_all(cluster.bootstrap_servers, topic, read_committed=True, timeout=120,
                    at_least=expect)


def _check_result(result: IngestResult, partitions: int = PARTITIONS, rows: int = ROWS) -> None:
    assert result.ok, result.describe_failures()
    assert [p.partition for p in result.partitions] == list(range(partitions))
    assert [p.rows for p in result.partitions] == [rows] * partitions
    assert result.written == partitions * rows


def test_worker_killed_mid_partition(dask_client, kafka_cluster, big_topic, tmp_path):
    """SIGKILL in the middle of partition 5 (1,000 of its 1,500 rows sent in its open
    transaction): Dask runs it again on a new worker, which fences the dead one's transaction."""
    fault = FirstAttemptFault(str(tmp_path), partition=5, stage="sent", action="kill",
                              rows=2 * CHUNK)
    result = to_kafka(_frame(), big_topic, key="key", value="value", chunk_rows=CHUNK,
                      producer_config=_config(kafka_cluster), on_progress=fault)
    assert (tmp_path / "fault-5-sent").exists(), "the worker was never killed"
    _check_result(result)
    check_read_back(_read(kafka_cluster, big_topic, PARTITIONS * ROWS), PARTITIONS, ROWS)


def test_worker_killed_after_commit(dask_client, kafka_cluster, big_topic, tmp_path):
    """The retry-after-commit hole: partition 7's transaction commits, then its worker is
    SIGKILLed before the task returns. Dask runs the task again; the retry finds the
    partition's done-marker (committed in the same transaction) and sends nothing."""
    fault = FirstAttemptFault(str(tmp_path), partition=7, stage="committed", action="kill")
    result = to_kafka(_frame(), big_topic, key="key", value="value", chunk_rows=CHUNK,
                      producer_config=_config(kafka_cluster), on_progress=fault)
    assert (tmp_path / "fault-7-committed").exists(), "the worker was never killed"
    _check_result(result)
    seventh = result.partitions[7]
    # (other partitions may say so too: Dask also runs again the tasks that had finished on
    # the dead worker, whose results died with it; each finds its marker)
    assert seventh.already_committed and seventh.written == ROWS
    check_read_back(_read(kafka_cluster, big_topic, PARTITIONS * ROWS), PARTITIONS, ROWS)


def test_task_raising_on_first_attempt(dask_client, kafka_cluster, big_topic, tmp_path):
    """Partition 3's task raises after its first chunk, its transaction open: Dask's retry
    writes the partition once; the first attempt's rows are aborted, never read."""
    fault = FirstAttemptFault(str(tmp_path), partition=3, stage="sent", action="raise",
                              rows=CHUNK)
    result = to_kafka(_frame(), big_topic, key="key", value="value", chunk_rows=CHUNK,
                      producer_config=_config(kafka_cluster), on_progress=fault, retries=2)
    assert (tmp_path / "fault-3-sent").exists(), "the task never raised"
    _check_result(result)
    check_read_back(_read(kafka_cluster, big_topic, PARTITIONS * ROWS), PARTITIONS, ROWS)


def test_partition_leader_killed_during_the_job(dask_client, kafka_cluster, big_topic,
                                                tmp_path):
    """The leader of the topic's partition 0 is SIGKILLed once the job is writing; the
    producers move to the new leaders (and transaction coordinators) and the job completes."""
    job = to_kafka(_frame(), big_topic, key="key", value="value", chunk_rows=CHUNK,
                   producer_config=_config(kafka_cluster), on_progress=SentSignal(str(tmp_path)),
                   compute=False)
    future = dask_client.compute(job, retries=3)
    deadline = time.monotonic() + 120
    while not any(tmp_path.glob("sent-*")):
        assert time.monotonic() < deadline, "the job never started sending"
        assert not future.done(), f"the job ended before a row was sent: {future.result()}"
        time.sleep(0.05)
    victim = kafka_cluster.leader_of(big_topic, 0)
    kafka_cluster.kill(victim)
    killed_during = not future.done()
    try:
        result = future.result(timeout=300)
    finally:
        kafka_cluster.start(victim)
        kafka_cluster.wait_in_sync(big_topic, timeout=120)
    assert killed_during, "the job finished before the broker was killed"
    _check_result(result)
    check_read_back(_read(kafka_cluster, big_topic, PARTITIONS * ROWS), PARTITIONS, ROWS)


def test_at_least_once_loses_nothing_when_a_worker_dies(dask_client, kafka_cluster, big_topic,
                                                       tmp_path):
    """Without transactions a retried partition is written again: every row at least once.
    (Not only partition 2's rows may come twice: Dask also runs again the tasks that had
    finished on the dead worker, since their results died with it.)"""
    fault = FirstAttemptFault(str(tmp_path), partition=2, stage="sent", action="kill",
                              rows=2 * CHUNK)
    result = to_kafka(_frame(), big_topic, key="key", value="value", chunk_rows=CHUNK,
                      producer_config=_config(kafka_cluster), on_progress=fault,
                      exactly_once=False)
    assert (tmp_path / "fault-2-sent").exists(), "the worker was never killed"
    _check_result(result)
    check_read_back(read_all(kafka_cluster.bootstrap_servers, big_topic,
                             at_least=PARTITIONS * ROWS, timeout=120),
                    PARTITIONS, ROWS, exactly_once=False)


def test_bag_of_key_value_pairs(dask_client, kafka_cluster, big_topic):
    bag = db.from_sequence(range(6), npartitions=6).map_partitions(
        lambda ps: [item for p in ps for item in bag_partition(p, 400)])
    result = to_kafka(bag, big_topic, producer_config=_config(kafka_cluster), chunk_rows=150)
    _check_result(result, 6, 400)
    records = _read(kafka_cluster, big_topic, 6 * 400)
    check_read_back(records, 6, 400)
    # a (key, value) item is keyed: each key in one Kafka partition
    partitions_of_key: dict[bytes, set[int]] = {}
    for r in records:
        partitions_of_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(ps) == 1 for ps in partitions_of_key.values())


def test_a_row_that_cannot_be_sent_names_its_partition_and_row(dask_client, kafka_cluster,
                                                               topic_factory, tmp_path):
    """Row 1,234 of partition 2 is larger than max.request.size: that partition's transaction
    aborts (none of its rows appear), the others commit, and the error says which row."""
    topic = topic_factory(kafka_cluster, partitions=6)

    def rows(p: int):
        df = frame_partition(p, 2_000)
        if p == 2:
            df.loc[1234, "value"] = b"2:1234:" + b"y" * 300_000
        return df

    with pytest.raises(IngestError) as caught:
        to_kafka(dd.from_map(rows, range(4)), topic, key="key", value="value",
                 producer_config={**_config(kafka_cluster), "max.request.size": 200_000})
    result = caught.value.result
    assert "partition 2" in str(caught.value) and "row 1234" in str(caught.value)
    bad = result.partitions[2]
    assert bad.written == 0 and bad.failed == ((0, 2_000),)
    assert bad.row_errors[0].startswith("row 1234: RecordTooLargeError")
    assert [p.written for p in result.partitions] == [2_000, 2_000, 0, 2_000]
    read = _read(kafka_cluster, topic, 3 * 2_000)
    assert sorted({int(r.value.split(b":")[0]) for r in read}) == [0, 1, 3]
    assert len(read) == 3 * 2_000


def test_the_same_job_id_again_skips_committed_partitions(dask_client, kafka_cluster,
                                                           big_topic):
    """A job run again under its job_id (its driver died) writes nothing twice."""
    config = _config(kafka_cluster)
    first = to_kafka(_frame(6, 300), big_topic, key="key", value="value", job_id="rerun-1",
                     producer_config=config)
    again = to_kafka(_frame(6, 300), big_topic, key="key", value="value", job_id="rerun-1",
                     producer_config=config)
    _check_result(first, 6, 300)
    _check_result(again, 6, 300)
    assert not any(p.already_committed for p in first.partitions)
    assert all(p.already_committed for p in again.partitions)
    check_read_back(_read(kafka_cluster, big_topic, 6 * 300), 6, 300)


def test_local_scheduler_without_a_cluster(kafka_cluster, big_topic):
    """No distributed client: Dask's threaded scheduler runs the tasks in this process."""
    import dask

    with dask.config.set(scheduler="threads"):
        result = to_kafka(_frame(4, 500), big_topic, key="key", value="value",
                          producer_config=_config(kafka_cluster))
    _check_result(result, 4, 500)
    check_read_back(_read(kafka_cluster, big_topic, 4 * 500), 4, 500)


def test_a_zombie_attempt_is_fenced_by_the_next(kafka_cluster, topic_factory):
    """Speculative or zombie attempts: attempt 1 of a partition is paused with its transaction
    open (a worker Dask gave up on, still alive); attempt 2 runs the same task, fences it and
    commits. Attempt 1 then wakes up: it fails, fenced, and nothing of it is read."""
    import threading
    import uuid

    from kengine.dask.partition_writer import WriteSpec, write_partition
    from kengine.dask.worker_producers import process_pool

    topic = topic_factory(kafka_cluster, partitions=6)
    paused, resume = threading.Event(), threading.Event()

    def hold_the_zombie(event) -> None:
        if threading.current_thread().name == "zombie" and event.stage == "sent":
            paused.set()
            resume.wait(120)

    spec = WriteSpec(job_id=f"zombie-{uuid.uuid4().hex[:8]}", topic=topic,
                     producer_config=_config(kafka_cluster), config_key="zombie-test",
                     exactly_once=True, value="value", key="key", headers=None, timestamp=None,
                     kind="frame", chunk_rows=CHUNK, transaction_attempts=3,
                     id_prefix="kengine-dask-", on_progress=hold_the_zombie)
    data = frame_partition(0, ROWS)
    outcome: dict[str, object] = {}

    def zombie() -> None:
        try:
            outcome["zombie"] = write_partition(data, 0, spec)
        except Exception as exc:
            outcome["zombie"] = exc

    thread = threading.Thread(target=zombie, name="zombie")
    thread.start()
    try:
        assert paused.wait(120), "attempt 1 never sent"
        second = write_partition(data, 0, spec)
    finally:
        resume.set()
        thread.join(180)
        process_pool().close()
    assert second.written == ROWS and not second.already_committed
    first = outcome["zombie"]
    assert isinstance(first, IngestError), f"the fenced attempt did not fail: {first!r}"
    assert "partition 0" in str(first) and "Fenced" in str(first), str(first)
    check_read_back(_read(kafka_cluster, topic, ROWS), 1, ROWS)
