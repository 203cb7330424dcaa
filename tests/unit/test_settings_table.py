"""A setting is declared by the code that reads it: TLS, SASL and the partitioners contribute
their settings and rules to kengine.config's one table, which imports none of them."""
from __future__ import annotations

import pytest

from kengine import config, sasl, security
from kengine.errors import ConfigError
from kengine.partitioners import composite, registry, salted_hot_key


def _owned(group: config.SettingsGroup) -> set[str]:
    return {s.name for s in group.settings}


def test_each_module_declares_the_settings_it_reads():
    assert _owned(security.SETTINGS) == {k for k in config.SETTINGS if k.startswith("ssl.")}
    assert _owned(sasl.SETTINGS) == {k for k in config.SETTINGS if k.startswith("sasl.")}
    assert _owned(salted_hot_key.SETTINGS) == {
        k for k in config.SETTINGS if k.startswith("partitioner.salted.")}
    assert _owned(composite.SETTINGS) == {"partitioner.composite.fields"}
    assert "partitioner" in _owned(registry.SETTINGS)
    for group in (security.SETTINGS, sasl.SETTINGS, salted_hot_key.SETTINGS,
                  composite.SETTINGS, registry.SETTINGS):
        for s in group.settings:
            assert config.SETTINGS[s.name] is s


def test_contributed_settings_keep_their_place_in_the_table():
    names = list(config.SETTINGS)
    assert names.index("security.protocol") + 1 == names.index("ssl.truststore.location")
    assert names.index("ssl.context") + 1 == names.index("sasl.mechanism")
    assert names.index("value.serializer") + 1 == names.index("partitioner")


def test_a_setting_cannot_be_declared_twice():
    clash = config.SettingsGroup("tests.elsewhere", (config.Setting(
        "linger.ms", 0, config.parse_int(0), "again"),))
    with pytest.raises(ValueError, match="linger.ms"):
        config.contribute(clash)


def test_a_contributed_rule_runs_in_resolve_and_names_the_setting():
    with pytest.raises(ConfigError, match="ssl.protocol.*security.protocol SSL or SASL_SSL"):
        config.resolve(bootstrap_servers="h:1", ssl_protocol="TLSv1.2")
    with pytest.raises(ConfigError, match="partitioner.salted.buckets.*salted_hot_key"):
        config.resolve(bootstrap_servers="h:1", partitioner_salted_buckets=4)
    with pytest.raises(ConfigError, match="sasl.mechanism"):
        config.resolve(bootstrap_servers="h:1", security_protocol="SASL_PLAINTEXT")
