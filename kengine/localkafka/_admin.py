"""Administration for the launcher. Topics go through kengine's own admin client (starting a
cluster and creating topics need no third-party Kafka client); ACLs, which only secure test
clusters need and kengine does not speak, go through confluent-kafka's AdminClient, imported
lazily."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import error_for_code
from .errors import LocalKafkaError, ToolMissingError

__all__ = ["create_acls", "create_partitions", "create_topic", "delete_topic", "describe_acls"]

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


def delete_topic(bootstrap: str, name: str, timeout: float) -> None:
    """DeleteTopics (kengine's admin client does not speak it: confluent-kafka's does)."""
    admin = _acl_admin_client(bootstrap, "deleting topics")
    _result(admin.delete_topics([name], operation_timeout=timeout)[name],
            f"deleting topic {name!r}", timeout)


def _acl_admin_client(bootstrap: str, what: str = "creating ACLs") -> Any:
    try:
        from confluent_kafka.admin import AdminClient
    except ImportError as e:
        raise ToolMissingError(
            f"{what} needs confluent-kafka: pip install 'kengine-kafka[test]' (or "
            "confluent-kafka)") from e
    # log_level 4: librdkafka's informational lines (queue purges on close) are noise here
    return AdminClient({"bootstrap.servers": bootstrap, "client.id": _CLIENT_ID,
                        "log_level": 4})


def _result(future: Any, what: str, timeout: float) -> None:
    from confluent_kafka import KafkaException

    try:
        future.result(timeout=timeout)
    except KafkaException as e:
        err = e.args[0]
        # positive codes are Kafka's own error codes; negative ones are librdkafka's
        if err.code() > 0:
            raise error_for_code(err.code(), f"{what}: {err.str()}") from e
        raise LocalKafkaError(f"{what}: {err.str()}") from e


def _binding(acl: Any) -> Any:
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    return AclBinding(ResourceType[acl.resource_type], acl.name,
                      ResourcePatternType[acl.pattern], acl.principal, acl.host,
                      AclOperation[acl.operation], AclPermissionType[acl.permission])


def create_acls(bootstrap: str, acls: Sequence[Any], timeout: float) -> None:
    """CreateAcls for :class:`~kengine.localkafka.security.Acl` values."""
    admin = _acl_admin_client(bootstrap)
    futures = admin.create_acls([_binding(a) for a in acls], request_timeout=timeout)
    for binding, future in futures.items():
        _result(future, f"creating ACL {binding}", timeout)


def describe_acls(bootstrap: str, acl: Any, timeout: float) -> int:
    """How many bindings the broker's authorizer has that match ``acl`` exactly."""
    from confluent_kafka.admin import AclBindingFilter  # type: ignore[attr-defined]

    b = _binding(acl)
    admin = _acl_admin_client(bootstrap)
    future = admin.describe_acls(
        AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host,
                         b.operation, b.permission_type), request_timeout=timeout)
    return len(future.result(timeout=timeout))
