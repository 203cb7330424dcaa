"""``python -m kengine``: the ``kengine`` command."""
import sys

from .cli.main import main

sys.exit(main())
