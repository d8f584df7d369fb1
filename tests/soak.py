"""The number of examples a property test draws: its own count in make test, 20 times as many in
make test-soak (MINRNN_SOAK=20), a fifth of it (at least one) in make test-oldest (MINRNN_SKIM=5).
A test tuned to pass its own count is not thereby sound: the soak runs near-misses to ground, and
their cause is fixed, never the bound loosened. The oldest Python's run skims: it is there to show
that every path runs on that version, which a few examples of each property do, while the suite on
the newest Python draws them all (the sums compared are IEEE arithmetic in C and in Python's
floats, the same on every version)."""

import os

SCALE = int(os.environ.get("MINRNN_SOAK", "1"))
SKIM = int(os.environ.get("MINRNN_SKIM", "1"))


def examples(n):
    return max(1, n * SCALE // SKIM)
