"""Direct chunk reads of mamamia's own Zarr arrays: the same bytes, fewer layers than zarr-python.

Every array ingest writes has one of two layouts: format 1's regular chunk grid with ``c/i/j/k/l``
keys and the codec chain ``bytes`` (little-endian) -> ``blosc`` -> ``crc32c``, or format 2's
shards of inner chunks with that chain (``mamamia._shards`` finds an inner chunk's bytes through
its shard's index). For those arrays a read is short: list the chunks a box touches, get their
bytes from the store, check the crc32c, blosc-decompress, copy the overlap into the output. zarr-python does the same through an event loop, a codec
pipeline and a thread hop per chunk, which costs more than the decode of a 64^3 crop itself
(bench/bench_server.py, docs/crops.md).

Several chunks are decoded on a small shared thread pool: blosc releases the GIL (off the main
thread numcodecs uses its contextual, lock-free entry point). Arrays with any other layout are
opened with zarr-python, so correctness never depends on this fast path, and selections beyond
integers and slices (lists, masks, ``None``) are handed to zarr-python too.

The store keeps its own semantics: a missing chunk raises ``ChunkMissingError`` unless the
store knows it was never written (then it reads as the fill value), and a cache may refetch a
chunk whose bytes fail the checksum once before the error reaches the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, Protocol, cast

import crc32c
import numcodecs.blosc
import numpy as np
import numpy.typing as npt

from mamamia._blosc_items import BLOSC_HEADER, address_of, decode_all, decode_items
from mamamia._boxread import BoxDecoder
from mamamia._decode_pool import decode_pool, run_split
from mamamia._errors import CatalogFormatError, ChunkCorruptError
from mamamia._shards import (
    CRC32C_RESIDUE,
    InnerChunkLabel,
    ShardLayout,
    inner_codec_chain,
    read_range_of,
    read_ranges_of,
)
from mamamia._volume import ArrayLike

__all__ = ["ChunkArray", "ChunkSource", "open_chunk_array", "supports_fast_path"]


#: One chunk's part of a read: (chunk index, where in the chunk, where in the output).
_ChunkJob = tuple[tuple[int, ...], tuple[slice, ...], tuple[slice, ...]]

#: Where a box meets one inner chunk, per axis: (inner chunk index, shard index, the chunk's
#: share of its slot in the shard index, where in the chunk, where in the output).
_AxisPart = tuple[int, int, int, slice, slice]

#: One inner chunk's part of a read: its shard's key, its slot in the shard's index, its
#: ``_AxisPart`` fields gathered per field (``zip(*parts)``), its (offset, size) in the shard,
#: its bytes and their address (None where never written; the address also where the bytes
#: are not a memory-mapped slice), and which of the shard's inner chunks were already checked
#: in the memory map the bytes are a slice of (``ShardLayout.checked_in``; None: not such a
#: slice, check them).
_Inner = tuple[
    str,
    int,
    tuple[tuple[Any, ...], ...],
    tuple[int, int] | None,
    bytes | memoryview | None,
    int | None,
    bytearray | None,
]


#: A box touching at most this many inner chunks (a 64^3 crop touches 8) is decoded on the
#: calling thread: each decode is short, and handing half of them to another thread cost more
#: in hand-offs than it saved (a random 64^3 crop in process: 0.49 ms on one thread, 0.58 on two).
#: So is a thin box (an axial plane): it decodes one blosc block of each inner chunk.
_INLINE_INNER_CHUNKS = 8


class ChunkSource(Protocol):
    """Where an array's bytes come from (the SDK's stores satisfy it)."""

    def read_key(self, key: str) -> bytes | None:
        """The bytes at ``key`` (``zarr.json``, ``c/0/1/2/3``), or None where none was written.

        Raises ``ChunkMissingError`` for a chunk that should exist but cannot be had."""
        ...

    def discard_key(self, key: str) -> bool:
        """Forget a locally cached copy of ``key`` (True if a refetch may help)."""
        ...

    # Optional: ``read_range`` and ``read_ranges`` (``mamamia._shards``), and
    # ``mapped(key) -> memoryview | None``, a whole stored object as a view of a kept memory
    # map (None where there is none: the ranged reads answer then).


def supports_fast_path(meta: dict[str, Any]) -> bool:
    """True for the layouts ingest writes (so ``ChunkArray`` reads them exactly): format 1's
    plain chunks, and format 2's shards whose inner chunks use the same chain (their crc32c
    optional when the shard index carries one)."""
    try:
        grid = meta["chunk_grid"]
        encoding = meta["chunk_key_encoding"]
        codecs = meta["codecs"]
        sharded = inner_codec_chain(meta)
        if sharded is not None:
            codecs = sharded
        names = [codec["name"] for codec in codecs]
        endian = (codecs[0].get("configuration") or {}).get("endian", "little")
        separator = (encoding.get("configuration") or {}).get("separator", "/")
        dtype = np.dtype(meta["data_type"])
        fill = meta.get("fill_value", 0)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return False  # (np.dtype raises TypeError for a data type it does not know)
    return (
        meta.get("zarr_format") == 3
        and meta.get("node_type") == "array"
        and grid.get("name") == "regular"
        and encoding.get("name") == "default"
        and separator == "/"
        and (
            names == ["bytes", "blosc", "crc32c"]
            or (sharded is not None and names == ["bytes", "blosc"])
        )
        and endian in ("little", None)
        and not meta.get("storage_transformers")
        and dtype.kind in "biuf"
        and isinstance(fill, int | float)
        and not isinstance(fill, bool)
        and len(meta["shape"]) == len(grid["configuration"]["chunk_shape"])
    )


def _as_range(item: Any, size: int, axis: int) -> tuple[int, int, int, bool] | None:
    """(start, stop, step, squeeze) of one basic index along an axis; None if not basic."""
    if isinstance(item, bool | np.bool_):
        return None
    if isinstance(item, int | np.integer):
        index = int(item)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError(f"index {int(item)} is out of bounds for axis {axis} with size {size}")
        return index, index + 1, 1, True
    if isinstance(item, slice):
        start, stop, step = item.indices(size)
        return start, stop, step, False
    return None


class ChunkArray:
    """A read-only N-d array over one Zarr array's chunks (see the module docstring)."""

    def __init__(
        self,
        source: ChunkSource,
        meta: dict[str, Any],
        *,
        where: str,
        fallback: Callable[[], Any],
    ) -> None:
        self._source = source
        self._where = where
        self._fallback_factory = fallback
        self._fallback: Any = None
        self.shape: tuple[int, ...] = tuple(int(n) for n in meta["shape"])
        # A sharded array is read inner chunk by inner chunk: those are its ``chunks`` (as in
        # zarr-python), each found through its shard's index.
        chain = inner_codec_chain(meta)
        self._shards = ShardLayout(meta, where) if chain is not None else None
        self._read_range = read_range_of(source)
        self._read_ranges = read_ranges_of(source)
        # A local source keeps whole shards memory-mapped: slicing one here skips a call per
        # inner chunk and gives each its address at once (the decoder reads it in place).
        mapped = getattr(source, "mapped", None)
        self._mapped: Callable[[str], memoryview | None] | None = (
            mapped if callable(mapped) else None
        )
        self._checksummed = [c["name"] for c in chain or meta["codecs"]][-1] == "crc32c"
        self.chunks: tuple[int, ...] = (
            self._shards.inner_shape
            if self._shards is not None
            else tuple(int(n) for n in meta["chunk_grid"]["configuration"]["chunk_shape"])
        )
        #: The shard shape (one stored object each), None for an unsharded array (zarr's name).
        self.shards: tuple[int, ...] | None = (
            self._shards.shard_shape if self._shards is not None else None
        )
        if any(n < 1 for n in self.chunks):
            raise CatalogFormatError(f"{where}: chunk shape {self.chunks} has an empty axis")
        self._stored = np.dtype(meta["data_type"]).newbyteorder("<")
        self.dtype: np.dtype[Any] = self._stored.newbyteorder("=")
        self.fill_value = meta.get("fill_value", 0)
        self._chunk_bytes = math.prod(self.chunks) * self._stored.itemsize
        # The first axis a chunk spans more than one index of (z for (1, 32, 128, 128)): a
        # box that needs only some of its planes decodes only those (see decode_items).
        self._slab_axis = next((a for a, n in enumerate(self.chunks) if n > 1), -1)
        self._slab_items = math.prod(self.chunks[self._slab_axis + 1 :])
        # Planes of the slab axis per blosc block, learnt from the first chunk decoded (0 until
        # then): a box no thicker decodes at most two blocks per chunk, too little to hand off.
        self._block_planes = 0
        self.ndim = len(self.shape)
        # The compiled loop for a sharded array's boxes (mamamia._boxread), when it can run.
        boxes = (
            BoxDecoder(
                self.chunks, self._stored, checksummed=self._checksummed, fill_value=self.fill_value
            )
            if self._shards is not None
            else None
        )
        self._boxes = boxes if boxes is not None and boxes.usable else None

    def __repr__(self) -> str:
        return f"<ChunkArray {self._where} shape={self.shape} chunks={self.chunks} {self.dtype}>"

    def shard_spans(self, key: str) -> list[tuple[int, int]] | None:
        """For a sharded array, the byte ranges of stored object ``key`` (``c/0/0/0/0``) a read
        may ask for (its index and written inner chunks); None when unsharded or absent."""
        if self._shards is None:
            return None
        return self._shards.stored_spans(self._read_range, key)

    # -- indexing ---------------------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        plan = self._plan(key)
        if plan is None:
            return self._zarr()[key]  # fancy or masked selection: zarr-python's indexing
        box, local = plan
        return _cut(self.read_box(box), local)

    async def getitem_async(self, key: Any) -> Any:
        """``self[key]``, awaiting the chunk decodes instead of blocking the event loop."""
        plan = self._plan(key)
        if plan is None:
            return await asyncio.to_thread(self.__getitem__, key)
        box, local = plan
        if self._shards is not None:
            # One thread hop: the inner chunks' bytes are fetched together (a remote source
            # coalesces them), then decoded as read_box does.
            return _cut(await asyncio.to_thread(self.read_box, box), local)
        out = np.empty(tuple(hi - lo for lo, hi in box), dtype=self.dtype)
        if out.size:
            await self._fill_async(out, list(self._chunk_jobs(box)))
        return _cut(out, local)

    async def _fill_async(
        self,
        out: npt.NDArray[Any],
        jobs: list[_ChunkJob],
    ) -> None:
        """Run the jobs on the decode pool and wake the event loop once, when the last ends.

        (A future per chunk wakes the loop once per chunk: that cost 0.5 ms of a 64^3 crop's
        3.4 ms.) An error in any job is raised here once all have ended."""
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()
        left = len(jobs)
        failures: list[BaseException] = []
        lock = threading.Lock()

        def settle() -> None:
            if finished.done():  # the awaiting task was cancelled
                return
            if failures:
                finished.set_exception(failures[0])
            else:
                finished.set_result(None)

        def run(job: _ChunkJob) -> None:
            nonlocal left
            try:
                if not finished.cancelled():
                    self._fill(out, *job)
            except BaseException as exc:  # handed to the awaiting task, not lost in the pool
                with lock:
                    failures.append(exc)
            with lock:
                left -= 1
                last = left == 0
            if last:
                # RuntimeError: the loop has closed, so nobody is waiting any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(settle)

        pool = decode_pool()
        for job in jobs:
            pool.submit(run, job)
        await finished

    def _plan(self, key: Any) -> tuple[list[tuple[int, int]], list[Any]] | None:
        """The box a basic selection reads and how to cut the result; None if not basic."""
        items = key if isinstance(key, tuple) else (key,)
        if any(item is Ellipsis for item in items):
            at = next(i for i, item in enumerate(items) if item is Ellipsis)
            fill = self.ndim - (len(items) - 1)
            if fill < 0 or any(item is Ellipsis for item in items[at + 1 :]):
                return None
            items = items[:at] + (slice(None),) * fill + items[at + 1 :]
        if len(items) > self.ndim:
            raise IndexError(f"too many indices: {len(items)} for a {self.ndim}-d array")
        items = tuple(items) + (slice(None),) * (self.ndim - len(items))
        ranges = [
            _as_range(item, n, a) for a, (item, n) in enumerate(zip(items, self.shape, strict=True))
        ]
        box: list[tuple[int, int]] = []
        local: list[Any] = []
        for found in ranges:
            if found is None:
                return None
            start, stop, step, squeeze = found
            if squeeze:
                box.append((start, stop))
                local.append(0)
                continue
            picked = range(start, stop, step)
            if len(picked) == 0:
                box.append((0, 0))
                local.append(slice(0, 0))
                continue
            lo, hi = min(picked[0], picked[-1]), max(picked[0], picked[-1]) + 1
            box.append((lo, hi))
            if step == 1:
                local.append(slice(None))
            else:
                end = picked[-1] - lo + (1 if step > 0 else -1)
                local.append(slice(picked[0] - lo, end if end >= 0 else None, step))
        return box, local

    def _zarr(self) -> Any:
        if self._fallback is None:
            self._fallback = self._fallback_factory()
        return self._fallback

    # -- reading ----------------------------------------------------------------------------

    def read_box(self, box: Sequence[tuple[int, int]]) -> npt.NDArray[Any]:
        """The voxels of the half-open ``box`` (one (start, stop) per axis, inside the array)."""
        out = np.empty(tuple(hi - lo for lo, hi in box), dtype=self.dtype)
        if out.size == 0:
            return out
        if self._shards is not None:
            if self._boxes is not None:
                with contextlib.suppress(ChunkCorruptError):  # the Python path retries, names it
                    if self._boxes.read(
                        self._shards, self._read_range, self._read_ranges, self._mapped, box, out
                    ):
                        return out
            jobs = self._fetch_inner(self._shards, box)
            slab = self._slab_axis
            thin = 0 < box[slab][1] - box[slab][0] <= self._block_planes if slab >= 0 else False
            run_split(
                partial(self._fill_inner, self._shards, out),
                jobs,
                inline=len(jobs) if thin else _INLINE_INNER_CHUNKS,
            )
        else:
            run_split(partial(self._fill_job, out), list(self._chunk_jobs(box)))
        return out

    def _chunk_jobs(self, box: Sequence[tuple[int, int]]) -> Iterator[_ChunkJob]:
        """(chunk index, where in the chunk, where in the output) of each touched chunk."""
        spans: list[list[tuple[int, slice, slice]]] = []
        for (lo, hi), size in zip(box, self.chunks, strict=True):
            axis: list[tuple[int, slice, slice]] = []
            for index in range(lo // size, (hi - 1) // size + 1):
                first, last = max(lo, index * size), min(hi, (index + 1) * size)
                axis.append(
                    (
                        index,
                        slice(first - index * size, last - index * size),
                        slice(first - lo, last - lo),
                    )
                )
            spans.append(axis)
        for combo in itertools.product(*spans):
            yield (
                tuple(c[0] for c in combo),
                tuple(c[1] for c in combo),
                tuple(c[2] for c in combo),
            )

    def _fill_job(self, out: npt.NDArray[Any], job: _ChunkJob) -> None:
        self._fill(out, *job)

    def _fill(
        self,
        out: npt.NDArray[Any],
        index: tuple[int, ...],
        inner: tuple[slice, ...],
        placed: tuple[slice, ...],
    ) -> None:
        found = self._chunk(index, inner)
        if found is None:
            out[placed] = self.fill_value
        else:
            chunk, local = found
            out[placed] = chunk[local]

    def _chunk(
        self, index: tuple[int, ...], inner: tuple[slice, ...]
    ) -> tuple[npt.NDArray[Any], tuple[slice, ...]] | None:
        """The decoded part of a chunk that covers ``inner``, and ``inner`` within it."""
        key = "c/" + "/".join(str(i) for i in index)
        for attempt in (0, 1):
            data = self._source.read_key(key)
            if data is None:
                return None
            try:
                return self._decode(bytes(data), key, inner)
            except ChunkCorruptError:
                # A cache may hold a damaged copy: drop it and fetch once more.
                if attempt == 1 or not self._source.discard_key(key):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch_inner(self, shards: ShardLayout, box: Sequence[tuple[int, int]]) -> list[_Inner]:
        """Each inner chunk the box touches, with its bytes: the chunks of one shard are looked
        up in its index together, then sliced from the shard's memory map where the source
        keeps one (``mapped``), else asked for in one ``read_ranges`` call."""
        axes: list[list[_AxisPart]] = []
        for (lo, hi), size, count, stride in zip(
            box, self.chunks, shards.per_shard, shards.strides, strict=True
        ):
            axis = []
            for index in range(lo // size, (hi - 1) // size + 1):
                first, last = max(lo, index * size), min(hi, (index + 1) * size)
                shard, local = divmod(index, count)
                axis.append(
                    (
                        index,
                        shard,
                        local * stride,
                        slice(first - index * size, last - index * size),
                        slice(first - lo, last - lo),
                    )
                )
            axes.append(axis)
        by_shard: dict[tuple[int, ...], list[tuple[tuple[Any, ...], ...]]] = {}
        for combo in itertools.product(*axes):
            parts = tuple(zip(*combo, strict=True))
            by_shard.setdefault(parts[1], []).append(parts)
        jobs: list[_Inner] = []
        for grid, chunks in by_shard.items():
            key = "c/" + "/".join(map(str, grid))
            slots = [sum(parts[2]) for parts in chunks]
            for attempt in (0, 1):
                try:
                    spans = shards.chunk_ranges(self._read_range, key, slots)
                except ChunkCorruptError:
                    # A cache may hold a damaged copy of the index: drop it and fetch once more.
                    if attempt == 1 or not self._source.discard_key(key):
                        raise
                    shards.forget(key)
                    continue
                break
            whole = self._mapped(key) if self._mapped is not None else None
            if whole is not None:
                # One address and one checked-set per shard, not per inner chunk.
                base = address_of(whole) if len(whole) else 0
                memo = shards.checked_in(whole, key)
                for parts, slot, span in zip(chunks, slots, spans, strict=True):
                    if span is None:
                        jobs.append((key, slot, parts, None, None, None, None))
                        continue
                    offset, nbytes = span
                    view = whole[offset : offset + nbytes]
                    jobs.append((key, slot, parts, span, view, base + offset, memo))
                continue
            wanted = [span for span in spans if span is not None]
            found: Sequence[bytes | memoryview] = []
            if wanted:
                read = self._read_ranges(key, wanted)
                if read is None or len(read) != len(wanted):
                    raise ChunkCorruptError(
                        f"shard {self._where}/{key} has an index but its inner chunks cannot be "
                        "read: run mamamia verify"
                    )
                found = read
            fetched = iter(found)
            for parts, slot, span in zip(chunks, slots, spans, strict=True):
                if span is None:
                    jobs.append((key, slot, parts, None, None, None, None))
                    continue
                data = next(fetched)
                jobs.append((key, slot, parts, span, data, None, shards.checked_in(data, key)))
        return jobs

    def _fill_inner(self, shards: ShardLayout, out: npt.NDArray[Any], job: _Inner) -> None:
        """``_fill`` of a sharded array with its inner chunk's fetched bytes."""
        key, slot, parts, span, data, address, memo = job
        index, _shard, _slot, inner, placed = parts
        if span is None or data is None:
            out[placed] = self.fill_value
            return
        offset, nbytes = span
        for attempt in (0, 1):
            try:
                if len(data) != nbytes:
                    raise ChunkCorruptError(
                        f"chunk {self._where}/{InnerChunkLabel(key, index)} is truncated: the "
                        f"shard index says {nbytes} bytes at {offset}, {len(data)} were there"
                    )
                # An inner chunk read from a memory map is checked the first time, not again
                # from the same map (the same bytes): a slice reads dozens of chunks for one
                # plane each, and checking whole chunks cost more than decoding that plane.
                chunk, local = self._decode(
                    data,
                    key,
                    inner,
                    checked=memo is not None and bool(memo[slot]),
                    address=address,
                    index=index,
                )
                if memo is not None:
                    memo[slot] = 1
                out[placed] = chunk[local]
                return
            except ChunkCorruptError:
                # A cache may hold a damaged copy of the shard: drop it and fetch once more.
                if attempt == 1 or not self._source.discard_key(key):
                    raise
                shards.forget(key)
                found = shards.chunk_range(self._read_range, key, slot)
                if found is None:
                    out[placed] = self.fill_value
                    return
                offset, nbytes = found
                data = self._read_range(key, offset, nbytes) or b""
                address = memo = None
        raise AssertionError("unreachable")  # pragma: no cover

    def _decode(
        self,
        data: bytes | memoryview,
        key: str,
        inner: tuple[slice, ...],
        *,
        checked: bool = False,
        address: int | None = None,
        index: tuple[int, ...] | None = None,
    ) -> tuple[npt.NDArray[Any], tuple[slice, ...]]:
        """Check (unless ``checked``: these very bytes passed before) and decode a chunk: a
        format-1 chunk ``key``, or inner chunk ``index`` of shard ``key``; ``address`` is where
        ``data`` lies in memory when the caller knows it (a memory-mapped shard)."""
        trailer = 4 if self._checksummed else 0
        size = len(data)
        if size < trailer + 16:  # crc32c trailer + blosc header
            raise ChunkCorruptError(f"chunk {self._name(key, index)} is truncated ({size} bytes)")
        # The CRC-32C of a message followed by its own CRC (little-endian) is a fixed residue,
        # so the whole chunk is checked in place (crc32c reads any buffer: a view of a
        # memory-mapped shard is not copied).
        if self._checksummed and not checked and crc32c.crc32c(data) != CRC32C_RESIDUE:
            raise ChunkCorruptError(
                f"chunk {self._name(key, index)} fails its crc32c check (damaged on disk or in "
                "transit): run mamamia verify"
            )
        _version, _versionlz, _flags, typesize, nbytes, blocksize, cbytes = (
            BLOSC_HEADER.unpack_from(data)
        )
        if cbytes != size - trailer:
            raise ChunkCorruptError(
                f"chunk {self._name(key, index)} has a blosc header for {cbytes} bytes but holds "
                f"{size - trailer}"
            )
        if nbytes != self._chunk_bytes:
            raise ChunkCorruptError(
                f"chunk {self._name(key, index)} holds {nbytes} bytes; its chunk shape "
                f"{self.chunks} needs {self._chunk_bytes}"
            )
        source = data if address is None else address
        slab = self._slab_axis
        if not self._block_planes and slab >= 0:
            self._block_planes = blocksize // (self._slab_items * self._stored.itemsize)
        first, stop = inner[slab].start, inner[slab].stop
        if slab >= 0 and stop - first < self.chunks[slab] and typesize == self._stored.itemsize:
            # Only the planes the box needs: blosc decodes just the blocks that hold them.
            shape = (*self.chunks[:slab], stop - first, *self.chunks[slab + 1 :])
            part = np.empty(shape, dtype=self._stored)
            items = self._slab_items
            if decode_items(source, first * items, (stop - first) * items, part):
                local = list(inner)
                local[slab] = slice(0, stop - first)
                return part, tuple(local)
        decoded = np.empty(self.chunks, dtype=self._stored)
        # Whole chunks too on this thread alone, as the pool expects (numcodecs would start
        # blosc's own threads when called on the main one).
        if decode_all(source, decoded):
            return decoded, inner
        try:
            numcodecs.blosc.decompress(memoryview(data)[: size - trailer], decoded)
        except (RuntimeError, ValueError) as exc:
            raise ChunkCorruptError(
                f"chunk {self._name(key, index)} does not decompress: {exc}"
            ) from exc
        return decoded, inner

    def _name(self, key: str, index: tuple[int, ...] | None) -> str:
        """``<array>/<chunk>`` for a message (a shard's inner chunk named with its index)."""
        return f"{self._where}/{key if index is None else InnerChunkLabel(key, index)}"


def _cut(block: npt.NDArray[Any], local: list[Any]) -> Any:
    """Apply the integer and stepped parts of a selection to the box that was read."""
    if all(isinstance(s, slice) and s == slice(None) for s in local):
        return block
    out = block[tuple(local)]
    return np.ascontiguousarray(out) if isinstance(out, np.ndarray) else out


def open_chunk_array(source: ChunkSource, *, where: str, fallback: Callable[[], Any]) -> ArrayLike:
    """A ``ChunkArray`` over ``source`` when its layout allows, else ``fallback()`` (zarr)."""
    raw = source.read_key("zarr.json")
    if raw is None:
        return cast("ArrayLike", fallback())
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CatalogFormatError(f"{where}/zarr.json is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or not supports_fast_path(meta):
        return cast("ArrayLike", fallback())
    return ChunkArray(source, meta, where=where, fallback=fallback)
