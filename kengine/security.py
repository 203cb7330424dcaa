"""TLS for broker connections: Kafka's ``ssl.*`` settings turned into one ``ssl.SSLContext``.

The producer builds the context once, before any thread starts, so a missing file, a wrong key
password or an unknown cipher suite is a :class:`~kengine.errors.ConfigError` from the
constructor naming the setting, not a failure on the first connection. The mapping follows
Kafka's Java client with PEM stores (KIP-651):

=====================================  ==========================================================
``ssl.truststore.location``            ``load_verify_locations(cafile=...)``
``ssl.truststore.certificates``        ``load_verify_locations(cadata=...)``
(neither)                              ``load_default_certs()``: the system's CAs, as the JVM's
``ssl.keystore.location``              ``load_cert_chain(file)``: key and chain in one PEM file
``ssl.keystore.certificate.chain/key`` ``load_cert_chain`` through private temporary files
``ssl.key.password``                   the private key's password (never prompted for)
``ssl.protocol``                       ``maximum_version``
``ssl.enabled.protocols``              ``minimum_version`` / ``maximum_version``
``ssl.cipher.suites``                  ``set_ciphers`` (IANA names translated to OpenSSL's)
``ssl.endpoint.identification.algorithm``  ``check_hostname`` (the chain is verified either way)
=====================================  ==========================================================
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import ssl
import tempfile
from collections.abc import Sequence
from typing import Any

from .config import (
    HIDDEN,
    ProducerConfig,
    Setting,
    SettingsGroup,
    contribute,
    parse_optional_str,
    parse_secret_str,
    shown,
)
from .errors import AuthenticationError, ConfigError, KafkaError, NetworkError

__all__ = ["SETTINGS", "openssl_cipher_name", "ssl_context", "tls_error"]

_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def ssl_context(cfg: ProducerConfig) -> ssl.SSLContext | None:
    """The client context for ``security.protocol`` SSL or SASL_SSL, else None."""
    if cfg["security.protocol"] not in ("SSL", "SASL_SSL"):
        return None
    if cfg["ssl.context"] is not None:
        given: ssl.SSLContext = cfg["ssl.context"]
        return given
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)   # verifies the chain and the host name
    _set_versions(ctx, cfg)
    _load_trust(ctx, cfg)
    _load_identity(ctx, cfg)
    if cfg["ssl.cipher.suites"] is not None:
        _set_ciphers(ctx, cfg["ssl.cipher.suites"])
    ctx.check_hostname = cfg["ssl.endpoint.identification.algorithm"] == "https"
    return ctx


def _set_versions(ctx: ssl.SSLContext, cfg: ProducerConfig) -> None:
    top = "TLSv1.3" if cfg["ssl.protocol"] == "TLS" else cfg["ssl.protocol"]
    enabled = sorted(v for v in cfg["ssl.enabled.protocols"] if v <= top)
    ctx.minimum_version = _VERSIONS[enabled[0]]
    ctx.maximum_version = _VERSIONS[enabled[-1]]


def _load_trust(ctx: ssl.SSLContext, cfg: ProducerConfig) -> None:
    location = cfg["ssl.truststore.location"]
    certificates = cfg["ssl.truststore.certificates"]
    try:
        if location:
            ctx.load_verify_locations(cafile=location)
        elif certificates:
            ctx.load_verify_locations(cadata=certificates)
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
            return
    except (OSError, ValueError) as e:
        key = "ssl.truststore.location" if location else "ssl.truststore.certificates"
        shown = location if location else "..."
        store = _binary_store_kind(location) if location else None
        if store is not None:   # ssl.truststore.type left out: its default is PEM here
            raise ConfigError(key, shown, (
                f"PEM CA certificates, but it is a {store} trust store (Python's ssl module "
                f"cannot load one); convert it: {_TRUSTSTORE_CONVERSION}")) from None
        raise ConfigError(key, shown, f"PEM CA certificates ({_reason(e)})") from None
    if not ctx.get_ca_certs():
        key = "ssl.truststore.location" if location else "ssl.truststore.certificates"
        raise ConfigError(key, location or "...", "at least one PEM CA certificate (none found)")


def _binary_store_kind(path: str) -> str | None:
    """'JKS' or 'PKCS12' when the file at path is such a key store (its first bytes), else
    None (PEM, or unreadable: the load's own error says so)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return None
    if head == b"\xfe\xed\xfe\xed" or head == b"\xce\xce\xce\xce":   # JKS, JCEKS
        return "JKS"
    if head[:1] == b"\x30":   # a DER SEQUENCE: PKCS12 (PEM is text)
        return "PKCS12"
    return None


class _NoPassword(Exception):
    """The private key is encrypted and ssl.key.password is unset: OpenSSL would otherwise
    prompt on the terminal and block the constructor."""


def _load_identity(ctx: ssl.SSLContext, cfg: ProducerConfig) -> None:
    location = cfg["ssl.keystore.location"]
    chain, key = cfg["ssl.keystore.certificate.chain"], cfg["ssl.keystore.key"]
    if not location and not chain:
        return
    password = cfg["ssl.key.password"]
    asked = []

    def ask_password() -> str:
        asked.append(True)
        if password is None:
            raise _NoPassword
        return str(password)

    if location:
        _load_chain(ctx, location, None, ask_password, asked, "ssl.keystore.location", location)
        return
    # load_cert_chain reads files only: write the PEM text to files only this user can read,
    # in a directory of its own, and remove them at once.
    directory = tempfile.mkdtemp(prefix="kengine-tls-")
    try:
        chain_path = os.path.join(directory, "chain.pem")
        key_path = os.path.join(directory, "key.pem")
        for path, text in ((chain_path, chain), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        _load_chain(ctx, chain_path, key_path, ask_password, asked,
                    "ssl.keystore.certificate.chain", "...")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _load_chain(ctx: ssl.SSLContext, certfile: str, keyfile: str | None,
                password: object, asked: list[bool], key: str, shown: str) -> None:
    try:
        ctx.load_cert_chain(certfile, keyfile, password=password)  # type: ignore[arg-type]
    except _NoPassword:
        raise ConfigError("ssl.key.password", None,
                          f"the password of the encrypted private key in {key}") from None
    except ssl.SSLError as e:
        # OpenSSL 3 reports a wrong password only as "PEM lib": the key was encrypted (the
        # password was asked for) and still did not load
        if asked and "KEY_VALUES_MISMATCH" not in str(e.reason or ""):
            raise ConfigError("ssl.key.password", HIDDEN,
                              f"the password of the encrypted private key in {key} (OpenSSL "
                              f"could not decrypt it)") from None
        raise ConfigError(key, shown, "a PEM certificate chain with its matching private key "
                                      f"({_reason(e)})") from None
    except OSError as e:
        raise ConfigError(key, shown, f"a readable PEM file ({_reason(e)})") from None


def _reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLError):
        return f"OpenSSL: {e.reason or e}"
    if isinstance(e, OSError) and e.errno is not None:
        return f"{os.strerror(e.errno)}"
    return str(e)


# -------------------------------------------------------------------------------- ciphers

_IANA = re.compile(r"TLS_(?:(?P<kx>[A-Z0-9]+(?:_[A-Z0-9]+)?)_WITH_)?(?P<cipher>.+?)"
                   r"(?:_(?P<mac>SHA|SHA256|SHA384))?")
_KX = {"RSA": "", "ECDHE_RSA": "ECDHE-RSA-", "ECDHE_ECDSA": "ECDHE-ECDSA-",
       "DHE_RSA": "DHE-RSA-", "DHE_DSS": "DHE-DSS-", "ECDHE_PSK": "ECDHE-PSK-",
       "PSK": "PSK-", "DHE_PSK": "DHE-PSK-", "RSA_PSK": "RSA-PSK-"}
_CIPHER = {"AES_128_GCM": "AES128-GCM", "AES_256_GCM": "AES256-GCM", "AES_128_CBC": "AES128",
           "AES_256_CBC": "AES256", "CHACHA20_POLY1305": "CHACHA20-POLY1305",
           "AES_128_CCM": "AES128-CCM", "AES_256_CCM": "AES256-CCM",
           "AES_128_CCM_8": "AES128-CCM8", "AES_256_CCM_8": "AES256-CCM8",
           "ARIA_128_GCM": "ARIA128-GCM", "ARIA_256_GCM": "ARIA256-GCM",
           "CAMELLIA_128_CBC": "CAMELLIA128", "CAMELLIA_256_CBC": "CAMELLIA256"}


def openssl_cipher_name(name: str) -> str:
    """OpenSSL's name of a TLS 1.2 suite named the IANA way (as Java does), e.g.
    ``TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`` -> ``ECDHE-RSA-AES128-GCM-SHA256``. TLS 1.3
    names (``TLS_AES_128_GCM_SHA256``) and OpenSSL names are returned unchanged."""
    m = _IANA.fullmatch(name)
    if m is None or m.group("kx") is None:
        return name
    kx, cipher, mac = _KX.get(m.group("kx")), _CIPHER.get(m.group("cipher")), m.group("mac")
    if kx is None or cipher is None:
        return name
    # AEAD suites other than GCM carry no MAC in OpenSSL's names
    suffix = f"-{mac}" if mac and ("GCM" in cipher or "-" not in cipher) else ""
    return f"{kx}{cipher}{suffix}"


def _set_ciphers(ctx: ssl.SSLContext, names: Sequence[str]) -> None:
    tls13_all = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.3"}
    tls13, tls12 = [], []
    for name in names:
        if name in tls13_all:
            tls13.append(name)
            continue
        openssl = openssl_cipher_name(name)
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            probe.set_ciphers(openssl)
        except ssl.SSLError:
            raise ConfigError("ssl.cipher.suites", ",".join(names),
                              f"suites this OpenSSL ({ssl.OPENSSL_VERSION}) offers; it does not "
                              f"know {name!r}") from None
        tls12.append(openssl)
    if tls13 and set(tls13) != tls13_all:
        # Python's ssl module cannot narrow the TLS 1.3 suites: refuse rather than ignore
        raise ConfigError("ssl.cipher.suites", ",".join(names),
                          f"all of the TLS 1.3 suites {sorted(tls13_all)} or none of them "
                          f"(Python's ssl module cannot enable only some)")
    if not tls13:
        if ctx.minimum_version > ssl.TLSVersion.TLSv1_2:
            raise ConfigError("ssl.cipher.suites", ",".join(names),
                              "a TLS 1.3 suite when only TLSv1.3 is enabled")
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if tls12:
        ctx.set_ciphers(":".join(tls12))
    elif ctx.maximum_version >= ssl.TLSVersion.TLSv1_3:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3   # only TLS 1.3 suites were listed


# -------------------------------------------------------------------------------- failures

# OpenSSL reasons that mean the two sides will never agree: certificates, versions, suites.
# Anything else during or after the handshake (a reset, an EOF) is a network failure.
_FATAL_TLS = re.compile(r"ALERT|CERTIFICATE|VERSION|PROTOCOL|CIPHER|HANDSHAKE_FAILURE|"
                        r"NO_SHARED|SIGNATURE|KEY_USAGE|INAPPROPRIATE_FALLBACK")


def tls_error(e: OSError, host: str, port: int, node: int, during: str) -> KafkaError:
    """The error closing a connection after an OSError from a TLS socket: a fatal
    AuthenticationError when TLS itself failed (the broker refused our certificate, or we
    refused its), a retriable NetworkError when the connection just broke."""
    where = f"broker {host}:{port}"
    if isinstance(e, ssl.SSLCertVerificationError):
        return AuthenticationError(
            f"TLS: the certificate of {where} was rejected: {e.verify_message} (check "
            f"ssl.truststore.location, or ssl.endpoint.identification.algorithm if the "
            f"certificate names another host)")
    if isinstance(e, (ssl.SSLEOFError, ssl.SSLZeroReturnError)) or not isinstance(e, ssl.SSLError):
        hint = ""
        if during == "handshake":
            hint = " (is it a TLS listener? check security.protocol and the port)"
        reason = os.strerror(e.errno) if (not isinstance(e, ssl.SSLError) and e.errno
                                          and e.errno in errno.errorcode) else str(e)
        return NetworkError(f"{where} closed the connection during the TLS {during}{hint}: "
                            f"{reason}", node=node)
    reason = str(e.reason or e)
    if _FATAL_TLS.search(reason.upper()):
        if "CERTIFICATE_REQUIRED" in reason.upper() or "BAD_CERTIFICATE" in reason.upper() \
                or "UNKNOWN_CA" in reason.upper():
            advice = ("the broker requires a client certificate it trusts: check "
                      "ssl.keystore.location (mutual TLS)")
        elif "WRONG_VERSION_NUMBER" in reason.upper():
            advice = "the broker does not speak TLS on this port: check security.protocol"
        else:
            advice = "check ssl.enabled.protocols / ssl.cipher.suites against the broker's"
        return AuthenticationError(f"TLS with {where} failed during the {during}: {reason}; "
                                   f"{advice}")
    return NetworkError(f"TLS with {where} failed during the {during}: {reason}", node=node)


# ---------------------------------------------------------------- the ssl.* settings

def _pem_store_type(key: str, value: Any) -> str:
    text = str(value).strip().upper()
    if text == "PEM":
        return "PEM"
    store = "trust store" if key.startswith("ssl.truststore") else "key store"
    convert = (_TRUSTSTORE_CONVERSION if key.startswith("ssl.truststore")
               else _KEYSTORE_CONVERSION)
    raise ConfigError(key, value, f"PEM: kengine reads PEM files only (Python's ssl module "
                                  f"cannot load a {text} {store}); convert it: {convert}")


_TRUSTSTORE_CONVERSION = (
    "`keytool -exportcert -rfc -keystore truststore.jks -alias CARoot -file ca.pem` (JKS) or "
    "`openssl pkcs12 -in truststore.p12 -nokeys -out ca.pem` (PKCS12), then "
    "ssl.truststore.location=ca.pem")
_KEYSTORE_CONVERSION = (
    "`keytool -importkeystore -srckeystore keystore.jks -destkeystore keystore.p12 "
    "-deststoretype PKCS12` (JKS only), then `openssl pkcs12 -in keystore.p12 -out "
    "keystore.pem` and ssl.keystore.location=keystore.pem (ssl.key.password if the key "
    "stays encrypted)")

_TLS_VERSIONS = ("TLSv1.2", "TLSv1.3")


def _tls_protocol(key: str, value: Any) -> str:
    text = str(value).strip()
    for choice in ("TLS", *_TLS_VERSIONS):
        if text.lower() == choice.lower():
            return choice
    raise ConfigError(key, value, "TLS, TLSv1.2 or TLSv1.3 (older versions are insecure and "
                                  "disabled by OpenSSL)")


def _tls_versions(key: str, value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value or ())
    out = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        match = [v for v in _TLS_VERSIONS if v.lower() == text.lower()]
        if not match:
            raise ConfigError(key, value, "a list of TLSv1.2, TLSv1.3 (older versions are "
                                          "insecure and disabled by OpenSSL)")
        out.append(match[0])
    if not out:
        raise ConfigError(key, value, "at least one of TLSv1.2, TLSv1.3")
    return tuple(dict.fromkeys(out))


def _optional_names(key: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(i).strip() for i in items if str(i).strip())
    if not names:
        raise ConfigError(key, value, "a non-empty list of cipher suite names, or None")
    return names


def _endpoint_identification(key: str, value: Any) -> str:
    text = "" if value is None else str(value).strip().lower()
    if text not in ("https", ""):
        raise ConfigError(key, value, "https (verify the broker's host name, the default) or "
                                      "an empty string (do not)")
    return text


def _ssl_context(key: str, value: Any) -> Any:
    if value is not None and not isinstance(value, ssl.SSLContext):
        raise ConfigError(key, value, "an ssl.SSLContext (client side) or None")
    return value


def _check_tls(values: dict[str, Any], explicit: frozenset[str]) -> None:
    if values["ssl.context"] is not None:
        others = [s.name for s in SETTINGS.settings
                  if s.name in explicit and s.name != "ssl.context"]
        if others:
            raise ConfigError(others[0], shown(others[0], values[others[0]]),
                              "unset when ssl.context is given (the context is used as is)")
        return
    for key in ("ssl.truststore.password", "ssl.keystore.password"):
        if values[key] is not None:
            raise ConfigError(key, HIDDEN, "None: PEM stores have no store password (an "
                                            "encrypted private key takes ssl.key.password)")
    if values["ssl.truststore.location"] and values["ssl.truststore.certificates"]:
        raise ConfigError("ssl.truststore.certificates", "...",
                          "unset when ssl.truststore.location is set (one source of CAs)")
    chain, key = values["ssl.keystore.certificate.chain"], values["ssl.keystore.key"]
    if values["ssl.keystore.location"] and (chain or key):
        name = "ssl.keystore.certificate.chain" if chain else "ssl.keystore.key"
        raise ConfigError(name, shown(name, values[name]),
                          "unset when ssl.keystore.location is set (one source of the key)")
    if bool(chain) != bool(key):
        missing = "ssl.keystore.key" if chain else "ssl.keystore.certificate.chain"
        raise ConfigError(missing, None, "set together with "
                          + ("ssl.keystore.certificate.chain" if chain else "ssl.keystore.key"))
    if values["ssl.key.password"] is not None and not (values["ssl.keystore.location"] or key):
        raise ConfigError("ssl.key.password", HIDDEN,
                          "set only with ssl.keystore.location or ssl.keystore.key")
    top = "TLSv1.3" if values["ssl.protocol"] == "TLS" else values["ssl.protocol"]
    if not [v for v in values["ssl.enabled.protocols"] if v <= top]:
        raise ConfigError("ssl.enabled.protocols", ",".join(values["ssl.enabled.protocols"]),
                          f"a version no newer than ssl.protocol ({values['ssl.protocol']})")


def _tls_applies(values: dict[str, Any]) -> str | None:
    protocol = values["security.protocol"]
    if protocol in ("SSL", "SASL_SSL"):
        return None
    return f"set only with security.protocol SSL or SASL_SSL (it is {protocol})"


#: TLS (security.protocol SSL or SASL_SSL): PEM files, mapped onto Python's ssl module.
SETTINGS = SettingsGroup(
    owner=__name__,
    settings=(
        Setting("ssl.truststore.location", None, parse_optional_str,
                "PEM file of the CA certificates that sign the brokers' certificates "
                "(default: the system's trusted CAs)"),
        Setting("ssl.truststore.certificates", None, parse_optional_str,
                "the same CA certificates as PEM text instead of a file"),
        Setting("ssl.truststore.type", "PEM", _pem_store_type,
                "PEM only; JKS and PKCS12 trust stores must be converted"),
        Setting("ssl.truststore.password", None, parse_secret_str,
                "not used: a PEM trust store has no password (accepted only as None)",
                secret=True),
        Setting("ssl.keystore.location", None, parse_optional_str,
                "PEM file with this client's private key and certificate chain (mutual TLS)"),
        Setting("ssl.keystore.certificate.chain", None, parse_optional_str,
                "this client's certificate chain as PEM text (with ssl.keystore.key)"),
        Setting("ssl.keystore.key", None, parse_secret_str,
                "this client's private key as PEM text (with ssl.keystore.certificate.chain)",
                secret=True),
        Setting("ssl.keystore.type", "PEM", _pem_store_type,
                "PEM only; JKS and PKCS12 key stores must be converted"),
        Setting("ssl.keystore.password", None, parse_secret_str,
                "not used: a PEM key store has no store password; an encrypted key takes "
                "ssl.key.password (accepted only as None)", secret=True),
        Setting("ssl.key.password", None, parse_secret_str,
                "password of an encrypted private key", secret=True),
        Setting("ssl.protocol", "TLSv1.3", _tls_protocol,
                "highest TLS version to offer (TLS: the newest OpenSSL has)"),
        Setting("ssl.enabled.protocols", ("TLSv1.2", "TLSv1.3"), _tls_versions,
                "TLS versions allowed, e.g. TLSv1.3 alone"),
        Setting("ssl.cipher.suites", None, _optional_names,
                "allowed cipher suites, IANA (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) or "
                "OpenSSL (ECDHE-RSA-AES128-GCM-SHA256) names (default: OpenSSL's secure set)"),
        Setting("ssl.endpoint.identification.algorithm", "https", _endpoint_identification,
                "https: the broker's certificate must name the host connected to; "
                "empty: do not check the name (the certificate is still verified)"),
        Setting("ssl.context", None, _ssl_context,
                "an ssl.SSLContext used as is, instead of the ssl.* settings above"),
    ),
    applies=_tls_applies,
    check=_check_tls,
    after="security.protocol",
)
contribute(SETTINGS)
