"""A producer that cannot reach a partition's leader asks for fresh metadata at once, so it
finds a new leader without waiting for ``metadata.max.age.ms``.

Leader unreachable: after a broker is killed, the client's connection attempts to it fail,
but the first metadata answer after the kill may still name it (the cluster has not noticed
yet). Connection failures used to ask for nothing: the client kept reconnecting to the dead
broker until the next periodic refresh, and its partitions' records waited (the soak saw 51 s
of it after a SIGKILL, and records expired). Java asks for a metadata update on every failed
connection or disconnection; so does the sender now, whenever a leader with data ready cannot
be connected to.

Rebootstrap:
A rebootstrap forgets every broker's address. When something other than Metadata triggered it
(the transaction manager looking for a node for InitProducerId, the sender), Metadata used to
learn nothing of it: no update was due until ``metadata.max.age.ms``, every leader stayed
without an address, ``connect()`` refused it, and every record waited, long enough to expire
(the 30-minute soak found it: every broker unreachable before the first produce request).

Stepped with kengine's real Sender, Metadata and accumulator on the simulated cluster
(tests/support/sim_cluster.py), whose client, like NetworkClient, cannot connect to a node it
has no address for or that is unreachable. The clock moves by at most 20 s in all (retry
backoffs), far less than ``metadata.max.age.ms`` (300 s), so only an update due at once can
deliver.
"""
from __future__ import annotations

from tests.support.sim_cluster import Simulation


def _deliver(sim: Simulation, steps: int = 200) -> None:
    """Step and answer every request; when nothing is out, let a retry backoff (100 ms) pass."""
    for _ in range(steps):
        if not sim.core.acc.incomplete_batches():
            return
        sim.step()
        busy = sim.client.busy_nodes()
        for node in busy:
            sim.client.respond(node)
        if not busy:
            sim.advance(sim.retry_backoff_ms)


def _settled(topics: dict[str, int]) -> Simulation:
    """A simulation past its first records: metadata fresh, no update due until max age."""
    sim = Simulation(topics=topics, nodes=3)
    first = [sim.core.send("t", b"first", partition=p) for p in range(topics["t"])]
    _deliver(sim)
    assert all(f.result(0).offset == 0 for f in first)
    assert sim.metadata.time_to_next_update_ms(sim.now()) > 60_000, "an update is still due"
    return sim


def test_records_sent_after_a_rebootstrap_reach_their_leaders_without_waiting_for_max_age():
    sim = _settled({"t": 6})
    sim.client.forget_brokers()
    futures = [sim.core.send("t", b"v%d" % i, partition=i % 6) for i in range(60)]
    _deliver(sim)
    assert sim.core.acc.incomplete_batches() == [], (
        "records still wait for leaders whose addresses the rebootstrap forgot: no metadata "
        f"update was asked for (known nodes: {sim.client.known_nodes()})")
    assert sorted(f.result(0).partition for f in futures) == sorted(i % 6 for i in range(60))
    assert set(sim.client.known_nodes()) == {0, 1, 2}


def test_batches_in_flight_when_the_rebootstrap_closed_their_connections_are_delivered_once():
    sim = _settled({"t": 6})
    futures = [sim.core.send("t", b"v%d" % i, partition=i % 6) for i in range(60)]
    sim.step()
    assert sim.client.busy_nodes(), "nothing went out before the rebootstrap"
    sim.client.forget_brokers()   # the requests in flight are lost unanswered
    _deliver(sim)
    assert sim.core.acc.incomplete_batches() == []
    offsets = [(f.result(0).partition, f.result(0).offset) for f in futures]
    assert len(set(offsets)) == 60
    for p in range(6):
        log = sim.cluster.logs[("t", p)]
        assert len(log.records) == 11, f"partition {p}: {len(log.records)} records in the log"


def test_records_for_a_killed_leader_go_to_its_successor_without_waiting_for_max_age():
    sim = _settled({"t": 6})
    dead = sim.cluster.leaders[("t", 0)]
    futures = [sim.core.send("t", b"v%d" % i, partition=i % 6) for i in range(60)]
    sim.step()
    # the broker dies with requests in flight; the metadata answer the failure brings still
    # names it (the cluster has not noticed yet)
    sim.client.unreachable.add(dead)
    before = sim.metadata._version
    if dead in sim.client.busy_nodes():
        sim.client.disconnect(dead)
    for _ in range(5):
        sim.step()
        for node in sim.client.busy_nodes():
            sim.client.respond(node)
        sim.advance(sim.retry_backoff_ms)
    answered = sim.metadata._version
    assert answered > before, "the update the failure asked for was not answered"
    assert sim.metadata.partitions_for("t")[0].leader == dead
    # now the cluster moves its partitions to the other brokers
    successor = {}
    for (topic, p), leader in list(sim.cluster.leaders.items()):
        if leader == dead:
            successor[p] = next(n for n in sim.cluster.nodes if n != dead)
            sim.cluster.move_leader(topic, p, successor[p])
    _deliver(sim)
    assert sim.core.acc.incomplete_batches() == [], (
        "records still wait for an unreachable leader: no metadata update was asked for "
        "after the failed connections")
    for i, f in enumerate(futures):
        assert f.result(0).partition == i % 6
    for p in successor:
        assert len(sim.cluster.logs[("t", p)].records) == 11, p
