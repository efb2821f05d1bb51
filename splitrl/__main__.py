"""``python -m splitrl``: the same command line as ``splitrl`` (for clusters without the entry point)."""

import sys

from splitrl.platform.cli import main

sys.exit(main())
