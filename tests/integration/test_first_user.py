"""README.md as a first user meets it: ``make demo``, then the first example, then the command
line section, each taken out of the README and run as written (nothing substituted; the
examples find the local Kafka through the ``KAFKA_BOOTSTRAP_SERVERS`` line that ``make demo``
prints), against the real Kafka they start. Every other Python example is compiled and its
imports run, so a renamed module or class shows here; the Avro and the security examples run
against their brokers in test_schema_registry.py and test_security.py."""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.readback import read_all

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXPORT = re.compile(r"^export KAFKA_BOOTSTRAP_SERVERS=(127\.0\.0\.1:\d+)$", re.MULTILINE)
TOTAL = re.compile(r"^(\d+) records sent, .* ms 99\.9th\.$", re.MULTILINE)
# the demo's size: its perf runs are the README's throughput demo; here they only need to run
DEMO_RECORDS = "20000"


def section(title: str) -> str:
    """The README's text under the heading ``title`` (any level), up to the next heading."""
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ |\Z)", README, re.M | re.S)
    assert match is not None, f"README.md has no section {title!r}"
    return match.group(1)


def python_blocks(text: str = README) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)


def commands(text: str) -> list[str]:
    """The shell commands of the indented blocks in ``text``, continuation lines joined."""
    joined: list[str] = []
    for line in text.splitlines():
        if line.startswith("        ") and joined:            # a continuation line
            joined[-1] = joined[-1].rstrip("\\ ") + " " + line.strip()
        elif line.startswith("    "):
            joined.append(line[4:])
    return joined


def shell_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # the `kengine` command of this checkout's virtualenv, as `pip install` puts it on PATH
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    for name in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS"):
        # run by `make test`: a make started here would print "make[1]: Entering directory"
        # lines around what a user sees, and try the outer make's job server
        env.pop(name, None)
    env.update(extra)
    return env


def bash(script: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


@dataclass
class Demo:
    out: str            # what `make demo` printed
    bootstrap: str      # the address of its export line
    env: dict[str, str]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """``make demo`` as the Quick start says, with a work directory of its own (the Makefile's
    KAFKA_WORKDIR) and fewer records (DEMO_RECORDS)."""
    env = shell_env(KAFKA_WORKDIR=str(tmp_path_factory.mktemp("demo-kafka")),
                    DEMO_RECORDS=DEMO_RECORDS)
    quick_start = section("How do I run the example above against the local Kafka?")
    assert commands(quick_start)[0].split("#")[0].strip() == "make demo"
    try:
        run = bash("make demo", env, timeout=900)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        found = EXPORT.findall(run.stdout)
        assert len(found) == 1, run.stdout[-2000:]
        yield Demo(run.stdout, found[0], env)
    finally:
        stop = bash("make kafka-stop", env, timeout=300)
        assert stop.returncode == 0, stop.stderr


def test_make_demo_runs_and_ends_with_the_line_the_readme_shows(demo: Demo) -> None:
    assert [int(n) for n in TOTAL.findall(demo.out)] == [int(DEMO_RECORDS)] * 2, demo.out[-2000:]
    # the README's line, with the port it stands for
    shown = commands(section("How do I run the example above against the local Kafka?"))[1]
    pattern = re.escape(shown.split("#")[0].strip()).replace("PORT", r"\d+")
    assert re.fullmatch(pattern, demo.out.strip().splitlines()[-1]), (shown, demo.out[-500:])


def test_make_kafka_env_prints_the_same_line(demo: Demo) -> None:
    run = bash("make -s kafka-env", demo.env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"export KAFKA_BOOTSTRAP_SERVERS={demo.bootstrap}\n"
    assert 'eval "$(make -s kafka-env)"' in README


def test_the_first_example_runs_as_written_against_make_demos_kafka(
        demo: Demo, tmp_path: Path) -> None:
    bootstrap = demo.bootstrap
    first = python_blocks()[0]
    assert README.index(first) < README.index("## Installing"), "the first example moved"
    example = tmp_path / "example.py"
    example.write_text(first)
    run = subprocess.run([sys.executable, str(example)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, check=False,
                         env=shell_env(KAFKA_BOOTSTRAP_SERVERS=bootstrap))
    assert (run.returncode, run.stderr) == (0, ""), run.stderr
    # what it prints is what its comment says it prints (the offset: the first record)
    promised = re.search(r"# (RecordMetadata\(topic='events', partition=\d+, offset=\d+), \.\.\.\)",
                         first)
    assert promised is not None, first
    assert run.stdout.startswith(promised.group(1) + ", timestamp="), run.stdout
    [record] = read_all(bootstrap, "events", at_least=1)
    assert (record.key, record.value) == (b"user-42", b'{"user": 42}')


def test_the_command_line_section_runs_as_written(tmp_path: Path) -> None:
    lines = commands(section("Command line"))
    assert lines[0].startswith("export KAFKA_BOOTSTRAP_SERVERS=$(kengine local-kafka start)")
    assert lines[-1] == "kengine local-kafka stop"
    env = shell_env(KENGINE_LOCAL_KAFKA_DIR=str(tmp_path / "local-kafka"))
    assert (Path(sys.executable).parent / "kengine").exists(), "the kengine command is missing"
    # one shell, as a user types them; each command's output marked to be found again
    script = "\n".join(f"echo '>>> {i}'; {line}" for i, line in enumerate(lines))
    try:
        run = bash(script, env, timeout=900)
    finally:
        bash("kengine local-kafka stop", env, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    outputs = {lines[int(i)]: text for i, text in
               re.findall(r"^>>> (\d+)\n(.*?)(?=^>>> |\Z)", run.stdout, re.M | re.S)}

    def output_of(start: str, *, having: str = "", without: str = "\0") -> str:
        [text] = [t for line, t in outputs.items()
                  if line.startswith(start) and having in line and without not in line]
        return text

    assert "Created topic events." in output_of("kengine topics create")
    perf = output_of("kengine perf", without="--json")
    assert [int(n) for n in TOTAL.findall(perf)] == [1_000_000], perf[-2000:]
    summary = json.loads(output_of("kengine perf", having="--json"))
    assert summary["records"] == 1_000_000 and summary["failed"] == 0
    assert "events" in output_of("kengine topics list").split()
    assert "stopped the cluster" in output_of("kengine local-kafka stop")
    assert "kengine produce" not in run.stderr                  # nothing to report


def test_every_other_python_example_compiles_and_its_imports_run() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 8, "README.md lost its examples"
    for code in blocks:
        tree = ast.parse(code, "README.md")
        imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        exec(compile(ast.Module(body=imports, type_ignores=[]), "README.md", "exec"), {})
