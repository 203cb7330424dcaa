"""TLS between a producer and the fake broker (Python's ssl on the server side, certificates
made by openssl in this run): trust, host name verification, mutual TLS, encrypted keys,
version mismatches, and the wrong protocol on either side. Certificate and protocol refusals
are fatal and fast; a plaintext/TLS mix-up is a network failure whose message says so."""
from __future__ import annotations

import ssl
import time

import pytest

from kengine import Producer
from kengine.errors import AuthenticationError, KafkaTimeoutError
from tests.support.fake_broker import FakeBroker


def server_context(keystore, *, client_ca=None, max_version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(keystore)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def tls_producer(broker, certs, **settings):
    settings.setdefault("ssl_truststore_location", str(certs.ca))
    settings.setdefault("max_block_ms", 30_000)
    return Producer(bootstrap_servers=broker.bootstrap_servers, security_protocol="SSL",
                    enable_idempotence=False, linger_ms=0, **settings)


def fails_fast(producer, error_type, *fragments):
    t0 = time.monotonic()
    with pytest.raises(error_type) as info:
        producer.send("t", b"x")
    assert time.monotonic() - t0 < 25   # well under max.block.ms: no retry loop
    for fragment in fragments:
        assert fragment in str(info.value)
    with pytest.raises(error_type):     # and it stays that way
        producer.send("t", b"y")
    return info.value


def test_tls_with_a_trusted_ca(certs):
    with FakeBroker({"t": 1}, ssl_context=server_context(certs.broker_keystore)) as broker:
        with tls_producer(broker, certs) as p:
            assert p.send("t", b"secret").result(20).offset == 0
        assert broker.values("t") == [b"secret"]


def test_a_broker_signed_by_an_unknown_ca_is_refused(certs):
    with FakeBroker({"t": 1}, ssl_context=server_context(certs.rogue_broker_keystore)) as broker:
        with tls_producer(broker, certs) as p:
            fails_fast(p, AuthenticationError, "was rejected", "ssl.truststore.location")
        assert broker.values("t") == []


def test_host_names_are_verified_unless_identification_is_off(certs):
    ctx = server_context(certs.misnamed_broker_keystore)
    with FakeBroker({"t": 1}, ssl_context=ctx) as broker:
        with tls_producer(broker, certs) as p:
            fails_fast(p, AuthenticationError, "127.0.0.1",
                       "ssl.endpoint.identification.algorithm")
        with tls_producer(broker, certs, ssl_endpoint_identification_algorithm="") as p:
            assert p.send("t", b"named elsewhere").result(20).offset == 0


def test_mutual_tls(certs):
    ctx = server_context(certs.broker_keystore, client_ca=certs.ca)
    with FakeBroker({"t": 1}, ssl_context=ctx) as broker:
        with tls_producer(broker, certs) as p:                  # no client certificate
            fails_fast(p, AuthenticationError, "ssl.keystore.location")
        with tls_producer(broker, certs,
                          ssl_keystore_location=str(certs.rogue_client_keystore)) as p:
            fails_fast(p, AuthenticationError)
        with tls_producer(broker, certs, ssl_keystore_location=str(certs.client_keystore)) as p:
            assert p.send("t", b"mtls").result(20).offset == 0
        with tls_producer(broker, certs,
                          ssl_keystore_certificate_chain=certs.client_cert.read_text(),
                          ssl_keystore_key=certs.client_key_encrypted.read_text(),
                          ssl_key_password=certs.key_password) as p:
            assert p.send("t", b"encrypted key").result(20).offset == 1


def test_no_common_tls_version_is_fatal(certs):
    ctx = server_context(certs.broker_keystore, max_version=ssl.TLSVersion.TLSv1_2)
    with FakeBroker({"t": 1}, ssl_context=ctx) as broker:
        with tls_producer(broker, certs, ssl_enabled_protocols="TLSv1.3") as p:
            fails_fast(p, AuthenticationError, "ssl.enabled.protocols")
        with tls_producer(broker, certs) as p:                  # 1.2 and 1.3 offered
            assert p.send("t", b"tls 1.2").result(20).offset == 0


def test_tls_to_a_plaintext_port_times_out_saying_why(certs):
    with FakeBroker({"t": 1}) as broker:
        with (
            tls_producer(broker, certs, max_block_ms=2000, reconnect_backoff_max_ms=200) as p,
            pytest.raises(KafkaTimeoutError) as info,
        ):
            p.send("t", b"x")
        message = str(info.value)
        assert "max.block.ms" in message and "is it a TLS listener?" in message


def test_plaintext_to_a_tls_port_is_retried_until_max_block_ms(certs):
    with FakeBroker({"t": 1}, ssl_context=server_context(certs.broker_keystore)) as broker:
        p = Producer(bootstrap_servers=broker.bootstrap_servers, max_block_ms=2000,
                     reconnect_backoff_max_ms=200)
        with p, pytest.raises(KafkaTimeoutError, match="last connection error"):
            p.send("t", b"x")
