"""``python -m xfast`` runs the command line."""

import sys

from xfast.cli import main

sys.exit(main())
