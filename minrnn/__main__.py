"""python -m minrnn: see minrnn/cli.py."""

import os
import sys

try:
    from minrnn.cli import main   # numpy and the C core take a tenth of a second to load
    status = main()
except KeyboardInterrupt:         # Ctrl-C at any moment, while loading too: no traceback
    os.write(2, b"\n")
    status = 130
sys.exit(status)
