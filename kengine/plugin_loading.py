"""Loading a plugin named in a setting, for every plugin registry (partitioners, interceptors):
by entry-point name or by 'module:Class' path, with a ConfigError naming the setting, the value
and what went wrong."""
from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

from .errors import ConfigError

__all__ = ["entry_point", "import_path", "installed_names"]


def installed_names(group: str) -> list[str]:
    """Names of the plugins installed in this environment under entry-point `group`."""
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=group)})


def entry_point(group: str, key: str, name: str, value: Any) -> Any:
    """The object the installed plugin `name` of entry-point `group` names, or None when no
    package registers it; `key` and `value` are the setting and its value, for errors."""
    matches = importlib.metadata.entry_points(group=group).select(name=name)
    targets = sorted({ep.value for ep in matches})
    if not targets:
        return None
    if len(targets) > 1:
        raise ConfigError(key, value,
                          f"a unique plugin name; {name!r} is registered by several installed "
                          f"packages ({', '.join(targets)}): use 'module:Class' instead")
    ep = next(iter(matches))
    try:
        return ep.load()
    except Exception as e:
        raise ConfigError(key, value, f"a loadable plugin; {name!r} ({ep.value}) failed to "
                                      f"import: {type(e).__name__}: {e}") from e


def import_path(key: str, path: str, value: Any) -> Any:
    """The object 'module:attr.attr' names."""
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ConfigError(key, value,
                          f"an importable 'module:Class' ({type(e).__name__}: {e})") from e
    return obj
