"""Reading a data file: its bytes, whole, or a one-line error that says what is wrong with it; and
its fingerprint. What the bytes mean is the task's (minrnn/tasks/)."""

import hashlib
import os
import stat


from minrnn.errors import UserError
from minrnn.resources import available_memory, size_text

# Bytes of memory per byte of text while a text is read and encoded: the bytes, the decoded string
# (up to 4 a character), its UTF-32 copy, the symbols, the ids and the training streams (4 each).
MEMORY_PER_TEXT_BYTE = 20


class DataError(UserError):
    """Input that can't be trained on."""


def read_file(path):
    """The bytes of a text file; DataError for anything that is not a readable, non-empty file (or
    pipe) whose text fits in memory."""
    try:
        with open(path, "rb") as f:
            return read_bounded(f, path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; give a text file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror})") from None


def read_bounded(f, path):
    st = os.fstat(f.fileno())
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode)):
        raise DataError(f"{path}: is a device, not a text file; give a text file")
    have = available_memory()
    limit = None if have is None else have // MEMORY_PER_TEXT_BYTE
    size = st.st_size if stat.S_ISREG(st.st_mode) else None
    if limit is not None and size is not None and size > limit:
        raise DataError(f"{path}: {size_text(size)} of text needs about {size_text(size * MEMORY_PER_TEXT_BYTE)} "
                        f"of memory to train on, and {size_text(have)} is available; give a shorter text")
    data = f.read() if limit is None or size is not None else f.read(limit + 1)
    if limit is not None and len(data) > limit:   # a pipe that goes on and on
        raise DataError(f"{path}: more than {size_text(limit)} of text, more than fits in memory "
                        f"({size_text(have)} available); give a shorter text")
    if not data:
        raise DataError(f"{path}: the file is empty")
    return data


def fingerprint(data):
    return hashlib.sha256(data).hexdigest()
