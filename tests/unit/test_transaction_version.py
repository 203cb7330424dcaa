"""Which transaction protocol a transaction runs under (KIP-890: v1, or v2 with an epoch bump at
every EndTxn), driven on the TransactionManager with a fake network client.

The rule these tests hold: the choice follows what the cluster finalized (transaction.version),
not whether the coordinator happens to be connected when begin_transaction() runs, and an epoch
that ended a v1 transaction never starts a v2 one. The exactly-once chaos test
(tests/integration/test_eos_pipeline.py) once saw 500 outputs of an aborted transaction become
visible: the coordinator was reconnecting when a transaction began, so it ran under v1; its
commit kept epoch 14, the next transaction (v2 again) sent its batches with epoch 14 before
the v1 commit marker reached the partition, the leader appended them to the open v1
transaction, and the marker committed them with it. The later abort could not take them
back."""
from __future__ import annotations

from kengine.connection import API
from kengine.network import NetworkClient
from kengine.transactions import (
    _TXN,
    TransactionManager,
    TxnState,
    _EndTxn,
    _InitProducerId,
    _Result,
)
from tests.support.core import Core
from tests.support.fake_network import FakeNetworkClient

PID = 1000


def _manager(level: int, coordinator_ready: bool, init_pid_version: int = 5):
    core = Core({"t": 1}, idempotent=True, transactional=True, linger_ms=0)
    core.acc.sequences.set_identity(PID, 7)
    client = FakeNetworkClient({1: ("h1", 9092), 2: ("h2", 9092)}, topics={"t": [1]})
    client.finalized_features = {"transaction.version": level}
    client.ready = {1, 2} if coordinator_ready else {1}
    tm = TransactionManager(core.acc, client=client, metadata=None, client_id="c",
                            transactional_id="tx", transaction_timeout_ms=60000,
                            retry_backoff_ms=100, max_block_ms=1000, wakeup=lambda: None)
    tm._coordinators[(_TXN, "tx")] = 2
    tm._coordinator_init_pid_version = init_pid_version
    tm.state = TxnState.READY
    return tm, client


def _end_v1_transaction(tm: TransactionManager) -> _Result:
    """A transaction that began under v1 and whose EndTxn v4 the coordinator accepted: the
    answer carries no new epoch."""
    tm._transactions_v2 = False
    tm._transaction_started = True
    tm.state = TxnState.COMMITTING
    result = _Result("commit_transaction()")
    _EndTxn(result, commit=True).handle(tm, {"error_code": 0})
    return result


def test_a_coordinator_reconnecting_at_begin_keeps_the_transaction_on_v2():
    tm, _ = _manager(level=2, coordinator_ready=False)
    tm.begin_transaction()
    assert tm.transactions_v2


def test_a_coordinator_connected_at_begin_runs_v2_when_the_cluster_finalized_it():
    tm, client = _manager(level=2, coordinator_ready=True)
    client._conn.broker_ranges = {API.END_TXN: (0, 5), API.PRODUCE: (3, 13)}
    tm.begin_transaction()
    assert tm.transactions_v2


def test_a_cluster_without_transaction_version_2_runs_v1():
    tm, _ = _manager(level=1, coordinator_ready=True)
    tm.begin_transaction()
    assert not tm.transactions_v2


def test_a_coordinator_without_end_txn_v5_runs_v1():
    tm, client = _manager(level=2, coordinator_ready=True)
    client._conn.broker_ranges = {API.END_TXN: (0, 4), API.PRODUCE: (3, 13)}
    tm.begin_transaction()
    assert not tm.transactions_v2


def test_the_end_of_a_v1_transaction_moves_to_v2_with_a_new_epoch_first():
    tm, _ = _manager(level=2, coordinator_ready=True)
    result = _end_v1_transaction(tm)
    # the commit waits for a new epoch, which the coordinator grants once the v1
    # transaction's markers are written
    assert tm.state is TxnState.INITIALIZING and not result.is_done
    (_, _, bump), = tm._pending
    assert isinstance(bump, _InitProducerId) and bump.bump
    bump.handle(tm, {"error_code": 0, "producer_id": PID, "producer_epoch": 8})
    assert result.is_done and result.error is None and tm.state is TxnState.READY
    tm.begin_transaction()
    assert tm.transactions_v2


def test_an_epoch_that_ended_a_v1_transaction_never_starts_a_v2_one():
    # a coordinator that cannot bump the epoch (InitProducerId before v3): the producer stays
    # on v1 rather than reuse the epoch under v2
    tm, _ = _manager(level=2, coordinator_ready=True, init_pid_version=2)
    result = _end_v1_transaction(tm)
    assert result.is_done and tm.state is TxnState.READY
    tm.begin_transaction()
    assert not tm.transactions_v2


class _Ready:
    """What NetworkClient reads of a connection that finished its set-up."""

    def __init__(self, node: int, features: dict[str, int], epoch: int) -> None:
        self.node_id, self.host, self.port = node, "127.0.0.1", 9000 + node
        self.finalized_features, self.finalized_features_epoch = features, epoch


def test_the_cluster_levels_outlive_the_connection_that_reported_them():
    client = NetworkClient(client_id="c", bootstrap=[("127.0.0.1", 9)], request_timeout_ms=1000,
                           setup_timeout_ms=1000, reconnect_backoff_ms=50,
                           reconnect_backoff_max_ms=1000, connections_max_idle_ms=60000,
                           max_in_flight=5)
    try:
        def ready(node, epoch, level):
            client._connection_ready(_Ready(node, {"transaction.version": level}, epoch))

        assert client.finalized_features == {}
        ready(1, epoch=10, level=2)
        assert client.finalized_features == {"transaction.version": 2}
        ready(2, epoch=9, level=1)        # an older answer does not win
        assert client.finalized_features == {"transaction.version": 2}
        ready(3, epoch=-1, level=0)       # a broker that gave none (ApiVersions before v3)
        assert client.finalized_features == {"transaction.version": 2}
        ready(2, epoch=11, level=1)       # a newer finalization (a downgrade) does
        assert client.finalized_features == {"transaction.version": 1}
        assert client.connections == {}   # no connection holds them
    finally:
        client.close()

