"""`python -m engine` runs the secretshift command line."""

import sys

from engine.cli import main

sys.exit(main())
