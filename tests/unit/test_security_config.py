"""Security settings: validation in kengine.config, the SSLContext kengine.security builds from
them, and how TLS failures are classified (fatal vs retriable). No broker needed."""
from __future__ import annotations

import ssl

import pytest

from kengine.config import resolve
from kengine.errors import AuthenticationError, ConfigError, NetworkError
from kengine.security import openssl_cipher_name, ssl_context, tls_error

BOOT = "127.0.0.1:9092"


def cfg(**settings):
    return resolve(bootstrap_servers=BOOT, **settings)


def error_of(**settings) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        ssl_context(cfg(**settings))
    return info.value


# ---------------------------------------------------------------- settings and combinations


@pytest.mark.parametrize("settings,key,fragment", [
    ({"ssl_truststore_location": "/ca.pem"}, "ssl.truststore.location",
     "only with security.protocol SSL or SASL_SSL (it is PLAINTEXT)"),
    ({"sasl_mechanism": "PLAIN"}, "sasl.mechanism",
     "only with security.protocol SASL_PLAINTEXT or SASL_SSL (it is PLAINTEXT)"),
    ({"security_protocol": "SSL", "sasl_username": "u"}, "sasl.username",
     "SASL_PLAINTEXT or SASL_SSL (it is SSL)"),
    ({"security_protocol": "SASL_SSL"}, "sasl.mechanism", "required with security.protocol"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"}, "sasl.mechanism",
     "does not support GSSAPI (Kerberos)"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"}, "sasl.username",
     "set sasl.username and sasl.password, or sasl.jaas.config"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"},
     "sasl.oauthbearer.token.callback", "a callable returning the token"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u",
      "sasl_password": "p", "sasl_oauthbearer_token_callback": lambda: "t"},
     "sasl.oauthbearer.token.callback", "only with sasl.mechanism=OAUTHBEARER"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256",
      "sasl_jaas_config": 'org.apache.kafka.common.security.plain.PlainLoginModule required '
                          'username="u" password="p";'},
     "sasl.jaas.config", "a login module for SCRAM-SHA-256"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u",
      "sasl_jaas_config": 'PlainLoginModule required username="u" password="p";'},
     "sasl.username", "unset when sasl.jaas.config gives the credentials"),
    ({"security_protocol": "SSL", "ssl_truststore_type": "JKS"}, "ssl.truststore.type",
     "convert it: `keytool -exportcert -rfc"),
    ({"security_protocol": "SSL", "ssl_keystore_type": "PKCS12"}, "ssl.keystore.type",
     "`openssl pkcs12 -in keystore.p12 -out keystore.pem`"),
    ({"security_protocol": "SSL", "ssl_keystore_password": "x"}, "ssl.keystore.password",
     "PEM stores have no store password"),
    ({"security_protocol": "SSL", "ssl_keystore_key": "-----BEGIN PRIVATE KEY-----"},
     "ssl.keystore.certificate.chain", "set together with ssl.keystore.key"),
    ({"security_protocol": "SSL", "ssl_key_password": "x"}, "ssl.key.password",
     "only with ssl.keystore.location or ssl.keystore.key"),
    ({"security_protocol": "SSL", "ssl_protocol": "TLSv1.2", "ssl_enabled_protocols": "TLSv1.3"},
     "ssl.enabled.protocols", "no newer than ssl.protocol (TLSv1.2)"),
    ({"security_protocol": "SSL", "ssl_enabled_protocols": "TLSv1.1"}, "ssl.enabled.protocols",
     "older versions are insecure"),
    ({"security_protocol": "SSL", "ssl_endpoint_identification_algorithm": "ldaps"},
     "ssl.endpoint.identification.algorithm", "https"),
    ({"security_protocol": "SSL", "ssl_context": ssl.create_default_context(),
      "ssl_truststore_location": "/ca.pem"}, "ssl.truststore.location",
     "unset when ssl.context is given"),
])
def test_bad_security_settings_name_the_setting(settings, key, fragment):
    with pytest.raises(ConfigError) as info:
        cfg(**settings)
    assert info.value.key == key
    assert fragment in str(info.value)


def test_credentials_never_appear_in_errors_or_reprs():
    secret = "hunter2-do-not-print"
    config = cfg(security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_username="alice",
                 sasl_password=secret)
    assert secret not in repr(config) and "[hidden]" in repr(config)
    jaas = f'PlainLoginModule required username="alice" password="{secret}"'  # no ';'
    with pytest.raises(ConfigError) as info:
        cfg(security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_jaas_config=jaas)
    assert secret not in str(info.value) and "expected ';'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        cfg(sasl_passwrd=secret)     # a misspelt credential is not echoed either
    assert secret not in str(info.value) and "did you mean 'sasl.password'" in str(info.value)


def test_settings_are_accepted_with_java_spellings():
    config = cfg(**{"security.protocol": "sasl_ssl", "sasl.mechanism": "scram-sha-512",
                    "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule "
                                        'required username="alice" password="p\\"w";',
                    "ssl.enabled.protocols": "TLSv1.3",
                    "ssl.endpoint.identification.algorithm": ""})
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["ssl.enabled.protocols"] == ("TLSv1.3",)
    assert config["ssl.endpoint.identification.algorithm"] == ""


# ---------------------------------------------------------------- the SSLContext


def test_plaintext_protocols_have_no_context():
    assert ssl_context(cfg()) is None
    assert ssl_context(cfg(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                           sasl_username="u", sasl_password="p")) is None


def test_defaults_verify_the_broker_and_its_name_with_the_system_cas():
    ctx = ssl_context(cfg(security_protocol="SSL"))
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_3


def test_truststore_keystore_and_versions_map_onto_the_context(certs):
    ctx = ssl_context(cfg(security_protocol="SSL", ssl_truststore_location=str(certs.ca),
                          ssl_keystore_location=str(certs.client_keystore),
                          ssl_enabled_protocols="TLSv1.3",
                          ssl_endpoint_identification_algorithm=""))
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "kengine-test-ca"),),)]
    assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_3
    assert not ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED


def test_pem_text_instead_of_files(certs):
    ctx = ssl_context(cfg(security_protocol="SSL",
                          ssl_truststore_certificates=certs.ca.read_text(),
                          ssl_keystore_certificate_chain=certs.client_cert.read_text(),
                          ssl_keystore_key=certs.client_key_encrypted.read_text(),
                          ssl_key_password=certs.key_password))
    assert len(ctx.get_ca_certs()) == 1


def test_missing_and_unreadable_files_fail_the_constructor_clearly(certs, tmp_path):
    e = error_of(security_protocol="SSL", ssl_truststore_location=str(tmp_path / "nope.pem"))
    assert e.key == "ssl.truststore.location" and "No such file or directory" in str(e)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    e = error_of(security_protocol="SSL", ssl_truststore_location=str(garbage))
    assert e.key == "ssl.truststore.location" and "PEM CA certificates" in str(e)
    e = error_of(security_protocol="SSL", ssl_keystore_location=str(certs.ca))  # no key in it
    assert e.key == "ssl.keystore.location" and "matching private key" in str(e)


def test_encrypted_key_needs_the_right_password_and_never_prompts(certs):
    chain = certs.client_cert.read_text()
    key = certs.client_key_encrypted.read_text()
    e = error_of(security_protocol="SSL", ssl_keystore_certificate_chain=chain,
                 ssl_keystore_key=key)
    assert e.key == "ssl.key.password" and "encrypted private key" in str(e)
    e = error_of(security_protocol="SSL", ssl_keystore_certificate_chain=chain,
                 ssl_keystore_key=key, ssl_key_password="wrong")
    assert e.key == "ssl.key.password" and "wrong" not in str(e)


@pytest.mark.parametrize("iana,openssl", [
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256"),
    ("TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"),
    ("TLS_DHE_RSA_WITH_AES_128_CBC_SHA", "DHE-RSA-AES128-SHA"),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_CCM", "ECDHE-ECDSA-AES128-CCM"),
    ("TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"),          # TLS 1.3: same name
    ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256"),  # already OpenSSL's
])
def test_iana_cipher_names_translate_to_openssl_names(iana, openssl):
    assert openssl_cipher_name(iana) == openssl


def test_cipher_suites_restrict_tls12_and_refuse_what_python_cannot_do():
    ctx = ssl_context(cfg(security_protocol="SSL", ssl_cipher_suites=(
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")))
    tls12 = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == {"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384"}
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_2   # no TLS 1.3 suite was listed
    e = error_of(security_protocol="SSL", ssl_cipher_suites="TLS_FAKE_WITH_NOTHING_SHA")
    assert "does not know 'TLS_FAKE_WITH_NOTHING_SHA'" in str(e)
    e = error_of(security_protocol="SSL", ssl_cipher_suites="TLS_AES_128_GCM_SHA256")
    assert "cannot enable only some" in str(e)


def test_a_given_ssl_context_is_used_as_is():
    mine = ssl.create_default_context()
    assert ssl_context(cfg(security_protocol="SSL", ssl_context=mine)) is mine


# ---------------------------------------------------------------- failure classification


def test_certificate_and_protocol_failures_are_fatal_breakage_is_not():
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "unable to get local issuer certificate"
    err = tls_error(verify, "h", 1, 0, "handshake")
    assert isinstance(err, AuthenticationError)
    assert "unable to get local issuer certificate" in str(err) and "ssl.truststore" in str(err)

    alert = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] alert")
    alert.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    err = tls_error(alert, "h", 1, 0, "session")
    assert isinstance(err, AuthenticationError) and "ssl.keystore.location" in str(err)

    version = ssl.SSLError(1, "[SSL: TLSV1_ALERT_PROTOCOL_VERSION] alert")
    version.reason = "TLSV1_ALERT_PROTOCOL_VERSION"
    assert isinstance(tls_error(version, "h", 1, 0, "handshake"), AuthenticationError)

    eof = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    err = tls_error(eof, "h", 1, 0, "handshake")
    assert isinstance(err, NetworkError) and err.retriable
    assert "is it a TLS listener?" in str(err)
    assert isinstance(tls_error(ConnectionResetError(104, "reset"), "h", 1, 0, "session"),
                      NetworkError)


@pytest.mark.parametrize("store_type", ["JKS", "PKCS12"])
def test_a_java_truststore_without_its_type_gets_the_conversion_hint(certs, tmp_path, store_type):
    import shutil
    import subprocess
    # a real trust store, made by the JDK's keytool (the suite's brokers need a JDK anyway)
    store = tmp_path / f"truststore.{store_type.lower()}"
    subprocess.run([shutil.which("keytool") or "keytool", "-importcert", "-noprompt",
                    "-alias", "CARoot", "-file", str(certs.ca), "-keystore", str(store),
                    "-storepass", "changeit", "-storetype", store_type],
                   check=True, capture_output=True)
    err = error_of(security_protocol="SSL", ssl_truststore_location=str(store))
    assert err.key == "ssl.truststore.location"
    assert f"it is a {store_type} trust store" in str(err)
    assert ("keytool -exportcert" if store_type == "JKS" else "openssl pkcs12") in str(err)
    assert "ssl.truststore.location=ca.pem" in str(err)
