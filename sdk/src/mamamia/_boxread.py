"""The compiled read of a box: every inner chunk it touches decoded and copied in one C call.

``mamamia._chunks`` reads a box chunk by chunk in Python: a few microseconds of bookkeeping per
chunk, as much as a small chunk's decode. Here ``mamamia._boxdecode`` (C) does that work for a
whole box without the GIL. From a memory-mapped shard (a local catalog) it gets where the box
meets the chunks along each axis and walks the grid itself: each chunk looked up in the shard's
index, its crc32c checked the first time in this map, its header checked, the planes the box
needs decoded, the overlap copied, a chunk never written filled. From bytes already fetched (a
cache's pieces, a remote source) it gets one int64 row per chunk instead (where the compressed
bytes lie, which planes, rows and columns, where they go), the crc32c checked here.

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

import crc32c
import numpy as np
import numpy.typing as npt

from mamamia._blosc_items import address_of, entry_points
from mamamia._decode_pool import DECODE_THREADS, run_split
from mamamia._shards import CRC32C_RESIDUE, RangeReader, ShardLayout

try:  # built by the package's install when a C compiler is there (see its pyproject)
    from mamamia import _boxdecode
except ImportError:  # pragma: no cover - depends on the install
    _boxdecode = None  # type: ignore[assignment]

__all__ = ["JOB_FIELDS", "BoxDecoder", "compiled"]

#: The columns of a job row, in the C module's order: the compressed chunk's address and size,
#: the planes, rows and columns of the chunk wanted (half-open), the output's byte offset.
JOB_FIELDS = ("src", "size", "z0", "z1", "y0", "y1", "x0", "x1", "out")
_SRC, _SIZE, _Z0, _Z1, _Y0, _Y1, _X0, _X1, _OUT = range(len(JOB_FIELDS))

#: A box of more bytes than this is split over the decode pool; below it the hand-off costs more
#: than the second thread saves (a random 64^3 int16 crop holds 0.5 MiB and decodes about 1).
_SPLIT_BYTES = 1 << 20


def compiled() -> bool:
    """True when the compiled loop can run here (module built, blosc entry points bound)."""
    return _boxdecode is not None and sys.byteorder == "little" and entry_points() is not None


#: Where a box meets the chunks along one axis, one list entry per chunk: its shard's index,
#: its slot along the axis in that shard times the axis' stride in the shard's index, the first
#: and end index inside the chunk, and its byte offset in the output. (Plain lists: a box
#: touches a handful of chunks per axis, and the C module reads lists directly.)
_Axis = tuple[list[int], list[int], list[int], list[int], list[int]]


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
        chunk_bytes = int(np.prod(chunks)) * stored.itemsize
        found = entry_points() if compiled() else None
        self.usable = (
            found is not None
            and 3 <= len(chunks) <= 8
            and all(n == 1 for n in chunks[:-3])
            and stored.byteorder in ("<", "=", "|")
            and chunk_bytes < 2**31
        )
        self._entry = found or (0, 0)

    # -- memory-mapped shards: the C module reads their indexes itself ----------------------

    def read_mapped(
        self,
        shards: ShardLayout,
        read_range: RangeReader,
        mapped: Callable[[str], memoryview | None],
        box: Sequence[tuple[int, int]],
        out: npt.NDArray[Any],
    ) -> bool:
        """Fill ``out`` with ``box`` from shards the source keeps memory-mapped; False when a
        shard is not mapped or anything needs the Python path."""
        axes = [
            _axis(lo, hi, size, count, stride, out_stride)
            for (lo, hi), size, count, stride, out_stride in zip(
                box, self.chunks, shards.per_shard, shards.strides, out.strides, strict=True
            )
        ]
        reads: list[tuple[Any, ...]] = []
        absent = False
        for combo in itertools.product(*(_by_shard(axis) for axis in axes)):
            key = "c/" + "/".join(str(axis[0][0]) for axis in combo)
            index = shards.index_array(read_range, key)
            if index is None:  # no shard: its chunks read as the fill value
                absent = True
                continue
            whole = mapped(key)
            if whole is None:
                return False
            checked = shards.checked_in(whole, key) if self._trailer else None
            reads.append((index, whole, checked, [axis[1:] for axis in combo]))
        if absent:
            out.fill(self._fill)
        getitem, decompress = self._entry
        cz, cy, cx = self.chunks[-3:]
        tail = (
            cz, cy, cx, self._itemsize, self._trailer, self._fill_bytes, out.ctypes.data,
            out.strides[-3], out.strides[-2],
        )  # fmt: skip
        refused: list[bool] = []

        def run(read: tuple[Any, ...]) -> None:
            index, whole, checked, parts = read
            done = _boxdecode.read_shard(getitem, decompress, index, whole, checked, parts, *tail)
            if done != math.prod(len(part[0]) for part in parts):
                refused.append(True)

        if out.nbytes > _SPLIT_BYTES and DECODE_THREADS > 1:
            reads = [half for read in reads for half in _halves(read)]
            run_split(run, reads, inline=0)
        else:
            for read in reads:
                run(read)
        return not refused

    # -- chunks already fetched (a cache's or a remote source's bytes) ---------------------

    def read_fetched(
        self,
        jobs: Sequence[tuple[Any, ...]],
        out: npt.NDArray[Any],
    ) -> bool:
        """Fill ``out`` from ``mamamia._chunks``' fetched inner chunks (its ``_Inner`` rows:
        key, slot, parts, span, bytes, address, checked set); False for the Python path."""
        rows = np.empty((len(jobs), len(JOB_FIELDS)), dtype=np.int64)
        strides = out.strides
        filled = False
        keep: list[Any] = []
        for row, (_key, slot, parts, span, data, address, memo) in zip(rows, jobs, strict=True):
            inner, placed = parts[3], parts[4]
            row[_OUT] = sum(s.start * stride for s, stride in zip(placed, strides, strict=True))
            row[_Z0], row[_Z1] = inner[-3].start, inner[-3].stop
            row[_Y0], row[_Y1] = inner[-2].start, inner[-2].stop
            row[_X0], row[_X1] = inner[-1].start, inner[-1].stop
            if span is None or data is None:
                row[_SRC] = row[_SIZE] = 0
                if not filled:
                    out.fill(self._fill)
                    filled = True
                continue
            if len(data) != span[1]:
                return False
            if self._trailer and (memo is None or not memo[slot]):
                if crc32c.crc32c(data) != CRC32C_RESIDUE:
                    return False
                if memo is not None:
                    memo[slot] = 1
            if address is None:
                view = data if isinstance(data, memoryview) else memoryview(data)
                address = address_of(view) if len(view) else 0
                keep.append(view)
            row[_SRC], row[_SIZE] = address, len(data)
        return self._run(rows, out)

    # -- the call ---------------------------------------------------------------------------

    def _run(self, rows: npt.NDArray[np.int64], out: npt.NDArray[Any]) -> bool:
        """Run the job table (split over the decode pool when large); False if refused."""
        if _boxdecode is None or not len(rows):
            return _boxdecode is not None
        cz, cy, cx = self.chunks[-3:]
        getitem, decompress = self._entry
        fixed = (cz, cy, cx, self._itemsize, self._trailer, out.ctypes.data)
        zstride, ystride = out.strides[-3], out.strides[-2]
        refused: list[bool] = []

        def run(part: npt.NDArray[np.int64]) -> None:
            part = np.ascontiguousarray(part)
            done = _boxdecode.decode_boxes(getitem, decompress, part, *fixed, zstride, ystride)
            if done != len(part):
                refused.append(True)

        if out.nbytes <= _SPLIT_BYTES or DECODE_THREADS < 2:
            run(rows)
        else:
            run_split(run, list(np.array_split(rows, DECODE_THREADS)), inline=0)
        return not refused


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


def _halves(read: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """One shard's read split in two along its axis of most chunks (one part if it has one)."""
    index, whole, checked, parts = read
    axis = max(range(len(parts)), key=lambda a: len(parts[a][0]))
    n = len(parts[axis][0])
    if n < 2:
        return [read]
    cut = n // 2
    out = []
    for piece in (slice(0, cut), slice(cut, n)):
        split = list(parts)
        split[axis] = tuple(values[piece] for values in parts[axis])
        out.append((index, whole, checked, split))
    return out
