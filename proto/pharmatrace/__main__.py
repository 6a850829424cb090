"""`python -m pharmatrace` runs the command line."""

import sys

from pharmatrace_cli.main import main

sys.exit(main())
