"""Byte ranges of a stored object kept in a cache as pieces, and how ranged reads are asked for.

A remote shard is fetched by byte range (HTTP ``Range``, S3 ranged GETs), so a cache may hold
only pieces of it. They lie in a folder next to where the whole object would be, one file per
fetched range, named by the range::

    c/0/0/0/0            the whole shard, when it was fetched whole (prefetch, or a source
                         that ignores ranges); ranges are then read from it
    c/0/0/0/0.parts/     else the pieces fetched so far:
        end-16388          the object's last 16388 bytes (the shard index, a suffix range)
        81920-204800       204800 bytes at offset 81920 (one or several inner chunks: ranges
                           closer than ``COALESCE_GAP`` are fetched as one)

A range is read from any piece that contains it. Each piece is written atomically, so readers
in several processes see a piece whole or not at all.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, SuffixByteRequest

from mamamia._errors import InvalidRequest
from mamamia._mapped import mapped_files

__all__ = [
    "COALESCE_GAP",
    "PARTS_SUFFIX",
    "PieceIndex",
    "RangeAnswer",
    "RangeFetcher",
    "Span",
    "coalesce",
    "piece_name",
    "span_of",
]

#: Ranges of one read at most this many bytes apart are fetched as one range (the gap's bytes
#: are fetched and cached with them): fewer requests for a few KiB more.
COALESCE_GAP = 64 * 1024

#: The folder of an object's cached pieces is the object's path plus this.
PARTS_SUFFIX = ".parts"

#: ``(start, length)`` of a byte range; ``start < 0``: the last ``length`` bytes (a suffix);
#: ``length`` None: from ``start`` to the end.
Span = tuple[int, int | None]


@dataclass(frozen=True)
class RangeAnswer:
    """What a source sent for some ranges of one object: each range's bytes, in the order
    asked, or the whole object (a source or proxy that ignores ``Range``)."""

    parts: tuple[bytes, ...] | None = None
    whole: bytes | None = None


#: ``fetch_ranges(relative, [(start, length), ...])``: the ranges of one object (suffixes
#: allowed, no open ends), or None when the source has no such object.
RangeFetcher = Callable[[str, Sequence[tuple[int, int]]], "RangeAnswer | None"]


def span_of(byte_range: ByteRequest) -> tuple[int, int | None]:
    """zarr's byte request as a ``Span``."""
    if isinstance(byte_range, RangeByteRequest):
        if byte_range.end < byte_range.start or byte_range.start < 0:
            raise InvalidRequest(
                f"byte range {byte_range.start}-{byte_range.end} ends before it starts"
            )
        return byte_range.start, byte_range.end - byte_range.start
    if isinstance(byte_range, OffsetByteRequest):
        return max(0, byte_range.offset), None
    if isinstance(byte_range, SuffixByteRequest):
        return -byte_range.suffix, byte_range.suffix
    raise InvalidRequest(f"unknown byte request {byte_range!r}")


def coalesce(ranges: Iterable[tuple[int, int]], gap: int = COALESCE_GAP) -> list[tuple[int, int]]:
    """Absolute ranges merged where they overlap or lie at most ``gap`` bytes apart, sorted."""
    merged: list[list[int]] = []
    for start, length in sorted(ranges):
        if merged and start <= merged[-1][1] + gap:
            merged[-1][1] = max(merged[-1][1], start + length)
        else:
            merged.append([start, start + length])
    return [(start, end - start) for start, end in merged]


def piece_name(start: int, length: int) -> str:
    """The file name of a cached piece (``end-<n>`` for a suffix)."""
    return f"end-{length}" if start < 0 else f"{start}-{length}"


def _read_piece(
    path: str, offset: int, length: int, view: memoryview | None = None
) -> memoryview | None:
    """``length`` bytes at ``offset`` of one piece file, as a view of its kept memory map (a
    piece is never changed in place, so a warm read copies nothing and each inner chunk is
    checked once per map; ``view``: the map, when the caller has it); None when it is gone
    (evicted) or shorter than its name says. The caller marks the piece recently used
    (``mapped_files.touch``)."""
    if view is None:
        try:
            view = mapped_files.view(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
    if len(view) < offset + length:
        return None  # shorter than its name says: not a piece to trust
    return view[offset : offset + length]


class PieceIndex:
    """The pieces of one object found in its folder: which piece holds a given range."""

    def __init__(self, folder: str, names: Iterable[str] = ()) -> None:
        self.folder = folder
        self._starts: list[int] = []
        self._pieces: list[tuple[int, int]] = []  # (start, length), sorted
        self._paths: list[str] = []  # each piece's file, in the same order
        self._suffixes: list[int] = []
        self._longest = 0
        for name in names:
            self._add_name(name)

    @classmethod
    def scan(cls, folder: str) -> PieceIndex | None:
        """The pieces on disk now, None when the object has no piece folder."""
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return cls(folder, names)

    def __len__(self) -> int:
        return len(self._pieces) + len(self._suffixes)

    def _add_name(self, name: str) -> None:
        head, sep, tail = name.partition("-")
        if not sep or not tail.isdigit():
            return  # a temporary file being written, or something not ours
        if head == "end":
            self.add(-int(tail), int(tail))
        elif head.isdigit():
            self.add(int(head), int(tail))

    def add(self, start: int, length: int) -> None:
        """Record a piece (``start < 0``: the suffix of ``length`` bytes)."""
        if start < 0:
            if length not in self._suffixes:
                self._suffixes.append(length)
            return
        at = bisect.bisect_left(self._pieces, (start, length))
        if at < len(self._pieces) and self._pieces[at] == (start, length):
            return
        self._pieces.insert(at, (start, length))
        self._paths.insert(at, os.path.join(self.folder, piece_name(start, length)))
        self._starts.insert(at, start)
        self._longest = max(self._longest, length)

    def find(self, start: int, length: int) -> tuple[str, int] | None:
        """(path of a piece holding the range, the range's offset in it), or None."""
        if start < 0:
            fits = [n for n in self._suffixes if n >= length]
            if not fits:
                return None
            n = min(fits)
            return os.path.join(self.folder, piece_name(-n, n)), n - length
        end = start + length
        at = bisect.bisect_right(self._starts, start) - 1
        while at >= 0:
            piece_start, piece_length = self._pieces[at]
            if piece_start + self._longest < end:
                break  # no earlier piece is long enough to reach the range's end
            if piece_start + piece_length >= end:
                return self._paths[at], start - piece_start
            at -= 1
        return None

    def read_all(self, spans: Sequence[tuple[int, int | None]]) -> list[memoryview | None]:
        """Each span's bytes from a piece (None where no piece holds it), each piece read
        marked recently used once."""
        found: list[memoryview | None] = []
        used: dict[str, memoryview] = {}  # each piece's map, looked up once
        for start, length in spans:
            where = None if length is None else self.find(start, length)
            data = None
            if where is not None and length is not None:
                path, offset = where
                data = _read_piece(path, offset, length, used.get(path))
                if data is not None and data.obj is not None and path not in used:
                    used[path] = memoryview(data.obj)
            found.append(data)  # None for a span to the end: only the whole object answers
        for path in used:
            mapped_files.touch(path)  # recency for the cache's LRU eviction
        return found
