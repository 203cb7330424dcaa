import sys

from benchmarks.extras import INSTALL_HINT, missing_extras

_missing = missing_extras()
if _missing:
    sys.exit(f"python -m benchmarks: the benchmarks need {', '.join(_missing)}, which this "
             f"environment lacks: {INSTALL_HINT}")

from benchmarks.cli import main  # noqa: E402 (after the check: it imports the extras)

sys.exit(main())
