"""One client's run of one scenario in one round, as stored in results.json."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.broker import Verification
from benchmarks.spec import RunResult

__all__ = ["Run", "lane_key"]


def lane_key(client: str, guarantee: str) -> str:
    """``client``, or ``client/guarantee`` in scenarios comparing guarantees."""
    return f"{client}/{guarantee}" if guarantee else client


@dataclass
class Run:
    scenario: str               # Scenario.id
    client: str                 # Client.name
    round: int
    record_bytes: int
    expected: int               # records the topic must hold: warm-up + measured
    idempotence_requested: bool
    #: the lane's guarantee in scenarios comparing guarantees (plan.GUARANTEES); else empty
    guarantee: str = ""
    result: RunResult | None = None
    verification: Verification | None = None
    #: why the run does not count (its figures are left out of every summary); None if it does
    error: str | None = None
    log_file: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def lane(self) -> str:
        """The key of the run's figures within its scenario: the client, with the guarantee
        when the scenario compares guarantees."""
        return lane_key(self.client, self.guarantee)

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None

    @property
    def records_per_s(self) -> float:
        assert self.result is not None
        return self.result.records / self.result.window_s

    @property
    def mb_per_s(self) -> float:
        """Value bytes per second, in MB (10^6 bytes): keys and protocol overhead excluded."""
        return self.records_per_s * self.record_bytes / 1e6

    @property
    def cpu_us_per_record(self) -> float:
        assert self.result is not None
        cpu_s = self.result.cpu_user_s + self.result.cpu_system_s
        return cpu_s / self.result.records * 1e6

    @property
    def idempotence(self) -> str:
        """``off``, ``on`` (the brokers saw a producer id), or ``not in effect`` (asked for,
        but the brokers saw none)."""
        if self.verification is None:
            return "unknown"
        seen = bool(self.verification.producer_ids)
        if not self.idempotence_requested:
            return "on" if seen else "off"
        return "on" if seen else "not in effect"

    @property
    def guarantee_seen(self) -> str:
        """What the partition leaders saw: ``transactional`` (the run's producer wrote
        transaction markers), ``idempotent`` (a producer id without), ``non-idempotent``."""
        v = self.verification
        if v is None:
            return "unknown"
        if v.txn_producer_ids:
            return "transactional"
        return "idempotent" if v.producer_ids else "non-idempotent"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.ok:
            data["derived"] = {"records_per_s": self.records_per_s, "mb_per_s": self.mb_per_s,
                               "cpu_us_per_record": self.cpu_us_per_record,
                               "idempotence": self.idempotence,
                               "guarantee_seen": self.guarantee_seen}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        data = {k: v for k, v in data.items() if k != "derived"}
        if data.get("result") is not None:
            data["result"] = RunResult(**data["result"])
        if data.get("verification") is not None:
            data["verification"] = Verification(**data["verification"])
        return cls(**data)
