"""Interceptors: code that sees every record before it is sent and every outcome after.

Configure them with the ``interceptors`` setting (or Java's ``interceptor.classes``); see
:mod:`.registry` for what an entry may be and :mod:`.base` for the methods an interceptor has.
Built-ins: ``mask_fields`` (:mod:`.mask_fields`), ``audit_headers`` (:mod:`.audit_headers`) and
``otel`` (:mod:`kengine.otel`).
"""
from __future__ import annotations

from . import audit_headers, mask_fields  # noqa: F401  (they declare settings)
from .audit_headers import AuditHeaders
from .base import FailedRecordMetadata, Headers, ProducerInterceptor, ProducerRecord
from .chain import InterceptorChain
from .mask_fields import MaskFields
from .registry import BUILTIN_INTERCEPTORS, ENTRY_POINT_GROUP, load_interceptors, plugin_names

__all__ = ["BUILTIN_INTERCEPTORS", "ENTRY_POINT_GROUP", "AuditHeaders", "FailedRecordMetadata",
           "Headers", "InterceptorChain", "MaskFields", "ProducerInterceptor", "ProducerRecord",
           "load_interceptors", "plugin_names"]
