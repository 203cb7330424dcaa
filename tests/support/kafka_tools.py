"""Kafka's own command-line tools (ConsoleProducer, ConfigCommand, ConsumerGroupCommand,
DumpLogSegments...) run against a test cluster: independent oracles and set-up steps that do
not go through kengine. One place knows how to start them: the cluster's JVM and Kafka jars,
a small heap and the JIT's first tier only (these tools run for seconds; full JIT compilation
would only slow their start).

    out = run_tool(cluster, "org.apache.kafka.tools.ConfigCommand", "--bootstrap-server",
                   cluster.bootstrap_servers, "--describe", "--entity-type", "brokers",
                   check=True).stdout
"""
from __future__ import annotations

import subprocess

from kengine.localkafka import KafkaCluster

__all__ = ["run_tool"]

JVM_OPTIONS = ("-Xmx256m", "-XX:TieredStopAtLevel=1")


def run_tool(cluster: KafkaCluster, main_class: str, *args: str, stdin: bytes = b"",
             timeout: float = 180, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Runs the Java class ``main_class`` of the cluster's Kafka with ``args``, feeding it
    ``stdin``; stdout and stderr come back as text. ``check``: a non-zero exit raises
    AssertionError with the tool's output (not CalledProcessError, which hides it)."""
    cmd = [cluster.kafka.java, *JVM_OPTIONS, "-cp", cluster.kafka.classpath, main_class, *args]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, check=False)
    done = subprocess.CompletedProcess(cmd, proc.returncode,
                                       proc.stdout.decode(errors="replace"),
                                       proc.stderr.decode(errors="replace"))
    if check and done.returncode != 0:
        raise AssertionError(f"{main_class.rsplit('.', 1)[-1]} {' '.join(args)} exited with "
                             f"{done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return done
