"""The compiled read of a box: every inner chunk it touches decoded and copied in one C call.

``mamamia._chunks`` reads a box chunk by chunk in Python: a few microseconds of bookkeeping per
chunk, as much as a small chunk's decode. Here ``mamamia._boxdecode`` (C) does that work for a
whole box without the GIL. From a memory-mapped shard (a local catalog) it gets where the box
meets the chunks along each axis and walks the grid itself: each chunk looked up in the shard's
index, its crc32c checked the first time in this map, its header checked, the planes the box
needs decoded, the overlap copied, a chunk never written filled. From any other source (a
cache's pieces, a remote store) the chunks' bytes are fetched first, all of a shard's in one
``read_ranges`` call, and handed over as a list in the grid's order; each is checked by its
crc32c every time.

Only what the Python path would read the same way comes here: arrays whose chunks are one
index deep on every axis but the last three (``(1, z, y, x)`` chunks of ``(t, z, y, x)``
phases), a little-endian host, the compiled module built, blosc's entry points bound. Any
doubt (a damaged index entry, a chunk failing its crc32c or refused by the decoder) answers
False, and the caller reads the box the Python way, which raises the precise error or, for a
cache, refetches. Without a C compiler at install time the package works the same, slower.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from mamamia._blosc_items import entry_points
from mamamia._decode_pool import DECODE_THREADS, run_split
from mamamia._shards import MISSING_ENTRY, RangeReader, RangesReader, ShardLayout

try:  # built by the package's install when a C compiler is there (see its pyproject)
    from mamamia import _boxdecode
except ImportError:  # pragma: no cover - depends on the install
    _boxdecode = None  # type: ignore[assignment]

__all__ = ["BoxDecoder", "compiled"]

#: A box of more bytes than this is read in two halves on the decode pool; below it the
#: hand-off costs more than the second thread saves (a random 64^3 int16 crop holds 0.5 MiB).
_SPLIT_BYTES = 1 << 20


def compiled() -> bool:
    """True when the compiled loop can run here (module built, blosc entry points bound)."""
    return _boxdecode is not None and sys.byteorder == "little" and entry_points() is not None


#: Where a box meets the chunks along one axis, one list entry per chunk: its shard's index,
#: its slot along the axis in that shard times the axis' stride in the shard's index, the first
#: and end index inside the chunk, and its byte offset in the output. (Plain lists: a box
#: touches a handful of chunks per axis, and the C module reads lists directly.)
_Axis = tuple[list[int], list[int], list[int], list[int], list[int]]
#: One call's work: the C entry point and its own arguments after the axes.
_Call = tuple[Callable[..., int], list[Any], tuple[Any, ...]]


class BoxDecoder:
    """The compiled read for one array (see the module docstring); ``usable`` says whether
    its layout qualifies."""

    def __init__(
        self,
        chunks: tuple[int, ...],
        stored: np.dtype[Any],
        *,
        checksummed: bool,
        fill_value: Any,
    ) -> None:
        self.chunks = chunks
        self._itemsize = stored.itemsize
        self._trailer = 4 if checksummed else 0
        self._fill = fill_value
        # The fill value as stored, for the chunks a shard's index marks as never written.
        self._fill_bytes = np.array(fill_value, dtype=stored).tobytes()
        chunk_bytes = math.prod(chunks) * stored.itemsize
        found = entry_points() if compiled() else None
        self.usable = (
            found is not None
            and 3 <= len(chunks) <= 8
            and all(n == 1 for n in chunks[:-3])
            and stored.byteorder in ("<", "=", "|")
            and chunk_bytes < 2**31
        )
        self._entry = found or (0, 0)

    def read(
        self,
        shards: ShardLayout,
        read_range: RangeReader,
        read_ranges: RangesReader,
        mapped: Callable[[str], memoryview | None] | None,
        box: Sequence[tuple[int, int]],
        out: npt.NDArray[Any],
    ) -> bool:
        """Fill ``out`` with ``box``: from shards the source keeps memory-mapped (``mapped``),
        else from their inner chunks' bytes fetched through ``read_ranges``. False when
        anything needs the Python path (the caller then reads the box that way)."""
        if _boxdecode is None:  # (only where a test takes the module away after ``usable``)
            return False
        axes = [
            _axis(lo, hi, size, count, stride, out_stride)
            for (lo, hi), size, count, stride, out_stride in zip(
                box, self.chunks, shards.per_shard, shards.strides, out.strides, strict=True
            )
        ]
        calls: list[_Call] = []
        absent = False
        for combo in itertools.product(*(_by_shard(axis) for axis in axes)):
            key = "c/" + "/".join(str(axis[0][0]) for axis in combo)
            table = shards.table(read_range, key)
            if table is None:  # no shard: its chunks read as the fill value
                absent = True
                continue
            parts = [axis[1:] for axis in combo]
            whole = mapped(key) if mapped is not None else None
            if whole is not None:
                index = shards.index_array(read_range, key)
                checked = shards.checked_in(whole, key) if self._trailer else None
                calls.append((_boxdecode.read_shard, parts, (index, whole, checked)))
                continue
            fetched = _fetched(shards, table, parts, key, read_ranges)
            if fetched is None:
                return False
            calls.append((_boxdecode.read_chunks, parts, (*fetched, len(table) // 2)))
        if absent:
            out.fill(self._fill)
        common = (
            *self._entry, *self.chunks[-3:], self._itemsize, self._trailer, self._fill_bytes,
            out.ctypes.data, out.strides[-3], out.strides[-2],
        )  # fmt: skip
        refused: list[bool] = []

        def run(call: _Call) -> None:
            entry, parts, own = call
            if entry(*common, parts, *own) != math.prod(len(part[0]) for part in parts):
                refused.append(True)

        if out.nbytes > _SPLIT_BYTES and DECODE_THREADS > 1:
            run_split(run, [half for call in calls for half in _halves(call)], inline=0)
        else:
            for call in calls:
                run(call)
        return not refused


def _fetched(
    shards: ShardLayout,
    table: list[int],
    parts: list[Any],
    key: str,
    read_ranges: RangesReader,
) -> tuple[list[Any], list[bytearray | None]] | None:
    """The bytes of each inner chunk of one shard's part of the grid, in C order (None where
    never written), fetched in one ``read_ranges`` call, and for each the checked flags of the
    memory map its bytes are a view of (``ShardLayout.checked_in``; None: check it); None if an
    index entry is damaged or the source answers short (the Python path then names it).
    (Plain Python: a box's few dozen chunks cost less so than as numpy arrays.)"""
    wanted: list[tuple[int, int]] = []
    present: list[bool] = []
    for combo in itertools.product(*(part[0] for part in parts)):
        slot = 2 * sum(combo)
        offset, nbytes = table[slot], table[slot + 1]
        if offset == MISSING_ENTRY and nbytes == MISSING_ENTRY:
            present.append(False)
            continue
        if offset == MISSING_ENTRY or nbytes == MISSING_ENTRY or nbytes == 0:
            return None
        wanted.append((offset, nbytes))
        present.append(True)
    found = list(read_ranges(key, wanted) or []) if wanted else []
    if len(found) != len(wanted):
        return None
    # The flags of each view's memory map, looked up once per map (a piece holds many chunks).
    flags: list[bytearray | None] = []
    by_map: dict[int, bytearray | None] = {}
    for data in found:
        owner = data.obj if isinstance(data, memoryview) else None
        if owner is None:
            flags.append(None)
        elif id(owner) in by_map:
            flags.append(by_map[id(owner)])
        else:
            flags.append(by_map.setdefault(id(owner), shards.checked_in(data, key)))
    if len(found) == len(present):
        return found, flags
    chunks: list[Any] = []
    marks: list[bytearray | None] = []
    at = 0
    for here in present:
        if here:
            chunks.append(found[at])
            marks.append(flags[at])
            at += 1
        else:
            chunks.append(None)
            marks.append(None)
    return chunks, marks


def _axis(lo: int, hi: int, size: int, count: int, stride: int, out_stride: int) -> _Axis:
    """Where ``[lo, hi)`` meets the chunks of ``size`` along one axis (see ``_Axis``)."""
    shards, slots, firsts, ends, offsets = [], [], [], [], []
    for index in range(lo // size, (hi - 1) // size + 1):
        start = index * size
        first = max(start, lo)
        shard, slot = divmod(index, count)
        shards.append(shard)
        slots.append(slot * stride)
        firsts.append(first - start)
        ends.append(min(start + size, hi) - start)
        offsets.append((first - lo) * out_stride)
    return shards, slots, firsts, ends, offsets


def _by_shard(axis: _Axis) -> list[_Axis]:
    """One axis' chunks split into runs of the same shard (one run unless the box crosses a
    shard boundary along it)."""
    shards = axis[0]
    if shards[0] == shards[-1]:
        return [axis]
    runs: list[_Axis] = []
    begin = 0
    for end in range(1, len(shards) + 1):
        if end == len(shards) or shards[end] != shards[begin]:
            parts = tuple(values[begin:end] for values in axis)
            runs.append(parts)  # type: ignore[arg-type]
            begin = end
    return runs


def _halves(call: _Call) -> list[_Call]:
    """One shard's call split in two along its axis of most chunks (one call if it has one
    chunk); fetched chunks are split with their grid."""
    entry, parts, own = call
    axis = max(range(len(parts)), key=lambda a: len(parts[a][0]))
    n = len(parts[axis][0])
    if n < 2:
        return [call]
    out: list[_Call] = []
    for piece in (slice(0, n // 2), slice(n // 2, n)):
        split = list(parts)
        split[axis] = tuple(values[piece] for values in parts[axis])
        if own and isinstance(own[0], list):  # read_chunks: this half's chunks and flags
            shape = [len(part[0]) for part in parts]
            grid = np.arange(len(own[0])).reshape(shape)
            keep = grid[(slice(None),) * axis + (piece,)].ravel().tolist()
            chunks, marks, entries = own
            out.append(
                (entry, split, ([chunks[i] for i in keep], [marks[i] for i in keep], entries))
            )
        else:
            out.append((entry, split, own))
    return out
