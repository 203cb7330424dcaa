"""Every error kengine raises: ``kengine.errors`` is their public name.

They are defined in :mod:`kengine_ext.errors`, beside the compiled core that raises them, so
that the core imports nothing of this package; this module re-exports all of them. See there
for the two families (one class per Kafka error code, generated from Kafka's table, and the
client-side errors).
"""
from __future__ import annotations

from kengine_ext.errors import *  # noqa: F403  (every public name, generated ones included)
from kengine_ext.errors import __all__  # noqa: F401
