"""KafkaCluster: real Apache Kafka on 127.0.0.1: KRaft (combined broker + controller nodes, or
a dedicated controller), or for releases before 3.3 ZooKeeper-mode brokers with a ZooKeeper.

Used by the test suite, the benchmarks and ``kengine local-kafka``. Needs a JDK 17+ and Maven
(for the jars, once) and nothing Python beyond the standard library, except for creating topics,
which goes through ``_admin`` (kengine's own admin client, so the compiled core).

Every process the cluster starts is killed by pid when it is closed, when it is garbage
collected, when the interpreter exits and on SIGTERM/SIGINT; a pidfile per node and a state
file let a later process stop a cluster it did not start (``attach``, ``cleanup_stale``).
"""
from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from ..errors import ConfigError, IllegalStateError, KafkaTimeoutError
from . import _admin
from .config import (
    CONTROLLER_LISTENER,
    ConfigValue,
    Listener,
    NodeLayout,
    advertised_port_name,
    default_broker_config,
    node_properties,
    write_properties,
    zookeeper_broker_properties,
    zookeeper_server_properties,
)
from .distribution import KafkaDistribution, ensure_kafka
from .errors import BrokerStartError, LocalKafkaError
from .node import NodeProcess, node_still_exiting, pid_is_node
from .probe import ClusterMetadata, PartitionInfo, TopicInfo, fetch_metadata
from .security import Acl

__all__ = ["DEFAULT_JVM_OPTS", "STATE_FILE", "ClusterStatus", "KafkaCluster", "NodeStatus"]

log = logging.getLogger("kengine.localkafka")

#: JVM options of every node; ``jvm_opts`` are appended, so a later ``-Xmx`` wins.
DEFAULT_JVM_OPTS: tuple[str, ...] = (
    "-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
)
# StorageTool runs for a second: no JIT tiers beyond C1, little heap
_TOOL_JVM_OPTS = ("-Xmx256m", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")
STATE_FILE = "cluster.json"
_STATE_FORMAT = 1
_ZOOKEEPER_PORT = "ZOOKEEPER"
_STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
_ZK_AUTHORIZER = "kafka.security.authorizer.AclAuthorizer"
_LOG4J2_CONFIG = Path(__file__).with_name("log4j2.xml")
_PORT_ATTEMPTS = 3
_PROBE_TIMEOUT_S = 2.0
_POLL_S = 0.2


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    address: str
    pid: int | None
    #: "running", "paused" or "stopped"
    state: str


@dataclass(frozen=True)
class ClusterStatus:
    workdir: Path
    bootstrap_servers: str
    nodes: tuple[NodeStatus, ...]

    @property
    def all_running(self) -> bool:
        return all(n.state == "running" for n in self.nodes)

    @property
    def any_alive(self) -> bool:
        return any(n.state != "stopped" for n in self.nodes)


class _PortTaken(BrokerStartError):
    """A node lost one of its ports to another process between choosing and binding it."""


class KafkaCluster:
    """``brokers`` combined broker + controller nodes (ids 1..N) on free ports of ``host``.

    Starting happens in the constructor: storage is formatted, every node started, and the
    constructor returns once every node answers a Metadata request listing every node.

    * ``workdir``: where node directories (``node-<id>/`` with ``server.properties``, ``data/``,
      ``logs/``, ``kafka.pid``) and ``cluster.json`` go; a temporary directory (removed on
      :meth:`close`) by default. An existing cluster's files there are replaced.
    * ``broker_config``: merged over :func:`~kengine.localkafka.config.default_broker_config`;
      ``node_config(node_id)`` adds per-node settings (keystores, racks).
    * ``listeners``: client listeners, ``PLAINTEXT`` by default; the first is the inter-broker
      listener and the one :attr:`bootstrap_servers` names; one must be ``PLAINTEXT`` (the
      readiness probe speaks plaintext). ``format_args`` are passed to ``kafka-storage format``
      (e.g. ``["--add-scram", "SCRAM-SHA-256=[name=alice,password=secret]"]``).
    * ``detach``: the nodes outlive this process; stop them later with
      ``KafkaCluster.attach(workdir).stop()``.
    * ``dedicated_controller``: run the KRaft controller as a node of its own (id
      :attr:`controller_id`) and the ``brokers`` as broker-only nodes, so that brokers can be
      killed without losing the controller quorum (ISR shrinking, NOT_ENOUGH_REPLICAS tests).
    * ``first_node_id``: node ids are ``first_node_id`` .. ``first_node_id + brokers - 1``
      (KRaft; a cluster that replaces another with new node ids).
    * ``kafka_version``: the Kafka release to run (default
      :data:`~kengine.localkafka.KAFKA_VERSION`; "3.9" means the matrix's 3.9.x). Releases
      before 3.3 run in ZooKeeper mode: node 0 (:attr:`zookeeper_id`) is a ZooKeeper server
      and the brokers elect their controller through it; SCRAM users in ``format_args`` are
      written to ZooKeeper, and the KRaft authorizer is swapped for ZooKeeper's.

    Not thread-safe: drive one cluster from one thread.
    """

    def __init__(
        self,
        brokers: int = 1,
        workdir: str | os.PathLike[str] | None = None,
        broker_config: Mapping[str, ConfigValue] | None = None,
        jvm_opts: Sequence[str] | None = None,
        *,
        listeners: Sequence[Listener] | None = None,
        node_config: Callable[[int], Mapping[str, ConfigValue]] | None = None,
        format_args: Sequence[str] = (),
        kafka_home: str | os.PathLike[str] | None = None,
        detach: bool = False,
        host: str = "127.0.0.1",
        startup_timeout: float = 180.0,
        dedicated_controller: bool = False,
        kafka_version: str | None = None,
        first_node_id: int = 1,
    ) -> None:
        if brokers < 1:
            raise ConfigError("brokers", brokers, "a cluster needs at least one node")
        self.listeners: tuple[Listener, ...] = tuple(listeners or (Listener(),))
        _check_listeners(self.listeners)
        self._dist: KafkaDistribution = ensure_kafka(kafka_home, version=kafka_version)
        zookeeper = self._dist.mode == "zookeeper"
        if first_node_id < 1 or (zookeeper and first_node_id != 1):
            raise ConfigError("first_node_id", first_node_id,
                              "1 or more (KRaft), 1 in ZooKeeper mode")
        self._first_node_id = first_node_id
        if zookeeper and dedicated_controller:
            raise ConfigError("dedicated_controller", True,
                              f"False with Kafka {self._dist.version}: a ZooKeeper-mode cluster "
                              "has no KRaft controller (ZooKeeper elects one broker)")
        self.host = host
        self.detach = detach
        self.cluster_id = _new_cluster_id()
        self._broker_config: dict[str, ConfigValue] = {
            **default_broker_config(brokers, self._dist.mode), **(broker_config or {})}
        if zookeeper and self._broker_config.get("authorizer.class.name") == \
                _STANDARD_AUTHORIZER:
            self._broker_config["authorizer.class.name"] = _ZK_AUTHORIZER
        self._node_config = node_config
        self._format_args = list(format_args)
        self._jvm_opts = [*DEFAULT_JVM_OPTS, *(jvm_opts or ())]
        self._owns_workdir = workdir is None and not detach
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="kengine-kafka-")).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._refuse_if_running()
        self._layouts: dict[int, NodeLayout] = {}
        self._nodes: dict[int, NodeProcess] = {}   # every JVM, the dedicated controller too
        #: node id of the dedicated controller, None when every node is broker + controller
        self.controller_id: int | None = (first_node_id + brokers if dedicated_controller
                                          else None)
        #: node id of the ZooKeeper server (0) of a ZooKeeper-mode cluster, else None
        self.zookeeper_id: int | None = 0 if zookeeper else None
        self._closed = False
        #: wall-clock seconds from formatting to every node ready
        self.startup_seconds = 0.0
        self._finalizer: weakref.finalize | None = None  # type: ignore[type-arg]
        if not detach:
            # holds the node dict, not self: the cluster can still be collected
            self._finalizer = weakref.finalize(
                self, _reap_if_owner, os.getpid(), self._nodes,
                self.workdir if self._owns_workdir else None)
            _LIVE.add(self)
            _install_signal_handlers()
        began = time.monotonic()
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                self._lay_out(brokers)
                self._format()
                self._start_all(startup_timeout, first_start=True)
                break
            except _PortTaken as e:
                self._kill_everything()
                if attempt == _PORT_ATTEMPTS:
                    raise BrokerStartError(f"{e}\n(gave up after {attempt} sets of ports)") from e
                log.info("a port was taken while starting (%s); retrying on new ports", e)
            except BaseException:
                self._kill_everything()
                raise
        self.startup_seconds = time.monotonic() - began
        log.info("Kafka %s: %d node(s) ready at %s in %.1f s (workdir %s)", self._dist.version,
                 brokers, self.bootstrap_servers, self.startup_seconds, self.workdir)

    # -- addresses ---------------------------------------------------------------------------

    @property
    def nodes(self) -> tuple[int, ...]:
        """Broker node ids (1..N); each is also a controller unless dedicated_controller (or
        the cluster runs on ZooKeeper)."""
        return tuple(n for n in self._layouts
                     if n != self.controller_id and n != self.zookeeper_id)

    @property
    def mode(self) -> str:
        """"kraft" or "zookeeper"."""
        return "zookeeper" if self.zookeeper_id is not None else "kraft"

    @property
    def zookeeper_connect(self) -> str | None:
        """``host:port`` of the ZooKeeper server of a ZooKeeper-mode cluster, else None."""
        if self.zookeeper_id is None:
            return None
        return self._layouts[self.zookeeper_id].address(_ZOOKEEPER_PORT)

    @property
    def bootstrap_servers(self) -> str:
        return self.bootstrap_servers_for(self.listeners[0].name)

    def bootstrap_servers_for(self, listener: str) -> str:
        return ",".join(self._layouts[n].address(listener) for n in self.nodes)

    def address(self, node: int, listener: str | None = None) -> str:
        """``host:port`` of ``node`` on ``listener`` (the first client listener by default), as
        advertised to clients: for a proxied listener, the proxy's port."""
        return self._layout(node).address(listener or self.listeners[0].name)

    def bind_address(self, node: int, listener: str) -> str:
        """``host:port`` where ``node`` itself listens on ``listener``: what a proxy in front
        of a proxied listener forwards to."""
        return self._layout(node).bind_address(listener)

    @property
    def kafka(self) -> KafkaDistribution:
        """The Kafka distribution (jars, java) the nodes run; tools run from the same jars."""
        return self._dist

    # -- readiness and metadata --------------------------------------------------------------

    def wait_ready(self, node: int | None = None, timeout: float = 120.0) -> None:
        """Wait until ``node`` (default: every running node) answers a Metadata request that
        lists every running, unpaused node. Raises :class:`BrokerStartError` if a node exits,
        :class:`KafkaTimeoutError` with the log tail on timeout."""
        targets = [node] if node is not None else [n for n in self.nodes
                                                   if self._nodes[n].running()]
        deadline = time.monotonic() + timeout
        last: dict[int, str] = {}
        while True:
            for n in targets:
                proc = self._nodes[n]
                if not proc.running():
                    self._raise_exited(n)
                if proc.paused:
                    raise IllegalStateError(f"node {n} is paused: resume({n}) it first")
            expected = {n for n in self.nodes
                        if self._nodes[n].running() and not self._nodes[n].paused}
            pending = []
            for n in targets:
                try:
                    seen = self.metadata(n).broker_ids
                except OSError as e:
                    last[n] = f"no answer ({e})"
                    pending.append(n)
                    continue
                if not expected <= seen:
                    last[n] = f"lists brokers {sorted(seen)}, expected {sorted(expected)}"
                    pending.append(n)
            if not pending:
                return
            if time.monotonic() > deadline:
                detail = "; ".join(f"node {n}: {last.get(n, '?')}" for n in pending)
                raise KafkaTimeoutError(
                    f"Kafka node(s) {pending} not ready after {timeout:.0f} s ({detail}); "
                    f"workdir {self.workdir}\n" + "\n".join(
                        self._nodes[n].log_tail(60) for n in pending))
            time.sleep(_POLL_S)

    def metadata(self, node: int | None = None,
                 topics: Sequence[str] | None = ()) -> ClusterMetadata:
        """Metadata as ``node`` sees it (default: the first node that answers) for ``topics``
        (``None``: all topics). Raises :class:`OSError` if no node answers."""
        candidates = [node] if node is not None else self._answering_candidates()
        error: OSError = ConnectionError("no running, unpaused node to ask")
        for n in candidates:
            host, _, port = self._layout(n).address(self._probe_listener).rpartition(":")
            try:
                return fetch_metadata(host, int(port), topics, timeout=_PROBE_TIMEOUT_S)
            except OSError as e:
                error = e
        raise error

    def topic(self, name: str) -> TopicInfo:
        """The topic as the first answering node sees it; raises if it does not exist."""
        info = self.metadata(topics=[name]).topics.get(name)
        if info is None or info.error_code != 0:
            code = info.error_code if info else None
            raise LocalKafkaError(f"topic {name!r} is unknown to the cluster (error code {code})")
        return info

    def partition(self, topic: str, partition: int) -> PartitionInfo:
        for p in self.topic(topic).partitions:
            if p.partition == partition:
                return p
        raise LocalKafkaError(f"topic {topic!r} has no partition {partition}")

    def leader_of(self, topic: str, partition: int) -> int:
        """Node id leading ``topic``/``partition`` now (-1 during an election)."""
        return self.partition(topic, partition).leader

    def wait_in_sync(self, topic: str, timeout: float = 60.0) -> None:
        """Wait until every partition of ``topic`` has a leader and all replicas in its ISR, as
        every running node sees it (after a restart: the node has caught up and rejoined)."""
        def in_sync(info: TopicInfo) -> bool:
            return all(p.leader >= 0 and set(p.isr) == set(p.replicas) for p in info.partitions)
        self._wait_topic(topic, in_sync, "all replicas in sync", timeout)

    # -- topics ------------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int | None = None,
                     config: Mapping[str, ConfigValue] | None = None, *,
                     timeout: float = 60.0) -> str:
        """Create ``name`` and wait until every running node sees a leader for every partition.

        ``replication_factor`` defaults to the broker's ``default.replication.factor`` (the
        cluster size, at most 3); ``config`` holds topic settings such as
        ``{"min.insync.replicas": 2, "message.timestamp.type": "LogAppendTime"}``.
        Returns ``name``."""
        _admin.create_topic(self.bootstrap_servers_for(self._probe_listener), name, partitions,
                            replication_factor or -1,
                            {k: _config_str(v) for k, v in (config or {}).items()}, timeout)

        def has_leaders(info: TopicInfo) -> bool:
            return len(info.partitions) == partitions and all(
                p.leader >= 0 for p in info.partitions)
        self._wait_topic(name, has_leaders, f"{partitions} partition(s) with leaders", timeout)
        return name

    def delete_topic(self, name: str, *, timeout: float = 120.0) -> None:
        """Delete ``name`` and wait until no running node knows it. A broker keeps a file
        open per partition, so tests creating topics of thousands of partitions delete
        them when done (the process's open-files limit is a cluster-wide budget)."""
        _admin.delete_topic(self.bootstrap_servers_for(self._probe_listener), name, timeout)
        deadline = time.monotonic() + timeout
        while True:
            views = [self.metadata(n, [name]).topics.get(name)
                     for n in self._answering_candidates()]
            if all(info is None or info.error_code != 0 for info in views):
                return
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"topic {name!r} still exists {timeout:.0f} s after "
                                        f"it was deleted")
            time.sleep(_POLL_S)

    def create_acls(self, acls: Sequence[Acl], *, timeout: float = 60.0) -> None:
        """Create ACL bindings (through the PLAINTEXT listener, whose principal is a super
        user with :class:`~kengine.localkafka.security.SecureBrokers`) and wait until every
        running node's authorizer applies them."""
        bootstrap = self.bootstrap_servers_for(self._probe_listener)
        _admin.create_acls(bootstrap, acls, timeout)
        deadline = time.monotonic() + timeout
        for n in self._answering_candidates():
            address = self.address(n, self._probe_listener)
            while not all(_admin.describe_acls(address, a, timeout) for a in acls):
                if time.monotonic() > deadline:
                    raise KafkaTimeoutError(f"node {n} did not apply ACLs {list(acls)} within "
                                            f"{timeout:.0f} s")
                time.sleep(_POLL_S)

    def add_partitions(self, name: str, total: int, *, timeout: float = 60.0) -> None:
        """Grow ``name`` to ``total`` partitions and wait until they all have leaders."""
        _admin.create_partitions(self.bootstrap_servers_for(self._probe_listener), name, total,
                                 timeout)

        def grown(info: TopicInfo) -> bool:
            return len(info.partitions) == total and all(p.leader >= 0 for p in info.partitions)
        self._wait_topic(name, grown, f"{total} partitions with leaders", timeout)

    def _wait_topic(self, name: str, done: Callable[[TopicInfo], bool], what: str,
                    timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            views = []
            for n in self._answering_candidates():
                try:
                    views.append((n, self.metadata(n, [name]).topics.get(name)))
                except OSError as e:
                    last = f"node {n}: {e}"
                    views = []
                    break
            if views and all(info is not None and info.error_code == 0 and done(info)
                             for _, info in views):
                return
            if views:
                last = "; ".join(f"node {n}: {info}" for n, info in views)
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"topic {name!r}: no {what} after {timeout:.0f} s ({last})")
            time.sleep(_POLL_S)

    # -- chaos controls ----------------------------------------------------------------------

    def kill(self, node: int) -> None:
        """SIGKILL ``node``: no controlled shutdown, no flush; its storage stays for start()."""
        self._proc(node).kill()
        self._save_state()

    def stop(self, node: int | None = None, timeout: float = 60.0) -> None:
        """SIGTERM ``node`` (default: every node) and wait for it to exit; SIGKILL after
        ``timeout`` seconds. Storage is kept; :meth:`start` brings a node back."""
        procs = [self._proc(node)] if node is not None else [
            p for n, p in self._nodes.items() if n != self.zookeeper_id]
        threads = [threading.Thread(target=p.terminate, args=(timeout,)) for p in procs]
        # all at once: a KRaft quorum that loses members one by one stalls controlled shutdown
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if node is None and self.zookeeper_id is not None:
            # last: brokers shutting down need ZooKeeper for their controlled shutdown
            self._nodes[self.zookeeper_id].terminate(timeout)
        self._save_state()

    def pause(self, node: int) -> None:
        """SIGSTOP ``node``: it keeps its sockets but answers nothing until :meth:`resume`."""
        self._proc(node).pause()

    def resume(self, node: int) -> None:
        self._proc(node).resume()

    def start(self, node: int, *, wait: bool = True, timeout: float = 120.0) -> None:
        """Start a stopped or killed ``node`` on its storage and ports; wait until ready."""
        if self.zookeeper_id is not None and node != self.zookeeper_id:
            self._wait_registration_gone(node, timeout)
        self._start_nodes([node])
        if node == self.zookeeper_id:
            self._wait_zookeeper(timeout)
        elif wait:
            self.wait_ready(node, timeout)

    def _wait_registration_gone(self, node: int, timeout: float) -> None:
        """A ZooKeeper-mode broker that was killed stays registered until its ZooKeeper session
        expires (zookeeper.session.timeout.ms); started before that, it finds its id taken and
        exits. Wait until the running brokers no longer list it."""
        others = [n for n in self._answering_candidates() if n != node]
        deadline = time.monotonic() + timeout
        while others:
            try:
                if node not in self.metadata(others[0]).broker_ids:
                    return
            except OSError:
                return   # nobody to ask: the start itself will tell
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"broker {node} still registered in ZooKeeper "
                                        f"{timeout:.0f} s after it stopped")
            time.sleep(_POLL_S)

    def restart(self, node: int, *, timeout: float = 120.0) -> None:
        """Stop ``node`` (SIGTERM) if running, then start it again and wait until ready."""
        self._proc(node).terminate()
        self.start(node, timeout=timeout)

    def heal(self, timeout: float = 120.0) -> None:
        """Bring every node back (resume paused ones, start stopped ones) and wait until all
        are ready: what a shared test cluster does between chaos tests."""
        down = []
        for n, proc in self._nodes.items():
            if proc.paused:
                proc.resume()
            elif not proc.running():
                down.append(n)
        if self.zookeeper_id in down:
            self._start_nodes([self.zookeeper_id])
            self._wait_zookeeper(timeout)
            down.remove(self.zookeeper_id)
        if down:
            self._start_nodes(down)
        self.wait_ready(timeout=timeout)

    def pids(self) -> dict[int, int]:
        """Pid of every running node's JVM, by node id."""
        return {n: p.pid for n, p in self._nodes.items() if p.running() and p.pid is not None}

    def status(self) -> ClusterStatus:
        nodes = []
        for n, proc in self._nodes.items():
            alive = proc.running()
            state = "paused" if alive and proc.paused else "running" if alive else "stopped"
            nodes.append(NodeStatus(n, self.address(n), proc.pid, state))
        return ClusterStatus(self.workdir, self.bootstrap_servers, tuple(nodes))

    def data_dir(self, node: int) -> Path:
        """``node``'s ``log.dirs``: one directory per partition replica it holds
        (``<topic>-<partition>/``), for Kafka's own DumpLogSegments when a test must see the
        batches (producer ids, epochs, transaction markers) the broker wrote."""
        return self._layout(node).data_dir

    def logs(self, node: int | None = None, tail: int = 200) -> str:
        """The last ``tail`` lines of ``node``'s logs (default: every node's)."""
        nodes = [node] if node is not None else list(self._nodes)
        return "\n".join(self._proc(n).log_tail(tail) for n in nodes)

    # -- teardown ----------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every node by pid (SIGKILL; use :meth:`stop` for a graceful shutdown) and
        remove the working directory if the cluster created it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        _LIVE.discard(self)
        if self._finalizer is not None:
            self._finalizer.detach()
        _kill_nodes(self._nodes, self.workdir if self._owns_workdir else None)
        if self.workdir.exists():
            self._save_state()

    def __enter__(self) -> KafkaCluster:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<KafkaCluster {len(self._layouts)} node(s) {self.bootstrap_servers} "
                f"workdir={self.workdir}>")

    # -- detached clusters -------------------------------------------------------------------

    @classmethod
    def attach(cls, workdir: str | os.PathLike[str]) -> KafkaCluster:
        """A handle on the cluster whose state file is in ``workdir`` (started with
        ``detach=True``, possibly by another process). Closing the handle kills the cluster;
        dropping it does not."""
        root = Path(workdir).resolve()
        try:
            state = json.loads((root / STATE_FILE).read_text())
        except FileNotFoundError:
            raise LocalKafkaError(f"no Kafka cluster state in {root} ({STATE_FILE} missing): "
                                  "was it started there?") from None
        if state.get("format") != _STATE_FORMAT:
            raise LocalKafkaError(f"{root / STATE_FILE} has format {state.get('format')}, "
                                  f"this kengine reads {_STATE_FORMAT}")
        self = cls.__new__(cls)
        self.listeners = tuple(Listener(**lst) for lst in state["listeners"])
        self.host = state["host"]
        self.detach = True
        self.cluster_id = state["cluster_id"]
        self._dist = KafkaDistribution(Path(state["kafka_home"]), state["kafka_version"],
                                       state["java"])
        self._broker_config = {}
        self._node_config = None
        self._format_args = []
        self._jvm_opts = list(state["jvm_opts"])
        self._owns_workdir = False
        self.workdir = root
        self._layouts = {}
        self._nodes = {}
        self.controller_id = state.get("controller_id")
        self.zookeeper_id = state.get("zookeeper_id")
        self._closed = False
        self._finalizer = None
        self.startup_seconds = 0.0
        for entry in state["nodes"]:
            n = int(entry["id"])
            node_dir = root / f"node-{n}"
            self._layouts[n] = NodeLayout(n, self.host, dict(entry["ports"]), node_dir / "data")
            self._nodes[n] = NodeProcess.adopt(n, node_dir, self._command(n), entry.get("pid"))
        return self

    @classmethod
    def reopen(cls, workdir: str | os.PathLike[str], *, timeout: float = 180.0) -> KafkaCluster:
        """Start again the detached cluster that was stopped in ``workdir``: same node ids,
        ports, cluster id and data (``make kafka-stop`` then ``make kafka``), and wait until it
        is ready. Raises :class:`LocalKafkaError` when some of its nodes are still running or a
        port it needs is taken now (start a fresh cluster then)."""
        cluster = cls.attach(workdir)
        alive = [n for n, p in cluster._nodes.items() if p.running()]
        if alive:
            raise LocalKafkaError(f"nodes {alive} of the cluster in {cluster.workdir} are still "
                                  "running: stop it first")
        taken = [address for layout in cluster._layouts.values()
                 for address in (f"{layout.host}:{port}" for port in layout.ports.values())
                 if not _port_free(address)]
        if taken:
            raise LocalKafkaError(
                f"cannot bring back the cluster in {cluster.workdir} on its ports: "
                f"{', '.join(taken)} {'is' if len(taken) == 1 else 'are'} taken by another "
                "process now; stop that process, or start a fresh cluster (--fresh)")
        began = time.monotonic()
        try:
            cluster._start_all(timeout)
        except BaseException:
            cluster._kill_everything()
            raise
        cluster.startup_seconds = time.monotonic() - began
        return cluster

    @staticmethod
    def cleanup_stale(workdir: str | os.PathLike[str]) -> list[int]:
        """SIGKILL every node JVM whose pidfile is under ``workdir`` and that is still alive
        (checked against its command line, so a reused pid is left alone). Returns the pids
        killed. Works without the state file, e.g. after the owning process was SIGKILLed."""
        killed = []
        for pidfile in sorted(Path(workdir).glob("node-*/kafka.pid")):
            try:
                pid = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                continue
            props = pidfile.parent / "server.properties"
            if pid_is_node(pid, props):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                deadline = time.monotonic() + 30
                while node_still_exiting(pid, props) and time.monotonic() < deadline:
                    time.sleep(0.05)
                killed.append(pid)
            pidfile.unlink(missing_ok=True)
        return killed

    # -- internals ---------------------------------------------------------------------------

    @property
    def _probe_listener(self) -> str:
        return next(lst.name for lst in self.listeners
                    if lst.security_protocol == "PLAINTEXT" and not lst.proxied)

    def _layout(self, node: int) -> NodeLayout:
        try:
            return self._layouts[node]
        except KeyError:
            raise LocalKafkaError(f"no node {node}: this cluster has nodes {list(self._layouts)}"
                                  ) from None

    def _proc(self, node: int) -> NodeProcess:
        self._layout(node)
        return self._nodes[node]

    def _answering_candidates(self) -> list[int]:
        return [n for n in self.nodes if self._nodes[n].running() and not self._nodes[n].paused]

    def _refuse_if_running(self) -> None:
        alive = [pf for pf in self.workdir.glob("node-*/kafka.pid")
                 if _pidfile_alive(pf)]
        if alive:
            raise LocalKafkaError(
                f"a Kafka cluster is still running from {self.workdir} (pidfiles "
                f"{[str(p) for p in alive]}): stop it first with "
                f"KafkaCluster.attach({str(self.workdir)!r}).stop() or `python -m "
                f"kengine.localkafka stop --workdir {self.workdir}`")

    def _lay_out(self, brokers: int) -> None:
        """Choose ports, wipe and create node directories, write server.properties."""
        if self.zookeeper_id is not None:
            self._lay_out_zookeeper(brokers)
            return
        names = _port_names(self.listeners) + [CONTROLLER_LISTENER.name]
        count = brokers + (1 if self.controller_id is not None else 0)
        ports = _free_ports(self.host, count * len(names))
        self._layouts.clear()
        for i in range(count):
            n = i + self._first_node_id
            node_dir = self.workdir / f"node-{n}"
            shutil.rmtree(node_dir, ignore_errors=True)
            (node_dir / "logs").mkdir(parents=True)
            node_ports = {name: ports[i * len(names) + j] for j, name in enumerate(names)}
            self._layouts[n] = NodeLayout(n, self.host, node_ports, node_dir / "data")
        if self.controller_id is None:
            voters = list(self._layouts.values())
        else:
            voters = [self._layouts[self.controller_id]]
        for n, layout in self._layouts.items():
            overrides = dict(self._broker_config)
            if self._node_config is not None:
                overrides.update(self._node_config(n))
            roles = "broker,controller"
            if self.controller_id is not None:
                roles = "controller" if n == self.controller_id else "broker"
            props = node_properties(layout, voters, self.listeners,
                                    inter_broker_listener=self.listeners[0].name,
                                    overrides=overrides, roles=roles)
            node_dir = self.workdir / f"node-{n}"
            write_properties(node_dir / "server.properties", props)
            self._nodes[n] = NodeProcess(n, node_dir, self._command(n))

    def _lay_out_zookeeper(self, brokers: int) -> None:
        """Node 0 is ZooKeeper (its ``server.properties`` is ZooKeeper's configuration, so
        that pidfiles and clean-up treat it like any node); nodes 1..N are brokers."""
        names = _port_names(self.listeners)
        ports = _free_ports(self.host, 1 + brokers * len(names))
        self._layouts.clear()
        for n in range(brokers + 1):
            node_dir = self.workdir / f"node-{n}"
            shutil.rmtree(node_dir, ignore_errors=True)
            (node_dir / "logs").mkdir(parents=True)
            if n == 0:
                node_ports = {_ZOOKEEPER_PORT: ports[0]}
            else:
                base = 1 + (n - 1) * len(names)
                node_ports = {name: ports[base + j] for j, name in enumerate(names)}
            self._layouts[n] = NodeLayout(n, self.host, node_ports, node_dir / "data")
        zk = self._layouts[0]
        write_properties(self.workdir / "node-0" / "server.properties",
                         zookeeper_server_properties(zk, _ZOOKEEPER_PORT))
        self._nodes[0] = NodeProcess(0, self.workdir / "node-0", self._command(0))
        for n in range(1, brokers + 1):
            overrides = dict(self._broker_config)
            if self._node_config is not None:
                overrides.update(self._node_config(n))
            props = zookeeper_broker_properties(
                self._layouts[n], self.listeners,
                zookeeper_connect=zk.address(_ZOOKEEPER_PORT),
                inter_broker_listener=self.listeners[0].name, overrides=overrides)
            node_dir = self.workdir / f"node-{n}"
            write_properties(node_dir / "server.properties", props)
            self._nodes[n] = NodeProcess(n, node_dir, self._command(n))

    def _command(self, node: int) -> list[str]:
        node_dir = self.workdir / f"node-{node}"
        main = ("org.apache.zookeeper.server.ZooKeeperServerMain" if node == self.zookeeper_id
                else "kafka.Kafka")
        return [self._dist.java, *self._jvm_opts,
                f"-Dlog4j2.configurationFile={_LOG4J2_CONFIG}",
                f"-Dkafka.logs.dir={node_dir / 'logs'}",
                "-cp", self._dist.classpath, main, str(node_dir / "server.properties")]

    def _start_all(self, timeout: float, *, first_start: bool = False) -> None:
        """Start every node and wait until all are ready; ZooKeeper first (and, on the first
        start, the SCRAM users written into it) when the cluster has one."""
        brokers = list(self._layouts)
        if self.zookeeper_id is not None:
            self._start_nodes([self.zookeeper_id])
            self._wait_zookeeper(timeout)
            if first_start:
                self._add_scram_users_to_zookeeper()
            brokers.remove(self.zookeeper_id)
        self._start_nodes(brokers)
        self.wait_ready(timeout=timeout)

    def _wait_zookeeper(self, timeout: float) -> None:
        assert self.zookeeper_id is not None
        proc = self._nodes[self.zookeeper_id]
        host, _, port = self._layouts[self.zookeeper_id].address(_ZOOKEEPER_PORT).rpartition(":")
        deadline = time.monotonic() + timeout
        while True:
            if not proc.running():
                self._raise_exited(self.zookeeper_id)
            try:
                # "srvr" is the one four-letter command ZooKeeper allows by default: an answer
                # means the server is serving, not just that its port is bound
                with socket.create_connection((host, int(port)), timeout=_PROBE_TIMEOUT_S) as s:
                    s.sendall(b"srvr")
                    if s.recv(64).startswith(b"Zookeeper version"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"ZooKeeper at {host}:{port} not serving after "
                                        f"{timeout:.0f} s\n{proc.log_tail(60)}")
            time.sleep(_POLL_S)

    def _add_scram_users_to_zookeeper(self) -> None:
        """The ZooKeeper-mode equivalent of ``kafka-storage format --add-scram``: Kafka's
        ``kafka-configs --zookeeper ... --entity-type users --add-config`` per user."""
        users: dict[str, list[str]] = {}
        args = iter(self._format_args)
        for arg in args:
            if arg != "--add-scram":
                raise ConfigError("format_args", self._format_args,
                                  f"only --add-scram with Kafka {self._dist.version} (ZooKeeper "
                                  f"mode has no storage format step), not {arg!r}")
            mechanism, _, spec = next(args, "").partition("=")
            fields = dict(item.split("=", 1) for item in spec.strip("[]").split(","))
            users.setdefault(fields["name"], []).append(
                f"{mechanism}=[password={fields['password']}]")
        for user, credentials in users.items():
            node_dir = self.workdir / "node-0"
            cmd = [self._dist.java, *_TOOL_JVM_OPTS,
                   f"-Dlog4j2.configurationFile={_LOG4J2_CONFIG}",
                   f"-Dkafka.logs.dir={node_dir / 'logs'}",
                   "-cp", self._dist.classpath, "kafka.admin.ConfigCommand",
                   "--zookeeper", str(self.zookeeper_connect), "--alter",
                   "--add-config", ",".join(credentials),
                   "--entity-type", "users", "--entity-name", user]
            out = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                 timeout=120, check=False)
            if out.returncode != 0:
                raise BrokerStartError(
                    f"writing SCRAM credentials of {user!r} to ZooKeeper failed (exit "
                    f"{out.returncode}):\n{out.stdout.decode(errors='replace')}"
                    f"{out.stderr.decode(errors='replace')}")

    def _format(self) -> None:
        """``kafka-storage format`` every node, in parallel (each is a JVM start). A
        ZooKeeper-mode cluster has nothing to format."""
        if self.zookeeper_id is not None:
            return
        running: list[tuple[int, subprocess.Popen[bytes]]] = []
        failed = []
        try:
            for n in self._layouts:
                node_dir = self.workdir / f"node-{n}"
                cmd = [self._dist.java, *_TOOL_JVM_OPTS,
                       f"-Dlog4j2.configurationFile={_LOG4J2_CONFIG}",
                       f"-Dkafka.logs.dir={node_dir / 'logs'}",
                       "-cp", self._dist.classpath, "kafka.tools.StorageTool", "format",
                       "-t", self.cluster_id, "-c", str(node_dir / "server.properties"),
                       *self._format_args]
                with open(node_dir / "logs" / "format.log", "wb") as out:
                    running.append((n, subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                                        stdout=out, stderr=subprocess.STDOUT)))
            for n, proc in running:
                rc = proc.wait(timeout=120)
                if rc != 0:
                    failed.append((n, rc))
        finally:
            for _, proc in running:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if failed:
            detail = "\n".join(
                f"--- node {n} (exit {rc}) ---\n"
                + (self.workdir / f"node-{n}" / "logs" / "format.log").read_text(errors="replace")
                for n, rc in failed)
            raise BrokerStartError(f"formatting KRaft storage failed in {self.workdir}:\n{detail}")

    def _start_nodes(self, nodes: Iterable[int]) -> None:
        for n in nodes:
            self._proc(n).start(detach=self.detach)
        self._save_state()

    def _raise_exited(self, node: int) -> None:
        proc = self._nodes[node]
        tail = proc.log_tail(80)
        where = f"node {node} exited while starting (exit code {proc.exit_code()})"
        if "Address already in use" in tail or "BindException" in tail:
            raise _PortTaken(f"{where}: a port was taken\n{tail}")
        raise BrokerStartError(f"{where}; workdir {self.workdir}\n{tail}")

    def _kill_everything(self) -> None:
        _kill_nodes(self._nodes, None)
        self._save_state()

    def _save_state(self) -> None:
        state: dict[str, Any] = {
            "format": _STATE_FORMAT,
            "kafka_version": self._dist.version,
            "kafka_home": str(self._dist.home),
            "java": self._dist.java,
            "cluster_id": self.cluster_id,
            "host": self.host,
            "detached": self.detach,
            "jvm_opts": self._jvm_opts,
            "listeners": [{"name": lst.name, "security_protocol": lst.security_protocol,
                           "proxied": lst.proxied} for lst in self.listeners],
            "bootstrap_servers": self.bootstrap_servers if self._layouts else "",
            "nodes": [{"id": n, "ports": dict(lay.ports), "pid": self._nodes[n].pid}
                      for n, lay in self._layouts.items()],
            "controller_id": self.controller_id,
            "zookeeper_id": self.zookeeper_id,
        }
        if not self.workdir.exists():
            return
        tmp = self.workdir / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, self.workdir / STATE_FILE)


def _port_names(listeners: Sequence[Listener]) -> list[str]:
    """One port per listener, and one more for the advertised port of a proxied one."""
    names = []
    for lst in listeners:
        names.append(lst.name)
        if lst.proxied:
            names.append(advertised_port_name(lst.name))
    return names


def _check_listeners(listeners: Sequence[Listener]) -> None:
    names = [lst.name for lst in listeners]
    if len(set(names)) != len(names) or CONTROLLER_LISTENER.name in names:
        raise ConfigError("listeners", names,
                          f"names must be unique and not {CONTROLLER_LISTENER.name!r}")
    if listeners[0].proxied:
        raise ConfigError("listeners", names, "the first listener carries replication, which "
                          "must not pass a proxy: put the proxied listener after it")
    if not any(lst.security_protocol == "PLAINTEXT" and not lst.proxied for lst in listeners):
        raise ConfigError("listeners", names, "include one PLAINTEXT listener without a proxy: "
                          "the readiness probe and topic creation speak plaintext")


def _config_str(value: ConfigValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _new_cluster_id() -> str:
    # Kafka's Uuid.toString(): 16 random bytes, URL-safe base64 without padding. Like Kafka's
    # Uuid.randomUuid(), draw again when it starts with '-': `kafka-storage format -t -x...`
    # would read the id as an option (about 1 start in 64 failed before).
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _free_ports(host: str, count: int) -> list[int]:
    """``count`` distinct ports the kernel reports free now. They are released before Kafka
    binds them, so another process can win one; the constructor retries on new ports then."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_free(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # the same option the JVM's server sockets use: a port in TIME_WAIT is free for them
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError:
            return False
    return True


def _pidfile_alive(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return False
    return pid_is_node(pid, pidfile.parent / "server.properties")


# -- process-wide teardown -----------------------------------------------------------------

_LIVE: weakref.WeakSet[KafkaCluster] = weakref.WeakSet()
_previous_handlers: dict[int, Any] = {}
_handlers_pid = 0


def _kill_nodes(nodes: Mapping[int, NodeProcess], remove_dir: Path | None) -> None:
    for proc in nodes.values():
        proc.kill()
    if remove_dir is not None:
        shutil.rmtree(remove_dir, ignore_errors=True)


def _reap_if_owner(owner_pid: int, nodes: Mapping[int, NodeProcess],
                   remove_dir: Path | None) -> None:
    """At exit or collection: kill the nodes, unless this is a forked child (a
    multiprocessing worker), which inherited the cluster but does not own it."""
    if os.getpid() == owner_pid:
        _kill_nodes(nodes, remove_dir)


def _install_signal_handlers() -> None:
    """Close every live cluster on SIGTERM/SIGINT, then do what was done before (raise
    KeyboardInterrupt, die by the signal, or call the previous handler)."""
    global _handlers_pid
    if _previous_handlers or threading.current_thread() is not threading.main_thread():
        return
    _handlers_pid = os.getpid()
    for sig in (signal.SIGTERM, signal.SIGINT):
        _previous_handlers[sig] = signal.getsignal(sig)
        signal.signal(sig, _on_signal)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if os.getpid() == _handlers_pid:  # a forked child does not own its parent's clusters
        for cluster in list(_LIVE):
            cluster.close()
    previous = _previous_handlers.get(signum)
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
