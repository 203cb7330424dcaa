"""The type stubs of the compiled core match what it exports (mypy's stubtest)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_core_stubs_match_the_compiled_module():
    # stubtest reports an allowlist entry that matched nothing, so the entries that hold only
    # on some Python versions live in a file of their own
    allowlists = []
    if sys.version_info < (3, 12):
        allowlists = ["--allowlist", str(ROOT / "tools" / "stubtest-allowlist-before-3.12.txt")]
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "kengine_ext._core", "--ignore-missing-stub",
         *allowlists],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout + result.stderr
