"""kengine.localkafka.SecureBrokers: the listeners, broker settings and kafka-storage
arguments of a secured test cluster (the cluster itself runs in
tests/integration/test_security.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from kengine.errors import ConfigError
from kengine.localkafka import BrokerTls, Listener, SecureBrokers


def test_everything_enabled():
    secure = SecureBrokers(tls=BrokerTls(Path("/k.pem"), Path("/ca.pem")),
                           plain_users={"alice": 'pa"ss'}, scram_users={"alice": "pw"},
                           oauthbearer=True, super_users=("User:admin",), reauth_ms=5000)
    assert secure.listeners() == [Listener("PLAINTEXT", "PLAINTEXT"), Listener("SSL", "SSL"),
                                  Listener("SASL_PLAINTEXT", "SASL_PLAINTEXT"),
                                  Listener("SASL_SSL", "SASL_SSL")]
    config = secure.broker_config()
    assert config["authorizer.class.name"] == \
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert config["super.users"] == "User:ANONYMOUS;User:admin"
    assert config["ssl.keystore.type"] == config["ssl.truststore.type"] == "PEM"
    assert config["listener.name.ssl.ssl.client.auth"] == "required"
    assert config["sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER"
    assert config["listener.name.sasl_ssl.plain.sasl.jaas.config"] == (
        'org.apache.kafka.common.security.plain.PlainLoginModule required '
        'user_alice="pa\\"ss";')
    assert config["listener.name.sasl_plaintext.connections.max.reauth.ms"] == 5000
    assert "listener.name.ssl.connections.max.reauth.ms" not in config
    assert secure.format_args() == [
        "--add-scram", "SCRAM-SHA-256=[name=alice,password=pw]",
        "--add-scram", "SCRAM-SHA-512=[name=alice,password=pw]"]
    args = secure.cluster_args({"num.partitions": 3})
    assert args["broker_config"]["num.partitions"] == 3 and args["listeners"][0].name == \
        "PLAINTEXT"


def test_sasl_without_tls_and_tls_without_sasl():
    assert [x.name for x in SecureBrokers(plain_users={"a": "b"}).listeners()] == \
        ["PLAINTEXT", "SASL_PLAINTEXT"]
    tls_only = SecureBrokers(tls=BrokerTls(Path("/k"), Path("/c"), client_auth="none"),
                             authorizer=False)
    assert [x.name for x in tls_only.listeners()] == ["PLAINTEXT", "SSL"]
    assert "authorizer.class.name" not in tls_only.broker_config()
    assert "sasl.enabled.mechanisms" not in tls_only.broker_config()


@pytest.mark.parametrize("users", [{"al,ice": "x"}, {"alice": "pa=ss"}])
def test_scram_credentials_the_format_tool_cannot_take_are_refused(users):
    with pytest.raises(ConfigError, match="--add-scram"):
        SecureBrokers(scram_users=users).format_args()
