"""How the tools turn flags and files into settings: Java .properties files, KEY=VALUE
arguments, and the console producer's option defaults and precedence (Java's
maybeMergeOptions)."""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from kengine.cli.main import build_parser, main
from kengine.cli.perf import perf_config
from kengine.cli.produce import producer_config
from kengine.cli.properties import load_properties, parse_assignments, parse_properties
from kengine.errors import ConfigError


def test_java_properties_format() -> None:
    text = "\n".join([
        "# a comment",
        "   ! another comment",
        "",
        "plain=1",
        "colon : 2",
        "space 3",
        "  indented = padded value  ",
        "continued = first \\",
        "     second",
        r"escaped\=key=tab\there\u0041",
        r"trailing.backslash=a\\",
        "empty=",
        "plain=last wins",
    ])
    assert parse_properties(text) == {
        "plain": "last wins", "colon": "2", "space": "3", "indented": "padded value  ",
        "continued": "first second", "escaped=key": "tab\thereA", "trailing.backslash": "a\\",
        "empty": "",
    }


def test_bad_unicode_escape_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\\uXXXX"):
        parse_properties(r"k=\u12")
    with pytest.raises(ConfigError, match="readable properties file"):
        load_properties(tmp_path / "missing.properties")


def test_assignments_split_at_the_first_equals_sign() -> None:
    assert parse_assignments(["acks=all", "sasl.jaas.config=a=b", "x="], "--opt") == {
        "acks": "all", "sasl.jaas.config": "a=b", "x": ""}
    with pytest.raises(ConfigError, match="--opt"):
        parse_assignments(["novalue"], "--opt")


def produce_args(*argv: str):
    return build_parser().parse_args(["produce", "--topic", "t", *argv])


def test_console_producer_defaults_are_javas() -> None:
    cfg = producer_config(produce_args("--bootstrap-server", "h:1"))
    assert cfg == {
        "bootstrap.servers": "h:1", "client.id": "console-producer", "linger.ms": 1000,
        "acks": "-1", "request.timeout.ms": 1500, "retries": 3, "retry.backoff.ms": 100,
        "send.buffer.bytes": 102400, "buffer.memory": 33554432, "batch.size": 16384,
        "metadata.max.age.ms": 300000, "max.block.ms": 60000,
    }


def test_console_producer_precedence(tmp_path: Path) -> None:
    config = tmp_path / "producer.properties"
    config.write_text("linger.ms=7\nacks=1\nclient.id=from-file\nbatch.size=100\n"
                      "key.serializer=org.apache.kafka.common.serialization.StringSerializer\n"
                      "compression.type=zstd\n")
    cfg = producer_config(produce_args(
        "--bootstrap-server", "h:1", "--producer.config", str(config),
        "--producer-property", "acks=0", "--producer-property", "retries=9",
        "--timeout", "20", "--max-partition-memory-bytes", "200"))
    assert cfg["linger.ms"] == 20                # the tool's option, given, beats the file
    assert cfg["acks"] == "0"                    # --producer-property beats the file
    assert cfg["retries"] == "9"                 # and the tool's default
    assert cfg["client.id"] == "from-file"
    assert cfg["batch.size"] == 200              # --max-partition-memory-bytes wins
    assert cfg["compression.type"] == "zstd"     # kept unless --compression-codec is given
    assert "key.serializer" not in cfg           # the tools send bytes


def test_compression_codec_flag_defaults_to_gzip_without_a_value() -> None:
    assert producer_config(produce_args("--bootstrap-server", "h:1", "--compression-codec"))[
        "compression.type"] == "gzip"
    assert producer_config(produce_args("--bootstrap-server", "h:1", "--compression-codec",
                                        "lz4"))["compression.type"] == "lz4"


def test_broker_list_is_the_deprecated_spelling_of_bootstrap_server() -> None:
    assert producer_config(produce_args("--broker-list", "h:2"))["bootstrap.servers"] == "h:2"


def perf_args(*argv: str):
    return build_parser().parse_args(["perf", "--topic", "t", "--num-records", "5",
                                      "--record-size", "10", "--throughput", "-1", *argv])


def test_perf_settings(tmp_path: Path) -> None:
    config = tmp_path / "p.properties"
    config.write_text("bootstrap.servers=file:1\nlinger.ms=3\n")
    cfg = perf_config(perf_args("--producer.config", str(config),
                                "--producer-props", "linger.ms=4", "acks=1"))
    assert cfg == {"bootstrap.servers": "file:1", "linger.ms": "4", "acks": "1",
                   "client.id": "perf-producer-client"}
    assert perf_config(perf_args("--bootstrap-server", "b:1"))["bootstrap.servers"] == "b:1"
    assert perf_config(perf_args("--bootstrap-server", "b:1", "--transactional-id", "tx-1"))[
        "transactional.id"] == "tx-1"


@pytest.mark.parametrize("argv,message", [
    (["perf", "--topic", "t", "--num-records", "5", "--record-size", "10",
      "--throughput", "-1"],
     "At least one of --bootstrap-server, --command-property, --producer-props, "
     "--producer.config or --command-config must be specified."),
    (["perf", "--topic", "t", "--num-records", "0", "--record-size", "10",
      "--throughput", "-1", "--bootstrap-server", "h:1"], "--num-records"),
    (["perf", "--topic", "t", "--num-records", "5", "--record-size", "0",
      "--throughput", "-1", "--bootstrap-server", "h:1"], "--record-size"),
    (["perf", "--topic", "t", "--num-records", "5", "--record-size", "1",
      "--throughput", "0", "--bootstrap-server", "h:1"], "--throughput 0"),
    (["perf", "--topic", "t", "--num-records", "5", "--record-size", "1",
      "--throughput", "-1", "--warmup-records", "5", "--bootstrap-server", "h:1"],
     "--warmup-records"),
    (["perf", "--topic", "t", "--num-records", "5", "--record-size", "1",
      "--throughput", "-1", "--transaction-duration-ms", "0", "--bootstrap-server", "h:1"],
     "--transaction-duration-ms should be greater than zero"),
    (["produce", "--topic", "t"], "--bootstrap-server is required"),
])
def test_bad_usage_exits_2_with_a_message(argv: list[str], message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_arguments_and_mutually_exclusive_payloads_are_argparse_errors(
        capsys: pytest.CaptureFixture[str]) -> None:
    # the sub-command says it, not "kengine:"
    assert main(["topics", "list", "--bootstrap-server", "h:1", "--bogus"]) == 2
    assert capsys.readouterr().err.startswith(
        "kengine topics: error: unrecognized arguments: --bogus")
    with pytest.raises(SystemExit) as info:
        main(["perf", "--topic", "t", "--num-records", "5", "--record-size", "10",
              "--payload-monotonic", "--throughput", "-1"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_unknown_producer_setting_fails_before_connecting(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["perf", "--topic", "t", "--num-records", "5", "--record-size", "10",
                 "--throughput", "-1", "--producer-props", "bootstrap.servers=h:1",
                 "linger.mss=5"]) == 1
    assert "did you mean 'linger.ms'" in capsys.readouterr().err


def test_local_kafka_passes_every_argument_to_the_launcher(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["local-kafka", "status", "--workdir", str(tmp_path)]) == 1
    assert "no Kafka cluster state" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["local-kafka", "--help"])
    assert info.value.code == 0
    assert "usage: kengine local-kafka" in capsys.readouterr().out


def test_kafka_44_names_mean_what_the_older_ones_meant(tmp_path: Path) -> None:
    config = tmp_path / "producer.properties"
    config.write_text("linger.ms=7\nacks=1\n")
    old = producer_config(produce_args("--bootstrap-server", "h:1", "--producer.config",
                                       str(config), "--producer-property", "acks=0"))
    new = producer_config(produce_args("--bootstrap-server", "h:1", "--command-config",
                                       str(config), "--command-property", "acks=0"))
    assert old == new and new["acks"] == "0" and new["linger.ms"] == "7"
    old = perf_config(perf_args("--producer.config", str(config), "--producer-props", "acks=0"))
    new = perf_config(perf_args("--command-config", str(config), "--command-property", "acks=0"))
    assert old == new and new["acks"] == "0" and new["linger.ms"] == "7"


def test_produce_takes_bootstrap_servers_from_its_settings(tmp_path: Path) -> None:
    config = tmp_path / "client.properties"
    config.write_text("bootstrap.servers=from-file:9092\n")
    assert producer_config(produce_args("--command-config", str(config)))[
        "bootstrap.servers"] == "from-file:9092"
    assert producer_config(produce_args("--command-property", "bootstrap.servers=prop:1"))[
        "bootstrap.servers"] == "prop:1"
    assert producer_config(produce_args("--command-config", str(config),
                                        "--bootstrap-server", "flag:1"))[
        "bootstrap.servers"] == "flag:1"


@pytest.mark.parametrize(("argv", "message"), [
    (["produce", "--topic", "t", "--bootstrap-server", "h:1", "--property", "a=b",
      "--reader-property", "a=b"],
     "kengine produce: Options --reader-property and --property cannot be specified together."),
    (["produce", "--topic", "t", "--bootstrap-server", "h:1",
      "--line-reader", "com.example.MyReader"],
     "kengine produce: --line-reader com.example.MyReader: only Kafka's line reader"),
    (["perf", "--topic", "t", "--num-records", "5", "--record-size", "1", "--throughput", "-1",
      "--bootstrap-server", "h:1", "--reporting-interval", "0"],
     "kengine perf: --reporting-interval should be greater than zero"),
    (["perf", "--topic", "t", "--num-records", "5", "--record-size", "1", "--throughput", "-1",
      "--bootstrap-server", "h:1", "--key-distribution", "range"],
     "kengine perf: --record-key-range is required when --key-distribution is 'range' or "
     "'random'."),
])
def test_kafka_44_flags_refused_in_javas_words(argv: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(message)


def test_a_transaction_duration_alone_makes_a_transactional_id_as_java_does() -> None:
    cfg = perf_config(perf_args("--bootstrap-server", "h:1", "--transaction-duration-ms", "100"))
    assert re.fullmatch(r"performance-producer-[0-9a-f-]{36}", cfg["transactional.id"])
    assert "transactional.id" not in perf_config(perf_args("--bootstrap-server", "h:1"))


def test_key_distributions_are_javas_keys() -> None:
    from kengine.cli.perf import key_stream

    def keys(*argv: str, n: int = 8) -> list[bytes | None]:
        stream = key_stream(build_parser().parse_args(
            ["perf", "--topic", "t", "--num-records", "9", "--record-size", "1",
             "--throughput", "-1", *argv]))
        return [None] * n if stream is None else list(itertools.islice(stream, n))

    assert keys() == [None] * 8
    assert keys("--key-distribution", "range", "--record-key-range", "3") == [
        b"0", b"1", b"2", b"0", b"1", b"2", b"0", b"1"]
    drawn = keys("--key-distribution", "random", "--record-key-range", "5", n=200)
    assert set(drawn) == {b"0", b"1", b"2", b"3", b"4"}
    assert drawn == keys("--key-distribution", "random", "--record-key-range", "5", n=200)
    assert drawn != keys("--key-distribution", "random", "--record-key-range", "5",
                         "--random-seed", "1", n=200)
