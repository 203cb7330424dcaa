"""Which brokers cannot be reached right now, for the log and for the errors users get.

A broker that goes away used to show in the log only as INFO lines, one per failed connection
attempt (every ``reconnect.backoff.ms``), and the records waiting for it failed later with no
word of it. ``BrokerReachability`` turns the attempts into two WARNING lines: one when an
address is first found unreachable (with the error), one when a connection to it works again
(with how long it was away and how many attempts failed). A broker that flaps is warned about
at most once per ``WARN_INTERVAL_MS``; the flaps in between are logged at DEBUG and counted in
the next warning. Outages are kept by address, not node id, so a broker and the bootstrap
entry of the same address are one outage.

Used by ``NetworkClient`` on the sender thread only (no lock): it reports every failed
connection attempt (``failed``) and every connection that becomes ready (``connected``);
the sender reads ``describe()`` for the delivery-timeout error of records that waited for an
unreachable broker.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from kengine_ext import monotonic_ms

__all__ = ["BrokerReachability", "WARN_INTERVAL_MS"]

_log = logging.getLogger("kengine.network")

#: at most one "unreachable" warning per address in this many ms
WARN_INTERVAL_MS = 60_000


class _Outage:
    __slots__ = ("label", "since_ms", "attempts", "error", "warned")

    def __init__(self, label: str, since_ms: int, error: str, warned: bool) -> None:
        self.label = label          # "broker 1 (127.0.0.1:9092)" or "bootstrap server ..."
        self.since_ms = since_ms    # monotonic ms of the first failed attempt
        self.attempts = 1           # failed connection attempts so far
        self.error = error          # the last attempt's error
        self.warned = warned        # its start was logged at WARNING: so will its end be


class BrokerReachability:
    """Outages by address ("host:port"); sender thread only."""

    def __init__(self, client_id: str, clock: Callable[[], int] = monotonic_ms) -> None:
        self._client_id = client_id
        self._clock = clock
        self._outages: dict[str, _Outage] = {}
        #: address -> monotonic ms of its last "unreachable" warning
        self._warned_ms: dict[str, int] = {}
        #: address -> outages not warned about since its last warning (rate limit)
        self._unwarned: dict[str, int] = {}

    @staticmethod
    def label(node_id: int, address: str) -> str:
        return (f"bootstrap server {address}" if node_id < 0
                else f"broker {node_id} ({address})")

    def failed(self, node_id: int, address: str, error: object) -> None:
        """A connection attempt to ``address`` failed before it was ready."""
        now = self._clock()
        text = str(error)
        outage = self._outages.get(address)
        if outage is not None:
            outage.attempts += 1
            outage.error = text
            _log.debug("[%s] %s is still unreachable (attempt %d): %s", self._client_id,
                       outage.label, outage.attempts, text)
            return
        label = self.label(node_id, address)
        last = self._warned_ms.get(address)
        warn = last is None or now - last >= WARN_INTERVAL_MS
        self._outages[address] = _Outage(label, now, text, warn)
        if not warn:
            self._unwarned[address] = self._unwarned.get(address, 0) + 1
            _log.debug("[%s] %s is unreachable: %s", self._client_id, label, text)
            return
        self._warned_ms[address] = now
        flaps = self._unwarned.pop(address, 0)
        again = (f" ({flaps} more outage(s) of it since the last warning)" if flaps else "")
        _log.warning("[%s] %s is unreachable: %s; retrying (reconnect.backoff.ms), records for "
                     "its partitions wait until delivery.timeout.ms%s", self._client_id, label,
                     text, again)

    def connected(self, address: str) -> None:
        """A connection to ``address`` became ready."""
        outage = self._outages.pop(address, None)
        if outage is None:
            return
        away_ms = self._clock() - outage.since_ms
        _log.log(logging.WARNING if outage.warned else logging.DEBUG,
                 "[%s] %s is reachable again after %.1f s (%d failed connection attempt(s), "
                 "the last: %s)", self._client_id, outage.label, away_ms / 1000,
                 outage.attempts, outage.error)

    def describe(self, address: str | None) -> str | None:
        """``"broker 1 (h:p) unreachable for 12.3 s: <error>"`` while ``address`` is out,
        else None."""
        outage = self._outages.get(address) if address is not None else None
        if outage is None:
            return None
        return (f"{outage.label} unreachable for {(self._clock() - outage.since_ms) / 1000:.1f} s"
                f" ({outage.attempts} failed connection attempt(s); last: {outage.error})")

    def describe_all(self) -> str | None:
        """Every address out now, for failures without a known leader."""
        if not self._outages:
            return None
        return "; ".join(filter(None, (self.describe(a) for a in self._outages)))
