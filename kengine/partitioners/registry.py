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

import importlib
import importlib.metadata
import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kengine_ext import BUILTIN_PARTITIONERS

from ..errors import ConfigError
from .base import Partitioner
from .composite import CompositeKeyPartitioner
from .salted_hot_key import SaltedHotKeyPartitioner

if TYPE_CHECKING:
    from ..config import ProducerConfig

__all__ = ["CORE_PARTITIONERS", "ENTRY_POINT_GROUP", "PYTHON_PARTITIONERS", "builtin_names",
           "load_partitioner", "plugin_names"]

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
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)})


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
        found = _entry_point(name, spec)
        if found is not None:
            return _construct(found, spec, settings)
        if ":" in name:
            return _construct(_import(name, spec), spec, settings)
        plugins = plugin_names()
        raise ConfigError(
            "partitioner", spec,
            f"a built-in partitioner ({', '.join(builtin_names())}), an installed plugin "
            f"({', '.join(plugins) if plugins else f'none registered in {ENTRY_POINT_GROUP!r}'}), "
            f"'module:Class', or an object with {_SIGNATURE}")
    if isinstance(spec, type):
        return _construct(spec, spec, settings)
    return _checked(spec, spec)


def _entry_point(name: str, spec: str) -> Any:
    matches = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP).select(name=name)
    targets = sorted({ep.value for ep in matches})
    if not targets:
        return None
    if len(targets) > 1:
        raise ConfigError("partitioner", spec,
                          f"a unique plugin name; {name!r} is registered by several installed "
                          f"packages ({', '.join(targets)}): use 'module:Class' instead")
    ep = next(iter(matches))
    try:
        return ep.load()
    except Exception as e:
        raise ConfigError("partitioner", spec,
                          f"a loadable plugin; {name!r} ({ep.value}) failed to import: "
                          f"{type(e).__name__}: {e}") from e


def _import(path: str, spec: str) -> Any:
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ConfigError("partitioner", spec,
                          f"an importable 'module:Class' ({type(e).__name__}: {e})") from e
    return obj


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
