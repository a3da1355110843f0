"""The compiled read of a box: every inner chunk it touches decoded and copied in one C call.

``mamamia._chunks`` reads a box chunk by chunk in Python: a few microseconds of bookkeeping per
chunk, as much as a small chunk's decode. Here the chunks a box touches become one int64 table
of jobs (where the compressed bytes lie, which planes, rows and columns of the chunk, where
they go in the output), built with a few numpy operations, and ``mamamia._boxdecode`` (C)
runs it without the GIL: the header checks, the partial or whole blosc decode, the copy.

Only what the Python path would read the same way comes here: arrays whose chunks are one
index deep on every axis but the last three (``(1, z, y, x)`` chunks of ``(t, z, y, x)``
phases), a little-endian host, the compiled module built, blosc's entry points bound. Any
doubt (a damaged index entry, a chunk failing its crc32c or refused by the decoder) answers
False, and the caller reads the box the Python way, which raises the precise error or, for a
cache, refetches. Without a C compiler at install time the package works the same, slower.
"""

from __future__ import annotations

import itertools
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

#: A box whose chunks decode to more than this is split over the decode pool; below it the
#: hand-off costs more than the second thread saves (a random 64^3 crop decodes about 1 MiB).
_SPLIT_BYTES = 3 << 20


def compiled() -> bool:
    """True when the compiled loop can run here (module built, blosc entry points bound)."""
    return _boxdecode is not None and sys.byteorder == "little" and entry_points() is not None


#: Where a box meets the chunks along one axis, one list entry per chunk: its shard's index,
#: its slot along the axis in that shard, the first and end index inside the chunk, and its
#: offset in the box. (Plain lists: a box touches a handful of chunks per axis, too few for
#: numpy to pay.)
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
        chunk_bytes = int(np.prod(chunks)) * stored.itemsize
        found = entry_points() if compiled() else None
        self.usable = (
            found is not None
            and len(chunks) >= 3
            and all(n == 1 for n in chunks[:-3])
            and stored.byteorder in ("<", "=", "|")
            and chunk_bytes < 2**31
        )
        self._entry = found or (0, 0)

    # -- a memory-mapped shard: the table from the shard's index -----------------------------

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
            _axis(lo, hi, size, count)
            for (lo, hi), size, count in zip(box, self.chunks, shards.per_shard, strict=True)
        ]
        tables: list[npt.NDArray[np.int64]] = []
        keep: list[memoryview] = []
        for combo in itertools.product(*(_by_shard(axis) for axis in axes)):
            key = "c/" + "/".join(str(axis[0][0]) for axis in combo)
            rows, slots = self._grid(combo, shards.strides, out.strides)
            index = shards.index_array(read_range, key)
            if index is None:  # no shard: its chunks read as the fill value
                out.fill(self._fill)
                rows[:, _SRC] = 0
                tables.append(rows)
                continue
            whole = mapped(key)
            if whole is None:
                return False
            entries = index[slots].view(np.int64)  # the sentinel 2**64 - 1 reads as -1
            offsets, sizes = entries[:, 0], entries[:, 1]
            missing = (offsets == -1) & (sizes == -1)
            valid = (offsets >= 0) & (sizes > 0) & (offsets <= len(whole) - sizes)
            if not (missing | valid).all():
                return False  # the Python path names the bad index entry
            if self._trailer and not _checked(shards, key, whole, slots, entries, valid):
                return False
            if missing.any():
                out.fill(self._fill)
            base = address_of(whole) if len(whole) else 0
            keep.append(whole)
            rows[:, _SRC] = np.where(missing, 0, offsets + base)
            rows[:, _SIZE] = np.where(missing, 0, sizes)
            tables.append(rows)
        return self._run(tables[0] if len(tables) == 1 else np.concatenate(tables), out)

    @staticmethod
    def _grid(
        combo: tuple[_Axis, ...], strides: tuple[int, ...], out_strides: tuple[int, ...]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The job rows of one shard's chunks in C order of the box's chunk grid (all but
        their source filled in) and each chunk's slot in the shard's index."""
        lead = len(combo) - 3
        # Per axis and chunk: (slot in the index, offset in the output) summed over the axes,
        # and for the last three axes the chunk's first and end index.
        steps = [
            [
                (slot * stride, offset * out_stride)
                for slot, offset in zip(axis[1], axis[4], strict=True)
            ]
            for axis, stride, out_stride in zip(combo, strides, out_strides, strict=True)
        ]
        cuts = [list(zip(axis[2], axis[3], strict=True)) for axis in combo[lead:]]
        rows: list[tuple[int, ...]] = []
        for head in itertools.product(*steps[:lead]):
            slot0 = sum(step[0] for step in head)
            out0 = sum(step[1] for step in head)
            for (zs, zo), (z0, z1) in zip(steps[lead], cuts[0], strict=True):
                for (ys, yo), (y0, y1) in zip(steps[lead + 1], cuts[1], strict=True):
                    for (xs, xo), (x0, x1) in zip(steps[lead + 2], cuts[2], strict=True):
                        rows.append(
                            (slot0 + zs + ys + xs, 0, z0, z1, y0, y1, x0, x1, out0 + zo + yo + xo)
                        )
        table = np.array(rows, dtype=np.int64)
        slots = table[:, _SRC].copy()
        return table, slots

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
        for row, (key, slot, parts, span, data, address, memo) in zip(rows, jobs, strict=True):
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
            seen = (key, slot)
            if self._trailer and (memo is None or seen not in memo):
                if crc32c.crc32c(data) != CRC32C_RESIDUE:
                    return False
                if memo is not None:
                    memo.add(seen)
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

        decoded = int((rows[:, _Z1] - rows[:, _Z0]).sum()) * cy * cx * self._itemsize
        if decoded <= _SPLIT_BYTES or DECODE_THREADS < 2:
            run(rows)
        else:
            run_split(run, list(np.array_split(rows, DECODE_THREADS)), inline=0)
        return not refused


def _checked(
    shards: ShardLayout,
    key: str,
    whole: memoryview,
    slots: npt.NDArray[np.int64],
    entries: npt.NDArray[np.int64],
    present: npt.NDArray[np.bool_],
) -> bool:
    """The crc32c of each present chunk not yet checked in this map (then remembered)."""
    memo = shards.checked_in(whole)
    for slot, (offset, nbytes) in zip(
        slots[present].tolist(), entries[present].tolist(), strict=True
    ):
        seen = (key, slot)
        if memo is not None and seen in memo:
            continue
        if crc32c.crc32c(whole[offset : offset + nbytes]) != CRC32C_RESIDUE:
            return False
        if memo is not None:
            memo.add(seen)
    return True


def _axis(lo: int, hi: int, size: int, count: int) -> _Axis:
    """Where ``[lo, hi)`` meets the chunks of ``size`` along one axis (see ``_Axis``)."""
    shards, slots, firsts, ends, offsets = [], [], [], [], []
    for index in range(lo // size, (hi - 1) // size + 1):
        start = index * size
        first = max(start, lo)
        shard, slot = divmod(index, count)
        shards.append(shard)
        slots.append(slot)
        firsts.append(first - start)
        ends.append(min(start + size, hi) - start)
        offsets.append(first - lo)
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
