"""Partial blosc decodes: items ``[start, start + count)`` of a compressed buffer, not all of it.

numcodecs does not wrap c-blosc's ``blosc_getitem``, but its extension links c-blosc statically
and exports the symbol; it is bound through ctypes once per process and checked against a full
decompress before it is trusted. Any doubt means full decodes only (``decode_items`` answers
False), so correctness never depends on it.
"""

from __future__ import annotations

import struct
import threading
from typing import Any

import numcodecs.blosc
import numpy as np
import numpy.typing as npt

__all__ = ["BLOSC_HEADER", "decode_items"]

#: c-blosc's 16-byte header (its README_HEADER.rst): version, versionlz, flags, typesize, then
#: nbytes, blocksize and cbytes as little-endian uint32.
BLOSC_HEADER = struct.Struct("<BBBBIII")

_getitem: Any = None
_bound = False
_lock = threading.Lock()


def _bind_getitem() -> Any:
    """``blosc_getitem`` from numcodecs' extension, if it exports one that works, else None."""
    try:
        import ctypes

        function = ctypes.CDLL(numcodecs.blosc.__file__).blosc_getitem
        function.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
        function.restype = ctypes.c_int
        probe = (np.arange(3 * 4096, dtype=np.int16) % 251).reshape(3, 4096)
        packed = numcodecs.blosc.compress(probe, b"zstd", 3, numcodecs.blosc.SHUFFLE, 2048)
        part = np.empty((2, 4096), dtype=np.int16)
        got = function(packed, 4096, 2 * 4096, part.ctypes.data)
        if got != part.nbytes or not np.array_equal(part, probe[1:]):
            return None
        return function
    except (OSError, AttributeError, ValueError, TypeError, RuntimeError):
        return None


def decode_items(data: bytes | memoryview, start: int, count: int, out: npt.NDArray[Any]) -> bool:
    """Decode items ``[start, start + count)`` of a blosc buffer into ``out`` (C-contiguous,
    ``count`` items); False when partial decoding is unavailable or refused the buffer."""
    global _getitem, _bound
    if not _bound:
        with _lock:
            if not _bound:
                _getitem = _bind_getitem()
                _bound = True
    if _getitem is None:
        return False
    # A view (of a memory-mapped shard) is passed by address, read in place; ``data`` stays
    # referenced for the call. ctypes releases the GIL, so pool threads decode in parallel.
    source = data if isinstance(data, bytes) else np.frombuffer(data, np.uint8).ctypes.data
    return bool(_getitem(source, start, count, out.ctypes.data) == out.nbytes)
