"""Installing one of examples/'s plugin packages into the interpreter running the tests, as a
user installs a plugin (pip, entry points), for the registry tests."""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def install_example_plugin(directory: str) -> None:
    """pip-installs examples/<directory> (no dependencies, no build isolation: offline)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--disable-pip-version-check",
                    str(EXAMPLES / directory)],
                   check=True, timeout=300, capture_output=True)
    importlib.invalidate_caches()
