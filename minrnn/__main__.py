"""python -m minrnn: see minrnn/cli.py."""

import os
import signal
import sys

interrupts = []


def on_interrupt(signum, frame):
    """Python's own handling of Ctrl-C, remembered: numpy turns a KeyboardInterrupt that arrives
    while its C extensions load into an ImportError that no longer says so."""
    interrupts.append(signum)
    raise KeyboardInterrupt


signal.signal(signal.SIGINT, on_interrupt)
try:
    from minrnn.cli import main   # numpy and the C core take a tenth of a second to load
    status = main()
except (KeyboardInterrupt, ImportError) as e:   # Ctrl-C at any moment, while loading too: no traceback
    if not (isinstance(e, KeyboardInterrupt) or interrupts):
        raise
    os.write(2, b"\n")
    status = 130
engine = sys.modules.get("minrnn.torch_engine")   # loaded only for --engine torch
if engine is not None:
    engine.exit_process(status)   # a process of a torchrun job ends here
sys.exit(status)
