"""Builds the kengine_ext extension; all metadata lives in pyproject.toml.

KENGINE_DEBUG=1 builds without optimisation, with C asserts, debug symbols and
Cython's annotated HTML (kengine_ext/_core.html) for checking the hot paths.
"""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("KENGINE_DEBUG") == "1"

core = Extension(
    "kengine_ext._core",
    sources=["kengine_ext/_core.pyx", "kengine_ext/crc32c.c"],
    include_dirs=["kengine_ext"],
    depends=[os.path.join("kengine_ext", n) for n in os.listdir("kengine_ext")
             if n.endswith((".pyx", ".pxd", ".pxi", ".h"))],
    extra_compile_args=(["-O0", "-g3", "-UNDEBUG"] if DEBUG else ["-O3", "-DNDEBUG"])
   + ["-fno-strict-aliasing", "-Wno-unused-function"],
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
