"""Certificates made during the test run with the ``openssl`` command: a CA, a broker
certificate for 127.0.0.1, client certificates for mutual TLS (one with an encrypted key), and
a second CA that nobody trusts.

    certs = make_certificates(tmp_path)
    ctx.load_verify_locations(certs.ca)

(the ``certs`` fixture of tests/conftest.py makes one set per session).

Keys are EC P-256 in PKCS#8, which both Python's ssl module and Kafka's PEM key stores (Java
17, KIP-651) read. Every certificate is valid for two days.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Certificates", "make_certificates"]

KEY_PASSWORD = "client-key-secret"


@dataclass(frozen=True)
class Certificates:
    directory: Path
    ca: Path                       #: the CA certificate every test trusts
    broker_cert: Path              #: for IP 127.0.0.1 (no DNS name: "localhost" mismatches)
    broker_key: Path
    broker_keystore: Path          #: key + certificate + CA: a Java PEM key store
    client_keystore: Path          #: key + certificate chain of principal CN=<client_name>
    client_cert: Path
    client_key: Path
    client_key_encrypted: Path     #: the same key, encrypted with ``key_password``
    key_password: str
    rogue_ca: Path                 #: a CA nobody trusts
    rogue_client_keystore: Path    #: a client certificate signed by the rogue CA
    rogue_broker_keystore: Path    #: a broker certificate for 127.0.0.1 signed by the rogue CA
    misnamed_broker_keystore: Path  #: signed by the trusted CA, for another host name only


def _openssl(*args: str, cwd: Path) -> None:
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                         timeout=60, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed ({out.returncode}):\n"
                           f"{out.stdout}{out.stderr}")


def _key(path: Path, cwd: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", str(path), cwd=cwd)


def _ca(name: str, cwd: Path) -> tuple[Path, Path]:
    key, cert = cwd / f"{name}.key", cwd / f"{name}.pem"
    _key(key, cwd)
    _openssl("req", "-x509", "-new", "-key", str(key), "-out", str(cert), "-days", "2",
             "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=cwd)
    return cert, key


def _leaf(name: str, subject: str, ca: tuple[Path, Path], cwd: Path,
          san: str | None) -> tuple[Path, Path]:
    key, csr, cert = cwd / f"{name}.key", cwd / f"{name}.csr", cwd / f"{name}.pem"
    ext = cwd / f"{name}.ext"
    lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyAgreement",
             "extendedKeyUsage=serverAuth,clientAuth"]
    if san:
        lines.append(f"subjectAltName={san}")
    ext.write_text("\n".join(lines) + "\n")
    _key(key, cwd)
    _openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", subject, cwd=cwd)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext), cwd=cwd)
    return cert, key


def _keystore(path: Path, *parts: Path) -> Path:
    path.write_text("".join(p.read_text() for p in parts))
    return path


def make_certificates(directory: Path, client_name: str = "client") -> Certificates:
    if shutil.which("openssl") is None:
        raise RuntimeError("the TLS tests generate certificates with `openssl`; install it "
                           "(Debian/Ubuntu: apt-get install openssl)")
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca("kengine-test-ca", directory)
    rogue = _ca("rogue-ca", directory)
    broker = _leaf("broker", "/CN=broker", ca, directory, "IP:127.0.0.1")
    client = _leaf("client", f"/CN={client_name}/O=kengine-tests", ca, directory, None)
    rogue_client = _leaf("rogue-client", f"/CN={client_name}", rogue, directory, None)
    rogue_broker = _leaf("rogue-broker", "/CN=broker", rogue, directory, "IP:127.0.0.1")
    misnamed = _leaf("misnamed-broker", "/CN=elsewhere", ca, directory,
                     "DNS:elsewhere.example")
    encrypted = directory / "client-encrypted.key"
    _openssl("pkcs8", "-topk8", "-in", str(client[1]), "-out", str(encrypted), "-v2",
             "aes-256-cbc", "-passout", f"pass:{KEY_PASSWORD}", cwd=directory)
    return Certificates(
        directory=directory,
        ca=ca[0],
        broker_cert=broker[0],
        broker_key=broker[1],
        broker_keystore=_keystore(directory / "broker-keystore.pem", broker[1], broker[0], ca[0]),
        client_keystore=_keystore(directory / "client-keystore.pem", client[1], client[0],
                                  ca[0]),
        client_cert=client[0],
        client_key=client[1],
        client_key_encrypted=encrypted,
        key_password=KEY_PASSWORD,
        rogue_ca=rogue[0],
        rogue_client_keystore=_keystore(directory / "rogue-client-keystore.pem",
                                        rogue_client[1], rogue_client[0], rogue[0]),
        rogue_broker_keystore=_keystore(directory / "rogue-broker-keystore.pem",
                                        rogue_broker[1], rogue_broker[0], rogue[0]),
        misnamed_broker_keystore=_keystore(directory / "misnamed-broker-keystore.pem",
                                           misnamed[1], misnamed[0], ca[0]),
    )

