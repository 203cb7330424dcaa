"""``python -m kengine.localkafka``: see :mod:`kengine.localkafka.cli`."""
import sys

from .cli import main

sys.exit(main())
