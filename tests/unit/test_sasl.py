"""SASL without Kafka: sasl.jaas.config parsing, the PLAIN / SCRAM / OAUTHBEARER client messages
(SCRAM against RFC 7677's published exchange), hostile server messages, and the whole
handshake through a producer talking to the fake broker, including the fatal path: a failed
authentication fails pending records and makes later sends raise it at once."""
from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kengine import Producer
from kengine.errors import (
    AuthenticationError,
    ConfigError,
    SaslAuthenticationFailedError,
    UnsupportedSaslMechanismError,
)
from kengine.sasl import (
    OAuthBearerSession,
    PlainSession,
    ScramCache,
    ScramSession,
    parse_jaas_config,
)
from tests.support.fake_broker import SASL_AUTHENTICATE, FakeBroker

# ---------------------------------------------------------------- sasl.jaas.config


def test_jaas_config_in_javas_form():
    jaas = parse_jaas_config(
        'org.apache.kafka.common.security.scram.ScramLoginModule required\n'
        '    username="alice" password="p\\"a ss;=word" tokenauth=true;')
    assert jaas.login_module == "org.apache.kafka.common.security.scram.ScramLoginModule"
    assert jaas.mechanism_family == "SCRAM" and jaas.control_flag == "required"
    assert dict(jaas.options) == {"username": "alice", "password": 'p"a ss;=word',
                                  "tokenauth": "true"}
    assert "p\\\"a" not in repr(jaas) and "word" not in repr(jaas)   # options are not shown
    assert parse_jaas_config("PlainLoginModule required;").mechanism_family == "PLAIN"


@pytest.mark.parametrize("text,fragment", [
    ('PlainLoginModule required username="a" password="b"', "expected ';'"),
    ('PlainLoginModule username="a";', "expected a control flag"),
    ('PlainLoginModule required username "a";', "expected '='"),
    ('PlainLoginModule required username="a;', "unterminated quoted value"),
    ('PlainLoginModule required username="a"; PlainLoginModule required;', "exactly one"),
    ('com.sun.security.auth.module.Krb5LoginModule required;', "GSSAPI/Kerberos is not"),
    ('PlainLoginModule required user="a" user="b";', "given twice"),
])
def test_bad_jaas_config_says_what_and_where(text, fragment):
    with pytest.raises(ConfigError, match="sasl.jaas.config") as info:
        parse_jaas_config(text)
    assert fragment in str(info.value)


# ---------------------------------------------------------------- mechanisms


def test_plain_message():
    s = PlainSession("alice", "pässword")
    assert s.first_message() == b"\0alice\0p\xc3\xa4ssword"
    assert s.respond(b"") is None
    with pytest.raises(AuthenticationError, match="challenge"):
        s.respond(b"more?")


RFC7677 = {  # RFC 7677, section 3
    'nonce': "rOprNGfwEbeRWgbNEkqO",
    'server_first': b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                 b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    'client_final': b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                 b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    'server_final': b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
}


def rfc_session(**kw):
    return ScramSession("SCRAM-SHA-256", "user", "pencil", nonce=RFC7677["nonce"], **kw)


def test_scram_sha_256_matches_rfc_7677():
    s = rfc_session()
    assert s.first_message() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert s.respond(RFC7677["server_first"]) == RFC7677["client_final"]
    assert s.respond(RFC7677["server_final"]) is None


def test_scram_escapes_names_and_asks_for_delegation_tokens():
    s = ScramSession("SCRAM-SHA-512", "a=b,c", "x", nonce="N", token_auth=True)
    assert s.first_message() == b"n,,n=a=3Db=2Cc,r=N,tokenauth=true"


def test_scram_salted_password_is_computed_once_per_salt():
    cache = ScramCache()
    for _ in range(3):
        s = rfc_session(cache=cache)
        s.first_message()
        assert s.respond(RFC7677["server_first"]) == RFC7677["client_final"]
    assert len(cache._entries) == 1


@pytest.mark.parametrize("server_first,fragment", [
    (b"r=someoneElsesNonce,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "does not extend"),
    (b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "does not extend"),
    (b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1", "asks for 1 iterations"),
    (b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999", "asks for 99999999"),
    (b"r=rOprNGfwEbeRWgbNEkqOx,s=***,i=4096", "salt is not base64"),
    (b"m=required-ext,r=rOprNGfwEbeRWgbNEkqOx,s=AA==,i=4096", "extension"),
    (b"r=rOprNGfwEbeRWgbNEkqOx,i=4096", "lacks the nonce, salt"),
    (b"\xff\xfe", "not UTF-8"),
    (b"garbage", "malformed"),
])
def test_scram_refuses_a_hostile_server_first_message(server_first, fragment):
    s = rfc_session()
    s.first_message()
    with pytest.raises(AuthenticationError, match="SCRAM-SHA-256") as info:
        s.respond(server_first)
    assert fragment in str(info.value)


@pytest.mark.parametrize("server_final,fragment", [
    (b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "signature does not match"),
    (b"v=!!", "signature does not match"),
    (b"e=invalid-proof", "refused the proof: invalid-proof"),
])
def test_scram_checks_the_server_signature(server_final, fragment):
    s = rfc_session()
    s.first_message()
    s.respond(RFC7677["server_first"])
    with pytest.raises(AuthenticationError) as info:
        s.respond(server_final)
    assert fragment in str(info.value)


@settings(max_examples=300, deadline=None)
@given(first=st.binary(max_size=200), final=st.binary(max_size=120))
def test_scram_fuzzed_server_messages_only_raise_authentication_errors(first, final):
    s = rfc_session()
    s.first_message()
    try:
        s.respond(RFC7677["nonce"].encode().join([b"r=", first]) if first[:1] == b"x"
                  else first)
        s.respond(final)
    except AuthenticationError:
        pass


def test_oauthbearer_initial_response_is_rfc_7628():
    s = OAuthBearerSession(lambda: ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.",
                                    {"traceId": "abc 123"}))
    assert s.first_message() == (b"n,,\x01auth=Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9."
                                 b"\x01traceId=abc 123\x01\x01")
    assert s.respond(b"") is None
    assert OAuthBearerSession(lambda: "tok").first_message() == b"n,,\x01auth=Bearer tok\x01\x01"


@pytest.mark.parametrize("callback,fragment", [
    (lambda: "", "no usable token"),
    (lambda: "has space", "no usable token"),
    (lambda: None, "no usable token"),
    (lambda: ("tok", {"auth": "x"}), "extension 'auth'"),
    (lambda: ("tok", {"bad-name": "x"}), "extension 'bad-name'"),
    (lambda: 1 / 0, "raised ZeroDivisionError"),
])
def test_oauthbearer_bad_tokens_are_authentication_errors(callback, fragment):
    with pytest.raises(AuthenticationError) as info:
        OAuthBearerSession(callback).first_message()
    assert fragment in str(info.value)


def test_oauthbearer_acknowledges_the_brokers_error_message():
    s = OAuthBearerSession(lambda: "tok")
    s.first_message()
    assert s.respond(b'{"status":"invalid_token"}') == b"\x01"
    assert s.server_error == '{"status":"invalid_token"}'


# ---------------------------------------------------------------- through a producer


def plain_server(users):
    def script(mechanism, message, step):
        _, user, password = message.split(b"\0")
        if users.get(user.decode()) == password.decode():
            return 0, b"", None, True
        return 58, b"", "Authentication failed: Invalid username or password", True
    return script


def scram_server(user, password, *, forge_signature=False):
    """A SCRAM-SHA-256 server written from RFC 5802 for the fake broker."""
    salt, iterations = b"fake-broker-salt", 4096
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    state = {}

    def h(key, msg):
        return hmac.new(key, msg, "sha256").digest()

    def script(mechanism, message, step):
        if step == 0:
            bare = message[3:]                                # after "n,,"
            attrs = dict(p.split(b"=", 1) for p in bare.split(b","))
            assert attrs[b"n"].decode() == user
            nonce = attrs[b"r"] + b"-server-part"
            first = b"r=" + nonce + b",s=" + base64.b64encode(salt) + \
                b",i=" + str(iterations).encode()
            state[nonce] = (bare, first)    # connections authenticate concurrently
            return 0, first, None, False
        without_proof, _, proof = message.rpartition(b",p=")
        bare, first = state[without_proof.split(b",r=", 1)[1]]
        auth = b",".join((bare, first, without_proof))
        client_key = h(salted, b"Client Key")
        signature = h(hashlib.sha256(client_key).digest(), auth)
        expected = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        if base64.b64decode(proof) != expected:
            return 58, b"", ("Authentication failed during authentication due to invalid " \
                            "credentials with SASL mechanism SCRAM-SHA-256"), True
        signature = h(h(salted, b"Server Key"), auth)
        if forge_signature:
            signature = bytes(32)
        return 0, b"v=" + base64.b64encode(signature), None, True
    return script


def sasl_producer(broker, mechanism="PLAIN", **settings):
    settings.setdefault("sasl_username", "alice")
    settings.setdefault("sasl_password", "alice-secret")
    settings.setdefault("linger_ms", 0)
    settings.setdefault("max_block_ms", 20_000)
    return Producer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False,
                    security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism, **settings)


def test_plain_authenticates_and_produces():
    with FakeBroker({"t": 1}, sasl_mechanisms=("PLAIN",),
                    sasl=plain_server({"alice": "alice-secret"})) as broker:
        with sasl_producer(broker) as p:
            assert p.send("t", b"hello").result(20).offset == 0
        assert broker.values("t") == [b"hello"]


def test_scram_authenticates_against_an_rfc_server():
    with FakeBroker({"t": 1}, sasl_mechanisms=("SCRAM-SHA-256",),
                    sasl=scram_server("alice", "alice-secret")) as broker:
        with sasl_producer(broker, "SCRAM-SHA-256") as p:
            assert p.send("t", b"scram").result(20).offset == 0
        exchanges = broker.requests(SASL_AUTHENTICATE)
        # client-first and client-final on each connection (bootstrap, then the broker's id)
        assert len(exchanges) == 2 * len({s.connection for s in exchanges})


def test_a_broker_that_does_not_know_the_password_is_refused():
    with FakeBroker({"t": 1}, sasl_mechanisms=("SCRAM-SHA-256",),
                    sasl=scram_server("alice", "alice-secret", forge_signature=True)) as broker:
        with (
            sasl_producer(broker, "SCRAM-SHA-256") as p,
            pytest.raises(AuthenticationError, match="signature does not match"),
        ):
            p.send("t", b"x")
        assert broker.values("t") == []


def test_wrong_password_is_fatal_fails_pending_records_and_later_sends_at_once():
    with FakeBroker({"t": 1}, sasl_mechanisms=("PLAIN",),
                    sasl=plain_server({"alice": "alice-secret"})) as broker:
        with sasl_producer(broker, sasl_password="wrong", max_block_ms=60_000) as p:
            t0 = time.monotonic()
            with pytest.raises(SaslAuthenticationFailedError) as info:
                p.send("t", b"x")
            assert time.monotonic() - t0 < 30           # not max.block.ms
            message = str(info.value)
            assert "SASL PLAIN authentication to broker 127.0.0.1" in message
            assert "Invalid username or password" in message and "wrong" not in message
            with pytest.raises(SaslAuthenticationFailedError):
                p.send("t", b"y")
            with pytest.raises(SaslAuthenticationFailedError):
                p.send_many("t", [b"z"])
            acc = p._accumulator
            assert acc.closed and isinstance(acc.fatal_error, SaslAuthenticationFailedError)
        # one attempt, no endless reconnecting
        assert len(broker.requests(SASL_AUTHENTICATE)) == 1


def test_records_accepted_before_the_failure_fail_with_it():
    users = {"alice": "alice-secret"}
    with FakeBroker({"t": 1}, sasl_mechanisms=("PLAIN",), sasl=plain_server(users)) as broker:
        with sasl_producer(broker, linger_ms=60_000) as p:
            p.send("t", b"warm")
            p.flush(20)
            pending = [p.send("t", b"queued-%d" % i) for i in range(5)]   # lingering
            users.clear()                       # the credentials are revoked ...
            broker.drop_connections()           # ... and the next connection must log in
            p.flush(30)                         # sends now: reconnects, and fails
            for f in pending:
                assert isinstance(f.exception(timeout=0), SaslAuthenticationFailedError)
            with pytest.raises(SaslAuthenticationFailedError):
                p.send("t", b"after")
        assert broker.values("t") == [b"warm"]


def test_unsupported_mechanism_names_what_the_broker_enables():
    expected = r"does not enable SASL mechanism PLAIN \(it enables: SCRAM-SHA-512\)"
    with (
        FakeBroker({"t": 1}, sasl_mechanisms=("SCRAM-SHA-512",), sasl=plain_server({})) as broker,
        sasl_producer(broker, "PLAIN") as p,
        pytest.raises(UnsupportedSaslMechanismError, match=expected),
    ):
        p.send("t", b"x")


def test_sessions_with_a_lifetime_are_replaced_before_the_broker_cuts_them():
    with FakeBroker({"t": 1}, sasl_mechanisms=("PLAIN",), sasl_session_lifetime_ms=300,
                    sasl=plain_server({"alice": "alice-secret"})) as broker:
        with sasl_producer(broker) as p:
            futures = []
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                futures.append(p.send("t", b"%d" % len(futures)))
                time.sleep(0.05)
            assert [f.result(20).offset for f in futures] == list(range(len(futures)))
        # every session ended by a new, authenticated connection, not by an error
        assert len({s.connection for s in broker.requests(SASL_AUTHENTICATE)}) >= 3
        assert all(s.fault is None for s in broker.requests())
