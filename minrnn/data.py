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


def read_array(path):
    """The array of a .npy file of real numbers (numpy.save's), as float64; DataError for anything
    else: a missing or empty file, an .npz archive, not .npy, Python objects, complex numbers, or a
    header that claims more than the file holds (checked before anything is allocated)."""
    import numpy as np   # the data files' reader: only the features and inputs of a run need numpy here
    from numpy.lib import format as npy
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror})") from None
    with f:
        if f.read(4) == b"PK\x03\x04":
            raise DataError(f"{path}: an .npz archive of arrays; give one array in a .npy file (numpy.save)")
        f.seek(0)
        try:
            version = npy.read_magic(f)
            read_header = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}[version]
            shape, _, dtype = read_header(f)
        except (ValueError, KeyError, EOFError, OSError) as e:
            raise DataError(f"{path}: not a .npy array file ({e or 'empty'}); save arrays with numpy.save") from None
        if dtype.hasobject or dtype.kind not in "iuf":
            raise DataError(f"{path}: holds {dtype}; give real numbers (integers or floats)")
        claimed, holds = int(np.prod(shape, dtype=object)) * dtype.itemsize, os.fstat(f.fileno()).st_size - f.tell()
        if claimed > holds:
            raise DataError(f"{path}: its header claims an array of shape {shape} ({size_text(claimed)}) but the file "
                            f"holds {size_text(holds)}: it is damaged or cut short")
        f.seek(0)
        try:
            return np.load(f, allow_pickle=False).astype(np.float64)
        except (ValueError, OSError) as e:
            raise DataError(f"{path}: not a readable .npy array file ({e})") from None


def fingerprint(data):
    return hashlib.sha256(data).hexdigest()


def fingerprint_files(paths):
    """fingerprint of the files' bytes end to end, read a chunk at a time (never held whole)."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
