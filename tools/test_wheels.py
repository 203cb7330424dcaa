#!/usr/bin/env python3
"""Tests each wheel in dist/ as a user gets it. `make test-wheels` runs it after `make wheels`.

    python tools/test_wheels.py [--python 3.12 3.13] [--dist DIR] [--keep] [--jobs N]
    python tools/test_wheels.py --installed     (cibuildwheel's test command)

For every supported CPython (pyproject.toml's classifiers) found on this machine, in a new
directory outside the source tree:

1. a fresh virtual environment of that interpreter; the test dependencies (pyproject.toml's
   `test` extra, kengine's own dependencies and setuptools, which the plugin test builds with)
   from the package index; then the wheel, exactly as a user without a compiler installs it:
   `pip install --only-binary :all: --no-index --find-links dist kengine-kafka`;
2. the installed package must be the one imported (from the venv's site-packages, the version
   kengine/version.py states), and every kengine module must import under `python -W error`;
3. a copy of the tests (tests/, and the tools/, spec/ and examples/ inputs some of them read,
   but no kengine or kengine_ext source) runs there under pytest with DeprecationWarning and
   PendingDeprecationWarning as errors: the unit tests, stubtest of the installed stubs
   included, and tests/integration/test_installed.py, which produces to a real broker started
   by kengine.localkafka and reads everything back with confluent-kafka.

Left out, because they check the source tree rather than the installed package (the whole
suite runs them on the default interpreter): SOURCE_CHECKS below; and on other platforms what
cannot run there (platform_exclusions()). A test that fails, errors or skips fails the run;
pytest collecting nothing fails it too.

--installed tests the kengine-kafka already installed in the running Python instead (steps 2
and 3, without the broker): cibuildwheel runs it in the environment where it installed a
wheel it built, on platforms that have no Java for a broker.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import interpreters as itp

# What the wheel tests leave out, with why.
SOURCE_CHECKS = {
    "tests/unit/test_lint.py": "mypy and ruff over the source files",
    "tests/unit/test_imports.py": "the import graph of the source files (kengine/, kengine_ext/)",
    "tests/unit/test_benchmarks.py": "the benchmark harness, which is not part of the package",
    "tests/unit/test_errors_table.py::test_committed_table_matches_errors_tsv":
        "compares the committed kengine_ext/errors.py with its generator's output",
    "tests/unit/test_protocol_schemas.py::test_committed_table_matches_the_spec":
        "compares the committed kengine_ext/schemas.py with its generator's output",
    "tests/unit/test_release_tools.py::test_the_version_and_pythons_come_from_the_one_place_each":
        "reads the version from kengine/version.py, as the release tools do",
    "tests/unit/test_compat_table.py::test_readme_table_matches_the_committed_results":
        "compares README.md's compatibility table with the committed compatibility results",
}
TEST_PATHS = ["tests/unit", "tests/integration/test_installed.py"]
# The fuzz and property-based tests: most of the unit tests' time (of the 3.12 wheel's 658 s
# without the fuzz files, on a loaded machine: the sequencing model 341 s, the fuzz targets 129 s,
# the kafka-python cross-checks 95 s). They search the inputs of the same compiled C on every
# interpreter, so `--fuzz-on X.Y` (CI) runs them on one wheel and the whole rest of the unit
# tests on every wheel (the whole suite runs them on the development interpreter too); by
# default every wheel runs them.
FUZZ_TESTS = ["tests/unit/test_fuzz_atheris.py", "tests/unit/test_protocol_fuzz.py",
              "tests/unit/test_fuzz_targets.py", "tests/unit/test_sequencing_model.py",
              "tests/unit/test_protocol_kafka_python.py"]
# What the copied tests need from the repository besides tests/ (no package source; README.md:
# test_public_api.py checks the installed API against what it documents).
TEST_INPUTS = ["tests", "tools", "spec", "examples", "pyproject.toml", "README.md"]


@dataclass
class Result:
    version: str
    full_version: str = ""
    wheel: str = ""
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    xfailed: int = 0        # strict expected failures (known bugs), not failures of the run
    seconds: float = 0.0
    problem: str = ""
    phases: list[tuple[str, float]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (not self.problem and self.passed > 0 and not self.failed and not self.errors
                and not self.skipped)


def log(version: str, message: str) -> None:
    print(f"test_wheels [{version}]: {message}", flush=True)


def run(cmd: list[str], *, cwd: Path, env: dict[str, str], what: str,
        capture: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=env, text=True, check=False,
                            capture_output=capture)
    if result.returncode != 0:
        output = ((result.stdout or "") + (result.stderr or ""))[-6000:] if capture else ""
        raise itp.ToolError(f"{what} failed (exit {result.returncode}): `{' '.join(cmd)}`"
                            + (f"\n{output}" if output else ""))
    return result


def find_wheel(dist: Path, interp: itp.Interpreter) -> Path:
    pattern = f"{itp.wheel_stem()}-{itp.version()}-{interp.tag}-{interp.tag}-manylinux*.whl"
    found = sorted(dist.glob(pattern))
    if len(found) != 1:
        raise itp.ToolError(f"{len(found)} wheels match {pattern} in {dist}; expected one: "
                            "run `make wheels` first")
    return found[0]


def _has_atheris_wheels() -> bool:
    """atheris (libFuzzer for Python) publishes wheels for x86-64 glibc Linux only."""
    return (sys.platform == "linux" and platform.machine() == "x86_64"
            and platform.libc_ver()[0] == "glibc")


def platform_exclusions() -> dict[str, str]:
    """What cannot run on the platform running this script, with why (nothing on x86-64 glibc
    Linux, where every wheel built here is tested)."""
    left_out = {}
    if not _has_atheris_wheels():
        left_out["tests/unit/test_fuzz_atheris.py"] = \
            "atheris publishes wheels for x86-64 glibc Linux only"
    if sys.platform != "linux":
        left_out["tests/unit/test_localkafka_setup.py"] = \
            "kengine.localkafka, the test-cluster launcher, is Linux-only (/proc, process groups)"
        left_out["tests/unit/test_release_tools.py"] = \
            "the release tools build and inspect Linux (ELF) wheels"
    return left_out


def test_requirements(*, with_broker: bool = True) -> list[str]:
    project = itp.project()
    extras = project["optional-dependencies"]  # type: ignore[index]
    wanted = (list(project["dependencies"]) + list(extras["test"])  # type: ignore[call-overload]
              + ["setuptools>=77"])   # tests/unit/test_partitioners_registry.py builds with it
    if not _has_atheris_wheels():
        wanted = [r for r in wanted if not r.startswith("atheris")]
    if not with_broker:
        # only the integration tests read back with it, and it has no wheels for musllinux or
        # manylinux2014 AArch64, where cibuildwheel would have to build librdkafka first
        wanted = [r for r in wanted if not r.startswith("confluent-kafka")]
    # only the benchmark tests, left out as SOURCE_CHECKS, draw charts
    return [r for r in wanted if not r.startswith("matplotlib")]


def copy_test_tree(destination: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")
    for name in TEST_INPUTS:
        source = itp.REPO / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore)
        else:
            shutil.copy2(source, destination / name)


INSPECT = """
import importlib.metadata, json, kengine, kengine_ext._core
print(json.dumps({"kengine": kengine.__file__, "core": kengine_ext._core.__file__,
                  "version": kengine.__version__,
                  "metadata": importlib.metadata.version("kengine-kafka")}))
"""

IMPORT_ALL = """
import importlib, pkgutil, kengine, kengine_ext
names = [m.name for m in pkgutil.walk_packages(kengine.__path__, "kengine.")
         if not m.name.endswith("__main__")]
for name in ["kengine_ext", "kengine_ext.schemas", *names]:
    importlib.import_module(name)
print(len(names) + 2)
"""


def check_imports(python: str, work: Path, env: dict[str, str], label: str,
                  environment: Path | None = None) -> None:
    """The installed package is the one imported (from site-packages, of `environment` when
    given, never the source tree), at the version of the source, and every module imports
    under -W error."""
    seen = json.loads(run([python, "-c", INSPECT], cwd=work, env=env,
                          what="importing the installed package").stdout)
    for key in ("kengine", "core"):
        path = Path(seen[key]).resolve()
        if (itp.REPO in path.parents or "site-packages" not in path.parts
                or (environment is not None and environment.resolve() not in path.parents)):
            raise itp.ToolError(f"{key} was imported from {path}, not from the site-packages "
                                f"of {environment or 'this Python'}")
    if seen["version"] != itp.version() or seen["metadata"] != itp.version():
        raise itp.ToolError(f"installed version {seen} is not {itp.version()}")
    count = run([python, "-W", "error", "-c", IMPORT_ALL], cwd=work, env=env,
                what="importing every module under -W error").stdout.strip()
    log(label, f"installed; {count} modules import under -W error")


def run_tests(python: str, work: Path, env: dict[str, str], result: Result, *,
              with_broker: bool, fuzz: bool = True) -> None:
    """pytest over a copy of the tests in work/tree, counts into result."""
    tree = work / "tree"
    copy_test_tree(tree)
    junit = work / "junit.xml"
    paths = TEST_PATHS if with_broker else [p for p in TEST_PATHS if "integration" not in p]
    cmd = [python, "-W", "error::DeprecationWarning", "-W",
           "error::PendingDeprecationWarning", "-m", "pytest", "-q", "-p", "no:cacheprovider",
           f"--junitxml={junit}", *paths]
    for test in {**SOURCE_CHECKS, **platform_exclusions()}:
        cmd += ["--ignore" if test.endswith(".py") else "--deselect", test]
    if not fuzz:
        log(result.version,
            "fuzz and property tests left out (--fuzz-on names another interpreter)")
        for test in FUZZ_TESTS:
            cmd += ["--ignore", test]
    output = work / "pytest.log"
    log(result.version, "pytest " + " ".join(paths) + f" (in the copy of the tests; output in "
                        f"{output})")
    with open(output, "w") as out:
        pytest_run = subprocess.run(cmd, cwd=tree, env=env, text=True, check=False,
                                    stdout=out, stderr=subprocess.STDOUT)
    lines = output.read_text(errors="replace").splitlines()
    # the whole report when something failed (broker logs included), else its last line
    shown = lines if pytest_run.returncode != 0 else lines[-1:]
    print("\n".join(f"[{result.version}] {line}" for line in shown), flush=True)
    if junit.exists():
        suite = ET.parse(junit).getroot()
        found = suite if suite.tag == "testsuite" else suite.find("testsuite")
        if found is not None:
            total = int(found.get("tests", 0))
            result.failed = int(found.get("failures", 0))
            result.errors = int(found.get("errors", 0))
            skipped = int(found.get("skipped", 0))
            # junit writes an expected failure (a strict xfail: a known bug kept visible) as
            # skipped; a skip is a failure here, an xfail is not
            result.xfailed = sum(1 for s in found.iter("skipped")
                                 if s.get("type") == "pytest.xfail")
            result.skipped = skipped - result.xfailed
            result.passed = total - result.failed - result.errors - skipped
    if pytest_run.returncode == 5:
        result.problem = "pytest collected no test"
    elif pytest_run.returncode != 0 and result.ok:
        result.problem = f"pytest exited {pytest_run.returncode}"


def test_installed(keep: bool) -> Result:
    """--installed: the kengine-kafka installed in this Python, without a broker."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    result = Result(version, platform.python_version(), wheel="(installed)")
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f"kengine-installed-{version}-"))
    env = itp.clean_environment()
    try:
        run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
             "--prefer-binary", *test_requirements(with_broker=False)],
            cwd=work, env=env, what="installing the test dependencies")
        check_imports(sys.executable, work, env, version)
        run_tests(sys.executable, work, env, result, with_broker=False)
    except itp.ToolError as e:
        result.problem = str(e)
    finally:
        result.seconds = time.monotonic() - started
        if result.ok and not keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(version, f"kept {work} for a look")
    return result


def test_one(interp: itp.Interpreter, dist: Path, keep: bool, fuzz: bool = True) -> Result:
    result = Result(interp.version, interp.full_version)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f"kengine-wheel-{interp.version}-"))
    if itp.REPO in work.parents:
        raise itp.ToolError(f"{work} is inside the source tree; set TMPDIR elsewhere")
    env = itp.clean_environment()

    def phase(name: str, since: float) -> float:
        now = time.monotonic()
        result.phases.append((name, now - since))
        return now

    try:
        wheel = find_wheel(dist, interp)
        result.wheel = wheel.name
        log(interp.version, f"{wheel.name} into a fresh venv of CPython {interp.full_version} "
                            f"in {work}")
        t = time.monotonic()
        venv = work / "venv"
        run([str(interp.path), "-m", "venv", str(venv)], cwd=work, env=env, what="venv")
        python = str(venv / "bin" / "python")
        # --prefer-binary: a test dependency whose newest release has no wheel for this Python
        # (atheris 3 on 3.10) comes as the newest one that has, instead of a source build
        run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
             "--prefer-binary", *test_requirements()],
            cwd=work, env=env, what="installing the test dependencies")
        t = phase("venv and test dependencies", t)
        # the user's command, word for word
        run([python, "-m", "pip", "install", "--disable-pip-version-check",
             "--only-binary", ":all:", "--no-index", "--find-links", str(dist),
             "kengine-kafka"], cwd=work, env=env, what="installing the wheel")
        check_imports(python, work, env, interp.version, venv)
        t = phase("wheel install and imports", t)
        run_tests(python, work, env, result, with_broker=True, fuzz=fuzz)
        phase("tests", t)
    except itp.ToolError as e:
        result.problem = str(e)
    finally:
        result.seconds = time.monotonic() - started
        if result.ok and not keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(interp.version, f"kept {work} for a look")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", nargs="+", metavar="X.Y",
                        help="versions to test (default: every supported one)")
    parser.add_argument("--dist", type=Path, default=itp.REPO / "dist",
                        help="where the wheels are (default: dist/)")
    parser.add_argument("--keep", action="store_true",
                        help="keep each venv and test copy (kept anyway when it failed)")
    # Two at once: pytest runs on one core, so on a 2-core machine two interpreters keep both
    # busy, and one's dependency download or broker start-up overlaps the other's tests. Each
    # starts a broker of its own (-Xmx768m); their ports are chosen free, so they never meet.
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="interpreters tested at once (default: 2; each runs its own broker)")
    parser.add_argument("--fuzz-on", metavar="X.Y",
                        help="run the fuzz and property-based tests on this interpreter's wheel "
                             "only (default: on every wheel)")
    parser.add_argument("--installed", action="store_true",
                        help="test the kengine-kafka installed in this Python (no broker)")
    args = parser.parse_args(argv)
    print("test_wheels: left out, as checks of the source tree rather than of the package:",
          flush=True)
    for test, why in SOURCE_CHECKS.items():
        print(f"  {test}: {why}", flush=True)
    for test, why in platform_exclusions().items():
        print(f"  {test}: cannot run here: {why}", flush=True)
    started = time.monotonic()
    if args.installed:
        results = [test_installed(args.keep)]
    else:
        try:
            chosen = itp.interpreters(args.python)
        except itp.ToolError as e:
            print(f"test_wheels: error: {e}", file=sys.stderr)
            return 1
        with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
            if args.fuzz_on and args.fuzz_on not in [i.version for i in chosen]:
                print(f"test_wheels: error: --fuzz-on {args.fuzz_on}: not among the "
                      f"interpreters tested ({', '.join(i.version for i in chosen)})",
                      file=sys.stderr)
                return 1
            results = list(pool.map(
                lambda i: test_one(i, args.dist.resolve(), args.keep,
                                   fuzz=not args.fuzz_on or i.version == args.fuzz_on),
                chosen))

    print("\ntest_wheels: summary", flush=True)
    print(f"  {'python':<8} {'passed':>6} {'failed':>6} {'errors':>6} {'skipped':>7} "
          f"{'time':>6}  wheel", flush=True)
    for r in results:
        print(f"  {r.full_version or r.version:<8} {r.passed:>6} {r.failed:>6} {r.errors:>6} "
              f"{r.skipped:>7} {r.seconds:>5.0f}s  {r.wheel}", flush=True)
        print("           " + ", ".join(f"{name} {s:.0f} s" for name, s in r.phases), flush=True)
    print(f"test_wheels: {len(results)} interpreters in {time.monotonic() - started:.0f} s",
          flush=True)
    failed = [r for r in results if not r.ok]
    for r in failed:
        why = r.problem or (f"{r.failed} failed, {r.errors} errors, {r.skipped} skipped"
                            if (r.failed or r.errors or r.skipped) else "no test passed")
        print(f"test_wheels: Python {r.version} FAILED: {why}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
