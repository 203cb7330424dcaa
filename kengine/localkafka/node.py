"""One Kafka node's JVM, tracked by pid.

Each JVM runs in a process group of its own (its pid is the group id), so signals reach it and
nothing else: a Ctrl-C in the terminal does not, and stopping it never touches another
process. A pidfile in the node's directory lets a later process find and stop it. A node
started by a process that later re-attaches (``KafkaCluster.attach``) is *adopted*: it is not
our child, so it is watched through ``/proc`` and recognised by its command line before any
signal is sent, in case the pid was reused.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from ..errors import IllegalStateError, KafkaTimeoutError

__all__ = ["NodeProcess", "node_still_exiting", "pid_is_node"]

_SETPRIV = shutil.which("setpriv")


# A broker keeps a file descriptor per log segment and index: thousands of partitions need
# more than the usual 1024 or 20000. Raised for the JVM alone, as far as this process may.
_WANTED_OPEN_FILES = 1 << 20


def _raise_open_files_limit(pid: int) -> None:
    try:
        import resource
    except ImportError:   # not POSIX: the platform's default stands
        return
    try:
        nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        nr_open = _WANTED_OPEN_FILES
    wanted = min(_WANTED_OPEN_FILES, nr_open)
    try:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (wanted, wanted))
    except (PermissionError, ValueError):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]   # what an unprivileged user may
        try:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))
        except OSError:
            pass
    except (OSError, AttributeError):
        pass   # the JVM already exited (its log says why), or no prlimit on this platform


def pid_is_node(pid: int, properties: Path) -> bool:
    """Whether ``pid`` is alive and is the JVM started with this ``server.properties``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = _proc_state(pid)
    except OSError:
        return False
    return state not in ("Z", "X") and os.fsencode(str(properties)) in cmdline


def node_still_exiting(pid: int, properties: Path) -> bool:
    """Whether ``pid`` is still the node's JVM or what is left of it after a SIGKILL: the kernel
    empties a dying process's command line before the process is gone (a zombie), and a port
    or data directory is free only then."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = _proc_state(pid)
    except OSError:
        return False
    if state in ("Z", "X"):
        return False
    return cmdline == b"" or os.fsencode(str(properties)) in cmdline.split(b"\0")


def _proc_state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # the command name in parentheses may contain spaces: the state follows the last ')'
    return stat[stat.rindex(")") + 2]


class NodeProcess:
    """The JVM of node ``node_id``, whose files live in ``directory``.

    Not thread-safe: one controlling thread (the cluster's owner) drives it.
    """

    def __init__(self, node_id: int, directory: Path, command: Sequence[str]) -> None:
        self.node_id = node_id
        self.directory = directory
        self.command = list(command)
        self.properties = directory / "server.properties"
        self.logs_dir = directory / "logs"
        self.pidfile = directory / "kafka.pid"
        #: pid of the running JVM, None when not started or known dead
        self.pid: int | None = None
        #: set while the JVM is SIGSTOPped
        self.paused = False
        self._popen: subprocess.Popen[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, *, detach: bool) -> int:
        """Start the JVM; ``detach`` lets it outlive this Python process."""
        if self.running():
            raise IllegalStateError(f"node {self.node_id} is already running (pid {self.pid})")
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        cmd = self.command
        # Without detach the JVM must not outlive us even if we are SIGKILLed. The death signal
        # follows the *thread* that forked, so it is only armed from the main thread.
        if not detach and _SETPRIV and threading.current_thread() is threading.main_thread():
            cmd = [_SETPRIV, "--pdeathsig", "KILL", "--", *cmd]
        with open(self.logs_dir / "stdout.log", "ab") as out:
            out.write(f"\n=== starting node {self.node_id}: {' '.join(self.command)}\n".encode())
            out.flush()
            self._popen = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.directory)
        self.pid = self._popen.pid
        _raise_open_files_limit(self.pid)
        self.paused = False
        self.pidfile.write_text(f"{self.pid}\n")
        return self.pid

    @classmethod
    def adopt(cls, node_id: int, directory: Path, command: Sequence[str],
              pid: int | None) -> NodeProcess:
        """A handle on a node started by another process (``pid`` from its state file)."""
        node = cls(node_id, directory, command)
        if pid is not None and pid_is_node(pid, node.properties):
            node.pid = pid
            node.paused = _proc_state(pid) == "T"
        return node

    def running(self) -> bool:
        """Whether the JVM is alive (paused counts as alive)."""
        if self.pid is None:
            return False
        if self._popen is not None:
            alive = self._popen.poll() is None
        else:
            alive = pid_is_node(self.pid, self.properties)
        if not alive:
            self._forget()
        return alive

    def exit_code(self) -> int | None:
        return self._popen.returncode if self._popen is not None else None

    def kill(self) -> None:
        """SIGKILL the process group and reap it."""
        if self.running():
            self._signal(signal.SIGKILL)
            self._wait(30.0)
        self._forget()

    def terminate(self, timeout: float = 60.0) -> None:
        """SIGTERM (Kafka's controlled shutdown), then SIGKILL if still alive after ``timeout``."""
        if not self.running():
            self._forget()
            return
        if self.paused:
            self.resume()
        self._signal(signal.SIGTERM)
        try:
            self._wait(timeout)
        except KafkaTimeoutError:
            self._signal(signal.SIGKILL)
            self._wait(30.0)
        self._forget()

    def pause(self) -> None:
        """SIGSTOP the JVM and return once it is stopped (delivery to a process of many
        threads is asynchronous)."""
        self._require_running("pause")
        self._signal(signal.SIGSTOP)
        self.paused = True
        assert self.pid is not None
        deadline = time.monotonic() + 30.0
        while _proc_state(self.pid) != "T":
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"node {self.node_id} (pid {self.pid}) did not stop "
                                        "within 30 s of SIGSTOP")
            time.sleep(0.01)

    def resume(self) -> None:
        self._require_running("resume")
        self._signal(signal.SIGCONT)
        self.paused = False

    # -- diagnostics -------------------------------------------------------------------------

    def log_tail(self, lines: int = 200) -> str:
        parts = []
        for name in ("stdout.log", "server.log"):
            path = self.logs_dir / name
            if path.exists():
                with open(path, errors="replace") as f:
                    tail = "".join(deque(f, maxlen=lines))
                parts.append(f"--- node {self.node_id} {path} (last {lines} lines) ---\n{tail}")
        return "\n".join(parts) or f"--- node {self.node_id}: no logs in {self.logs_dir} ---"

    # -- internals ---------------------------------------------------------------------------

    def _require_running(self, what: str) -> None:
        if not self.running():
            raise IllegalStateError(f"cannot {what} node {self.node_id}: it is not running")

    def _signal(self, sig: signal.Signals) -> None:
        assert self.pid is not None
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def _wait(self, timeout: float) -> None:
        if self._popen is not None:
            try:
                self._popen.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                raise KafkaTimeoutError(
                    f"node {self.node_id} (pid {self.pid}) still alive after {timeout:.0f} s"
                ) from None
        deadline = time.monotonic() + timeout
        while self.pid is not None and node_still_exiting(self.pid, self.properties):
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(
                    f"node {self.node_id} (pid {self.pid}) still alive after {timeout:.0f} s")
            time.sleep(0.05)

    def _forget(self) -> None:
        if self._popen is not None:
            self._popen.poll()  # reap
        self.pid = None
        self._popen = None
        self.paused = False
        self.pidfile.unlink(missing_ok=True)
