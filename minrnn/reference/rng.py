"""The one random number generator minrnn uses, in Python and in C.

xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift generators", 2014):
shifts 12, 25, 27 and the multiplier 0x2545F4914F6CDD1D. The state is seeded with splitmix64(seed);
a state of 0 (xorshift's one fixed point) is replaced by a fixed non-zero constant.
A uniform float is the top 24 bits of an output, (next >> 40) * 2**-24: exactly representable
in float32, so C draws the same numbers.
"""

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment; also the stand-in for a zero state


def splitmix64(x):
    z = (x + GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


class Rng:
    """xorshift64*; `state` is a 64-bit int that can be saved and restored."""

    def __init__(self, seed=0):
        self.state = splitmix64(seed & MASK64) or GOLDEN

    def next_u64(self):
        x = self.state
        x ^= x >> 12
        x ^= (x << 25) & MASK64
        x ^= x >> 27
        self.state = x
        return (x * 0x2545F4914F6CDD1D) & MASK64

    def uniform(self):
        """A float in [0, 1) with 24 random bits."""
        return (self.next_u64() >> 40) * 2.0**-24
