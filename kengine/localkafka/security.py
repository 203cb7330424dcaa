"""Secure listeners for local clusters: TLS (PEM key stores, KIP-651), SASL PLAIN / SCRAM /
OAUTHBEARER, and the StandardAuthorizer with ACLs.

    secure = SecureBrokers(tls=BrokerTls(keystore, truststore), plain_users={"alice": "pw"},
                           scram_users={"alice": "pw"}, super_users=("User:admin",))
    with KafkaCluster(1, **secure.cluster_args()) as cluster:
        cluster.create_acls([Acl("User:alice", "WRITE", "TOPIC", "orders-", "PREFIXED")])
        cluster.bootstrap_servers_for("SASL_SSL")

The cluster keeps a PLAINTEXT listener first: it carries inter-broker and controller traffic,
the launcher's readiness probe and topic/ACL administration, and its principal (ANONYMOUS) is a
super user. Clients under test use the other listeners: ``SSL`` (client certificates required,
principal = the certificate's CN), ``SASL_PLAINTEXT`` and ``SASL_SSL`` (principal = the SASL
user). SCRAM credentials are written by Kafka's own ``kafka-storage format --add-scram``.
OAUTHBEARER uses Kafka's default validator, which accepts *unsigned* JWTs: tests only.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .config import ConfigValue, Listener

__all__ = ["Acl", "BrokerTls", "SecureBrokers"]

_SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


@dataclass(frozen=True)
class BrokerTls:
    """The brokers' TLS identity and the CAs they trust for client certificates (PEM)."""

    keystore: Path             #: private key (PKCS#8) followed by its certificate chain
    truststore: Path           #: CA certificates
    key_password: str | None = None
    #: the SSL listener's ssl.client.auth: "required" (mutual TLS), "requested" or "none"
    client_auth: str = "required"


@dataclass(frozen=True)
class Acl:
    """One ACL binding: ``principal`` may (or may not) do ``operation`` on a resource."""

    principal: str             #: "User:alice"
    operation: str             #: WRITE, READ, DESCRIBE, IDEMPOTENT_WRITE, ALL...
    resource_type: str         #: TOPIC, GROUP, TRANSACTIONAL_ID, BROKER (the cluster)
    name: str                  #: resource name, or prefix with PREFIXED; "kafka-cluster"
    pattern: str = "LITERAL"   #: LITERAL or PREFIXED
    permission: str = "ALLOW"  #: ALLOW or DENY
    host: str = "*"


@dataclass(frozen=True)
class SecureBrokers:
    """Listeners, broker settings and storage-format arguments for a secured cluster."""

    tls: BrokerTls | None = None
    plain_users: Mapping[str, str] = field(default_factory=dict)
    scram_users: Mapping[str, str] = field(default_factory=dict)
    oauthbearer: bool = False
    authorizer: bool = True
    #: principals allowed everything (ANONYMOUS, the PLAINTEXT listener's, is always added)
    super_users: Sequence[str] = ()
    #: SASL session lifetime (KIP-368) on the SASL listeners, None: unlimited
    reauth_ms: int | None = None

    @property
    def sasl_mechanisms(self) -> tuple[str, ...]:
        return ((("PLAIN",) if self.plain_users else ())
                + (_SCRAM_MECHANISMS if self.scram_users else ())
                + (("OAUTHBEARER",) if self.oauthbearer else ()))

    def listeners(self) -> list[Listener]:
        out = [Listener("PLAINTEXT", "PLAINTEXT")]
        if self.tls is not None:
            out.append(Listener("SSL", "SSL"))
        if self.sasl_mechanisms:
            out.append(Listener("SASL_PLAINTEXT", "SASL_PLAINTEXT"))
            if self.tls is not None:
                out.append(Listener("SASL_SSL", "SASL_SSL"))
        return out

    def broker_config(self) -> dict[str, ConfigValue]:
        config: dict[str, ConfigValue] = {}
        if self.authorizer:
            config["authorizer.class.name"] = _AUTHORIZER
            config["super.users"] = ";".join(dict.fromkeys(["User:ANONYMOUS",
                                                            *self.super_users]))
            config["allow.everyone.if.no.acl.found"] = False
        if self.tls is not None:
            config.update({
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": str(self.tls.keystore),
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": str(self.tls.truststore),
                "listener.name.ssl.ssl.client.auth": self.tls.client_auth,
                # the principal of a client certificate is its CN: User:<CN>
                # wherever it sits in the (RFC 2253, most specific last) distinguished name
                "ssl.principal.mapping.rules": "RULE:^(?:.*,)?CN=([^,]+)(?:,.*)?$/$1/,DEFAULT",
            })
            if self.tls.key_password is not None:
                config["ssl.key.password"] = self.tls.key_password
        mechanisms = self.sasl_mechanisms
        if mechanisms:
            config["sasl.enabled.mechanisms"] = ",".join(mechanisms)
            for listener in self.listeners():
                if not listener.security_protocol.startswith("SASL_"):
                    continue
                prefix = f"listener.name.{listener.name.lower()}."
                for mechanism in mechanisms:
                    config[f"{prefix}{mechanism.lower()}.sasl.jaas.config"] = \
                        self._server_jaas(mechanism)
                if self.reauth_ms is not None:
                    config[f"{prefix}connections.max.reauth.ms"] = self.reauth_ms
        return config

    def _server_jaas(self, mechanism: str) -> str:
        if mechanism == "PLAIN":
            users = " ".join(f'user_{_jaas_name(u)}="{_jaas_quote(p)}"'
                             for u, p in self.plain_users.items())
            return f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};"
        if mechanism in _SCRAM_MECHANISMS:
            return "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"

    def format_args(self) -> list[str]:
        """``kafka-storage format`` arguments writing the SCRAM credentials."""
        args = []
        for user, password in self.scram_users.items():
            if any(c in user + password for c in ",=[]"):
                raise ConfigError("scram_users", user,
                                  "names and passwords without ',', '=', '[' or ']' (the "
                                  "--add-scram syntax cannot quote them)")
            for mechanism in _SCRAM_MECHANISMS:
                args += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
        return args

    def cluster_args(self, broker_config: Mapping[str, ConfigValue] | None = None
                     ) -> dict[str, Any]:
        """Keyword arguments for :class:`~kengine.localkafka.KafkaCluster`."""
        return {"listeners": self.listeners(),
                "broker_config": {**self.broker_config(), **(broker_config or {})},
                "format_args": self.format_args()}


def _jaas_name(user: str) -> str:
    if not user.replace("-", "").replace("_", "").isalnum():
        raise ConfigError("plain_users", user, "user names of letters, digits, '-' and '_'")
    return user


def _jaas_quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
