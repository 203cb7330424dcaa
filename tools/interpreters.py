"""What tools/build_wheels.py and tools/test_wheels.py share: the project's name, version and
supported Python versions as pyproject.toml and kengine/version.py state them, and the CPython
interpreter of each version on this machine.

The supported versions are the ``Programming Language :: Python :: 3.X`` classifiers: adding one
there is what makes the release tools build and test a wheel for it.
"""
from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the tools run on the dev venv's Python, 3.10 included
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent


class ToolError(Exception):
    """A condition the release tools cannot work around; the message says what to do."""


@dataclass(frozen=True)
class Interpreter:
    version: str   # "3.12"
    path: Path     # the python executable
    full_version: str  # "3.12.1"

    @property
    def tag(self) -> str:
        """The wheel's Python tag for this interpreter: cp312."""
        return "cp" + self.version.replace(".", "")


def project() -> dict[str, object]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]  # type: ignore[no-any-return]


def distribution_name() -> str:
    return str(project()["name"])


def wheel_stem() -> str:
    """The distribution name as wheel and sdist file names spell it (kengine_kafka)."""
    return re.sub(r"[-_.]+", "_", distribution_name()).lower()


def version() -> str:
    """kengine.__version__, read from the source without importing it."""
    tree = ast.parse((REPO / "kengine" / "version.py").read_text())
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "__version__"
                and isinstance(node.value, ast.Constant)):
            return str(node.value.value)
    raise ToolError("kengine/version.py has no `__version__ = \"...\"` line: the version lives "
                    "there (pyproject.toml reads it)")


def supported_versions() -> list[str]:
    """["3.10", "3.11", ...] from the classifiers, in order."""
    found = [m.group(1) for c in project().get("classifiers", [])  # type: ignore[union-attr]
             if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", str(c)))]
    if not found:
        raise ToolError("pyproject.toml lists no 'Programming Language :: Python :: 3.X' "
                        "classifier: the release tools build one wheel per listed version")
    return sorted(found, key=lambda v: tuple(int(p) for p in v.split(".")))


def _candidates(version: str) -> list[Path]:
    """Where a CPython of this version may be: pyenv's versions (newest patch first), then
    pythonX.Y on PATH."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = []
    versions = pyenv_root / "versions"
    if versions.is_dir():
        for d in versions.iterdir():
            m = re.fullmatch(re.escape(version) + r"\.(\d+)", d.name)
            if m and (d / "bin" / f"python{version}").exists():
                found.append((int(m.group(1)), d / "bin" / f"python{version}"))
    paths = [p for _, p in sorted(found, reverse=True)]
    on_path = shutil.which(f"python{version}")
    if on_path:
        paths.append(Path(on_path))
    return paths


def find_interpreter(version: str) -> Interpreter:
    for path in _candidates(version):
        out = subprocess.run(
            [str(path), "-c", "import platform, sys; "
             "print(platform.python_implementation(), platform.python_version(), "
             "hasattr(sys, '_is_gil_enabled') and not sys._is_gil_enabled())"],
            capture_output=True, text=True, timeout=60, check=False)
        fields = out.stdout.split()
        if (out.returncode == 0 and len(fields) == 3 and fields[0] == "CPython"
                and fields[1].startswith(version + ".") and fields[2] == "False"):
            return Interpreter(version, path, fields[1])
    raise ToolError(
        f"no CPython {version} found (looked in $PYENV_ROOT/versions/{version}.* and for "
        f"python{version} on PATH); install it, e.g. `pyenv install {version}`, or leave it out "
        f"with --python")


def interpreters(requested: list[str] | None) -> list[Interpreter]:
    """The interpreter of each requested version (default: every supported one). A version that
    is not supported, or not installed, is an error: a release never silently lacks a wheel."""
    supported = supported_versions()
    wanted = requested or supported
    unknown = [v for v in wanted if v not in supported]
    if unknown:
        raise ToolError(f"Python {', '.join(unknown)} is not supported by {distribution_name()} "
                        f"(pyproject.toml classifiers list {', '.join(supported)})")
    return [find_interpreter(v) for v in wanted]


def clean_environment() -> dict[str, str]:
    """The environment for child processes that must see only what they install: no PYTHONPATH
    (which could import the source tree), no venv of ours, no user site-packages."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PYTHONNOUSERSITE"] = "1"
    return env
