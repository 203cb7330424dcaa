"""The ``interceptors`` / ``interceptor.classes`` settings and how their entries are loaded.

Each entry of the list may be

* a built-in name: ``mask_fields``, ``audit_headers`` (:mod:`.mask_fields`,
  :mod:`.audit_headers`), ``otel`` (:mod:`kengine.otel`, extra ``kengine-kafka[otel]``);
* the name of an installed plugin: a package declaring an entry point in the group
  ``kengine.interceptors`` (``name = "package.module:Class"``), looked up only when the name
  is not a built-in, so a plugin cannot shadow a built-in;
* ``"module:Class"``: imported directly;
* a class (constructed without arguments), or an object used as it is.

A class is then given the producer's settings through ``configure()`` when it has one, as
partitioners are (:mod:`kengine.partitioners.registry`). A string lists several entries
separated by commas (Java's ``interceptor.classes`` form). Anything that does not resolve raises
:class:`~kengine.errors.ConfigError` naming what exists.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..config import ProducerConfig, Setting, SettingsGroup, contribute
from ..errors import ConfigError
from ..plugin_loading import entry_point, import_path, installed_names

__all__ = ["BUILTIN_INTERCEPTORS", "ENTRY_POINT_GROUP", "SETTINGS", "load_interceptors",
           "plugin_names"]

#: The entry-point group plugins register their interceptors in.
ENTRY_POINT_GROUP = "kengine.interceptors"


def _mask_fields() -> type:
    from .mask_fields import MaskFields
    return MaskFields


def _audit_headers() -> type:
    from .audit_headers import AuditHeaders
    return AuditHeaders


def _otel() -> type:
    try:
        from ..otel.tracing import TracingInterceptor
    except ImportError as e:
        raise ConfigError("interceptors", "otel",
                          f"an installed OpenTelemetry API: pip install 'kengine-kafka[otel]' "
                          f"({e})") from e
    return TracingInterceptor


#: Built-in interceptors by name; each is imported only when named.
BUILTIN_INTERCEPTORS: dict[str, Callable[[], type]] = {
    "mask_fields": _mask_fields,
    "audit_headers": _audit_headers,
    "otel": _otel,
}
_METHODS = ("on_send", "on_acknowledgement")


def plugin_names() -> list[str]:
    """Names of the interceptor plugins installed in this environment."""
    return installed_names(ENTRY_POINT_GROUP)


def load_interceptors(config: ProducerConfig | Mapping[str, Any]) -> list[Any]:
    """The interceptor objects the settings name, in order (empty when none)."""
    settings = config.values if isinstance(config, ProducerConfig) else config
    key = "interceptor.classes" if settings.get("interceptor.classes") else "interceptors"
    return [_load(key, entry, settings) for entry in settings.get(key) or ()]


def _load(key: str, entry: Any, settings: Mapping[str, Any]) -> Any:
    if isinstance(entry, str):
        name = entry.strip()
        if name in BUILTIN_INTERCEPTORS:
            return _construct(key, BUILTIN_INTERCEPTORS[name](), entry, settings)
        found = entry_point(ENTRY_POINT_GROUP, key, name, name)
        if found is not None:
            return _construct(key, found, entry, settings)
        if ":" in name:
            return _construct(key, import_path(key, name, name), entry, settings)
        plugins = plugin_names()
        java = (" (a Java class cannot run in kengine: write the interceptor in Python)"
                if "." in name else "")
        raise ConfigError(
            key, entry,
            f"a built-in interceptor ({', '.join(BUILTIN_INTERCEPTORS)}), an installed plugin "
            f"({', '.join(plugins) if plugins else f'none registered in {ENTRY_POINT_GROUP!r}'}),"
            f" 'module:Class', or an object with on_send() / on_acknowledgement(){java}")
    return _construct(key, entry, entry, settings)


def _construct(key: str, obj: Any, entry: Any, settings: Mapping[str, Any]) -> Any:
    if isinstance(obj, type):
        try:
            instance = obj()
        except ConfigError:
            raise
        except Exception as e:
            raise ConfigError(key, entry, f"an interceptor constructible without arguments; "
                                          f"{obj.__name__}() raised {type(e).__name__}: {e}"
                              ) from e
    else:
        instance = obj
    if not any(callable(getattr(instance, m, None)) for m in _METHODS):
        raise ConfigError(key, entry, "an object with on_send(record) and/or "
                                      "on_acknowledgement(metadata, error)")
    configure = getattr(instance, "configure", None)
    if callable(configure):
        try:
            configure(settings)
        except ConfigError:
            raise
        except Exception as e:
            raise ConfigError(key, entry, f"an interceptor whose configure() accepts the "
                                          f"settings; it raised {type(e).__name__}: {e}") from e
    return instance


# ---------------------------------------------------------------- the settings

def _entries(key: str, value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, (list, tuple)):
        for entry in value:
            if isinstance(entry, str) and not entry.strip():
                raise ConfigError(key, value, "no empty names in the list")
        return tuple(value)
    # one object or class
    return (value,)


def _check(values: dict[str, Any], explicit: frozenset[str]) -> None:
    if values["interceptors"] and values["interceptor.classes"]:
        raise ConfigError("interceptor.classes", values["interceptor.classes"],
                          "unset when interceptors is set: they name the same list (the "
                          "second is Java's name); put every interceptor in one of them")


SETTINGS = SettingsGroup(
    owner=__name__,
    settings=(
        Setting("interceptors", (), _entries,
                "interceptors run in order on every record (on_send) and outcome "
                "(on_acknowledgement): built-ins mask_fields, audit_headers, otel; an installed "
                "plugin's name (entry point group 'kengine.interceptors'); 'module:Class'; a "
                "class or an object. A list, or names separated by commas"),
        Setting("interceptor.classes", (), _entries,
                "Java's name for interceptors (the same list); set one of the two"),
    ),
    check=_check,
    after="partitioner.config",
)
contribute(SETTINGS)
