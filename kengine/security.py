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
from typing import TYPE_CHECKING

from .errors import AuthenticationError, ConfigError, KafkaError, NetworkError

if TYPE_CHECKING:
    from .config import ProducerConfig

__all__ = ["openssl_cipher_name", "ssl_context", "tls_error"]

_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
_HIDDEN = "[hidden]"


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
        raise ConfigError(key, shown, f"PEM CA certificates ({_reason(e)})") from None
    if not ctx.get_ca_certs():
        key = "ssl.truststore.location" if location else "ssl.truststore.certificates"
        raise ConfigError(key, location or "...", "at least one PEM CA certificate (none found)")


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
            raise ConfigError("ssl.key.password", _HIDDEN,
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
