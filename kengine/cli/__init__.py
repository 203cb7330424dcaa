"""The ``kengine`` command (also ``python -m kengine``): one module per command, dispatched by
:mod:`kengine.cli.main`."""
from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(Exception):
    """Arguments that cannot work together; reported with exit status 2, like argparse's."""
