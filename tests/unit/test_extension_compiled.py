"""kengine has no pure-Python fallback: the core must be the compiled extension module."""
from __future__ import annotations

import importlib.machinery

import kengine_ext
import kengine_ext._core as core


def test_core_is_a_compiled_extension_module() -> None:
    assert core.__file__ is not None
    assert core.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), core.__file__
    assert isinstance(core.__spec__.loader, importlib.machinery.ExtensionFileLoader)


def test_package_exports_the_compiled_functions() -> None:
    for name in ("crc32c", "crc32c_implementation", "murmur2", "partition_for_key"):
        assert name in core.__all__
        assert getattr(kengine_ext, name) is getattr(core, name)
