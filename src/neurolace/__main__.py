"""``python -m neurolace`` runs the command line."""

import sys

from neurolace.cli.main import main

sys.exit(main())
