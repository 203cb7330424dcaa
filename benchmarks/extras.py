"""What the benchmarks need besides kengine: the ``bench`` extras of pyproject.toml. Checked
before anything imports them, so that ``python -m benchmarks`` in an environment made for
kengine alone (``make demo``, a plain ``pip install kengine-kafka``) says how to install them
instead of failing with a traceback."""
from __future__ import annotations

import importlib.util

__all__ = ["missing_extras", "INSTALL_HINT"]

#: import name -> distribution, for every module the runs and the report import
BENCH_MODULES = {
    "confluent_kafka": "confluent-kafka",
    "aiokafka": "aiokafka",
    "kafka": "kafka-python",
    "crc32c": "crc32c",
    "crcmod": "crcmod",
    "matplotlib": "matplotlib",
    "numpy": "numpy",
    "pytest_benchmark": "pytest-benchmark",
    "fastavro": "fastavro",
}

INSTALL_HINT = ("install them from the project root, in this environment, with "
                "`python -m pip install -e '.[bench]'`")


def missing_extras() -> list[str]:
    """The distributions of the bench extras that cannot be imported here."""
    missing = []
    for module, dist in BENCH_MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(dist)
    return missing
