"""Static checks run as tests: mypy --strict over the Python layer (which also type-checks its
use of the compiled core through its stubs) and ruff."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_mypy_strict_on_the_python_layer():
    result = _run(sys.executable, "-m", "mypy", "kengine")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    result = _run(ruff, "check", "kengine", "kengine_ext", "tests", "benchmarks", "tools")
    assert result.returncode == 0, result.stdout + result.stderr
