"""``server.properties`` for local Kafka nodes: KRaft (combined broker + controller, or
dedicated roles) and, for releases before 3.3, ZooKeeper-mode brokers and their ZooKeeper.

Listeners and their security protocols are data, not literals: a cluster is given a list of
:class:`Listener` (``PLAINTEXT`` by default; ``SSL``, ``SASL_PLAINTEXT``, ``SASL_SSL`` work the
same way) and every node gets one port per listener plus one for the controller. Settings for
a listener's TLS or SASL go in as ordinary overrides (``listener.name.<name>.*``), with
per-node values (keystores) through a per-node mapping.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CONTROLLER_LISTENER",
    "ConfigValue",
    "Listener",
    "NodeLayout",
    "advertised_port_name",
    "default_broker_config",
    "node_properties",
    "write_properties",
    "zookeeper_broker_properties",
    "zookeeper_server_properties",
]

ConfigValue = str | int | float | bool

_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


@dataclass(frozen=True)
class Listener:
    """A named broker listener and the security protocol it speaks.

    ``proxied``: the broker binds the listener on one port but advertises another one of the
    same host (:meth:`NodeLayout.advertised_port`), where a proxy such as Toxiproxy forwards to
    it: clients that follow the metadata then reach every broker through its proxy, while
    replication (the inter-broker listener) does not. Nothing listens on the advertised port
    until the proxy is started."""

    name: str = "PLAINTEXT"
    security_protocol: str = "PLAINTEXT"
    proxied: bool = False

    def __post_init__(self) -> None:
        if self.security_protocol not in _PROTOCOLS:
            raise ValueError(f"listener {self.name!r}: security protocol "
                             f"{self.security_protocol!r} is not one of {', '.join(_PROTOCOLS)}")
        if not self.name.replace("_", "").isalnum() or self.name.upper() != self.name:
            raise ValueError(f"listener name {self.name!r} must be upper-case letters, digits, '_'")


#: The KRaft controller listener every node has in addition to its client listeners.
CONTROLLER_LISTENER = Listener("CONTROLLER", "PLAINTEXT")


@dataclass(frozen=True)
class NodeLayout:
    """Where one node lives: its id, host, one port per listener name, and its data dir."""

    node_id: int
    host: str
    ports: Mapping[str, int]
    data_dir: Path

    def address(self, listener: str) -> str:
        """Where clients reach ``listener``: the proxy's port for a proxied listener."""
        return f"{self.host}:{self.advertised_port(listener)}"

    def bind_address(self, listener: str) -> str:
        """Where the broker itself listens (a proxied listener's upstream)."""
        return f"{self.host}:{self.ports[listener]}"

    def advertised_port(self, listener: str) -> int:
        return self.ports.get(advertised_port_name(listener), self.ports[listener])


def advertised_port_name(listener: str) -> str:
    """The key of a proxied listener's advertised port in :attr:`NodeLayout.ports`."""
    return f"{listener}@ADVERTISED"


def default_broker_config(brokers: int, mode: str = "kraft") -> dict[str, ConfigValue]:
    """Settings for short-lived test clusters of ``brokers`` nodes.

    Internal topics replicate as widely as the cluster allows; topics are never created by a
    client looking at them (a test that mistypes a topic fails instead of creating one); group
    joins and broker fencing are fast so tests do not sit in timeouts. ``mode`` "zookeeper"
    swaps KRaft's broker fencing settings for ZooKeeper's session timeout.
    """
    rf = min(3, brokers)
    min_isr = min(2, brokers)
    config: dict[str, ConfigValue] = {
        "auto.create.topics.enable": False,
        "default.replication.factor": rf,
        "num.partitions": 1,
        "offsets.topic.replication.factor": rf,
        "offsets.topic.num.partitions": 5,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": 5,
        "group.initial.rebalance.delay.ms": 0,
        # a 2-core machine runs several nodes: fewer threads than the production defaults
        "num.network.threads": 2,
        "num.io.threads": 4,
        "background.threads": 4,
        "log.cleaner.threads": 1,
    }
    if mode == "zookeeper":
        # a killed broker loses its ZooKeeper session (and leadership) after 6 s, as a KRaft
        # broker is fenced after broker.session.timeout.ms below
        config["zookeeper.session.timeout.ms"] = 6000
        return config
    config.update({
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": min_isr,
        # a killed or paused broker is fenced (and loses leadership) after 6 s instead of 9 s
        "broker.heartbeat.interval.ms": 1000,
        "broker.session.timeout.ms": 6000,
    })
    return config


def node_properties(
    node: NodeLayout,
    voters: Sequence[NodeLayout],
    listeners: Sequence[Listener],
    *,
    inter_broker_listener: str,
    overrides: Mapping[str, ConfigValue] | None = None,
    roles: str = "broker,controller",
) -> dict[str, str]:
    """The complete ``server.properties`` of one node: combined broker + controller (the
    default), or ``roles="broker"`` / ``"controller"`` for a cluster whose controller quorum
    runs apart from its brokers."""
    ctl = CONTROLLER_LISTENER.name
    all_listeners = [*listeners, CONTROLLER_LISTENER]
    own = {"broker": listeners, "controller": [CONTROLLER_LISTENER]}.get(roles, all_listeners)
    props: dict[str, ConfigValue] = {
        "process.roles": roles,
        "node.id": node.node_id,
        "controller.quorum.voters": ",".join(
            f"{v.node_id}@{v.host}:{v.ports[ctl]}" for v in voters),
        "controller.listener.names": ctl,
        "listeners": ",".join(f"{lst.name}://{node.host}:{node.ports[lst.name]}"
                              for lst in own),
        "listener.security.protocol.map": ",".join(f"{lst.name}:{lst.security_protocol}"
                                                   for lst in all_listeners),
        "log.dirs": str(node.data_dir),
    }
    if roles != "controller":
        props["advertised.listeners"] = ",".join(
            f"{lst.name}://{node.address(lst.name)}" for lst in listeners)
        props["inter.broker.listener.name"] = inter_broker_listener
    props.update(overrides or {})
    return {k: _render(v) for k, v in props.items()}


def zookeeper_broker_properties(
    node: NodeLayout,
    listeners: Sequence[Listener],
    *,
    zookeeper_connect: str,
    inter_broker_listener: str,
    overrides: Mapping[str, ConfigValue] | None = None,
) -> dict[str, str]:
    """The ``server.properties`` of a ZooKeeper-mode broker (Kafka before 3.3): no
    ``process.roles``, no controller listener; one broker is elected controller through
    ZooKeeper."""
    props: dict[str, ConfigValue] = {
        "broker.id": node.node_id,
        "zookeeper.connect": zookeeper_connect,
        "listeners": ",".join(f"{lst.name}://{node.host}:{node.ports[lst.name]}"
                              for lst in listeners),
        "advertised.listeners": ",".join(f"{lst.name}://{node.address(lst.name)}"
                                         for lst in listeners),
        "listener.security.protocol.map": ",".join(f"{lst.name}:{lst.security_protocol}"
                                                   for lst in listeners),
        "inter.broker.listener.name": inter_broker_listener,
        "log.dirs": str(node.data_dir),
    }
    props.update(overrides or {})
    return {k: _render(v) for k, v in props.items()}


def zookeeper_server_properties(node: NodeLayout, port_name: str) -> dict[str, str]:
    """A standalone ZooKeeper server for one test cluster: a short tick so that the brokers'
    6 s session timeout is allowed (ZooKeeper caps it at 20 ticks, floors it at 2), no admin
    HTTP server (it would take port 8080)."""
    props: dict[str, ConfigValue] = {
        "dataDir": str(node.data_dir),
        "clientPort": node.ports[port_name],
        "clientPortAddress": node.host,
        "tickTime": 500,
        "maxClientCnxns": 0,
        "admin.enableServer": False,
    }
    return {k: _render(v) for k, v in props.items()}


def _render(value: ConfigValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _escape(text: str, *, key: bool) -> str:
    # java.util.Properties syntax: backslash escapes, and in keys also the separators
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    if key:
        out = out.replace("=", "\\=").replace(":", "\\:").replace(" ", "\\ ")
    elif out.startswith(" "):
        out = "\\" + out
    return out


def write_properties(path: Path, props: Mapping[str, str]) -> None:
    lines = [f"{_escape(k, key=True)}={_escape(v, key=False)}" for k, v in sorted(props.items())]
    path.write_text("# written by kengine.localkafka\n" + "\n".join(lines) + "\n")
