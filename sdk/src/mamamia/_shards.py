"""Zarr v3 shards (the ``sharding_indexed`` codec): where an inner chunk's bytes lie in a shard.

A shard is one stored object (key ``c/i/j/k/l`` of the shard grid) holding the inner chunks of
one shard-sized box, each encoded on its own, one after another, and an index: one
``(offset, nbytes)`` pair of little-endian uint64 per inner chunk in C order, ``2**64 - 1``
twice for an inner chunk never written, followed by the index's own crc32c (zarr's default
index codecs ``bytes`` -> ``crc32c``). The index sits at the end of the shard unless the array
says ``"index_location": "start"``::

    c/0/0/0/0:  [chunk (0,0,0,0)][chunk (0,0,0,1)] ... [index: n x (offset, nbytes)][crc32c]

A read fetches the index once per shard (it is kept for the array's lifetime: a few KiB per
phase) and then only the byte ranges of the inner chunks a box touches. This module knows the
addressing; ``mamamia._chunks`` decodes and checks the chunks themselves.
"""

from __future__ import annotations

import math
import mmap
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import crc32c
import numpy as np
import numpy.typing as npt

from mamamia._errors import ChunkCorruptError

__all__ = [
    "CRC32C_RESIDUE",
    "MISSING_ENTRY",
    "InnerChunkLabel",
    "RangeReader",
    "RangesReader",
    "ShardLayout",
    "inner_codec_chain",
    "read_range_of",
    "read_ranges_of",
]

#: An index entry's value for an inner chunk never written (both offset and nbytes).
MISSING_ENTRY = 2**64 - 1
#: The CRC-32C of a message followed by its own CRC (little-endian): a fixed residue, so a
#: checksummed buffer is checked whole, in place.
CRC32C_RESIDUE = 0x48674BC7

#: ``read_range(key, start, length)``: ``length`` bytes at ``start`` (``start < 0`` counts from
#: the end, as an HTTP suffix range does), or None where the object was never written.
RangeReader = Callable[[str, int, int], bytes | None]

#: ``read_ranges(key, [(start, length), ...])``: the bytes of each range of one object, in the
#: order asked (a source may coalesce neighbours into fewer requests), or None where the object
#: was never written. A box's inner chunks in one shard are asked for in one call.
RangesReader = Callable[[str, Sequence[tuple[int, int]]], "Sequence[bytes | memoryview] | None"]


def inner_codec_chain(meta: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The inner chunks' codecs of a sharded array this reader understands, else None.

    Understood: one ``sharding_indexed`` codec whose shard shape is a whole number of inner
    chunks on every axis, index codecs ``bytes`` (little-endian) with or without ``crc32c``,
    and the index at the start or the end."""
    try:
        codecs = meta["codecs"]
        if len(codecs) != 1 or codecs[0]["name"] != "sharding_indexed":
            return None
        config = codecs[0]["configuration"]
        shard = [int(n) for n in meta["chunk_grid"]["configuration"]["chunk_shape"]]
        inner = [int(n) for n in config["chunk_shape"]]
        index_codecs = config.get("index_codecs", [{"name": "bytes"}, {"name": "crc32c"}])
        index_names = [codec["name"] for codec in index_codecs]
        endian = (index_codecs[0].get("configuration") or {}).get("endian", "little")
        location = config.get("index_location", "end")
        chain = config["codecs"]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None
    if (
        len(shard) != len(inner)
        or any(i < 1 or s % i for s, i in zip(shard, inner, strict=True))
        or index_names not in (["bytes"], ["bytes", "crc32c"])
        or endian not in ("little", None)
        or location not in ("start", "end")
        or not isinstance(chain, list)
    ):
        return None
    return [dict(codec) for codec in chain]


def read_range_of(source: Any) -> RangeReader:
    """The source's own ranged read, or one that reads the whole object and slices it."""
    ranged = getattr(source, "read_range", None)
    if callable(ranged):
        return ranged  # type: ignore[no-any-return]

    def whole(key: str, start: int, length: int) -> bytes | None:
        data = source.read_key(key)
        if data is None:
            return None
        begin = len(data) + start if start < 0 else start
        return bytes(data[max(0, begin) : begin + length])

    return whole


def read_ranges_of(source: Any) -> RangesReader:
    """The source's own multi-range read, else one ranged read per range."""
    ranged = getattr(source, "read_ranges", None)
    if callable(ranged):
        return ranged  # type: ignore[no-any-return]
    read = read_range_of(source)

    def each(key: str, ranges: Sequence[tuple[int, int]]) -> Sequence[bytes | memoryview] | None:
        found: list[bytes | memoryview] = []
        for start, length in ranges:
            data = read(key, start, length)
            if data is None:
                return None
            found.append(data)
        return found

    return each


class InnerChunkLabel:
    """An inner chunk's name in messages (``c/0/0/0/0 (inner chunk 0/1/2/3)``), formatted only
    when a message needs it: most reads raise nothing."""

    __slots__ = ("index", "key")

    def __init__(self, key: str, index: tuple[int, ...]) -> None:
        self.key = key
        self.index = index

    def __str__(self) -> str:
        return f"{self.key} (inner chunk {'/'.join(str(i) for i in self.index)})"


class ShardLayout:
    """Maps an inner chunk's index to its shard's key and its byte range there."""

    def __init__(self, meta: dict[str, Any], where: str) -> None:
        config = meta["codecs"][0]["configuration"]
        self.where = where
        self.shard_shape = tuple(int(n) for n in meta["chunk_grid"]["configuration"]["chunk_shape"])
        self.inner_shape = tuple(int(n) for n in config["chunk_shape"])
        self.per_shard = tuple(
            s // i for s, i in zip(self.shard_shape, self.inner_shape, strict=True)
        )
        index_codecs = config.get("index_codecs", [{"name": "bytes"}, {"name": "crc32c"}])
        self._index_crc = [codec["name"] for codec in index_codecs][-1] == "crc32c"
        self._at_end = config.get("index_location", "end") == "end"
        self._count = math.prod(self.per_shard)
        # C-order strides of the inner-chunk grid of one shard (its index's order).
        self.strides = tuple(
            math.prod(self.per_shard[axis + 1 :]) for axis in range(len(self.per_shard))
        )
        self.index_bytes = 16 * self._count + (4 if self._index_crc else 0)
        # Each shard's index as a flat list of Python ints (offset, nbytes, offset, ...): a
        # read looks up a few entries, and a list item costs a fraction of a numpy scalar.
        self._indexes: dict[str, list[int] | None] = {}
        # The same indexes as (count, 2) uint64 arrays: the buffer the compiled read looks
        # chunks up in (mamamia._boxread).
        self._arrays: dict[str, npt.NDArray[np.uint64] | None] = {}
        # Per memory map the inner chunks were read from, per shard key, one byte per slot of
        # the shard's index: 1 once that chunk's crc32c passed. The same map holds the same
        # bytes, a new one (a file replaced or changed since) starts unchecked, and a map's
        # flags go when it does. (The compiled read sets them too.)
        self._checked: weakref.WeakKeyDictionary[Any, dict[str, bytearray]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def locate(self, index: tuple[int, ...]) -> tuple[str, int]:
        """The shard key holding inner chunk ``index`` and the chunk's place in its index."""
        parts: list[str] = []
        slot = 0
        for i, n, stride in zip(index, self.per_shard, self.strides, strict=True):
            shard, local = divmod(i, n)
            parts.append(str(shard))
            slot += local * stride
        return "c/" + "/".join(parts), slot

    def chunk_range(self, read: RangeReader, key: str, slot: int) -> tuple[int, int] | None:
        """(offset, nbytes) of one inner chunk, None if it was never written (or the shard)."""
        return self.chunk_ranges(read, key, (slot,))[0]

    def chunk_ranges(
        self, read: RangeReader, key: str, slots: Sequence[int]
    ) -> list[tuple[int, int] | None]:
        """``chunk_range`` of several inner chunks of one shard (its index looked up once)."""
        table = self.table(read, key)
        if table is None:
            return [None] * len(slots)
        found: list[tuple[int, int] | None] = []
        for slot in slots:
            offset, nbytes = table[2 * slot], table[2 * slot + 1]
            if offset == MISSING_ENTRY or nbytes == MISSING_ENTRY or nbytes == 0:
                if offset == MISSING_ENTRY and nbytes == MISSING_ENTRY:
                    found.append(None)
                    continue
                raise ChunkCorruptError(
                    f"shard {self.where}/{key} has an index entry ({offset}, {nbytes}) for "
                    f"inner chunk {slot} that points nowhere: run mamamia verify"
                )
            found.append((offset, nbytes))
        return found

    def table(self, read: RangeReader, key: str) -> list[int] | None:
        """The shard's index as a flat list ``[offset, nbytes, offset, ...]`` (read and checked
        on first use, then kept; ``MISSING_ENTRY`` twice where never written); None if no
        shard."""
        with self._lock:
            if key in self._indexes:
                return self._indexes[key]
        table = self._read_index(read, key)
        with self._lock:
            self._indexes[key] = table
        return table

    def index_array(self, read: RangeReader, key: str) -> npt.NDArray[np.uint64] | None:
        """The shard's index as a read-only ``(count, 2)`` array of (offset, nbytes), the
        sentinel ``2**64 - 1`` where never written; None if no shard."""
        with self._lock:
            if key in self._arrays:
                return self._arrays[key]
        table = self.table(read, key)
        array = None if table is None else np.array(table, dtype=np.uint64).reshape(-1, 2)
        if array is not None:
            array.flags.writeable = False
        with self._lock:
            self._arrays[key] = array
        return array

    def stored_spans(self, read: RangeReader, key: str) -> list[tuple[int, int]] | None:
        """Every byte range of a shard a reader may ask for: its index (as the suffix
        ``(-n, n)``) and each written inner chunk's ``(offset, nbytes)``; None if no shard."""
        table = self.table(read, key)
        if table is None:
            return None
        spans = [(-self.index_bytes, self.index_bytes)]
        for offset, nbytes in zip(table[0::2], table[1::2], strict=True):
            if offset != MISSING_ENTRY and nbytes != MISSING_ENTRY:
                spans.append((offset, nbytes))
        return spans

    def checked_in(self, data: bytes | memoryview, key: str) -> bytearray | None:
        """Which inner chunks of shard ``key`` were already checked in the memory map ``data``
        is a view of (a byte per index slot, 1 once checked); None when ``data`` is not such a
        view (bytes read afresh are always checked)."""
        owner = data.obj if isinstance(data, memoryview) else None
        if not isinstance(owner, mmap.mmap):
            return None
        with self._lock:
            return self._checked.setdefault(owner, {}).setdefault(key, bytearray(self._count))

    def forget(self, key: str) -> None:
        """Drop a shard's cached index (its bytes are being fetched again)."""
        with self._lock:
            self._indexes.pop(key, None)
            self._arrays.pop(key, None)
            for checked in self._checked.values():
                checked.pop(key, None)

    def _read_index(self, read: RangeReader, key: str) -> list[int] | None:
        start = -self.index_bytes if self._at_end else 0
        data = read(key, start, self.index_bytes)
        if data is None:
            return None
        where = f"{self.where}/{key}"
        if len(data) != self.index_bytes:
            raise ChunkCorruptError(
                f"shard {where} is truncated: its index needs {self.index_bytes} bytes, "
                f"{len(data)} were there"
            )
        if self._index_crc and crc32c.crc32c(data) != CRC32C_RESIDUE:
            raise ChunkCorruptError(
                f"shard {where} has an index that fails its crc32c check (damaged on disk or "
                "in transit): run mamamia verify"
            )
        table: list[int] = np.frombuffer(data, dtype="<u8", count=2 * self._count).tolist()
        return table
