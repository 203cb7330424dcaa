"""The producer against a real, secured Kafka started for this module: TLS with PEM key stores
and client certificates (made by openssl in this run), SASL PLAIN / SCRAM-SHA-256 /
SCRAM-SHA-512 (credentials written by Kafka's own ``kafka-storage format --add-scram``) and
OAUTHBEARER (Kafka's default validator, unsigned JWTs), and the StandardAuthorizer with ACLs:

* ``User:alice`` and the certificate principal ``User:client`` may write ``orders-*``;
* alice may only DESCRIBE ``payments-described``; nobody has any ACL on ``secret-*``;
* ``User:bob`` authenticates but has no ACL at all.

Writes are read back over the PLAINTEXT listener (a super user) with confluent-kafka."""
from __future__ import annotations

import base64
import json
import logging
import time
import uuid

import pytest

from kengine import Producer
from kengine.admin import AdminClient
from kengine.errors import (
    AuthenticationError,
    GroupAuthorizationFailedError,
    SaslAuthenticationFailedError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailedError,
)
from kengine.localkafka import Acl, BrokerTls, KafkaCluster, SecureBrokers
from tests.support.readback import read_all

USERS = {"alice": "alice-secret", "bob": "bob-secret"}
REAUTH_MS = 5000


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory, certs):
    """One node with PLAINTEXT (admin), SSL, SASL_PLAINTEXT and SASL_SSL listeners."""
    secure = SecureBrokers(tls=BrokerTls(certs.broker_keystore, certs.ca), plain_users=USERS,
                           scram_users=USERS, oauthbearer=True, reauth_ms=REAUTH_MS)
    workdir = tmp_path_factory.mktemp("secure-kafka")
    with KafkaCluster(1, workdir, **secure.cluster_args()) as cluster:
        for name in ("orders-a", "orders-b", "orders-dlq", "payments-described", "secret-x"):
            cluster.create_topic(name, partitions=2)
        cluster.create_acls([
            Acl("User:alice", "WRITE", "TOPIC", "orders-", "PREFIXED"),
            Acl("User:client", "WRITE", "TOPIC", "orders-", "PREFIXED"),
            Acl("User:alice", "DESCRIBE", "TOPIC", "payments-described"),
            # transactions of "orders-txn-*" are allowed; no group is
            Acl("User:alice", "WRITE", "TRANSACTIONAL_ID", "orders-txn-", "PREFIXED"),
            Acl("User:alice", "DESCRIBE", "TRANSACTIONAL_ID", "orders-txn-", "PREFIXED"),
        ])
        yield cluster


def admin_read(cluster, topic):
    return read_all(cluster.bootstrap_servers_for("PLAINTEXT"), topic)


def sasl_producer(cluster, listener="SASL_SSL", certs=None, **settings):
    settings.setdefault("sasl_mechanism", "SCRAM-SHA-512")
    if "sasl_jaas_config" not in settings and "sasl_oauthbearer_token_callback" not in settings:
        settings.setdefault("sasl_username", "alice")
        settings.setdefault("sasl_password", USERS["alice"])
    if listener == "SASL_SSL":
        settings.setdefault("ssl_truststore_location", str(certs.ca))
    settings.setdefault("enable_idempotence", False)
    settings.setdefault("max_block_ms", 30_000)
    return Producer(bootstrap_servers=cluster.bootstrap_servers_for(listener),
                    security_protocol=listener, **settings)


def unsecured_jwt(subject: str) -> str:
    """What Kafka's default OAUTHBEARER validator accepts: a JWT with alg "none"."""
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    now = int(time.time())
    return f"{part({'alg': 'none'})}.{part({'sub': subject, 'iat': now, 'exp': now + 3600})}."


def tag() -> bytes:
    return uuid.uuid4().hex.encode()


@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_an_allowed_principal_writes_orders(secure_kafka, certs, listener, mechanism):
    marker = tag()
    with sasl_producer(secure_kafka, listener, certs, sasl_mechanism=mechanism) as p:
        futures = [p.send("orders-a", marker + b"-%d" % i, key=b"%d" % i) for i in range(50)]
        assert all(f.result(30).offset >= 0 for f in futures)
    got = [r.value for r in admin_read(secure_kafka, "orders-a") if r.value.startswith(marker)]
    assert sorted(got) == sorted(marker + b"-%d" % i for i in range(50))


def test_the_readme_sasl_ssl_example(secure_kafka, certs):
    # the README's example, with this cluster's address and files
    producer = Producer({
        "bootstrap.servers": secure_kafka.bootstrap_servers_for("SASL_SSL"),
        "security.protocol": "SASL_SSL",
        "ssl.truststore.location": str(certs.ca),
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required '
                            'username="alice" password="alice-secret";',
    })
    with producer:
        metadata = producer.send("orders-b", b"from the README").result(30)
    assert metadata.topic == "orders-b"
    assert b"from the README" in [r.value for r in admin_read(secure_kafka, "orders-b")]


def test_oauthbearer_token_from_a_callback(secure_kafka, certs):
    calls = []

    def token():
        calls.append(1)
        return unsecured_jwt("alice")

    marker = tag()
    with sasl_producer(secure_kafka, "SASL_SSL", certs, sasl_mechanism="OAUTHBEARER",
                       sasl_oauthbearer_token_callback=token) as p:
        p.send("orders-a", marker).result(30)
    assert calls and marker in [r.value for r in admin_read(secure_kafka, "orders-a")]


def test_a_rejected_oauthbearer_token_is_fatal_and_says_why(secure_kafka, certs):
    p = sasl_producer(secure_kafka, "SASL_PLAINTEXT", sasl_mechanism="OAUTHBEARER",
                      sasl_oauthbearer_token_callback=lambda: "not.a.jwt")
    with p, pytest.raises(SaslAuthenticationFailedError, match="invalid_token"):
        p.send("orders-a", b"x")


def test_mutual_tls_principal_from_the_client_certificate(secure_kafka, certs):
    marker = tag()
    with Producer(bootstrap_servers=secure_kafka.bootstrap_servers_for("SSL"),
                  security_protocol="SSL", ssl_truststore_location=str(certs.ca),
                  ssl_keystore_location=str(certs.client_keystore),
                  enable_idempotence=False) as p:
        p.send("orders-b", marker).result(30)
    assert marker in [r.value for r in admin_read(secure_kafka, "orders-b")]


def test_tls_without_a_client_certificate_is_refused_at_once(secure_kafka, certs):
    with Producer(bootstrap_servers=secure_kafka.bootstrap_servers_for("SSL"),
                  security_protocol="SSL", ssl_truststore_location=str(certs.ca),
                  max_block_ms=60_000) as p:
        t0 = time.monotonic()
        with pytest.raises(AuthenticationError, match="TLS"):
            p.send("orders-a", b"x")
        assert time.monotonic() - t0 < 45


def test_wrong_password_fails_fast_and_for_good(secure_kafka, certs):
    with sasl_producer(secure_kafka, "SASL_SSL", certs, sasl_password="not-alices",
                       max_block_ms=60_000) as p:
        t0 = time.monotonic()
        with pytest.raises(SaslAuthenticationFailedError) as info:
            p.send("orders-a", b"x")
        assert time.monotonic() - t0 < 45
        assert "SCRAM-SHA-512 authentication to broker 127.0.0.1" in str(info.value)
        assert "not-alices" not in str(info.value)
        with pytest.raises(SaslAuthenticationFailedError):
            p.send("orders-a", b"again")


def test_writing_a_topic_without_any_acl_fails_at_once(secure_kafka, certs, caplog):
    with (
        caplog.at_level(logging.INFO, logger="kengine"),
        sasl_producer(secure_kafka, "SASL_SSL", certs, max_block_ms=60_000) as p,
    ):
        t0 = time.monotonic()
        with pytest.raises(TopicAuthorizationFailedError, match="secret-x"):
            p.send("secret-x", b"x")
        assert time.monotonic() - t0 < 45
    assert admin_read(secure_kafka, "secret-x") == []


def test_writing_a_topic_without_write_permission_fails_without_retries(secure_kafka, certs,
                                                                        caplog):
    with (
        caplog.at_level(logging.INFO, logger="kengine.sender"),
        sasl_producer(secure_kafka, "SASL_SSL", certs, delivery_timeout_ms=120_000) as p,
    ):
        future = p.send("payments-described", b"x")        # metadata is allowed ...
        error = future.exception(timeout=60)                # ... the write is not
        assert isinstance(error, TopicAuthorizationFailedError)
        assert "TOPIC_AUTHORIZATION_FAILED (29)" in str(error)
        assert "payments-described" in str(error)
    assert not [r for r in caplog.records if "retrying" in r.message]
    assert admin_read(secure_kafka, "payments-described") == []


def test_a_principal_without_acls_cannot_even_see_orders(secure_kafka, certs):
    p = sasl_producer(secure_kafka, "SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                      sasl_username="bob", sasl_password=USERS["bob"])
    with p, pytest.raises(TopicAuthorizationFailedError):
        p.send("orders-a", b"bob was here")


def test_denied_records_are_dead_lettered_to_an_allowed_topic(secure_kafka, certs):
    letters = []
    marker = tag()
    with sasl_producer(secure_kafka, "SASL_SSL", certs, dead_letter_topic="orders-dlq",
                       on_dead_letter=letters.append) as p:
        assert isinstance(p.send("payments-described", marker).exception(timeout=60),
                          TopicAuthorizationFailedError)
        p.flush(60)
    (copy,) = [r for r in admin_read(secure_kafka, "orders-dlq") if r.value == marker]
    headers = dict(copy.headers)
    assert headers["kengine.dlq.topic"] == b"payments-described"
    assert headers["kengine.dlq.error.name"] == b"TOPIC_AUTHORIZATION_FAILED"
    assert len(letters) == 1 and letters[0].delivered


def test_sessions_are_renewed_before_the_broker_expires_them(secure_kafka, certs, caplog):
    marker = tag()
    futures = []
    with (
        caplog.at_level(logging.DEBUG, logger="kengine"),
        sasl_producer(secure_kafka, "SASL_PLAINTEXT", sasl_mechanism="PLAIN", linger_ms=0) as p,
    ):
        deadline = time.monotonic() + 2.5 * REAUTH_MS / 1000
        while time.monotonic() < deadline:
            futures.append(p.send("orders-b", marker + b"-%d" % len(futures)))
            time.sleep(0.1)
        for f in futures:
            f.result(30)
    renewed = [r for r in caplog.records if "SASL session expires" in r.message]
    assert len(renewed) >= 2
    # no request was cut off by the broker (that would show as a retry)
    assert not [r for r in caplog.records if "retrying" in r.message]
    got = [r.value for r in admin_read(secure_kafka, "orders-b") if r.value.startswith(marker)]
    assert len(got) == len(futures)


def test_a_transactional_id_without_permission_is_refused_clearly(secure_kafka, certs):
    p = sasl_producer(secure_kafka, "SASL_SSL", certs, transactional_id="orders-writer-1",
                      enable_idempotence=True)
    with p, pytest.raises(TransactionalIdAuthorizationFailedError,
                          match="TRANSACTIONAL_ID_AUTHORIZATION_FAILED") as info:
        p.init_transactions()
    # it names what was refused and the ACL it needs
    assert "not authorized to use transactional.id 'orders-writer-1'" in str(info.value)
    assert "WRITE and DESCRIBE on TransactionalId 'orders-writer-1'" in str(info.value)
    assert info.value.context == {"transactional_id": "orders-writer-1"}


def test_a_group_without_permission_is_named_in_the_transaction_error(secure_kafka, certs):
    txn_id = f"orders-txn-{tag().decode()}"
    p = sasl_producer(secure_kafka, "SASL_SSL", certs, transactional_id=txn_id,
                      enable_idempotence=True)
    with p:
        p.init_transactions()
        p.begin_transaction()
        p.send("orders-a", b"x")
        with pytest.raises(GroupAuthorizationFailedError) as info:
            p.send_offsets_to_transaction({("orders-a", 0): 1}, "denied-group")
        assert "consumer group 'denied-group'" in str(info.value)
        assert f"transactional.id {txn_id!r}" in str(info.value)
        assert "READ on Group 'denied-group'" in str(info.value)
        p.abort_transaction()   # abortable: the producer goes on


def test_the_admin_client_connects_with_the_producer_security_settings(secure_kafka, certs):
    settings = dict(bootstrap_servers=secure_kafka.bootstrap_servers_for("SASL_SSL"),
                    security_protocol="SASL_SSL", ssl_truststore_location=str(certs.ca),
                    sasl_mechanism="SCRAM-SHA-256", sasl_username="alice",
                    sasl_password=USERS["alice"])
    admin = AdminClient(**settings)
    try:
        # alice may see the orders topics (she has WRITE on them) but not secret-x
        topics = admin.list_topics(timeout=30)
        assert {"orders-a", "orders-b"} <= set(topics)
        assert "secret-x" not in topics
        assert admin.describe_cluster(timeout=30).brokers
    finally:
        admin.close()
    denied = AdminClient(**{**settings, "sasl_password": "wrong"})
    try:
        with pytest.raises(SaslAuthenticationFailedError):
            denied.list_topics(timeout=30)
    finally:
        denied.close()
