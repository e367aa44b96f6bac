"""`python -m sportpose` runs the command line."""

import sys

from sportpose.cli.main import main

sys.exit(main())
