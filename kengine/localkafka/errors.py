"""Errors of the local Kafka launcher.

They sit under :class:`kengine.errors.KafkaError` so one ``except KafkaError`` still catches
everything kengine raises; waits that run out raise :class:`kengine.errors.KafkaTimeoutError`.
"""
from __future__ import annotations

from ..errors import KafkaError

__all__ = ["BrokerStartError", "JarResolutionError", "LocalKafkaError", "ToolMissingError"]


class LocalKafkaError(KafkaError, RuntimeError):
    """Starting, stopping or inspecting a local Kafka cluster failed."""


class ToolMissingError(LocalKafkaError):
    """``java`` (17 or newer) or ``mvn`` is not installed; the message says what to install."""


class JarResolutionError(LocalKafkaError):
    """Maven could not resolve the Kafka jars; the message carries Maven's output."""


class BrokerStartError(LocalKafkaError):
    """A node exited or did not become ready; the message carries the tail of its logs."""
