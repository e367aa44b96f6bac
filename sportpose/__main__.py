"""`python -m sportpose` runs the command line."""

import sys

from sportpose.platform.cli import main

sys.exit(main())
