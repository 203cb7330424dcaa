#!/usr/bin/env python3
"""Talks to a real Kafka broker with kengine's protocol codec over a plain socket.

Starts a single-node KRaft broker from Kafka's jars on free 127.0.0.1 ports in a temporary
directory, then sends ApiVersions v3 and v0, an ApiVersions of a version the broker does not
know (KIP-511 answer in v0), Metadata at the highest version both sides support, CreateTopics
and Metadata for the new topic, decoding every answer; stops the broker and removes the
directory whatever happens. Exits non-zero if any answer is wrong.

    python tools/check_protocol_with_broker.py [--libs /tmp/mvntest/libs]
        [--properties /tmp/mvntest/server.properties] [--keep-log]

This is a manual check for the codec's author; the project's integration tests start brokers
through their own harness.
"""
from __future__ import annotations

import argparse
import base64
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kengine import __version__
from kengine_ext import decode_response, encode_request, pick_version
from kengine_ext.schemas import ApiKey

CLIENT_ID = "kengine-protocol-check"
TOPIC = "kengine-protocol-check"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_properties(template: Path, workdir: Path, broker_port: int,
                     controller_port: int) -> Path:
    overrides = {
        "listeners": f"PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker_port}",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "log.dirs": str(workdir / "data"),
    }
    lines = []
    for line in template.read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if key not in overrides:
            lines.append(line)
    lines += [f"{k}={v}" for k, v in overrides.items()]
    path = workdir / "server.properties"
    path.write_text("\n".join(lines) + "\n")
    return path


class Connection:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.correlation_id = 0

    def call(self, api_key: int, version: int, body: dict,
             frame_patch: bytes | None = None) -> dict:
        self.correlation_id += 1
        frame = encode_request(api_key, version, self.correlation_id, CLIENT_ID, body)
        if frame_patch is not None:  # overwrite the header's api version field
            frame = frame[:6] + frame_patch + frame[8:]
        self.sock.sendall(frame)
        size = int.from_bytes(self._read(4), "big", signed=True)
        correlation_id, answer = decode_response(api_key, version, self._read(size))
        assert correlation_id == self.correlation_id, (correlation_id, self.correlation_id)
        return answer

    def _read(self, n: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < n:
            chunk = self.sock.recv(n - len(chunks))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            chunks += chunk
        return bytes(chunks)

    def close(self) -> None:
        self.sock.close()


def wait_for_broker(port: int, proc: subprocess.Popen, deadline_s: float) -> Connection:
    end = time.monotonic() + deadline_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}")
        try:
            conn = Connection(port)
            conn.call(ApiKey.API_VERSIONS, 0, {})
            return conn
        except (OSError, ConnectionError):
            if time.monotonic() > end:
                raise
            time.sleep(0.5)


def run_checks(conn: Connection) -> None:
    v3 = conn.call(ApiKey.API_VERSIONS, 3, {"client_software_name": "kengine",
                                            "client_software_version": __version__})
    assert v3["error_code"] == 0, v3
    ranges = {k["api_key"]: (k["min_version"], k["max_version"]) for k in v3["api_keys"]}
    features = [f["name"] for f in v3["finalized_features"]]
    print(f"ApiVersions v3: {len(ranges)} APIs, finalized features {features}, "
          f"epoch {v3['finalized_features_epoch']}")
    for key in ApiKey:
        if key in ranges:
            print(f"  {key.name:24} broker {ranges[key][0]}-{ranges[key][1]:<3} "
                  f"-> kengine uses v{pick_version(key, *ranges[key])}")

    v0 = conn.call(ApiKey.API_VERSIONS, 0, {})
    assert v0["error_code"] == 0 and {k["api_key"] for k in v0["api_keys"]} == set(ranges)
    print(f"ApiVersions v0: {len(v0['api_keys'])} APIs, same set")

    # KIP-511: ApiVersions at a version the broker lacks gets UNSUPPORTED_VERSION in v0 form
    too_new = ranges[ApiKey.API_VERSIONS][1] + 1
    kip511 = conn.call(ApiKey.API_VERSIONS, 3, {}, frame_patch=too_new.to_bytes(2, "big"))
    assert kip511["error_code"] == 35, kip511
    offered = [(k["min_version"], k["max_version"]) for k in kip511["api_keys"]
               if k["api_key"] == ApiKey.API_VERSIONS]
    print(f"ApiVersions v{too_new}: error 35 UNSUPPORTED_VERSION, read as v0; broker offers "
          f"ApiVersions {offered}")

    metadata_v = pick_version(ApiKey.METADATA, *ranges[ApiKey.METADATA])
    md = conn.call(ApiKey.METADATA, metadata_v, {"topics": None})
    assert md["brokers"] and md["cluster_id"], md
    print(f"Metadata v{metadata_v}: cluster {md['cluster_id']}, brokers "
          f"{[(b['node_id'], b['host'], b['port']) for b in md['brokers']]}, "
          f"controller {md['controller_id']}, {len(md['topics'])} topics")

    create_v = pick_version(ApiKey.CREATE_TOPICS, *ranges[ApiKey.CREATE_TOPICS])
    created = conn.call(ApiKey.CREATE_TOPICS, create_v, {
        "topics": [{"name": TOPIC, "num_partitions": 3, "replication_factor": 1,
                    "configs": [{"name": "cleanup.policy", "value": "delete"}]}],
        "timeout_ms": 15000})
    result = created["topics"][0]
    assert result["name"] == TOPIC and result["error_code"] == 0, result
    assert result["num_partitions"] == 3 and len(result["topic_id"]) == 16, result
    print(f"CreateTopics v{create_v}: {TOPIC} id {uuid.UUID(bytes=result['topic_id'])}, "
          f"{result['num_partitions']} partitions, {len(result['configs'] or [])} configs "
          f"returned")

    again = conn.call(ApiKey.CREATE_TOPICS, create_v, {
        "topics": [{"name": TOPIC, "num_partitions": 3, "replication_factor": 1}]})
    assert again["topics"][0]["error_code"] == 36, again  # TOPIC_ALREADY_EXISTS
    print(f"CreateTopics v{create_v} again: error 36 TOPIC_ALREADY_EXISTS "
          f"({again['topics'][0]['error_message']!r})")

    for _ in range(40):  # leaders are elected shortly after creation
        md = conn.call(ApiKey.METADATA, metadata_v, {"topics": [{"name": TOPIC}]})
        topic = md["topics"][0]
        if topic["error_code"] == 0 and all(p["leader_id"] >= 0 for p in topic["partitions"]):
            break
        time.sleep(0.25)
    assert topic["error_code"] == 0 and topic["topic_id"] == result["topic_id"], topic
    print(f"Metadata v{metadata_v} for {TOPIC}: partitions "
          f"{sorted((p['partition_index'], p['leader_id']) for p in topic['partitions'])}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--libs", type=Path, default=Path("/tmp/mvntest/libs"))
    ap.add_argument("--properties", type=Path, default=Path("/tmp/mvntest/server.properties"))
    ap.add_argument("--java", default=shutil.which("java") or "java")
    ap.add_argument("--keep-log", action="store_true", help="print the broker log at the end")
    args = ap.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="kengine-broker-"))
    try:
        with open(workdir / "broker.log", "wb") as log:
            return run_broker_and_check(args, workdir, log)
    finally:
        if args.keep_log:
            sys.stdout.write((workdir / "broker.log").read_text(errors="replace"))
        shutil.rmtree(workdir, ignore_errors=True)


def run_broker_and_check(args: argparse.Namespace, workdir: Path, log: IO[bytes]) -> int:
    classpath = f"{args.libs}/*"
    broker_port, controller_port = free_port(), free_port()
    props = write_properties(args.properties, workdir, broker_port, controller_port)
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    subprocess.run([args.java, "-cp", classpath, "kafka.tools.StorageTool", "format",
                    "-t", cluster_id, "-c", str(props)],
                   check=True, stdout=log, stderr=subprocess.STDOUT)
    proc = subprocess.Popen([args.java, "-Xmx512m", "-cp", classpath, "kafka.Kafka", str(props)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        print(f"broker pid {proc.pid} on 127.0.0.1:{broker_port} (cluster {cluster_id})")
        conn = wait_for_broker(broker_port, proc, deadline_s=90)
        try:
            run_checks(conn)
        finally:
            conn.close()
        print("all checks passed")
        return 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
