"""kengine_ext: the compiled core of kengine (wire encoding, CRC32C, murmur2, compression).

This package has no pure-Python fallback: importing it fails if the extension was not built.
"""
from ._core import *  # noqa: F401,F403  (each part of _core lists its public names in __all__)
from ._core import __all__  # noqa: F401
