"""The import graph has no cycle: kengine (Python layer) -> kengine_ext (compiled core), never
back, and no module of kengine reaches itself through others. Every import counts, wherever it
is written (module level, inside a function, under TYPE_CHECKING): a deferred or type-only
import hides a cycle, it does not remove it."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _graph(package: str) -> dict[str, set[str]]:
    """module -> the modules of `package` it imports."""
    modules = {_module_name(p): p for p in (ROOT / package).rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = (".".join(here[:len(here) - node.level + 1] +
                                 ([node.module] if node.module else []))
                        if node.level else node.module or "")
                for alias in node.names:   # a submodule, or a name of the module itself
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_of_kengine_imports_itself_through_others():
    graph = _graph("kengine")
    assert "kengine.config" in graph and graph["kengine.producer"]   # the graph is real
    assert _cycles(graph) == []


def test_the_settings_table_imports_none_of_the_modules_declaring_settings():
    assert _graph("kengine")["kengine.config"] <= {"kengine.errors", "kengine.java_settings"}


def test_the_compiled_core_imports_nothing_of_the_python_layer():
    sources = [*(ROOT / "kengine_ext").glob("*.pyx"), *(ROOT / "kengine_ext").glob("*.py")]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import)\s+kengine(\.|\s)", text, re.M), path.name
    probe = ("import sys, kengine_ext\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kengine'))\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"import kengine_ext loaded {result.stdout.strip()}"
