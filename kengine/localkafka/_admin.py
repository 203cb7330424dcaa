"""Topic administration for the launcher, through kengine's own admin client (no third-party
Kafka client: starting a cluster and creating topics need only kengine)."""
from __future__ import annotations

from collections.abc import Mapping

__all__ = ["create_partitions", "create_topic"]

_CLIENT_ID = "kengine-localkafka"


def create_topic(bootstrap: str, name: str, partitions: int, replication_factor: int,
                 config: Mapping[str, str], timeout: float) -> None:
    """CreateTopics; ``replication_factor`` -1 takes the broker's default."""
    # imported here: the compiled core is only needed once a topic is created
    from ..admin import AdminClient

    with AdminClient(bootstrap_servers=bootstrap, client_id=_CLIENT_ID) as admin:
        admin.create_topic(name, partitions, replication_factor, config, timeout=timeout)


def create_partitions(bootstrap: str, name: str, total: int, timeout: float) -> None:
    """CreatePartitions: grow ``name`` to ``total`` partitions."""
    from ..admin import AdminClient

    with AdminClient(bootstrap_servers=bootstrap, client_id=_CLIENT_ID) as admin:
        admin.create_partitions(name, total, timeout=timeout)
