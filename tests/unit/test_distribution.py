"""The installed distribution: its name, its one version (kengine.__version__, the metadata,
`kengine --version`, what ApiVersions tells brokers), and the licence files it carries. Run in
the dev venv (editable install) and by tools/test_wheels.py against each installed wheel."""
from __future__ import annotations

import importlib.metadata
import inspect
import subprocess
import sys
from pathlib import Path

import kengine
from kengine.connection import Connection

DISTRIBUTION = "kengine-kafka"


def test_the_metadata_version_is_kengine_version():
    assert installed().version == kengine.__version__, \
        "the installed metadata is stale: reinstall (make build, or pip install -e .)"


def test_kengine_version_prints_it():
    for command in ([sys.executable, "-m", "kengine", "--version"],
                    [str(Path(sys.executable).with_name("kengine")), "--version"]):
        out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
        assert out.stdout.strip() == f"kengine {kengine.__version__}", command


def test_brokers_are_told_the_same_version():
    default = inspect.signature(Connection).parameters["client_software"].default
    assert default == ("kengine", kengine.__version__)


def installed() -> importlib.metadata.Distribution:
    """The installed distribution: pip writes INSTALLER into it, which the egg-info an
    editable install leaves in the source tree (found first when the tree is on sys.path)
    lacks."""
    found = [d for d in importlib.metadata.distributions(name=DISTRIBUTION)
             if d.read_text("INSTALLER") is not None]
    assert len(found) == 1, f"{len(found)} installed distributions named {DISTRIBUTION}"
    return found[0]


def test_the_distribution_is_apache_2_and_carries_its_license_and_notice():
    dist = installed()
    assert dist.metadata["License-Expression"] == "Apache-2.0"
    assert sorted(dist.metadata.get_all("License-File") or []) == ["LICENSE", "NOTICE"]
    # PEP 639: .dist-info/licenses/ (read directly: editable installs leave it out of RECORD)
    text = dist.read_text("licenses/LICENSE") or ""
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "Apache Kafka" in (dist.read_text("licenses/NOTICE") or "")


def test_the_classifiers_name_this_python():
    classifiers = installed().metadata.get_all("Classifier") or []
    versions = [c.rsplit(" :: ", 1)[1] for c in classifiers
                if c.startswith("Programming Language :: Python :: 3.")]
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in versions, versions
