"""`python -m fer_core ...`: see fer_core/cli.py."""

import sys

from fer_core.cli import main

sys.exit(main())
