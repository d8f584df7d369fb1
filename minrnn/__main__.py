"""python -m minrnn: see minrnn/cli.py."""

import os
import signal
import sys


def leave_quietly(signum, frame):
    """Ctrl-C while the modules load: exit as the command line does, without a traceback."""
    os.write(2, b"\n")
    os._exit(130)


# Loading numpy and the C core takes a tenth of a second; Ctrl-C then must not print a traceback.
# (Only where Ctrl-C would raise KeyboardInterrupt: an ignored SIGINT, as in background jobs, stays
# ignored.)
interrupt_was_default = signal.getsignal(signal.SIGINT) is signal.default_int_handler
if interrupt_was_default:
    signal.signal(signal.SIGINT, leave_quietly)

from minrnn.cli import main  # noqa: E402  (after the handler, on purpose)

if interrupt_was_default:
    signal.signal(signal.SIGINT, signal.default_int_handler)
sys.exit(main())
