"""Builds the kengine_ext extension; all metadata lives in pyproject.toml.

KENGINE_DEBUG=1 builds without optimisation, with C asserts, debug symbols and
Cython's annotated HTML (kengine_ext/_core.html) for checking the hot paths.
Release wheels are built by tools/build_wheels.py (`make wheels`), which also strips them.
"""
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("KENGINE_DEBUG") == "1"

if sys.platform == "win32":
    # MSVC: never built on kengine's own machines, only by cibuildwheel (see README, Platforms)
    flags = ["/Od", "/Zi"] if DEBUG else ["/O2", "/DNDEBUG"]
else:
    flags = ((["-O0", "-g3", "-UNDEBUG"] if DEBUG else ["-O3", "-DNDEBUG"])
             + ["-fno-strict-aliasing", "-Wno-unused-function"])

core = Extension(
    "kengine_ext._core",
    sources=["kengine_ext/_core.pyx", "kengine_ext/crc32c.c"],
    include_dirs=["kengine_ext"],
    depends=[os.path.join("kengine_ext", n) for n in os.listdir("kengine_ext")
             if n.endswith((".pyx", ".pxd", ".pxi", ".h"))],
    extra_compile_args=flags,
)

setup(
    ext_modules=cythonize(
        [core],
        annotate=DEBUG,
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": DEBUG,
            "embedsignature": True,
        },
    ),
)
