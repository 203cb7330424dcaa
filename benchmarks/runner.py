"""Runs a plan's end-to-end scenarios: one cluster per layout, one process per client run.

Within a scenario the clients take turns, round after round (A B C, B C A, C A B ...), so that
drift in the shared machine's load spreads over every client instead of favouring the ones that
ran first; in scenarios comparing guarantees each client's lanes run side by side and take
turns the same way (:meth:`~benchmarks.plan.Scenario.lane_order`). Every run writes to a fresh
topic that is counted and sampled by an independent client (:mod:`benchmarks.broker`) before
its figures count, then deleted.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.broker import BenchKafka
from benchmarks.clients import CLIENTS
from benchmarks.drivers import java_driver
from benchmarks.plan import LAYOUTS, Plan, Scenario
from benchmarks.runs import Run, lane_key
from benchmarks.spec import RunResult, RunSpec
from benchmarks.workload import payload_pool, transaction_markers, write_payload_file

__all__ = ["Runner"]

ROOT = Path(__file__).resolve().parents[1]
# A run that takes longer than this plus one second per _TIMEOUT_RECORDS_PER_S records is
# stuck: its process group is killed and the run reported as failed.
_TIMEOUT_BASE_S = 180
_TIMEOUT_RECORDS_PER_S = 5_000
_LOG_TAIL_CHARS = 3000
# Before a layout's first run its brokers take this many records, or this long (BenchKafka.
# warm_up): a fresh broker appends slowly at first, and the first client would pay for it.
_WARM_UP_RECORDS = 1_000_000
_WARM_UP_S = 60.0


class Runner:
    def __init__(self, plan: Plan, workdir: Path, log: Callable[[str], None] = print) -> None:
        self.plan = plan
        self.workdir = workdir
        self.log = log
        self._java_classes: Path | None = None
        self._payload_files: dict[int, Path] = {}
        self._count = 0

    def run(self) -> list[Run]:
        runs: list[Run] = []
        for layout in self.plan.layouts():
            started = time.monotonic()
            with BenchKafka(LAYOUTS[layout]) as kafka:
                self.log(f"== {LAYOUTS[layout].title}: Kafka at {kafka.bootstrap_servers} "
                         f"(started in {time.monotonic() - started:.1f} s)")
                warmed, took = kafka.warm_up(_WARM_UP_S, _WARM_UP_RECORDS)
                self.log(f"   broker warm-up: {warmed:,} records in {took:.1f} s "
                         "(confluent-kafka, not measured)")
                for scenario in self.plan.scenarios:
                    if scenario.layout == layout:
                        runs.extend(self._scenario(kafka, scenario))
        return runs

    def _scenario(self, kafka: BenchKafka, scenario: Scenario) -> list[Run]:
        rounds = self.plan.memory_rounds if scenario.kind == "memory" else self.plan.rounds
        self.log(f"-- {scenario.kind}: {scenario.title} ({rounds} rounds)")
        runs = []
        for r in range(rounds):
            for client, guarantee in scenario.lane_order(r):
                run = self._one(kafka, scenario, client, guarantee, r)
                self.log("   " + _describe(run))
                runs.append(run)
        return runs

    def _one(self, kafka: BenchKafka, scenario: Scenario, client_name: str, guarantee: str,
             r: int) -> Run:
        client = CLIENTS[client_name]
        lane = lane_key(client_name, guarantee)
        self._count += 1
        rundir = self.workdir / f"{self._count:04d}-{lane.replace('/', '-')}"
        rundir.mkdir(parents=True)
        records = scenario.records_for(client, guarantee)
        warmup = scenario.warmup_for(client, self.plan.warmup_records, guarantee)
        idempotent = scenario.idempotent_for(guarantee)
        per_transaction = scenario.transaction_records_for(guarantee)
        run = Run(scenario=scenario.id, client=client_name, round=r,
                  record_bytes=scenario.record_bytes, expected=warmup + records,
                  idempotence_requested=idempotent, guarantee=guarantee,
                  log_file=str(rundir / "log.txt"))
        topics = kafka.fresh_topics(f"{scenario.id}-{lane.replace('/', '-')}-r{r}",
                                    scenario.topics)
        try:
            spec = RunSpec(
                client=client_name, mode="latency" if scenario.kind == "latency" else "throughput",
                bootstrap=kafka.bootstrap_servers, topic=topics[0],
                topics=topics if len(topics) > 1 else [], key_space=scenario.key_space,
                threads=scenario.threads,
                partitions=kafka.layout.partitions, records=records, warmup_records=warmup,
                record_bytes=scenario.record_bytes, compression=scenario.compression,
                acks=scenario.acks, idempotent=idempotent, settings=scenario.settings,
                result_path=str(rundir / "result.json"), rate_per_s=scenario.rate_per_s,
                transaction_records=per_transaction)
            if client.driver is None:
                command = java_driver.command(spec, kafka.cluster.kafka, self._java(kafka),
                                              self._payload_file(scenario.record_bytes), rundir)
            else:
                spec_path = rundir / "spec.json"
                spec_path.write_text(spec.to_json())
                command = [sys.executable, "-m", "benchmarks.worker", str(spec_path)]
            timeout = _TIMEOUT_BASE_S + (warmup + records) / _TIMEOUT_RECORDS_PER_S
            run.error = self._execute(command, rundir, timeout)
            if run.error is None:
                run.result, run.error = _read_result(spec, rundir, kafka.cluster.kafka.version)
            if run.result is not None:
                # the warm-up and the measured records are sent in transactions of their own
                markers = None if not per_transaction else sum(
                    transaction_markers(n, per_transaction, kafka.layout.partitions)
                    for n in (warmup, records))
                try:
                    run.verification = kafka.verify(topics, (warmup, records),
                                                    scenario.record_bytes, scenario.key_space,
                                                    expected_markers=markers)
                except Exception as e:  # noqa: BLE001 - reported with the run, which then does not count
                    run.error = f"checking the topic failed: {type(e).__name__}: {e}"
                if run.error is None:
                    run.error = _verification_error(run)
        finally:
            try:
                kafka.delete_topics(topics)
            except Exception as e:  # noqa: BLE001 - the next runs use fresh topics anyway
                self.log(f"   (could not delete topics {topics[:3]}...: {e})")
        return run

    def _execute(self, command: list[str], rundir: Path, timeout: float) -> str | None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        with open(rundir / "log.txt", "wb") as out:
            out.write((" ".join(command) + "\n\n").encode())
            out.flush()
            # a session of its own: a stuck run is killed with everything it started
            proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                rc = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return f"no result after {timeout:.0f} s: killed"
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        if rc != 0:
            return f"exited with status {rc}: {_tail(rundir / 'log.txt')}"
        return None

    def _java(self, kafka: BenchKafka) -> Path:
        if self._java_classes is None:
            self._java_classes = java_driver.compile_interceptor(kafka.cluster.kafka,
                                                                 self.workdir / "java")
        return self._java_classes

    def _payload_file(self, record_bytes: int) -> Path:
        path = self._payload_files.get(record_bytes)
        if path is None:
            path = self.workdir / f"payloads-{record_bytes}.txt"
            write_payload_file(path, payload_pool(record_bytes))
            self._payload_files[record_bytes] = path
        return path


def _read_result(spec: RunSpec, rundir: Path,
                 java_version: str) -> tuple[RunResult | None, str | None]:
    path = Path(spec.result_path)
    if not path.exists():
        return None, f"the client wrote no result: {_tail(rundir / 'log.txt')}"
    data = json.loads(path.read_text())
    if "error" in data:
        return None, str(data["error"])
    result = RunResult.read(path)
    if spec.client == "java":
        result.client_version = java_version
        if spec.mode == "latency":
            result.latency_us = java_driver.parse_latency((rundir / "log.txt").read_text())
    return result, None


def _verification_error(run: Run) -> str | None:
    assert run.verification is not None and run.result is not None
    v = run.verification
    if v.counted != v.expected:
        what = "committed records" if v.expected_control_records is not None else "records"
        return f"the topic holds {v.counted:,} {what}, {v.expected:,} were sent"
    if v.control_records != v.expected_control_records:
        return (f"the topic holds {v.control_records:,} offsets without a committed record, "
                f"{v.expected_control_records:,} transaction markers were expected (one per "
                "transaction and partition): records were aborted, or not committed as sent")
    if v.expected_control_records is not None and not v.txn_producer_ids:
        return "the partition leaders report no producer with committed transactions"
    if v.open_transactions:
        return f"{v.open_transactions} partitions still have a transaction open"
    if v.sample_problems:
        return "sampled records are wrong: " + "; ".join(v.sample_problems)
    if run.result.delivery_errors:
        return f"the client reported {run.result.delivery_errors:,} failed deliveries"
    if run.result.latency_us.get("missing"):
        return f"{run.result.latency_us['missing']:.0f} records had no delivery callback"
    return None


def _tail(path: Path) -> str:
    text = path.read_text(errors="replace")
    return text[-_LOG_TAIL_CHARS:].strip()


def _describe(run: Run) -> str:
    label = CLIENTS[run.client].label + (f", {run.guarantee}" if run.guarantee else "")
    if not run.ok:
        return f"round {run.round + 1} {label}: FAILED: {run.error}"
    assert run.result is not None
    text = (f"round {run.round + 1} {label}: {run.records_per_s:,.0f} records/s, "
            f"{run.cpu_us_per_record:.2f} µs CPU/record, peak RSS "
            f"{run.result.rss_peak_bytes / 2**20:.0f} MiB")
    if run.result.latency_us:
        lat = run.result.latency_us
        text += f", latency p50 {lat['p50']:.0f} µs p99 {lat['p99']:.0f} µs"
    text += f", {run.expected:,} read back, idempotence {run.idempotence}"
    if run.guarantee:
        text += f", brokers saw: {run.guarantee_seen}"
    return text
