"""The version of kengine, written once: the package re-exports it as ``kengine.__version__``,
pyproject.toml reads it for the distribution (kengine-kafka), ``kengine --version`` prints it and
ApiVersions requests carry it. A module of its own that imports nothing, so any module of the
package can read it without importing the package (no import cycle)."""

__version__ = "0.1.0"
