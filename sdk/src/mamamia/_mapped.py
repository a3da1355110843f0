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
import time

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

    #: A cached file is marked recently used at most this often (seconds) while its map is
    #: kept: the cache's eviction order needs no finer clock, and the mark (a ``utime`` and a
    #: ``stat``) cost more than reading a crop's chunk from the map.
    TOUCH_EVERY = 10.0

    def __init__(self, limit: int = 1024) -> None:
        # Maps cost address space, not memory (the kernel pages them in and out) and no file
        # descriptor: a warm crop reads some ten cache pieces, so the limit keeps a cache's
        # recently read pieces mapped, not only the last few crops'.
        self._limit = limit
        # path -> (identity, view, when it was last marked used), least recently used first
        self._maps: dict[str, tuple[tuple[int, ...], memoryview, float]] = {}
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
            view = memoryview(_map(fd, info.st_size))
        finally:
            os.close(fd)
        # A file changed within the last TOUCH_EVERY seconds (a piece just written) counts
        # as marked now; an older one is marked at its first touch.
        fresh = time.time() - info.st_mtime < self.TOUCH_EVERY
        marked = time.monotonic() if fresh else -self.TOUCH_EVERY
        with self._lock:
            self._maps[path] = (identity, view, marked)
            while len(self._maps) > self._limit:
                del self._maps[next(iter(self._maps))]
        return view

    def forget(self, path: str) -> None:
        """Drop ``path``'s map (a file replaced by a fresh copy is mapped again)."""
        with self._lock:
            self._maps.pop(path, None)

    def touch(self, path: str) -> None:
        """Mark a cached file recently used (its modification time orders the cache's LRU
        eviction) without taking that for a change of the file: its kept map stays. A file
        whose map is kept is marked at most every ``TOUCH_EVERY`` seconds."""
        now = time.monotonic()
        with self._lock:
            found = self._maps.get(path)
            if found is not None and now - found[2] < self.TOUCH_EVERY:
                return
        try:
            os.utime(path)
            info = os.stat(path)
        except OSError:
            return
        with self._lock:
            found = self._maps.get(path)
            if found is not None and found[0][:3] == (info.st_dev, info.st_ino, info.st_size):
                identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
                self._maps[path] = (identity, found[1], now)


#: Files up to this size (a cache's pieces, small shards) have all their pages mapped at once
#: (``MAP_POPULATE``, where the system has it): one call instead of a page fault per 4 KiB page
#: the first read touches. Larger files (a catalog's shards) fault in only what is read.
POPULATE_BYTES = 8 << 20


def _map(fd: int, size: int) -> mmap.mmap:
    populate = getattr(mmap, "MAP_POPULATE", 0)
    if populate and size <= POPULATE_BYTES:
        return mmap.mmap(fd, size, flags=mmap.MAP_SHARED | populate, prot=mmap.PROT_READ)
    return mmap.mmap(fd, size, access=mmap.ACCESS_READ)


mapped_files = MappedFiles()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=mapped_files.reset_after_fork)
