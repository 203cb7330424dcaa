"""Resolving ``partitioner=``: built-ins, entry-point plugins (the example package, installed
into this interpreter once per session), "module:Class", classes and instances, and the errors
for everything else."""
from __future__ import annotations

import pytest

from kengine import config
from kengine.errors import ConfigError
from kengine.partitioners import (
    CompositeKeyPartitioner,
    SaltedHotKeyPartitioner,
    load_partitioner,
    plugin_names,
)
from kengine_ext import partition_for_key
from tests.support.plugins import install_example_plugin


@pytest.fixture(scope="session")
def example_plugin() -> str:
    """Installs examples/partitioner-plugin (entry point ``key_prefix``) into this interpreter."""
    install_example_plugin("partitioner-plugin")
    return "key_prefix"


def settings(**kwargs):
    return config.resolve(bootstrap_servers="h:1", **kwargs)


class Fixed:
    """Always partition 1; remembers the settings it was configured with."""

    def __init__(self):
        self.configured_with = None

    def configure(self, settings):
        self.configured_with = settings

    def partition(self, topic, key, value, headers, num_partitions, available):
        return 1


class OldSignature:
    def partition(self, topic, key, value, headers, num_partitions):
        return 0


class NeedsArguments:
    def __init__(self, required):
        pass

    def partition(self, topic, key, value, headers, num_partitions, available):
        return 0


class RejectsSettings:
    def configure(self, settings):
        raise ValueError("no thanks")

    def partition(self, topic, key, value, headers, num_partitions, available):
        return 0


@pytest.mark.parametrize("name", ["default", "round_robin", "consistent_random",
                                  "murmur2_random"])
def test_core_built_ins_resolve_to_their_names(name):
    assert load_partitioner(name, settings(partitioner=name)) == name


def test_python_built_ins_are_constructed_and_configured():
    cfg = settings(partitioner="composite", partitioner_composite_fields=["key"])
    assert isinstance(load_partitioner("composite", cfg), CompositeKeyPartitioner)
    assert isinstance(load_partitioner("salted_hot_key", settings()), SaltedHotKeyPartitioner)
    assert load_partitioner(None) == "default"


def test_module_colon_class_and_classes_are_constructed_then_configured():
    cfg = settings(partitioner=f"{__name__}:Fixed", partitioner_config={"answer": 1})
    p = load_partitioner(cfg["partitioner"], cfg)
    assert isinstance(p, Fixed)
    assert p.configured_with["partitioner.config"] == {"answer": 1}
    p = load_partitioner(Fixed, cfg)
    assert isinstance(p, Fixed) and p.configured_with is not None


def test_instances_are_used_as_given_without_configure():
    instance = Fixed()
    assert load_partitioner(instance, settings()) is instance
    assert instance.configured_with is None


def test_an_unknown_name_lists_what_exists(example_plugin):
    with pytest.raises(ConfigError) as info:
        load_partitioner("murmur3", settings())
    message = str(info.value)
    assert info.value.key == "partitioner"
    for name in ("default", "round_robin", "consistent_random", "murmur2_random",
                 "salted_hot_key", "composite", example_plugin):
        assert name in message


@pytest.mark.parametrize("spec,match", [
    ("no_such_module_xyz:Thing", "importable 'module:Class'.*ModuleNotFoundError"),
    (f"{__name__}:Missing", "importable 'module:Class'.*AttributeError"),
    (OldSignature(), r"partition\(topic, key, value, headers, num_partitions, available\)"),
    (NeedsArguments, "constructible without arguments"),
    (RejectsSettings, "configure.*ValueError: no thanks"),
    (object(), "partition"),
])
def test_unusable_partitioners_are_config_errors(spec, match):
    with pytest.raises(ConfigError, match=match):
        load_partitioner(spec, settings())


def test_setting_values_are_checked_before_loading():
    with pytest.raises(ConfigError, match="partition"):
        settings(partitioner=42)
    with pytest.raises(ConfigError, match="partitioner.ignore.keys.*unless partitioner='default'"):
        settings(partitioner="round_robin", partitioner_ignore_keys=True)
    with pytest.raises(ConfigError, match="mapping"):
        settings(partitioner_config=["delimiter"])
    assert settings(partitioner=" round_robin ")["partitioner"] == "round_robin"


def test_the_example_plugin_loads_by_name_and_partitions_by_key_prefix(example_plugin):
    assert example_plugin in plugin_names()
    cfg = settings(partitioner=example_plugin, partitioner_config={"delimiter": "/"})
    p = load_partitioner(cfg["partitioner"], cfg)
    assert type(p).__name__ == "KeyPrefixPartitioner"
    assert type(p).__module__ == "kengine_key_prefix"
    for key in (b"tenant-7/order-1", b"tenant-7/order-2", b"tenant-7/x/y"):
        assert p.partition("t", key, None, None, 12, ()) == partition_for_key(b"tenant-7", 12)
    assert p.partition("t", b"no-delimiter", None, None, 12, ()) == \
        partition_for_key(b"no-delimiter", 12)
    assert p.partition("t", None, None, None, 12, ()) is None


def test_the_example_plugin_rejects_bad_options(example_plugin):
    cfg = settings(partitioner=example_plugin, partitioner_config={"delimeter": "/"})
    with pytest.raises(ConfigError, match="only 'delimiter'"):
        load_partitioner(cfg["partitioner"], cfg)


def test_the_plugin_places_records_sent_through_the_core(example_plugin):
    from tests.support.core import Core

    cfg = settings(partitioner=example_plugin)
    core = Core({"t": [0] * 6}, linger_ms=0, key_serializer="str",
                partitioner=load_partitioner(cfg["partitioner"], cfg), max_block_ms=100)
    for order in range(10):
        f = core.send("t", b"v", key=f"tenant-3:order-{order}")
        assert f.partition == partition_for_key(b"tenant-3", 6)
    first = core.send("t", b"v").partition   # no key: the plugin leaves it to the sticky one
    assert core.send("t", b"v").partition == first
