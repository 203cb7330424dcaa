"""Resolves the ``partitioner`` setting to what the core runs.

``partitioner=`` may be

* a built-in name: ``default``, ``round_robin``, ``consistent_random``, ``murmur2_random``
  (run by the core, no Python call per record) or ``salted_hot_key``, ``composite`` (Python);
* the name of an installed plugin: a package declaring an entry point in the group
  ``kengine.partitioners`` (``name = "package.module:Class"``), looked up only when the name
  is not a built-in, so a plugin cannot shadow a built-in;
* ``"module:Class"``: imported directly;
* a class, or an instance with a ``partition()`` method (used as it is).

A class (built-in, plugin or imported) is constructed without arguments, then given the
producer's settings through ``configure()`` when it has one. Anything that does not resolve
raises :class:`~kengine.errors.ConfigError` naming what exists.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from kengine_ext import BUILTIN_PARTITIONERS

from ..config import (
    ProducerConfig,
    Setting,
    SettingsGroup,
    contribute,
    parse_bool,
    parse_int,
    parse_mapping,
)
from ..errors import ConfigError
from ..plugin_loading import entry_point, import_path, installed_names
from .base import Partitioner
from .composite import CompositeKeyPartitioner
from .salted_hot_key import SaltedHotKeyPartitioner

__all__ = ["CORE_PARTITIONERS", "ENTRY_POINT_GROUP", "PYTHON_PARTITIONERS", "SETTINGS",
           "builtin_names", "load_partitioner", "plugin_names"]

#: The entry-point group plugins register their partitioners in.
ENTRY_POINT_GROUP = "kengine.partitioners"
#: Built-ins the Cython core runs without a Python call per record.
CORE_PARTITIONERS: tuple[str, ...] = tuple(BUILTIN_PARTITIONERS)
#: Built-ins written in Python, by name.
PYTHON_PARTITIONERS: dict[str, type] = {
    "salted_hot_key": SaltedHotKeyPartitioner,
    "composite": CompositeKeyPartitioner,
}
_SIGNATURE = "partition(topic, key, value, headers, num_partitions, available)"


def builtin_names() -> tuple[str, ...]:
    return CORE_PARTITIONERS + tuple(PYTHON_PARTITIONERS)


def plugin_names() -> list[str]:
    """Names of the partitioner plugins installed in this environment."""
    return installed_names(ENTRY_POINT_GROUP)


def load_partitioner(spec: Any, config: ProducerConfig | Mapping[str, Any] | None = None
                     ) -> str | Partitioner:
    """What the core runs for the ``partitioner`` setting: a name from
    :data:`CORE_PARTITIONERS`, or a Python partitioner object. ``config`` (the producer's
    settings) is handed to the ``configure()`` of a partitioner constructed here."""
    settings: Mapping[str, Any]
    if config is None:
        settings = {}
    elif isinstance(config, Mapping):
        settings = config
    else:
        settings = config.values
    if spec is None:
        return "default"
    if isinstance(spec, str):
        name = spec.strip()
        if name in CORE_PARTITIONERS:
            return name
        if name in PYTHON_PARTITIONERS:
            return _construct(PYTHON_PARTITIONERS[name], spec, settings)
        found = entry_point(ENTRY_POINT_GROUP, "partitioner", name, spec)
        if found is not None:
            return _construct(found, spec, settings)
        if ":" in name:
            return _construct(import_path("partitioner", name, spec), spec, settings)
        plugins = plugin_names()
        raise ConfigError(
            "partitioner", spec,
            f"a built-in partitioner ({', '.join(builtin_names())}), an installed plugin "
            f"({', '.join(plugins) if plugins else f'none registered in {ENTRY_POINT_GROUP!r}'}), "
            f"'module:Class', or an object with {_SIGNATURE}")
    if isinstance(spec, type):
        return _construct(spec, spec, settings)
    return _checked(spec, spec)


def _construct(obj: Any, spec: Any, settings: Mapping[str, Any]) -> Partitioner:
    """An instance from a class or zero-argument factory (or an instance as it is), configured."""
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "partition")):
        try:
            instance = obj()
        except Exception as e:
            raise ConfigError("partitioner", spec,
                              f"a partitioner constructible without arguments; {obj!r}() raised "
                              f"{type(e).__name__}: {e}") from e
    else:
        instance = obj
    configure = getattr(instance, "configure", None)
    if callable(configure):
        try:
            configure(settings)
        except ConfigError:
            raise
        except Exception as e:
            raise ConfigError("partitioner", spec,
                              f"a partitioner whose configure() accepts the settings; it raised "
                              f"{type(e).__name__}: {e}") from e
    return _checked(instance, spec)


def _checked(instance: Any, spec: Any) -> Partitioner:
    partition = getattr(instance, "partition", None)
    if not callable(partition):
        raise ConfigError("partitioner", spec, f"an object with a method {_SIGNATURE}")
    try:
        signature = inspect.signature(partition)
    except (TypeError, ValueError):
        return instance  # type: ignore[no-any-return]  # a C callable: nothing to inspect
    try:
        signature.bind("topic", None, None, None, 1, (0,))
    except TypeError:
        raise ConfigError("partitioner", spec,
                          f"{_SIGNATURE}; its partition{signature} takes other arguments") from None
    return instance  # type: ignore[no-any-return]


# ---------------------------------------------------------------- the partitioner settings

def _partitioner(key: str, value: Any) -> Any:
    allowed = ("a built-in or plugin partitioner name, 'module:Class', a class, or an object with "
               "partition()")
    if value is None:
        return "default"
    if isinstance(value, str):
        if not value.strip():
            raise ConfigError(key, value, allowed)
        return value.strip()
    if isinstance(value, type) or callable(getattr(value, "partition", None)):
        return value
    raise ConfigError(key, value, allowed)


def _check(values: dict[str, Any], explicit: frozenset[str]) -> None:
    partitioner = values["partitioner"]
    if values["partitioner.ignore.keys"] and partitioner != "default":
        raise ConfigError("partitioner.ignore.keys", True,
                          f"false unless partitioner='default' (the {partitioner!r} partitioner "
                          f"decides itself how keys are used)")


#: The partitioner, resolved here (load_partitioner), and the settings of the core's built-in
#: partitioners (kengine_ext.Partitioning). A partitioner's own settings are its module's
#: (salted_hot_key.SETTINGS, composite.SETTINGS); a plugin gets partitioner.config, or
#: contributes a group of its own the same way when its module is imported.
SETTINGS = SettingsGroup(
    owner=__name__,
    settings=(
        Setting("partitioner", "default", _partitioner,
                "default, round_robin, consistent_random, murmur2_random, salted_hot_key, "
                "composite, an installed plugin's name (entry point group "
                "'kengine.partitioners'), 'module:Class', a class, or a Partitioner instance"),
        Setting("partitioner.ignore.keys", False, parse_bool,
                "default partitioner: place keyed records like unkeyed ones (sticky)"),
        Setting("partitioner.adaptive.partitioning.enable", True, parse_bool,
                "sticky placement: pick the next partition with weights from queue sizes, so "
                "partitions of slower brokers get less"),
        Setting("partitioner.availability.timeout.ms", 0, parse_int(0, 2**62),
                "sticky placement (adaptive): skip partitions whose leader had data waiting "
                "this long without taking any (0: never)"),
        Setting("partitioner.config", {}, parse_mapping,
                "options for a plugin partitioner, passed to its configure() with the settings"),
    ),
    check=_check,
    after="value.serializer",
)
contribute(SETTINGS)
