"""Protobuf message classes for the schema tests, built from FileDescriptorProtos at run time
(what protoc's generated modules do on import), so the suite needs no protoc:

* ``kengine/tests/money.proto``: ``Money {string currency = 1; int64 units = 2;}``
* ``kengine/tests/order.proto`` imports money.proto and google/protobuf/timestamp.proto:
  ``Order {int64 id = 1; string customer = 2; Money total = 3; Timestamp created = 4;
  repeated Line lines = 5; Status status = 6; message Line {string sku = 1; int32 quantity = 2;}
  enum Status {NEW = 0; PAID = 1;}}`` and a second top-level message
  ``Refund {int64 order_id = 1;}`` (its message-index list is [1]; ``Order.Line``'s is [0, 0]).
"""
from __future__ import annotations

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    timestamp_pb2,  # noqa: F401  (puts timestamp.proto in the pool)
)

__all__ = ["Money", "Order", "Refund"]

_F = descriptor_pb2.FieldDescriptorProto


def _field(msg: descriptor_pb2.DescriptorProto, name: str, number: int, type_: int,
           type_name: str | None = None, repeated: bool = False) -> None:
    f = msg.field.add(name=name, number=number, type=type_,
                      label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
    if type_name:
        f.type_name = type_name


def _build() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    ts = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(ts)
    pool.Add(ts)

    money = descriptor_pb2.FileDescriptorProto(name="kengine/tests/money.proto",
                                               package="kengine.tests", syntax="proto3")
    m = money.message_type.add(name="Money")
    _field(m, "currency", 1, _F.TYPE_STRING)
    _field(m, "units", 2, _F.TYPE_INT64)
    pool.Add(money)

    order = descriptor_pb2.FileDescriptorProto(
        name="kengine/tests/order.proto", package="kengine.tests", syntax="proto3",
        dependency=["kengine/tests/money.proto", "google/protobuf/timestamp.proto"])
    o = order.message_type.add(name="Order")
    _field(o, "id", 1, _F.TYPE_INT64)
    _field(o, "customer", 2, _F.TYPE_STRING)
    _field(o, "total", 3, _F.TYPE_MESSAGE, ".kengine.tests.Money")
    _field(o, "created", 4, _F.TYPE_MESSAGE, ".google.protobuf.Timestamp")
    _field(o, "lines", 5, _F.TYPE_MESSAGE, ".kengine.tests.Order.Line", repeated=True)
    _field(o, "status", 6, _F.TYPE_ENUM, ".kengine.tests.Order.Status")
    line = o.nested_type.add(name="Line")
    _field(line, "sku", 1, _F.TYPE_STRING)
    _field(line, "quantity", 2, _F.TYPE_INT32)
    status = o.enum_type.add(name="Status")
    status.value.add(name="NEW", number=0)
    status.value.add(name="PAID", number=1)
    r = order.message_type.add(name="Refund")
    _field(r, "order_id", 1, _F.TYPE_INT64)
    pool.Add(order)
    return pool


_pool = _build()
Money = message_factory.GetMessageClass(_pool.FindMessageTypeByName("kengine.tests.Money"))
Order = message_factory.GetMessageClass(_pool.FindMessageTypeByName("kengine.tests.Order"))
Refund = message_factory.GetMessageClass(_pool.FindMessageTypeByName("kengine.tests.Refund"))
