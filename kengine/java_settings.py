"""Java producer properties in kengine's settings: what a ``producer.properties`` written for
Kafka's Java client means here.

Most Java names are kengine's own names (``kengine.config.SETTINGS``). This module covers the
rest: Java property names, and Java class names as values, that map onto a kengine setting
(``partitioner.class``, the built-in serializers), and the Java-only settings that can mean
nothing in Python: those are refused with a message saying so and what to do instead, rather
than as an unknown (misspelt) key.
"""
from __future__ import annotations

from typing import Any

from .errors import ConfigError

__all__ = ["JAVA_ONLY", "translate"]

_PRODUCER = "org.apache.kafka.clients.producer."
_SERDE = "org.apache.kafka.common.serialization."

#: partitioner.class values naming Java's built-ins: kengine's partitioner, and the
#: settings that make it behave the same
_PARTITIONERS: dict[str, dict[str, Any]] = {
    _PRODUCER + "internals.DefaultPartitioner": {"partitioner": "default"},
    _PRODUCER + "RoundRobinPartitioner": {"partitioner": "round_robin"},
    # deprecated in Java 3.3: sticky placement that ignores keys
    _PRODUCER + "UniformStickyPartitioner": {"partitioner": "default",
                                             "partitioner.ignore.keys": True},
}

#: Java serializers whose output is kengine's built-in one
_SERIALIZERS = {
    _SERDE + "ByteArraySerializer": "bytes",
    _SERDE + "ByteBufferSerializer": "bytes",
    _SERDE + "BytesSerializer": "bytes",
    _SERDE + "StringSerializer": "str",
}

_CLASS_NOT_HERE = ("a Java class cannot run in kengine")

#: Java-only settings and why they mean nothing here (with what to do instead).
JAVA_ONLY: dict[str, str] = {
    "metric.reporters": "Java MetricsReporter classes; read producer.metrics() or register "
                        "kengine.prometheus",
    "metrics.num.samples": "Java's metrics sampling; kengine's rates cover the last 30-60 s",
    "metrics.sample.window.ms": "Java's metrics sampling; kengine's rates cover the last 30-60 s",
    "metrics.recording.level": "Java's metrics recording level; kengine records every metric",
    "auto.include.jmx.reporter": "JMX exists only in the JVM",
    "enable.metrics.push": "KIP-714 client metrics push is not implemented by kengine",
    "security.providers": "Java security providers; TLS uses Python's ssl module (OpenSSL)",
    "ssl.provider": "a Java security provider; TLS uses Python's ssl module (OpenSSL)",
    "ssl.engine.factory.class": "a Java SSLEngine factory; give an ssl.SSLContext as "
                                "ssl.context instead",
    "ssl.keymanager.algorithm": "a Java KeyManagerFactory algorithm; OpenSSL needs none",
    "ssl.trustmanager.algorithm": "a Java TrustManagerFactory algorithm; OpenSSL needs none",
    "ssl.secure.random.implementation": "a Java SecureRandom; OpenSSL seeds itself",
    "sasl.login.class": "a Java JAAS Login class; kengine reads sasl.jaas.config itself",
    "sasl.login.callback.handler.class": "a Java callback handler; for OAUTHBEARER give "
                                         "sasl.oauthbearer.token.callback",
    "sasl.client.callback.handler.class": "a Java callback handler; credentials go in "
                                          "sasl.jaas.config or sasl.username/sasl.password",
    "sasl.kerberos.service.name": "GSSAPI (Kerberos) is not supported by kengine",
    "sasl.kerberos.kinit.cmd": "GSSAPI (Kerberos) is not supported by kengine",
    "sasl.kerberos.min.time.before.relogin": "GSSAPI (Kerberos) is not supported by kengine",
    "sasl.kerberos.ticket.renew.jitter": "GSSAPI (Kerberos) is not supported by kengine",
    "sasl.kerberos.ticket.renew.window.factor": "GSSAPI (Kerberos) is not supported by kengine",
    "sasl.oauthbearer.token.endpoint.url": "Java's built-in OAuth client; fetch tokens in "
                                           "sasl.oauthbearer.token.callback",
    "sasl.oauthbearer.jwks.endpoint.url": "Java's built-in OAuth client; fetch tokens in "
                                          "sasl.oauthbearer.token.callback",
    "sasl.oauthbearer.scope.claim.name": "Java's built-in OAuth client; fetch tokens in "
                                         "sasl.oauthbearer.token.callback",
    "sasl.oauthbearer.sub.claim.name": "Java's built-in OAuth client; fetch tokens in "
                                       "sasl.oauthbearer.token.callback",
    "sasl.login.refresh.window.factor": "Java's login refresh; the token callback is called "
                                        "for every new connection",
    "sasl.login.refresh.window.jitter": "Java's login refresh; the token callback is called "
                                        "for every new connection",
    "sasl.login.refresh.min.period.seconds": "Java's login refresh; the token callback is "
                                             "called for every new connection",
    "sasl.login.refresh.buffer.seconds": "Java's login refresh; the token callback is called "
                                         "for every new connection",
}


def _looks_like_java_class(value: Any) -> bool:
    if not isinstance(value, str) or ":" in value or "." not in value:
        return False
    parts = value.strip().split(".")
    return len(parts) >= 3 and parts[-1][:1].isupper() and all(p.isidentifier() for p in parts)


def translate(name: str, value: Any) -> dict[str, Any] | None:
    """The kengine settings a Java property (by its dotted ``name``) stands for, or None when
    it is no Java-only property (the caller treats it as usual). Raises
    :class:`~kengine.errors.ConfigError` for a Java-only setting or a Java class that cannot
    run here, saying why."""
    if name in JAVA_ONLY:
        raise ConfigError(name, value, f"not set: it is a Java client setting with no meaning "
                                       f"in kengine ({JAVA_ONLY[name]})")
    if name == "partitioner.class":
        if value is None or value == "":
            return {}
        if isinstance(value, str) and value.strip() in _PARTITIONERS:
            return dict(_PARTITIONERS[value.strip()])
        if _looks_like_java_class(value):
            raise ConfigError(name, value, f"one of Java's built-in partitioners "
                                           f"({', '.join(sorted(_PARTITIONERS))}): "
                                           f"{_CLASS_NOT_HERE}; write it as a kengine "
                                           f"partitioner plugin and set partitioner")
        return {"partitioner": value}
    if name in ("key.serializer", "value.serializer") and _looks_like_java_class(value):
        if value.strip() in _SERIALIZERS:
            return {name: _SERIALIZERS[value.strip()]}
        raise ConfigError(name, value, f"one of Java's {', '.join(sorted(_SERIALIZERS))}, or "
                                       f"bytes, str, json, a callable: {_CLASS_NOT_HERE}")
    return None
