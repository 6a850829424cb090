"""`python -m pharmatrace_cli` runs the command line."""

import sys

from pharmatrace_cli.main import main

sys.exit(main())
