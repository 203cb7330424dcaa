"""The release tools' own logic (tools/interpreters.py, tools/build_wheels.py): what they read
from the project, and the checks that refuse a wheel, on small shared objects built here."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import kengine
from tests.support.tools import REPO, load_tool

itp = load_tool("interpreters")
build_wheels = load_tool("build_wheels")


def test_the_version_and_pythons_come_from_the_one_place_each():
    assert itp.version() == kengine.__version__
    text = (REPO / "pyproject.toml").read_text()
    assert itp.supported_versions() == re.findall(
        r'"Programming Language :: Python :: (3\.\d+)"', text)
    assert itp.distribution_name() == "kengine-kafka"
    assert itp.wheel_stem() == "kengine_kafka"


def _shared_object(tmp_path: Path, source: str, *flags: str) -> bytes:
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "no C compiler (cc): the tests of the wheel checks build small shared objects"
    c = tmp_path / "t.c"
    c.write_text(source)
    so = tmp_path / "t.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", *flags, "-o", str(so), str(c)], check=True)
    return so.read_bytes()


def test_a_clean_extension_passes(tmp_path):
    blob = _shared_object(tmp_path, "#include <string.h>\n"
                          "void *PyLong_FromLong(long);\n"
                          "void *f(char *d, const char *s, unsigned long n)"
                          "{ memcpy(d, s, n); return PyLong_FromLong((long)n); }\n",
                          "-g0", "-s")
    assert build_wheels._elf_problems("t.so", blob) == []


def test_debug_information_an_rpath_and_unversioned_imports_are_refused(tmp_path):
    blob = _shared_object(tmp_path, "int kengine_not_in_old_glibc(void);\n"
                          "int f(void) { return kengine_not_in_old_glibc(); }\n",
                          "-g", "-Wl,-rpath,/opt/build-machine/lib")
    problems = "\n".join(build_wheels._elf_problems("t.so", blob))
    assert "not stripped" in problems and ".debug_info" in problems and ".symtab" in problems
    assert "/opt/build-machine/lib" in problems
    assert "kengine_not_in_old_glibc without a glibc version" in problems
