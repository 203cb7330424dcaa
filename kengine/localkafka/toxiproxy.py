"""Toxiproxy (Shopify's TCP fault proxy) for network-fault tests against local Kafka.

    from kengine.localkafka import KafkaCluster, Listener, Toxiproxy

    cluster = KafkaCluster(3, listeners=[Listener(), Listener("CLIENT", proxied=True)])
    with Toxiproxy() as toxi:
        proxies = toxi.front(cluster, "CLIENT")     # one proxy per broker
        producer = Producer(bootstrap_servers=cluster.bootstrap_servers_for("CLIENT"))
        proxies[1].add_toxic("latency", latency=200, jitter=50)   # responses from broker 1
        proxies[2].disable()                                     # broker 2 unreachable

The server is built once from its Go module (``go install``, through the Go module proxy) into
``~/.cache/kengine/toxiproxy-<version>/`` beside the Kafka jars (``ensure_toxiproxy``), started
on 127.0.0.1 on a free port, and killed by pid (its own process group) on :meth:`close`, at
interpreter exit, or, started from the main thread, when this process dies
(``setpriv --pdeathsig``). The HTTP API is spoken with the standard library.

Toxics act on one direction of a proxy: ``stream="downstream"`` (the default) on what the broker
sends to the client, ``"upstream"`` on what the client sends.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import KafkaTimeoutError
from .distribution import default_home
from .errors import BrokerStartError, LocalKafkaError, ToolMissingError

if TYPE_CHECKING:
    from .launcher import KafkaCluster

__all__ = ["TOXIPROXY_VERSION", "Proxy", "Toxiproxy", "ToxiproxyError", "ensure_toxiproxy"]

#: The Toxiproxy release built and run (a Go module version without its "v").
TOXIPROXY_VERSION = "2.12.0"
_MODULE = "github.com/Shopify/toxiproxy/v2/cmd/server"
_BINARY = "toxiproxy-server"
_SETPRIV = shutil.which("setpriv")
_GO_HINT = ("install Go 1.22 or newer (Debian/Ubuntu: apt-get install golang-go, or put an "
            "existing one on PATH); the Toxiproxy server is built from its Go module once")


class ToxiproxyError(LocalKafkaError):
    """The Toxiproxy server refused a request or could not be built or started."""


def toxiproxy_home(version: str = TOXIPROXY_VERSION) -> Path:
    """``~/.cache/kengine/toxiproxy-<version>`` (beside the Kafka jars;
    ``$KENGINE_TOXIPROXY_HOME`` wins when set)."""
    env = os.environ.get("KENGINE_TOXIPROXY_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return default_home().parent / f"toxiproxy-{version}"


def ensure_toxiproxy(version: str = TOXIPROXY_VERSION, *, force: bool = False) -> Path:
    """Path of the Toxiproxy server binary ``version``, built with ``go install`` unless cached.
    Safe to call from several processes at once (a file lock). Raises
    :class:`ToolMissingError` without Go, :class:`ToxiproxyError` when the build fails."""
    home = toxiproxy_home(version)
    binary = home / _BINARY
    if not force and _built(binary, version):
        return binary
    go = shutil.which("go")
    if go is None:
        raise ToolMissingError(f"no `go` on PATH: {_GO_HINT}")
    home.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f".{home.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and _built(binary, version):
            return binary
        staging = Path(tempfile.mkdtemp(prefix="gobin-", dir=home))
        env = {**os.environ, "GOBIN": str(staging), "CGO_ENABLED": "0"}
        cmd = [go, "install", f"{_MODULE}@v{version}"]
        try:
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200,
                                 check=False, cwd=home)
        except subprocess.TimeoutExpired as e:
            shutil.rmtree(staging, ignore_errors=True)
            raise ToxiproxyError(f"`{' '.join(cmd)}` did not finish in {e.timeout:.0f} s") from e
        built = staging / "server"
        if out.returncode != 0 or not built.exists():
            shutil.rmtree(staging, ignore_errors=True)
            tail = "\n".join((out.stdout + out.stderr).splitlines()[-30:])
            raise ToxiproxyError(
                f"building Toxiproxy {version} failed (exit {out.returncode}); check access to "
                f"the Go module proxy (GOPROXY={os.environ.get('GOPROXY', 'default')}). "
                f"Command: {' '.join(cmd)}\n{tail}")
        os.replace(built, binary)
        shutil.rmtree(staging, ignore_errors=True)
    return binary


def _built(binary: Path, version: str) -> bool:
    if not os.access(binary, os.X_OK):
        return False
    try:
        out = subprocess.run([str(binary), "-version"], capture_output=True, text=True,
                             timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return version in out.stdout + out.stderr


class Proxy:
    """One proxy of a :class:`Toxiproxy` server: ``listen`` -> ``upstream``."""

    def __init__(self, server: Toxiproxy, name: str, listen: str, upstream: str) -> None:
        self.server = server
        self.name = name
        self.listen = listen
        self.upstream = upstream

    def add_toxic(self, type: str, *, stream: str = "downstream", toxicity: float = 1.0,
                  name: str | None = None, **attributes: Any) -> str:
        """Add a toxic (``latency``, ``bandwidth``, ``slow_close``, ``timeout``,
        ``reset_peer``, ``slicer``, ``limit_data``) with its attributes; returns its name."""
        name = name or f"{type}_{stream}"
        self.server._request("POST", f"/proxies/{self.name}/toxics", {
            "name": name, "type": type, "stream": stream, "toxicity": toxicity,
            "attributes": attributes})
        return name

    def remove_toxic(self, name: str) -> None:
        self.server._request("DELETE", f"/proxies/{self.name}/toxics/{name}")

    def toxics(self) -> list[dict[str, Any]]:
        return list(self.server._request("GET", f"/proxies/{self.name}/toxics") or [])

    def clear(self) -> None:
        """Remove every toxic of this proxy."""
        for toxic in self.toxics():
            self.remove_toxic(toxic["name"])

    def disable(self) -> None:
        """Close the listening port and every open connection: the broker is unreachable
        (connections refused) until :meth:`enable`."""
        self.server._request("POST", f"/proxies/{self.name}", {"enabled": False})

    def enable(self) -> None:
        self.server._request("POST", f"/proxies/{self.name}", {"enabled": True})

    def __repr__(self) -> str:
        return f"<Proxy {self.name} {self.listen} -> {self.upstream}>"


class Toxiproxy:
    """A Toxiproxy server of its own on ``host``, started by the constructor.

    Not thread-safe beyond what its HTTP API is: drive it from one thread, or guard it.
    """

    def __init__(self, *, host: str = "127.0.0.1", workdir: str | os.PathLike[str] | None = None,
                 version: str = TOXIPROXY_VERSION, startup_timeout: float = 30.0,
                 seed: int | None = None) -> None:
        self.binary = ensure_toxiproxy(version)
        self.host = host
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="kengine-toxiproxy-")).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "toxiproxy.log"
        self.proxies: dict[str, Proxy] = {}
        self._closed = False
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        for attempt in range(1, 4):   # the free port can be taken before the server binds it
            with socket.socket() as s:
                s.bind((host, 0))
                self.port = s.getsockname()[1]
            try:
                self._start(seed, startup_timeout)
                break
            except BrokerStartError as e:
                self._kill()
                if attempt == 3:
                    raise ToxiproxyError(f"the Toxiproxy server did not start: {e}") from e
            except BaseException:
                self._kill()
                raise
        # at exit or collection, unless this is a forked child that inherited the server
        self._finalizer = weakref.finalize(self, _kill_group, os.getpid(), self.pid)

    # -- process -----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def api(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _start(self, seed: int | None, timeout: float) -> None:
        cmd = [str(self.binary), "-host", self.host, "-port", str(self.port)]
        if seed is not None:
            cmd += ["-seed", str(seed)]
        if _SETPRIV and threading.current_thread() is threading.main_thread():
            cmd = [_SETPRIV, "--pdeathsig", "KILL", "--", *cmd]
        with open(self.log_path, "ab") as out:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.workdir,
                env={**os.environ, "LOG_LEVEL": os.environ.get("TOXIPROXY_LOG_LEVEL", "warn")})
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise BrokerStartError(f"toxiproxy exited with {self._proc.returncode}:\n"
                                       f"{self.log_tail()}")
            try:
                self._request("GET", "/version", timeout=1.0)
                return
            except (OSError, ToxiproxyError):
                pass
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"toxiproxy on {self.api} not answering after "
                                        f"{timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _kill(self) -> None:
        if self._proc is not None:
            _kill_group(os.getpid(), self._proc.pid)
            self._proc.wait()

    def close(self) -> None:
        """Kill the server by pid (its proxies go with it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._finalizer.detach()
        self._kill()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Toxiproxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- proxies -----------------------------------------------------------------------------

    def create(self, name: str, listen: str, upstream: str) -> Proxy:
        self._request("POST", "/proxies", {"name": name, "listen": listen,
                                           "upstream": upstream, "enabled": True})
        proxy = self.proxies[name] = Proxy(self, name, listen, upstream)
        return proxy

    def front(self, cluster: KafkaCluster, listener: str) -> dict[int, Proxy]:
        """One proxy per broker of ``cluster`` on its proxied ``listener``: listening on the
        advertised address, forwarding to the broker's own. Returns them by node id."""
        out = {}
        for node in cluster.nodes:
            listen = cluster.address(node, listener)
            upstream = cluster.bind_address(node, listener)
            if listen == upstream:
                raise ToxiproxyError(f"listener {listener!r} of node {node} is not proxied: "
                                     "declare it Listener(name, proxied=True)")
            out[node] = self.create(f"{cluster.cluster_id}-{listener}-{node}".lower(),
                                    listen, upstream)
        return out

    def reset(self) -> None:
        """Every proxy enabled again and every toxic removed (between tests)."""
        self._request("POST", "/reset")

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None = None, *,
                 timeout: float = 10.0) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with self._lock:
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    text = resp.read()
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")
                raise ToxiproxyError(f"toxiproxy {method} {path} answered {e.code}: "
                                     f"{detail}") from None
        return json.loads(text) if text.strip() else None


def _kill_group(owner_pid: int, pid: int) -> None:
    """SIGKILL the server's process group, unless this is a forked child that inherited it."""
    if os.getpid() != owner_pid:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
