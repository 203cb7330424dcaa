"""What a benchmark run measures: topic layouts, scenarios, and the quick and full plans."""
from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.clients import CLIENTS, Client
from benchmarks.spec import ProducerSettings

__all__ = ["FULL", "GUARANTEES", "LAYOUTS", "PLANS", "QUICK", "Layout", "Plan", "Scenario"]


@dataclass(frozen=True)
class Layout:
    """A Kafka cluster and the shape of the fresh topic each run writes to."""

    name: str
    brokers: int
    partitions: int
    replication_factor: int
    topic_config: dict[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        if self.brokers == 1:
            return f"1 broker, {self.partitions} partitions"
        return (f"{self.brokers} brokers, {self.partitions} partitions, RF "
                f"{self.replication_factor}, min.insync.replicas "
                f"{self.topic_config.get('min.insync.replicas', 1)}")


LAYOUTS = {
    "single": Layout("single", 1, 6, 1),
    "cluster3": Layout("cluster3", 3, 6, 3, {"min.insync.replicas": "2"}),
    # issue 25: the cost of many partitions (keys str(i % 1000) reach about 630 of 1,000)
    "single-100p": Layout("single-100p", 1, 100, 1),
    "single-1000p": Layout("single-1000p", 1, 1000, 1),
    "cluster3-1000p": Layout("cluster3-1000p", 3, 1000, 3, {"min.insync.replicas": "2"}),
    # issue 23: the partition-count curve's last point, and the topics of the topic curve
    "single-5000p": Layout("single-5000p", 1, 5000, 1),
    "single-1p": Layout("single-1p", 1, 1, 1),
}

ALL_CLIENTS = tuple(CLIENTS)
#: the producer guarantees an ``eos`` scenario compares, each client running once under each:
#: acks=all without idempotence, idempotent (KIP-98 sequence numbers), and transactional
GUARANTEES = ("non-idempotent", "idempotent", "transactional")
#: share of a scenario's records a guarantee's lanes send: transactional lanes go tens of times
#: slower (a commit every ``transaction_records`` records), and a few dozen transactions already
#: give per-record figures as stable as the other lanes'
GUARANTEE_SHARE = {"transactional": 0.25}
EOS_CLIENTS = ("kengine-send", "kengine-send-many", "confluent-kafka")
LATENCY_CLIENTS = tuple(c.name for c in CLIENTS.values() if c.latency)
MEMORY_CLIENTS = ("kengine-send", "kengine-send-many", "confluent-kafka", "java", "aiokafka",
                  "kafka-python")


@dataclass(frozen=True)
class Scenario:
    """One workload, run by each of ``clients`` in every round.

    kind ``throughput``: ``records`` as fast as each client goes; ``memory``: the same with
    ``settings.buffer_memory_bytes`` bounded and many records, to read peak RSS; ``latency``:
    ``records`` at ``rate_per_s`` after one second of warm-up; ``eos``: throughput, with every
    client run once under each of ``guarantees`` in every round (a *lane* per client and
    guarantee, interleaved like clients), transactional lanes committing every
    ``transaction_records`` records. Elsewhere ``idempotent`` holds for every client."""

    kind: str
    layout: str
    record_bytes: int
    compression: str
    acks: str
    idempotent: bool
    records: int
    clients: tuple[str, ...] = ALL_CLIENTS
    rate_per_s: int = 0
    settings: ProducerSettings = field(default_factory=ProducerSettings)
    #: the lanes of each client (kind ``eos``), a subset of GUARANTEES; empty: one lane
    guarantees: tuple[str, ...] = ()
    #: records per transaction in the transactional lanes
    transaction_records: int = 0
    #: keys str(i % key_space); the scaling curves use enough keys to reach 5,000 partitions
    key_space: int = 1000
    #: topics of the layout's shape written at once, record i to topic i % topics
    topics: int = 1
    #: threads sharing one producer
    threads: int = 1

    def __post_init__(self) -> None:
        unknown = [g for g in self.guarantees if g not in GUARANTEES]
        if unknown:
            raise ValueError(f"scenario {self.id}: unknown guarantees {unknown}; choose from "
                             f"{list(GUARANTEES)}")
        if ("transactional" in self.guarantees) != (self.transaction_records > 0):
            raise ValueError(f"scenario {self.id}: transaction_records "
                             f"({self.transaction_records}) must be set exactly when a "
                             "transactional lane is asked for")
        lacking = [c for c in self.clients if self.transaction_records
                   and not CLIENTS[c].transactions]
        if lacking:
            raise ValueError(f"scenario {self.id}: {lacking} have no transactional driver; "
                             "leave them out of scenarios with transactional lanes")
        if (self.topics > 1 or self.threads > 1) and (
                "java" in self.clients or self.transaction_records):
            raise ValueError(f"scenario {self.id}: several topics or threads are for the "
                             "Python drivers without transactions (ProducerPerformance writes "
                             "one topic from one thread)")

    @property
    def lanes(self) -> tuple[tuple[str, str], ...]:
        """(client, guarantee) in table order; the guarantee is empty when the scenario has
        one lane per client."""
        if not self.guarantees:
            return tuple((c, "") for c in self.clients)
        return tuple((c, g) for c in self.clients for g in self.guarantees)

    def lane_order(self, round_index: int) -> list[tuple[str, str]]:
        """The lanes in the order round ``round_index`` runs them. The clients take turns
        going first (A B C, B C A, ...) so that drift in the machine's load spreads over them
        all; a client's guarantees run side by side, meeting the same load, and take turns
        going first too."""
        shift = round_index % len(self.clients)
        clients = self.clients[shift:] + self.clients[:shift]
        if not self.guarantees:
            return [(c, "") for c in clients]
        shift = round_index % len(self.guarantees)
        guarantees = self.guarantees[shift:] + self.guarantees[:shift]
        return [(c, g) for c in clients for g in guarantees]

    def idempotent_for(self, guarantee: str) -> bool:
        return self.idempotent if not guarantee else guarantee != "non-idempotent"

    def transaction_records_for(self, guarantee: str) -> int:
        return self.transaction_records if guarantee == "transactional" else 0

    @property
    def id(self) -> str:
        size = f"{self.record_bytes}B" if self.record_bytes < 1024 else \
            f"{self.record_bytes // 1024}KiB"
        parts = [self.kind, self.layout, size, self.compression, f"acks{self.acks}"]
        if self.idempotent:
            parts.append("idempotent")
        if self.transaction_records:
            parts.append(f"txn{self.transaction_records}")
        if self.kind == "latency":
            parts.append(f"{self.rate_per_s}rps")
        if self.key_space != 1000:
            parts.append(f"keys{self.key_space}")
        if self.topics > 1:
            parts.append(f"{self.topics}topics")
        if self.threads > 1:
            parts.append(f"{self.threads}threads")
        return "-".join(parts)

    @property
    def short(self) -> str:
        """A chart label: brokers, record size, codec, acks."""
        size = f"{self.record_bytes}B" if self.record_bytes < 1024 else \
            f"{self.record_bytes // 1024}KiB"
        text = f"{LAYOUTS[self.layout].brokers}b {size} {self.compression} acks={self.acks}"
        return text + " idem" if self.idempotent else text

    @property
    def title(self) -> str:
        size = f"{self.record_bytes} B" if self.record_bytes < 1024 else \
            f"{self.record_bytes // 1024} KiB"
        text = (f"{LAYOUTS[self.layout].title}; {size} records, {self.compression}, "
                f"acks={self.acks}")
        if self.idempotent:
            text += ", idempotent"
        if self.kind == "latency":
            text += f", {self.rate_per_s:,} records/s"
        if self.kind == "memory":
            text += f", buffer.memory {self.settings.buffer_memory_bytes // 2**20} MiB"
        if self.guarantees:
            text += "; " + ", ".join(self.guarantees)
        if self.transaction_records:
            text += f" ({self.transaction_records:,} records per transaction)"
        if self.topics > 1:
            text += f"; {self.topics:,} topics of that shape, records spread evenly"
        if self.threads > 1:
            text += f"; {self.threads} threads share one producer"
        if self.key_space != 1000:
            text += f"; keys str(i % {self.key_space:,})"
        return text

    def records_for(self, client: Client, guarantee: str = "") -> int:
        if self.kind == "latency":
            return self.records
        share = client.record_share * GUARANTEE_SHARE.get(guarantee, 1.0)
        return max(1, int(self.records * share))

    def warmup_for(self, client: Client, plan_warmup: int, guarantee: str = "") -> int:
        if self.kind == "latency":
            return self.rate_per_s  # one second at the rate
        n = min(plan_warmup, max(1, self.records_for(client, guarantee) // 5))
        # A broker's first write to a partition of a new topic is slow (about 3 ms here: 15 s
        # for a 5,000-partition topic), so the warm-up reaches (nearly) every partition the
        # measured records will: 4 records per partition (1 - e^-4 = 98% of them, keys hashing
        # at random) or one period of the key space, which the measured phase starts again.
        partitions = LAYOUTS[self.layout].partitions * self.topics
        if n < 4 * partitions:
            n = max(n, min(4 * partitions, self.key_space))
        return n


@dataclass(frozen=True)
class Plan:
    name: str
    rounds: int
    memory_rounds: int
    warmup_records: int
    scenarios: tuple[Scenario, ...]
    #: pytest-benchmark options for the micro benchmarks
    micro_args: tuple[str, ...]

    def layouts(self) -> list[str]:
        return list(dict.fromkeys(s.layout for s in self.scenarios))


_BOUNDED = ProducerSettings(buffer_memory_bytes=16 * 2**20)


def _latency(layout: str, acks: str, seconds: int) -> Scenario:
    rate = 20_000
    return Scenario("latency", layout, 100, "none", acks, False, rate * seconds,
                    clients=LATENCY_CLIENTS, rate_per_s=rate)


PARTITION_CLIENTS = ("kengine-send", "kengine-send-many", "confluent-kafka", "java")


def _partitions(layout: str, records: int) -> Scenario:
    """Issue 25: idempotent, acks=all, at full speed, on topics of many partitions."""
    return Scenario("partitions", layout, 100, "none", "all", True, records,
                    clients=PARTITION_CLIENTS)


SCALING_CLIENTS = ("kengine-send", "kengine-send-many", "confluent-kafka", "java")
#: keys enough for every partition of the largest topic (1 - e^-4: 98% of 5,000 partitions)
SCALING_KEY_SPACE = 20_000
#: the record sizes of the size curve, and the share of the 100-byte record count each sends
#: (the byte volume of the large ones bounds them, not their record count)
SCALING_SIZES = {10: 1.0, 100: 1.0, 1024: 0.5, 10 * 1024: 0.1, 100 * 1024: 0.01}


def _scaling(records: int) -> tuple[Scenario, ...]:
    """Issue 23's curves, every point idempotent, acks=all, no compression, 100-byte records
    unless the curve varies that: the partition count of one topic (1 to 5,000), the topic
    count (1 to 1,000 topics of one partition each: at 1,000 the same partition count as the
    1,000-partition topic, so the two say what a topic costs beyond its partitions; 1,000
    topics of 6 partitions overwhelm the one broker this machine can run), the record size
    (10 B to 100 KiB), the threads sharing one producer (1, 2, 4); and the three-broker
    cluster with 100 B and 1 KiB records. The one-broker, 6-partition, one-topic, one-thread,
    100-byte point is the base of the partition, size and thread curves."""
    def point(layout: str, size: int = 100, topics: int = 1, threads: int = 1) -> Scenario:
        share = SCALING_SIZES.get(size, 1.0)
        clients = SCALING_CLIENTS if topics == 1 and threads == 1 else \
            tuple(c for c in SCALING_CLIENTS if c != "java")
        return Scenario("scaling", layout, size, "none", "all", True,
                        max(1_000, int(records * share)), clients=clients,
                        key_space=SCALING_KEY_SPACE, topics=topics, threads=threads)

    return (
        *(point(layout) for layout in ("single-1p", "single", "single-100p", "single-1000p",
                                       "single-5000p")),
        *(point("single-1p", topics=n) for n in (100, 1000)),
        *(point("single", size=size) for size in SCALING_SIZES if size != 100),
        *(point("single", threads=n) for n in (2, 4)),
        point("cluster3"), point("cluster3", size=1024),
    )


def _eos(records: int) -> Scenario:
    """Issue 5: what idempotence and transactions (commit every 1,000 records) cost, against
    acks=all without them, on the replicated cluster."""
    return Scenario("eos", "cluster3", 100, "none", "all", False, records, clients=EOS_CLIENTS,
                    guarantees=GUARANTEES, transaction_records=1_000)


QUICK = Plan(
    name="quick",
    rounds=2,
    memory_rounds=1,
    warmup_records=5_000,
    scenarios=(
        Scenario("throughput", "single", 100, "lz4", "1", False, 200_000),
        Scenario("throughput", "single", 100, "none", "all", False, 200_000),
        _latency("single", "1", 5),
        Scenario("memory", "single", 100, "none", "1", False, 1_000_000,
                 clients=MEMORY_CLIENTS, settings=_BOUNDED),
        Scenario("throughput", "cluster3", 100, "lz4", "all", True, 200_000),
        _latency("cluster3", "all", 5),
        _eos(200_000),
        _partitions("single-100p", 200_000),
        _partitions("single-1000p", 200_000),
        *_scaling(200_000),
    ),
    micro_args=("--benchmark-min-time=0.002", "--benchmark-max-time=0.05",
                "--benchmark-min-rounds=3", "--benchmark-warmup=off"),
)

FULL = Plan(
    name="full",
    rounds=3,
    memory_rounds=2,
    warmup_records=10_000,
    scenarios=(
        *(Scenario("throughput", "single", size, codec, acks, False,
                   1_000_000 if size == 100 else 250_000)
          for size in (100, 1024) for acks in ("1", "all") for codec in ("none", "lz4", "zstd")),
        _latency("single", "1", 20),
        Scenario("memory", "single", 100, "none", "1", False, 10_000_000,
                 clients=MEMORY_CLIENTS, settings=_BOUNDED),
        *(Scenario("throughput", "cluster3", size, codec, "all", True,
                   1_000_000 if size == 100 else 250_000)
          for size in (100, 1024) for codec in ("none", "lz4", "zstd")),
        _latency("cluster3", "all", 20),
        _eos(1_000_000),
        _partitions("single-100p", 1_000_000),
        _partitions("single-1000p", 1_000_000),
        _partitions("cluster3-1000p", 1_000_000),
        *_scaling(500_000),
    ),
    micro_args=("--benchmark-max-time=0.5", "--benchmark-min-rounds=5"),
)

PLANS = {p.name: p for p in (QUICK, FULL)}
