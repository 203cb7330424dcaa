"""A TCP forwarder on 127.0.0.1 standing for an address that outlives the brokers behind it (a
load balancer or DNS name in front of a cluster): ``retarget()`` sends new connections to
another broker and cuts the open ones.

    with Forwarder(("127.0.0.1", broker_port)) as fwd:
        producer = Producer(bootstrap_servers=fwd.address)
        ...
        fwd.retarget(("127.0.0.1", new_broker_port))
"""
from __future__ import annotations

import selectors
import socket
import threading
from types import TracebackType

__all__ = ["Forwarder"]


class Forwarder:
    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self.connections = 0   #: connections accepted so far
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True,
                                          name="test-forwarder-accept")]
        self._threads[0].start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def retarget(self, target: tuple[str, int]) -> None:
        """New connections go to ``target``; open ones are closed."""
        with self._lock:
            self._target = target
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                target = self._target
                self.connections += 1
            try:
                upstream = socket.create_connection(target, timeout=5)
            except OSError:
                client.close()   # as a dead broker would: refused
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            t = threading.Thread(target=self._pump, args=(client, upstream), daemon=True,
                                 name="test-forwarder-pump")
            t.start()
            self._threads.append(t)

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        try:
            a.setblocking(False)
            b.setblocking(False)
            sel.register(a, selectors.EVENT_READ, b)
            sel.register(b, selectors.EVENT_READ, a)
            while not self._stop.is_set():
                for key, _ in sel.select(0.2):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.setblocking(True)
                    key.data.sendall(data)
                    key.data.setblocking(False)
        except (OSError, ValueError):
            return
        finally:
            sel.close()
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self.retarget(self._target)
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> Forwarder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
