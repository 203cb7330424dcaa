"""The clients compared: kengine's three ways of sending and the peers, in table order."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CLIENTS", "KENGINE_REFERENCE", "Client"]


@dataclass(frozen=True)
class Client:
    name: str
    label: str
    #: module of benchmarks.drivers run by benchmarks.worker; None for Java (its own JVM)
    driver: str | None
    #: share of a scenario's record count this client sends: the slow peers send fewer
    #: records (their per-record figures are as stable with fewer), as the report says
    record_share: float = 1.0
    #: takes part in the fixed-rate latency runs
    latency: bool = False
    #: its driver can run transactional lanes (``RunSpec.transaction_records``)
    transactions: bool = False

    @property
    def is_kengine(self) -> bool:
        return self.name.startswith("kengine")


CLIENTS: dict[str, Client] = {c.name: c for c in (
    Client("kengine-send", "kengine send()", "kengine_driver", latency=True, transactions=True),
    Client("kengine-send-callback", "kengine send() + callback", "kengine_driver",
           transactions=True),
    Client("kengine-send-many", "kengine send_many()", "kengine_driver", transactions=True),
    Client("confluent-kafka", "confluent-kafka produce()", "confluent_driver", latency=True,
           transactions=True),
    Client("java", "Java ProducerPerformance", None, latency=True),
    Client("aiokafka", "aiokafka send()", "aiokafka_driver", record_share=0.2),
    Client("kafka-python", "kafka-python send()", "kafka_python_driver", record_share=0.05),
)}

#: the kengine figure each peer is compared with in the ratio columns
KENGINE_REFERENCE = ("kengine-send", "kengine-send-many")
