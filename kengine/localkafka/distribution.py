"""The Apache Kafka distribution the local brokers run: found Java, Maven, and the jar cache.

The jars are not downloaded as a release tarball but resolved from Maven Central with the
checked-in ``pom.xml`` (broker, tools, clients and a log4j2 binding), once per Kafka version,
into a cache directory: ``~/.cache/kengine/kafka-<version>`` (``$KENGINE_KAFKA_HOME`` for the
default version). A marker file holding the rendered pom's digest makes later calls skip
Maven; editing the pom re-resolves.

Any Kafka release on Maven Central can run (``ensure_kafka(version="3.9.1")``); :data:`MATRIX`
lists the ones the compatibility suite tests. Releases before 3.3 run in ZooKeeper mode (KRaft
was not production-ready before 3.3): their ZooKeeper jar comes from Maven Central as a
dependency of the broker, and the launcher runs a ZooKeeper server for them.
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

__all__ = ["KAFKA_VERSION", "MATRIX", "KafkaDistribution", "default_home", "ensure_kafka",
           "find_java", "metadata_mode", "resolve_version"]

#: The default version; must match ``kafka.version`` in pom.xml.
KAFKA_VERSION = "4.4.0"
#: The broker versions the compatibility suite runs on, newest first: the default, the first
#: 4.x, the last 3.x (KRaft), and the oldest line that runs on Java 17 in ZooKeeper mode.
MATRIX: tuple[str, ...] = ("4.4.0", "4.0.2", "3.9.1", "3.0.2")
# short names: "3.9" is the matrix's 3.9.x
_ALIASES = {v.rsplit(".", 1)[0]: v for v in MATRIX}
# KRaft is production-ready from 3.3 (KIP-833); older releases run on ZooKeeper here
_FIRST_KRAFT = (3, 3)
MIN_JAVA_MAJOR = 17
_POM = Path(__file__).with_name("pom.xml")
_MARKER = ".resolved"
_INSTALL_HINT = (
    "install a JDK 17+ and Maven (Debian/Ubuntu: apt-get install openjdk-17-jdk-headless maven), "
    "or put them on PATH (JAVA_HOME is honoured for java)"
)


def resolve_version(version: str | None) -> str:
    """``None`` -> the default; "3.9" -> the matrix's 3.9.x; "3.5.2" as is."""
    if version is None:
        return KAFKA_VERSION
    text = str(version).strip()
    text = _ALIASES.get(text, text)
    if not re.fullmatch(r"\d+\.\d+\.\d+", text):
        raise ValueError(f"Kafka version {version!r}: expected X.Y.Z (e.g. 3.9.1) or one of "
                         f"{', '.join(sorted(_ALIASES))}")
    return text


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


def metadata_mode(version: str) -> str:
    """"kraft" or "zookeeper": how the launcher runs this Kafka version."""
    return "kraft" if _version_tuple(version)[:2] >= _FIRST_KRAFT else "zookeeper"


@dataclass(frozen=True)
class KafkaDistribution:
    """A resolved Kafka: where its jars are and which ``java`` runs them."""

    home: Path
    version: str
    java: str

    @property
    def mode(self) -> str:
        """"kraft" (combined or dedicated KRaft controllers) or "zookeeper"."""
        return metadata_mode(self.version)

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return _version_tuple(self.version)

    @property
    def libs(self) -> Path:
        return self.home / "libs"

    @property
    def classpath(self) -> str:
        # a JVM classpath wildcard: every jar in libs/, without listing ~80 names
        return str(self.libs / "*")


def default_home(version: str | None = None) -> Path:
    """``$XDG_CACHE_HOME`` (or ``~/.cache``) ``/kengine/kafka-<version>``; for the default
    version ``$KENGINE_KAFKA_HOME`` wins when set."""
    version = resolve_version(version)
    env = os.environ.get("KENGINE_KAFKA_HOME")
    if env and version == KAFKA_VERSION:
        return Path(env).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "kengine" / f"kafka-{version}"


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


# Kafka 3.x calls log4j 1's API directly in a few places (its Log4jController MBean): the
# log4j2 bridge for that API lets those calls log through the same log4j2 set-up.
_LOG4J1_BRIDGE = """    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-1.2-api</artifactId>
      <version>${log4j.version}</version>
    </dependency>
  </dependencies>"""


# Kafka 3.x's tools bring log4j 1 and its slf4j binding: with log4j2's binding beside it, slf4j
# would pick one of the two at random. Excluded, every log line goes through log4j2.
_LOG4J1_EXCLUSIONS = """<version>${kafka.version}</version>
      <exclusions>
        <exclusion><groupId>org.slf4j</groupId><artifactId>slf4j-log4j12</artifactId></exclusion>
        <exclusion><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId></exclusion>
        <exclusion><groupId>log4j</groupId><artifactId>log4j</artifactId></exclusion>
        <exclusion><groupId>ch.qos.reload4j</groupId><artifactId>reload4j</artifactId></exclusion>
      </exclusions>"""


def render_pom(version: str | None = None) -> str:
    """The pom resolving Kafka ``version``: the checked-in one with its version replaced."""
    version = resolve_version(version)
    text = _POM.read_text()
    text = text.replace(f"<kafka.version>{KAFKA_VERSION}</kafka.version>",
                        f"<kafka.version>{version}</kafka.version>")
    text = text.replace(f"<version>{KAFKA_VERSION}</version>", f"<version>{version}</version>",
                        1)
    if _version_tuple(version) < (4,):
        text = text.replace("  </dependencies>", _LOG4J1_BRIDGE, 1)
        text = text.replace("<version>${kafka.version}</version>", _LOG4J1_EXCLUSIONS)
    return text


def _pom_digest(version: str | None = None) -> str:
    return hashlib.sha256(render_pom(version).encode()).hexdigest()


def ensure_kafka(home: str | os.PathLike[str] | None = None, *, force: bool = False,
                 version: str | None = None) -> KafkaDistribution:
    """Resolve the jars of Kafka ``version`` (default :data:`KAFKA_VERSION`) into ``home``
    (default :func:`default_home`) unless already there, and return the distribution.

    Safe to call from several processes at once: the first resolves under a file lock, the
    others wait for it and then see the marker. Raises :class:`ToolMissingError` without Java
    or Maven, :class:`JarResolutionError` when Maven fails.
    """
    version = resolve_version(version)
    java = find_java()
    root = Path(home).expanduser().resolve() if home is not None else default_home(version)
    dist = KafkaDistribution(home=root, version=version, java=java)
    digest = _pom_digest(version)
    if not force and _is_resolved(root, digest):
        return dist
    mvn = _find_maven()
    root.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and _is_resolved(root, digest):
            return dist
        _resolve(mvn, root, digest, version)
    return dist


def _is_resolved(root: Path, digest: str) -> bool:
    try:
        marker = (root / _MARKER).read_text().strip()
    except OSError:
        return False
    return marker == digest and any((root / "libs").glob("kafka_2.13-*.jar"))


def _resolve(mvn: str, root: Path, digest: str, version: str) -> None:
    (root / _MARKER).unlink(missing_ok=True)
    # Maven gets its own copy of the pom: the package directory may be read-only.
    pom = root / "pom.xml"
    pom.write_text(render_pom(version))
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
            f"Maven could not resolve Kafka {version} (exit {out.returncode}); check network "
            f"access to Maven Central and ~/.m2/settings.xml. Command: {' '.join(cmd)}\n{tail}")
    libs = root / "libs"
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    (root / _MARKER).write_text(digest + "\n")
