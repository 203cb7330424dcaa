# Type stubs for kengine_ext._core. One section per part, in the order of _core.pyx.
from __future__ import annotations

# --- hashing.pyx ---

# --- buffer.pyx ---

# --- protocol.pyx ---

# --- compression.pyx ---

# --- records.pyx ---
