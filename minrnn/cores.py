"""The threads the default (--threads 0, threads=0) uses: the cores that other processes leave free.

The threads of one call meet at a barrier after every step of a recurrence. Beside other busy
processes the scheduler sets one of them aside now and then, and the others wait at the next barrier
for it: training a 2-layer LSTM of 128 units (batches of 16 x 32) beside one busy process per core,
2 threads took 0.8 to 5 times as long as 1 from run to run. The library gives the same bits for any
thread count, so the default can follow the machine: every MEASURE_SECONDS, the busy time of the
cores this process may run on (/proc/stat), less this process's own CPU time (which counts its
threads' spinning), says how many cores the others kept busy, and the default uses the rest, at
least one (all of them until the first measure). Without /proc (not Linux), or with OMP_NUM_THREADS
set, the library's own default: all cores. An explicit thread count is used as given.
"""

import os
import resource
import time

MEASURE_SECONDS = 0.25   # /proc/stat counts in ticks of 10 ms: 50 a measure on 2 cores, each +-1


class FreeCores:
    """The cores of this process's affinity set that others left free over the last measure."""

    def __init__(self):
        self.cpus = {f"cpu{i}" for i in os.sched_getaffinity(0)}
        self.tick = os.sysconf("SC_CLK_TCK")
        self.last = self.sample()
        self.free = len(self.cpus)

    def sample(self):
        """(wall seconds, seconds the cores were busy, seconds this process ran on them)."""
        busy = 0
        with open("/proc/stat") as f:
            for line in f:
                name, *ticks = line.split()
                if name in self.cpus:   # user nice system idle iowait irq softirq steal ...
                    values = list(map(int, ticks))
                    busy += sum(values[:8]) - values[3] - values[4]   # guest time is in user's
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return time.monotonic(), busy / self.tick, usage.ru_utime + usage.ru_stime

    def now(self):
        """The free cores, measured again once MEASURE_SECONDS have passed since the last measure."""
        if time.monotonic() - self.last[0] >= MEASURE_SECONDS:
            try:
                current = self.sample()
            except (OSError, ValueError):   # /proc/stat unreadable now: keep the last measure's answer
                return self.free
            wall, busy, own = (b - a for a, b in zip(self.last, current))
            others = max(0.0, busy - own) / wall
            self.free, self.last = max(1, min(len(self.cpus), round(len(self.cpus) - others))), current
        return self.free


_free = None   # this process's FreeCores, made on first use; False: none (no /proc, or OMP_NUM_THREADS)


def threads(requested):
    """The thread count to give the library for a call asked to run on `requested` (0: the default)."""
    global _free
    if requested:
        return requested
    if _free is None:
        try:   # libgomp, too, reads OMP_NUM_THREADS once, when it loads
            _free = False if "OMP_NUM_THREADS" in os.environ else FreeCores()
        except (OSError, ValueError, IndexError, AttributeError):   # no /proc, or not Linux's
            _free = False
    return _free.now() if _free else 0
