"""Kafka's own Java producer, run by Kafka's ``ProducerPerformance`` (kafka-tools, the
``kafka-producer-perf-test`` tool) from the jars the local-Kafka harness resolved.

It runs in a JVM started as ``kafka-producer-perf-test.sh`` starts it (kafka-run-class.sh's
default heap and GC options). The same workload as the Python clients: values drawn from the
shared pool (``--payload-file``), keys ``str(i % key_space)`` (``--key-distribution range
--record-key-range KEY_SPACE``). ProducerPerformance registers a callback per record (for its own
latency statistics), which is part of what it costs. Its CPU time and window come from
``ProduceWindowInterceptor`` (``benchmarks/java/``), compiled here against kafka-clients; its
latency percentiles from the tool's own summary, which has millisecond resolution.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from benchmarks.spec import RunSpec
from kengine.localkafka import KafkaDistribution
from kengine.localkafka.errors import ToolMissingError

__all__ = ["JVM_OPTS", "command", "compile_interceptor", "parse_latency"]

#: kafka-run-class.sh's defaults (KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS)
JVM_OPTS = ("-Xmx256M", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true")
_SOURCE = Path(__file__).resolve().parents[1] / "java" / "ProduceWindowInterceptor.java"
_INTERCEPTOR = "dev.kengine.bench.ProduceWindowInterceptor"
_LOG4J2_CONFIG = Path(__file__).resolve().parents[2] / "kengine" / "localkafka" / "log4j2.xml"
# Stats.printTotal(): "..., 3 ms 50th, 7 ms 95th, 9 ms 99th, 15 ms 99.9th."
_SUMMARY = re.compile(r"([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, "
                      r"(\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th")


def compile_interceptor(dist: KafkaDistribution, workdir: Path) -> Path:
    """Compiles ProduceWindowInterceptor into ``workdir/classes`` and returns that directory."""
    java_bin = Path(dist.java).resolve().parent
    javac = java_bin / "javac" if (java_bin / "javac").exists() else shutil.which("javac")
    if javac is None:
        raise ToolMissingError(
            "no `javac` next to java or on PATH: the Java benchmark compiles a small producer "
            "interceptor; install a JDK, not only a JRE (apt-get install openjdk-17-jdk-headless)")
    classes = workdir / "classes"
    classes.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([str(javac), "--release", "17", "-d", str(classes), "-cp",
                          dist.classpath, str(_SOURCE)], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"compiling {_SOURCE.name} failed:\n{out.stdout}{out.stderr}")
    return classes


def command(spec: RunSpec, dist: KafkaDistribution, classes: Path, payload_file: Path,
            log_dir: Path) -> list[str]:
    if len(spec.all_topics) > 1 or spec.threads > 1:
        raise ValueError("ProducerPerformance writes to one topic from one thread: leave Java "
                         "out of scenarios with several topics or threads")
    s = spec.settings
    properties = {
        "client.id": f"bench-{spec.client}",
        "acks": spec.acks,
        "enable.idempotence": str(spec.idempotent).lower(),
        "compression.type": spec.compression,
        "batch.size": s.batch_bytes,
        "linger.ms": s.linger_ms,
        "max.in.flight.requests.per.connection": s.max_in_flight,
        "buffer.memory": s.buffer_memory_bytes,
        "interceptor.classes": _INTERCEPTOR,
        "kengine.bench.warmup.records": spec.warmup_records,
        "kengine.bench.records": spec.records,
        "kengine.bench.result.file": spec.result_path,
    }
    throughput = spec.rate_per_s if spec.mode == "latency" else -1
    return [
        dist.java, *JVM_OPTS,
        f"-Dlog4j2.configurationFile={_LOG4J2_CONFIG}", f"-Dkafka.logs.dir={log_dir}",
        "-cp", f"{dist.classpath}:{classes}",
        "org.apache.kafka.tools.ProducerPerformance",
        "--bootstrap-server", spec.bootstrap,
        "--topic", spec.topic,
        "--num-records", str(spec.warmup_records + spec.records),
        "--warmup-records", str(spec.warmup_records),
        "--throughput", str(throughput),
        "--payload-file", str(payload_file),
        "--key-distribution", "range", "--record-key-range", str(spec.key_space),
        "--command-property", *(f"{k}={v}" for k, v in properties.items()),
    ]


def parse_latency(stdout: str) -> dict[str, float]:
    """Latency percentiles (µs) from ProducerPerformance's last summary line: the steady-state
    one, which leaves the warm-up records out."""
    found = _SUMMARY.findall(stdout)
    if not found:
        raise RuntimeError("no latency summary in ProducerPerformance's output:\n"
                           + stdout[-2000:])
    _avg, top, p50, _p95, p99, p999 = (float(x) for x in found[-1])
    return {"p50": p50 * 1000, "p99": p99 * 1000, "p99.9": p999 * 1000, "max": top * 1000,
            "missing": 0.0}
