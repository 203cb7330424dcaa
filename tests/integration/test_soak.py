"""The short soak (issue 24): ``tools/soak.py`` for ``KENGINE_SOAK_MINUTES`` (3 by default) on
the session's three-broker cluster behind its proxies: a toxic half-way to the first bounce, a
broker bounced every ``KENGINE_SOAK_BOUNCE_S`` (120 by default: a toxic after one minute, a
bounce after two), resources sampled every 10 s. It fails on an upward trend of RSS, file
descriptors, threads or buffer use after the warm-up (a third of the run, at most a minute),
and on any lost, duplicated or reordered record. CI runs a shorter smoke of it (``make
netfaults-ci``); the 30-minute run is ``make soak``."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ProxiedCluster
from tests.support.tools import load_tool

pytestmark = [pytest.mark.netfaults, pytest.mark.soak]

SOAK_MINUTES = float(os.environ.get("KENGINE_SOAK_MINUTES", "3"))
SOAK_RATE = int(os.environ.get("KENGINE_SOAK_RATE", "20000"))
SOAK_BOUNCE_S = float(os.environ.get("KENGINE_SOAK_BOUNCE_S", "120"))
#: the toxic's length: a sixth of the time between bounces (20 s for the default 120 s)
SOAK_TOXIC_S = SOAK_BOUNCE_S / 6


def test_short_soak(proxied_cluster: ProxiedCluster, tmp_path: Path) -> None:
    soak = load_tool("soak")
    result = soak.run_soak(proxied_cluster.cluster, proxied_cluster.proxies,
                           proxied_cluster.toxiproxy, minutes=SOAK_MINUTES, rate=SOAK_RATE,
                           out=tmp_path, warmup_s=min(60.0, SOAK_MINUTES * 20),
                           bounce_every_s=SOAK_BOUNCE_S, toxic_s=SOAK_TOXIC_S)
    first, last = result.samples[0], result.samples[-1]
    print(f"\nsoak: {result.sent} sent, {result.acked} acked, {result.failed} failed, "
          f"{result.read_back} read back, {result.lost} lost, {result.duplicated} duplicated; "
          f"RSS {first.rss_mib} -> {last.rss_mib} MiB, fds {first.fds} -> {last.fds}, threads "
          f"{first.threads} -> {last.threads}; trends {result.trends}; events {result.events}")
    assert (tmp_path / "soak.png").stat().st_size > 0
    assert result.problems == []
    assert result.acked > 0 and result.lost == 0 and result.duplicated == 0
    # the faults the run exists for happened: at least one toxic and one bounce
    assert any(": toxic " in e for e in result.events), result.events
    assert any(e.endswith(" back") for e in result.events), result.events
