"""The Apache Kafka distribution the local brokers run: found Java, Maven, and the jar cache.

The jars are not downloaded as a release tarball but resolved from Maven Central with the
checked-in ``pom.xml`` (broker, tools, clients and a log4j2 binding), once, into a cache
directory: ``$KENGINE_KAFKA_HOME`` or ``~/.cache/kengine/kafka-<version>``. A marker file holding
the pom's digest makes later calls skip Maven; editing the pom re-resolves.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import JarResolutionError, ToolMissingError

__all__ = ["KAFKA_VERSION", "KafkaDistribution", "default_home", "ensure_kafka", "find_java"]

#: Must match ``kafka.version`` in pom.xml.
KAFKA_VERSION = "4.4.0"
MIN_JAVA_MAJOR = 17
_POM = Path(__file__).with_name("pom.xml")
_MARKER = ".resolved"
_INSTALL_HINT = (
    "install a JDK 17+ and Maven (Debian/Ubuntu: apt-get install openjdk-17-jdk-headless maven), "
    "or put them on PATH (JAVA_HOME is honoured for java)"
)


@dataclass(frozen=True)
class KafkaDistribution:
    """A resolved Kafka: where its jars are and which ``java`` runs them."""

    home: Path
    version: str
    java: str

    @property
    def libs(self) -> Path:
        return self.home / "libs"

    @property
    def classpath(self) -> str:
        # a JVM classpath wildcard: every jar in libs/, without listing ~80 names
        return str(self.libs / "*")


def default_home() -> Path:
    """``$KENGINE_KAFKA_HOME``, else ``$XDG_CACHE_HOME`` (or ``~/.cache``)
    ``/kengine/kafka-<v>``."""
    env = os.environ.get("KENGINE_KAFKA_HOME")
    if env:
        return Path(env).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "kengine" / f"kafka-{KAFKA_VERSION}"


def find_java() -> str:
    """Path of a ``java`` of version 17 or newer (``$JAVA_HOME/bin/java`` first, then PATH)."""
    candidates = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(os.path.join(os.environ["JAVA_HOME"], "bin", "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    for java in candidates:
        if not os.access(java, os.X_OK):
            continue
        major = _java_major(java)
        if major is not None and major >= MIN_JAVA_MAJOR:
            return java
        raise ToolMissingError(
            f"{java} is Java {major}; Kafka {KAFKA_VERSION} needs Java {MIN_JAVA_MAJOR} or newer: "
            + _INSTALL_HINT)
    raise ToolMissingError(
        f"no `java` found (JAVA_HOME unset or wrong, none on PATH): {_INSTALL_HINT}")


def _java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        return None
    major = int(m.group(1))
    # Java 8 and older report "1.8.0_x"
    return int(m.group(2) or 0) if major == 1 else major


def _find_maven() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ToolMissingError(
            f"no `mvn` on PATH: Maven resolves the Kafka {KAFKA_VERSION} jars; {_INSTALL_HINT}")
    return mvn


def _pom_digest() -> str:
    return hashlib.sha256(_POM.read_bytes()).hexdigest()


def ensure_kafka(home: str | os.PathLike[str] | None = None, *,
                 force: bool = False) -> KafkaDistribution:
    """Resolve the Kafka jars into ``home`` unless already there, and return the distribution.

    Safe to call from several processes at once: the first resolves under a file lock, the
    others wait for it and then see the marker. Raises :class:`ToolMissingError` without Java
    or Maven, :class:`JarResolutionError` when Maven fails.
    """
    java = find_java()
    root = Path(home).expanduser().resolve() if home is not None else default_home()
    dist = KafkaDistribution(home=root, version=KAFKA_VERSION, java=java)
    digest = _pom_digest()
    if not force and _is_resolved(root, digest):
        return dist
    mvn = _find_maven()
    root.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and _is_resolved(root, digest):
            return dist
        _resolve(mvn, root, digest)
    return dist


def _is_resolved(root: Path, digest: str) -> bool:
    try:
        marker = (root / _MARKER).read_text().strip()
    except OSError:
        return False
    return marker == digest and any((root / "libs").glob("kafka_2.13-*.jar"))


def _resolve(mvn: str, root: Path, digest: str) -> None:
    (root / _MARKER).unlink(missing_ok=True)
    # Maven gets its own copy of the pom: the package directory may be read-only.
    pom = root / "pom.xml"
    shutil.copyfile(_POM, pom)
    staging = root / f"libs.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(pom),
           "dependency:copy-dependencies", f"-DoutputDirectory={staging}"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    except subprocess.TimeoutExpired as e:
        raise JarResolutionError(f"`{' '.join(cmd)}` did not finish in {e.timeout:.0f} s") from e
    if out.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        tail = "\n".join((out.stdout + out.stderr).splitlines()[-40:])
        raise JarResolutionError(
            f"Maven could not resolve Kafka {KAFKA_VERSION} (exit {out.returncode}); check network "
            f"access to Maven Central and ~/.m2/settings.xml. Command: {' '.join(cmd)}\n{tail}")
    libs = root / "libs"
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    (root / _MARKER).write_text(digest + "\n")
