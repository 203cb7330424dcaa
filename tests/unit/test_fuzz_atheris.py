"""The fuzz targets of tests/support/fuzz_targets.py under atheris (libFuzzer), coverage-guided
over kengine's Python layers, from well-formed seeds: a short, seeded run per target in a
child process; any exception other than kengine's own error types fails it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import atheris  # noqa: F401 (a test dependency: the child process imports it)
import pytest

from tests.support.fuzz_targets import TARGETS, seeds

ROOT = Path(__file__).resolve().parents[2]
RUNS = 20000


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_atheris_finds_nothing(target, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(seeds(target)):
        (corpus / f"seed-{i}").write_bytes(seed)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run(
        [sys.executable, "-m", "tests.support.atheris_runner", target, f"-runs={RUNS}", "-seed=1",
         "-max_len=1024", "-timeout=20", "-rss_limit_mb=1536",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    report = (out.stdout + out.stderr)[-4000:]
    assert out.returncode == 0, report
    assert f"Done {RUNS} runs" in out.stderr, report
