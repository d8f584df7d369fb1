"""What the machine has, and whether a job fits: checked before allocating, so that a job too large
for memory is a one-line error at the start rather than a crash on the way."""

import os

from minrnn.errors import UserError


def available_memory():
    """Bytes a new allocation can have without swapping (Linux's MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def size_text(n):
    """Bytes as a person reads them: 512 MiB, 3.2 GiB."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def require_memory(need, what, advice):
    """UserError unless `need` bytes are available: '<what> needs about X of memory but Y is
    available; <advice>'."""
    have = available_memory()
    if have is not None and need > have:
        raise UserError(f"{what} needs about {size_text(need)} of memory but {size_text(have)} is "
                        f"available; {advice}")
