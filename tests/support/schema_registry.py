"""A real Confluent-compatible Schema Registry for the test suite: Apicurio Registry 2.4.2.Final.

Built once from Maven Central (``schema_registry_app/``: a pom assembling the Quarkus app and a
one-bean shim for the piece Maven Central lacks) into ``~/.cache/kengine/apicurio-<version>``
(``$KENGINE_SCHEMA_REGISTRY_HOME`` overrides), like the Kafka jars: a marker holding the digest
of the build inputs makes later calls skip Maven, editing them rebuilds.

:class:`SchemaRegistryServer` runs it on a free loopback port with an in-memory database (every
start is empty; no Kafka needed) and stops it by the PID of the ``java`` process itself. The
Confluent API is served under ``/apis/ccompat/v7``: :attr:`SchemaRegistryServer.url` is that
full base URL.

How it differs from Confluent's server (tests must not depend on these): compatibility defaults
to NONE (Confluent: BACKWARD); some ``error_code`` values differ (assert HTTP statuses or
exception types); Protobuf schemas come back as registered.

``python -m tests.support.schema_registry build`` builds it (``make registry``; CI's set-up).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

__all__ = ["APICURIO_VERSION", "RegistryBuildError", "SchemaRegistryServer", "ensure_registry"]

APICURIO_VERSION = "2.4.2.Final"
_APP_SOURCES = Path(__file__).with_name("schema_registry_app")
_INPUTS = ("pom.xml", "settings.xml", "src/main/java/local/shim/DynamicPropsProducer.java")
_MARKER = ".built"
_RUNNER = "target/schema-registry-1-runner.jar"
# the JVM flags measured to keep it near 180 MB RSS and starting in ~3 s on 2 cores
_JVM_FLAGS = ("-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
_START_TIMEOUT_S = 120.0
_BUILD_TIMEOUT_S = 1800


class RegistryBuildError(RuntimeError):
    """Maven could not build the registry, or it did not start."""


def default_home() -> Path:
    env = os.environ.get("KENGINE_SCHEMA_REGISTRY_HOME")
    if env:
        return Path(env).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "kengine" / f"apicurio-{APICURIO_VERSION}"


def _digest() -> str:
    h = hashlib.sha256()
    for name in _INPUTS:
        h.update(name.encode() + b"\0" + (_APP_SOURCES / name).read_bytes() + b"\0")
    return h.hexdigest()


def _is_built(home: Path, digest: str) -> bool:
    try:
        return (home / _MARKER).read_text().strip() == digest and (home / _RUNNER).is_file()
    except OSError:
        return False


def ensure_registry(home: Path | None = None) -> Path:
    """Build the registry into ``home`` unless already built; returns the directory holding
    ``target/*-runner.jar``. Safe from several processes at once (a file lock)."""
    home = home or default_home()
    digest = _digest()
    if _is_built(home, digest):
        return home
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RegistryBuildError("no `mvn` on PATH: Maven builds the test Schema Registry "
                                 "(Debian/Ubuntu: apt-get install maven)")
    home.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f".{home.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_built(home, digest):
            return home
        (home / _MARKER).unlink(missing_ok=True)
        for name in _INPUTS:
            (home / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_APP_SOURCES / name, home / name)
        # our settings (every repository mirrored to Maven Central) unless the user has their
        # own, which may name the mirror or proxy their network needs
        user_settings = Path.home() / ".m2" / "settings.xml"
        settings = [] if user_settings.is_file() else ["-s", str(home / "settings.xml")]
        cmd = [mvn, "-B", "-q", "-Dstyle.color=never", *settings,
               "-f", str(home / "pom.xml"), "package", "-DskipTests"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S,
                                 check=False, cwd=home)
        except subprocess.TimeoutExpired as e:
            raise RegistryBuildError(f"`{' '.join(cmd)}` did not finish in {e.timeout:.0f} s") \
                from e
        if out.returncode != 0 or not (home / _RUNNER).is_file():
            tail = "\n".join((out.stdout + out.stderr).splitlines()[-40:])
            raise RegistryBuildError(
                f"Maven could not build Apicurio Registry {APICURIO_VERSION} (exit "
                f"{out.returncode}); check access to Maven Central. Command: "
                f"{' '.join(cmd)}\n{tail}")
        (home / _MARKER).write_text(digest + "\n")
    return home


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SchemaRegistryServer:
    """One registry process: ``with SchemaRegistryServer(workdir) as registry: registry.url``."""

    def __init__(self, workdir: Path, home: Path | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.workdir = Path(workdir)
        self.home = home
        #: (certificate, key) PEM files: serve HTTPS only, with that certificate
        self.tls = tls
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "registry.log"

    @property
    def base(self) -> str:
        """``http(s)://127.0.0.1:PORT`` (the server; the Confluent API is under :attr:`url`)."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The Confluent-compatible API's base URL, as clients take it."""
        return f"{self.base}/apis/ccompat/v7"

    def start(self) -> SchemaRegistryServer:
        from kengine.localkafka.distribution import find_java  # needs the built core

        home = ensure_registry(self.home)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # chosen here and passed in: the log line naming a port 0's choice is not a contract
        self.port = _free_port()
        if self.tls:
            cert, key = self.tls
            listen = [f"-Dquarkus.http.ssl-port={self.port}", f"-Dquarkus.http.port={_free_port()}",
                      "-Dquarkus.http.insecure-requests=disabled",
                      f"-Dquarkus.http.ssl.certificate.files={cert}",
                      f"-Dquarkus.http.ssl.certificate.key-files={key}"]
        else:
            listen = [f"-Dquarkus.http.port={self.port}"]
        cmd = [find_java(), *_JVM_FLAGS, "-Dquarkus.http.host=127.0.0.1", *listen,
               # its working files (H2 is in memory; Quarkus/Vert.x caches) stay in workdir
               f"-Djava.io.tmpdir={self.workdir}", "-jar", str(home / _RUNNER)]
        with open(self.log_path, "wb") as log:
            # java itself is the child: stopping this PID stops the JVM (no shell in between)
            self.process = subprocess.Popen(cmd, cwd=self.workdir, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RegistryBuildError(
                    f"the Schema Registry exited with {self.process.returncode} while starting:"
                    f"\n{self.logs(60)}")
            if self._ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise RegistryBuildError(f"the Schema Registry did not answer within "
                                 f"{_START_TIMEOUT_S:.0f} s:\n{self.logs(60)}")

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context()
        ctx.check_hostname = False   # the harness's own server, checked by the tests' clients
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/subjects", timeout=2,
                                        context=self._ssl_context()) as r:
                return r.status == 200 and isinstance(json.loads(r.read()), list)
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def set_compatibility(self, level: str, subject: str | None = None) -> None:
        """Sets the global (or one subject's) compatibility level, outside any client under
        test (Apicurio's default is NONE, Confluent's BACKWARD)."""
        path = f"/config/{subject}" if subject else "/config"
        req = urllib.request.Request(
            f"{self.url}{path}", method="PUT",
            data=json.dumps({"compatibility": level}).encode(),
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
        with urllib.request.urlopen(req, timeout=10, context=self._ssl_context()) as r:
            if r.status != 200:
                raise RegistryBuildError(f"PUT {path} answered {r.status}")

    def stop(self, timeout: float = 30.0) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def logs(self, tail: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-tail:])

    def __enter__(self) -> SchemaRegistryServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _main(argv: list[str]) -> int:
    if argv[:1] == ["build"]:
        home = ensure_registry()
        print(f"schema registry: Apicurio {APICURIO_VERSION} built in {home}")
        return 0
    if argv[:1] == ["run"]:
        import tempfile
        with SchemaRegistryServer(Path(tempfile.mkdtemp(prefix="kengine-registry-"))) as r:
            print(f"schema registry at {r.url} (pid {r.process.pid if r.process else '?'}); "
                  "Ctrl-C stops it", flush=True)
            try:
                while r.process is not None and r.process.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        return 0
    print("usage: python -m tests.support.schema_registry build|run", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

