"""Interceptors without a broker: the chain's Java rules, loading by name (built-ins, the
example plugin installed through its entry point, "module:Class"), the settings, mask_fields'
masking, and the shape that keeps send() free for producers without interceptors."""
from __future__ import annotations

import json
import logging

import pytest

import kengine_ext
from kengine import AIOProducer, Producer, config
from kengine.errors import ConfigError, RecordRejectedError
from kengine.interceptors import (
    AuditHeaders,
    FailedRecordMetadata,
    InterceptorChain,
    MaskFields,
    ProducerRecord,
    load_interceptors,
    plugin_names,
)
from tests.support.plugins import install_example_plugin


@pytest.fixture(scope="session")
def example_plugin() -> str:
    """Installs examples/interceptor-plugin (entry point ``stamp``) into this interpreter."""
    install_example_plugin("interceptor-plugin")
    return "stamp"


def settings(**kwargs):
    return config.resolve(bootstrap_servers="127.0.0.1:1", **kwargs)


class Recorder:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def on_send(self, record):
        self.log.append((self.name, "send", record.value))
        record.value = record.value + self.name.encode()
        return record

    def on_acknowledgement(self, metadata, error):
        self.log.append((self.name, "ack", metadata.topic, error))


class Raises:
    def on_send(self, record):
        raise RuntimeError("boom in on_send")

    def on_acknowledgement(self, metadata, error):
        raise RuntimeError("boom in on_acknowledgement")


class ReturnsNone:
    def on_send(self, record):
        record.value = b"changed"   # changed in place, but returned nothing: not accepted


def test_interceptors_run_in_order_each_on_what_the_previous_returned():
    log = []
    chain = InterceptorChain([Recorder("a", log), Recorder("b", log)], "c1")
    out = chain.on_send(ProducerRecord("t", b"v"))
    assert out.value == b"vab"
    assert log == [("a", "send", b"v"), ("b", "send", b"va")]
    chain.on_acknowledgement(FailedRecordMetadata("t", 3), ValueError("x"))
    assert [entry[:3] for entry in log[2:]] == [("a", "ack", "t"), ("b", "ack", "t")]


def test_an_interceptor_that_raises_is_logged_with_the_topic_and_skipped(caplog):
    log = []
    chain = InterceptorChain([Raises(), Recorder("b", log)], "c1")
    with caplog.at_level(logging.WARNING, logger="kengine.interceptors"):
        out = chain.on_send(ProducerRecord("orders", b"v"))
        chain.on_acknowledgement(FailedRecordMetadata("orders"), None)
    assert out.value == b"vb"          # the chain went on with the record it had
    assert log[-1][:3] == ("b", "ack", "orders")
    messages = [r.getMessage() for r in caplog.records]
    assert any("on_send()" in m and "'orders'" in m and "boom in on_send" in m
               for m in messages), messages
    assert any("on_acknowledgement()" in m and "boom in on_acknowledgement" in m
               for m in messages), messages


def test_repeated_failures_are_summarised_not_logged_per_record(caplog):
    chain = InterceptorChain([Raises()], "c1")
    with caplog.at_level(logging.WARNING, logger="kengine.interceptors"):
        for _ in range(1000):
            chain.on_send(ProducerRecord("t", b"v"))
    assert len(caplog.records) == 1


def test_on_send_must_return_a_record(caplog):
    chain = InterceptorChain([ReturnsNone()], "c1")
    with caplog.at_level(logging.WARNING, logger="kengine.interceptors"):
        out = chain.on_send(ProducerRecord("t", b"v"))
    assert out.topic == "t"
    assert "returned NoneType, not the ProducerRecord" in caplog.text


def test_a_rejection_fails_the_record_instead_of_being_skipped():
    class Rejects:
        def on_send(self, record):
            raise RecordRejectedError("no", interceptor="rejects")
    with pytest.raises(RecordRejectedError):
        InterceptorChain([Rejects()], "c1").on_send(ProducerRecord("t", b"v"))


def test_an_acknowledgement_with_three_parameters_gets_the_record():
    seen = []

    class WithRecord:
        def on_send(self, record):
            record.state = {self: "mine"}
            return record

        def on_acknowledgement(self, metadata, error, record):
            seen.append(record.state[self])
    chain = InterceptorChain([WithRecord()], "c1")
    record = chain.on_send(ProducerRecord("t", b"v"))
    chain.on_send_error(record, ValueError("x"))
    assert seen == ["mine"]


def test_record_headers_are_a_copy_of_the_callers():
    given = [("a", b"1")]
    record = ProducerRecord("t", b"v", headers=given)
    record.headers.append(("b", b"2"))
    assert given == [("a", b"1")]
    assert ProducerRecord("t", headers={"x": b"1"}).headers == [("x", b"1")]
    assert record.header("b") == b"2"


# ---------------------------------------------------------------- loading and settings

def test_builtins_plugins_and_module_class_load_by_name(example_plugin):
    assert example_plugin in plugin_names()
    loaded = load_interceptors(settings(
        interceptors=["audit_headers", example_plugin, f"{__name__}:ReturnsNone"],
        client_id="me"))
    assert [type(i).__name__ for i in loaded] == ["AuditHeaders", "StampInterceptor",
                                                  "ReturnsNone"]
    assert loaded[1].stamp == b"me"   # configured with the producer's settings
    # Java's name and its comma-separated form
    loaded = load_interceptors(settings(interceptor_classes=f"audit_headers, {example_plugin}"))
    assert [type(i).__name__ for i in loaded] == ["AuditHeaders", "StampInterceptor"]


def test_what_does_not_resolve_is_a_config_error_naming_what_exists(example_plugin):
    with pytest.raises(ConfigError) as info:
        load_interceptors(settings(interceptors=["nope"]))
    for name in ("mask_fields", "audit_headers", "otel", example_plugin):
        assert name in str(info.value)
    with pytest.raises(ConfigError, match="Java class cannot run in kengine"):
        load_interceptors(settings(interceptor_classes="com.example.TracingInterceptor"))
    with pytest.raises(ConfigError, match="importable 'module:Class'"):
        load_interceptors(settings(interceptors=["no_such_module_xyz:Thing"]))
    with pytest.raises(ConfigError, match="on_send"):
        load_interceptors(settings(interceptors=[object()]))


def test_the_two_names_of_the_list_cannot_both_be_set():
    with pytest.raises(ConfigError, match="interceptor.classes"):
        settings(interceptors=["audit_headers"], interceptor_classes=["mask_fields"])


def test_a_builtins_settings_need_it_configured():
    with pytest.raises(ConfigError, match="interceptor.mask.fields.*mask_fields"):
        settings(interceptor_mask_fields=["email"])
    with pytest.raises(ConfigError, match="interceptor.audit.application.*audit_headers"):
        settings(interceptor_audit_application="billing")
    with pytest.raises(ConfigError, match="interceptor.mask.fields"):
        load_interceptors(settings(interceptors=["mask_fields"]))   # masks nothing: refused


def test_a_producer_without_interceptors_keeps_the_compiled_send():
    p = Producer(bootstrap_servers="127.0.0.1:1")
    try:
        assert type(p) is Producer and p._interceptors is None
        assert type(p).send is kengine_ext.SendMethods.send
        assert type(p).send_many is kengine_ext.SendMethods.send_many
    finally:
        p.close(0)
    p = Producer(bootstrap_servers="127.0.0.1:1", interceptors=["audit_headers"])
    try:
        assert isinstance(p, Producer) and type(p) is not Producer
        assert type(p).send is not kengine_ext.SendMethods.send
        # send_arrow() too: no row may bypass mask_fields or tracing
        assert type(p).send_arrow is not kengine_ext.SendMethods.send_arrow
    finally:
        p.close(0)


def test_an_asyncio_producer_runs_them_itself_not_its_inner_producer():
    p = AIOProducer(bootstrap_servers="127.0.0.1:1", interceptors=["audit_headers"])
    try:
        assert isinstance(p, AIOProducer) and type(p) is not AIOProducer
        inner = p._producer
        assert inner._interceptors is not None
        assert type(inner).send is kengine_ext.SendMethods.send   # retried appends: no rerun
    finally:
        p._producer.close(0)
    p = AIOProducer(bootstrap_servers="127.0.0.1:1")
    try:
        assert type(p) is AIOProducer
    finally:
        p._producer.close(0)


# ---------------------------------------------------------------- mask_fields

def masker(fields, **kwargs):
    m = MaskFields(fields, **kwargs)
    m.configure({})
    return m


def test_mask_fields_hashes_named_fields_of_dicts_bytes_and_str():
    m = masker({"orders": ["email", "card.number", "items.sku"]}, salt="s3cret")
    doc = {"id": 7, "email": "a@b.c", "card": {"number": "4111", "exp": "12/30"},
           "items": [{"sku": "X1", "n": 2}, {"sku": "X2", "n": 1}]}
    out = m.on_send(ProducerRecord("orders", doc)).value
    assert doc["email"] == "a@b.c" and doc["card"]["number"] == "4111"   # caller's untouched
    assert out["id"] == 7 and out["card"]["exp"] == "12/30"
    assert out["email"] == m.hash("a@b.c") and out["email"].startswith("sha256:")
    assert out["card"]["number"] == m.hash("4111")
    assert [i["sku"] for i in out["items"]] == [m.hash("X1"), m.hash("X2")]
    as_bytes = m.on_send(ProducerRecord("orders", json.dumps(doc).encode())).value
    assert json.loads(as_bytes) == out
    as_str = m.on_send(ProducerRecord("orders", json.dumps(doc))).value
    assert isinstance(as_str, str) and json.loads(as_str) == out
    # another topic is not masked; the salt changes the hash
    assert m.on_send(ProducerRecord("other", doc)).value is doc
    assert masker(["email"]).hash("a@b.c") != m.hash("a@b.c")


def test_mask_fields_removes_and_applies_the_star_entry_to_other_topics():
    m = masker({"*": ["ssn"], "hr": ["salary"]}, mode="remove")
    assert m.on_send(ProducerRecord("x", b'{"ssn":"1","a":1}')).value == b'{"a":1}'
    assert m.on_send(ProducerRecord("hr", {"salary": 1, "ssn": "2"})).value == {"ssn": "2"}


def test_mask_fields_refuses_what_it_cannot_mask_and_passes_tombstones():
    m = masker(["email"])
    assert m.on_send(ProducerRecord("t", None)).value is None
    for value in (b"not json", b"[1,2]", 42):
        with pytest.raises(RecordRejectedError, match="cannot be masked; it was not sent"):
            m.on_send(ProducerRecord("t", value))


def test_mask_fields_reads_its_settings():
    cfg = settings(interceptors=["mask_fields"], interceptor_mask_fields={"t": ["a.b"]},
                   interceptor_mask_mode="remove")
    [m] = load_interceptors(cfg)
    assert m.on_send(ProducerRecord("t", {"a": {"b": 1, "c": 2}})).value == {"a": {"c": 2}}
    with pytest.raises(ConfigError, match="not a field path"):
        settings(interceptors=["mask_fields"], interceptor_mask_fields=["a..b"])


def test_audit_headers_reads_its_settings():
    [a] = load_interceptors(settings(interceptors=["audit_headers"], client_id="billing-1",
                                     interceptor_audit_application="billing",
                                     interceptor_audit_header_prefix="x-"))
    assert isinstance(a, AuditHeaders)
    headers = dict(a.on_send(ProducerRecord("t", b"v", headers=[("k", b"1")])).headers)
    assert headers["k"] == b"1"
    assert headers["x-client.id"] == b"billing-1" and headers["x-application"] == b"billing"
    assert headers["x-host"]
