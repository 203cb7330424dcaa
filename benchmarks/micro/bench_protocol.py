"""Produce request encoding and Produce response decoding: kengine's codec against the
protocol layers of aiokafka 0.14 and kafka-python 3, measured in the same run.

The producer sends one Produce request per broker every few milliseconds, each carrying a
record batch per partition. Here: 6 partitions of one topic, batches of 16 KiB and 64 KiB,
request v8 (the newest aiokafka speaks) and v11 (flexible), framed with header and size as
it goes on the wire; responses carry 6 partition results. Every peer's output is first
checked to be byte-identical to kengine's.

    python -m pytest benchmarks/micro/bench_protocol.py --benchmark-group-by=group \
        --benchmark-columns=min,median,mean,rounds
"""
from __future__ import annotations

import io
import os
import struct
import warnings

import pytest

from kengine_ext import WriteBuffer, decode_response, encode_request, encode_response, write_request

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from aiokafka.protocol.api import RequestHeader_v1, ResponseHeader_v0
    from aiokafka.protocol.produce import ProduceRequest_v8 as AioProduceRequest_v8
    from aiokafka.protocol.produce import ProduceResponse_v8 as AioProduceResponse_v8
    from kafka.protocol.producer import ProduceRequest as KpProduceRequest
    from kafka.protocol.producer import ProduceResponse as KpProduceResponse

PARTITIONS = 6
TOPIC = "events"
CLIENT_ID = "bench"
CORRELATION_ID = 7


def kengine_body(batches: list[bytes]) -> dict:
    return {"transactional_id": None, "acks": -1, "timeout_ms": 30000, "topic_data": [
        {"name": TOPIC, "partition_data": [{"index": i, "records": b}
                                           for i, b in enumerate(batches)]}]}


def aiokafka_frame(batches: list[bytes]) -> bytes:
    # what aiokafka.conn.AIOKafkaConnection.send() puts on the wire
    request = AioProduceRequest_v8(None, -1, 30000, [(TOPIC, list(enumerate(batches)))])
    message = RequestHeader_v1(request, CORRELATION_ID, CLIENT_ID).encode() + request.encode()
    return struct.pack(">i", len(message)) + message


def kafka_python_frame(batches: list[bytes], version: int) -> bytes:
    cls = KpProduceRequest
    request = cls(version=version, transactional_id=None, acks=-1, timeout_ms=30000, topic_data=[
        cls.TopicProduceData(version=version, name=TOPIC, partition_data=[
            cls.TopicProduceData.PartitionProduceData(version=version, index=i, records=b)
            for i, b in enumerate(batches)])])
    request.with_header(correlation_id=CORRELATION_ID, client_id=CLIENT_ID)
    return request.encode(header=True, framed=True)


@pytest.fixture(scope="module", params=[16 * 1024, 64 * 1024], ids=["16KiB", "64KiB"])
def batches(request: pytest.FixtureRequest) -> list[bytes]:
    return [os.urandom(request.param) for _ in range(PARTITIONS)]


def _group(benchmark, what: str, batches: list[bytes] | None = None) -> None:
    size = f" {len(batches[0]) // 1024}KiB" if batches else ""
    benchmark.group = f"{what}{size}"


# --- encode -----------------------------------------------------------------------------------

def test_kengine_encode_v8(benchmark, batches: list[bytes]) -> None:
    _group(benchmark, "encode Produce v8, 6 partitions", batches)
    body = kengine_body(batches)
    assert encode_request(0, 8, CORRELATION_ID, CLIENT_ID, body) == aiokafka_frame(batches) \
        == kafka_python_frame(batches, 8)
    benchmark(encode_request, 0, 8, CORRELATION_ID, CLIENT_ID, body)


def test_kengine_encode_v8_zero_copy(benchmark, batches: list[bytes]) -> None:
    # the sender's path: frame into a reused WriteBuffer that references the batches,
    # then socket.sendmsg(buf.segments())
    _group(benchmark, "encode Produce v8, 6 partitions", batches)
    body = kengine_body(batches)
    buf = WriteBuffer(zero_copy_min_bytes=4096)

    def encode() -> list:
        buf.clear()
        write_request(buf, 0, 8, CORRELATION_ID, CLIENT_ID, body)
        segments = buf.segments()
        del segments[:]  # release the views so the buffer can be reused
        return segments
    encode()
    assert buf.to_bytes() == aiokafka_frame(batches)
    benchmark(encode)


def test_aiokafka_encode_v8(benchmark, batches: list[bytes]) -> None:
    _group(benchmark, "encode Produce v8, 6 partitions", batches)
    benchmark(aiokafka_frame, batches)


def test_kafka_python_encode_v8(benchmark, batches: list[bytes]) -> None:
    _group(benchmark, "encode Produce v8, 6 partitions", batches)
    benchmark(kafka_python_frame, batches, 8)


def test_kengine_encode_v11(benchmark, batches: list[bytes]) -> None:
    _group(benchmark, "encode Produce v11, 6 partitions", batches)
    body = kengine_body(batches)
    assert encode_request(0, 11, CORRELATION_ID, CLIENT_ID, body) == \
        kafka_python_frame(batches, 11)
    benchmark(encode_request, 0, 11, CORRELATION_ID, CLIENT_ID, body)


def test_kafka_python_encode_v11(benchmark, batches: list[bytes]) -> None:
    _group(benchmark, "encode Produce v11, 6 partitions", batches)
    benchmark(kafka_python_frame, batches, 11)


# --- decode -----------------------------------------------------------------------------------

def response_frame(version: int) -> bytes:
    """A response body after the size prefix: 6 partitions, no errors."""
    return encode_response(0, version, CORRELATION_ID, {"responses": [{"name": TOPIC,
        "partition_responses": [{"index": i, "error_code": 0, "base_offset": 1_000_000 * i,
                                 "log_append_time_ms": -1, "log_start_offset": 0}
                                for i in range(PARTITIONS)]}], "throttle_time_ms": 0})[4:]


def aiokafka_decode(frame: bytes):
    # what aiokafka.conn.AIOKafkaConnection._handle_frame() does
    data = io.BytesIO(frame)
    ResponseHeader_v0.decode(data)
    return AioProduceResponse_v8.decode(data)


def test_kengine_decode_v8(benchmark) -> None:
    benchmark.group = "decode Produce v8 response, 6 partitions"
    frame = response_frame(8)
    correlation_id, body = decode_response(0, 8, frame)
    ours = [(p["index"], p["base_offset"]) for p in body["responses"][0]["partition_responses"]]
    theirs = [(p[0], p[2]) for p in aiokafka_decode(frame).topics[0][1]]
    assert correlation_id == CORRELATION_ID and ours == theirs
    benchmark(decode_response, 0, 8, frame)


def test_aiokafka_decode_v8(benchmark) -> None:
    benchmark.group = "decode Produce v8 response, 6 partitions"
    benchmark(aiokafka_decode, response_frame(8))


def test_kafka_python_decode_v8(benchmark) -> None:
    benchmark.group = "decode Produce v8 response, 6 partitions"
    benchmark(KpProduceResponse.decode, response_frame(8), version=8, header=True)


def test_kengine_decode_v11(benchmark) -> None:
    benchmark.group = "decode Produce v11 response, 6 partitions"
    frame = response_frame(11)
    assert decode_response(0, 11, frame)[1]["responses"][0]["partition_responses"][5][
        "base_offset"] == 5_000_000
    benchmark(decode_response, 0, 11, frame)


def test_kafka_python_decode_v11(benchmark) -> None:
    benchmark.group = "decode Produce v11 response, 6 partitions"
    benchmark(KpProduceResponse.decode, response_frame(11), version=11, header=True)
