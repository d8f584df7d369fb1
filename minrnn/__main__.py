"""python -m minrnn: see minrnn/cli.py."""

import sys

from minrnn.cli import main

sys.exit(main())
