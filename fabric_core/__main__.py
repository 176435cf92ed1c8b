"""``python -m fabric_core``: the ``fabric`` command."""

from __future__ import annotations

import sys

from fabric_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
