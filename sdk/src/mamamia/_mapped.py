"""Read-only memory maps of whole files, kept in one bounded LRU per process.

A local catalog's shards and a cache's whole shards and pieces are read through these maps:
opening a file and copying out each inner chunk a box touches cost more than checking and
decoding it, and a kept map makes a ranged read a slice (the checksum and the decoder read the
page cache in place).
"""

from __future__ import annotations

import mmap
import os
import threading

__all__ = ["MappedFiles", "mapped_files"]


class MappedFiles:
    """A bounded LRU of read-only memory maps by path, shared by every local store.

    Opening a shard and copying out each inner chunk a box touches cost more than checking and
    decoding it; a kept map makes a ranged read a slice (the checksum and the decoder read the
    page cache in place). Our writers never change a file in place (a generation is immutable;
    a cache replaces a file by rename; eviction unlinks), but another tool might: every use
    compares the file's identity (inode, size, modification time) with the mapped one and maps
    it afresh when they differ, so a file rewritten between reads is read as it now is, never
    past its new end. Dropping a map from the LRU never invalidates a slice a reader still
    holds: the map lives until its last slice is released.
    """

    def __init__(self, limit: int = 64) -> None:
        self._limit = limit
        # path -> (identity, view), least recently used first
        self._maps: dict[str, tuple[tuple[int, ...], memoryview]] = {}
        self._lock = threading.Lock()

    def reset_after_fork(self) -> None:
        # The child keeps the maps but not a lock another thread of the parent held.
        self._lock = threading.Lock()

    def view(self, path: str) -> memoryview:
        """The whole file as a read-only view (``OSError`` as ``os.open`` raises it)."""
        info = os.stat(path)
        identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        with self._lock:
            found = self._maps.pop(path, None)
            if found is not None and found[0] == identity:
                self._maps[path] = found  # most recently used last
                return found[1]
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            info = os.fstat(fd)
            identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
            if info.st_size == 0:
                return memoryview(b"")  # mmap refuses empty files; nothing to keep
            view = memoryview(mmap.mmap(fd, info.st_size, access=mmap.ACCESS_READ))
        finally:
            os.close(fd)
        with self._lock:
            self._maps[path] = (identity, view)
            while len(self._maps) > self._limit:
                del self._maps[next(iter(self._maps))]
        return view

    def forget(self, path: str) -> None:
        """Drop ``path``'s map (a file replaced by a fresh copy is mapped again)."""
        with self._lock:
            self._maps.pop(path, None)

    def touch(self, path: str) -> None:
        """Mark a cached file recently used (its modification time orders the cache's LRU
        eviction) without taking that for a change of the file: its kept map stays."""
        try:
            os.utime(path)
            info = os.stat(path)
        except OSError:
            return
        with self._lock:
            found = self._maps.get(path)
            if found is not None and found[0][:3] == (info.st_dev, info.st_ino, info.st_size):
                identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
                self._maps[path] = (identity, found[1])


mapped_files = MappedFiles()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=mapped_files.reset_after_fork)
