"""Zarr stores the SDK reads through: strict local reads, and a bounded chunk cache over HTTP.

Every store refuses to turn a missing chunk into fill values: ingest writes every chunk, so a
missing one is damage (or, in an offline cache, a chunk never fetched) and raises
``ChunkMissingError``. Chunks the server reports as never written are remembered as empty with a
``<chunk>.empty`` marker, so they read as fill values without asking again.

The cache mirrors the catalog layout (``volumes/<CASE>/<GENERATION>.zarr/...``), so
``mamamia.open(cache_dir)`` reads it offline. A shard may be cached whole or as the byte ranges
read so far (``<shard>.parts/``, see ``mamamia._pieces``); both stores read either. Entries are written to a temporary name and renamed
into place, so a writer killed mid-write leaves no corrupt entry; several processes may share a
cache. It is bounded: least-recently-used chunk files are evicted past ``max_bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zarr.abc.store import ByteRequest
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.core.buffer.core import default_buffer_prototype
from zarr.storage import LocalStore

from mamamia._atomic import ATOMIC_TEMP_PREFIX, write_atomic
from mamamia._errors import ChunkCorruptError, ChunkMissingError
from mamamia._mapped import mapped_files
from mamamia._pieces import (
    COALESCE_GAP,
    PARTS_SUFFIX,
    PieceIndex,
    RangeAnswer,
    RangeFetcher,
    Span,
    coalesce,
    piece_name,
    span_of,
)

__all__ = [
    "DEFAULT_CACHE_MAX_BYTES",
    "ChunkCache",
    "Fetcher",
    "HttpCachedStore",
    "StrictLocalStore",
    "is_chunk_key",
]

EMPTY_SUFFIX = ".empty"
#: How many cache keys' resolved paths a cache remembers.
_REMEMBERED_PATHS = 4096


def is_chunk_key(key: str) -> bool:
    """True for a chunk key (``c/0/1/2/3``), false for metadata (``zarr.json``)."""
    return key == "c" or key.startswith("c/")


class StrictLocalStore(LocalStore):
    """A read-only LocalStore whose missing chunks raise instead of reading as fill values."""

    def __init__(self, root: Path | str, *, read_only: bool = True) -> None:
        super().__init__(root, read_only=True)
        self._root_text = str(self.root)

    def with_read_only(self, read_only: bool = True) -> StrictLocalStore:
        return type(self)(self.root)

    def _missing(self, key: str) -> Buffer | None:
        if not is_chunk_key(key) or (self.root / (key + EMPTY_SUFFIX)).exists():
            return None
        raise ChunkMissingError(
            f"chunk {key} of {self.root} is missing (never fetched into this cache, or the "
            "catalog is damaged: run mamamia verify)"
        )

    def read_key(self, key: str) -> bytes | None:
        """The file's bytes (the fast read path, ``mamamia._chunks``), same rules as ``get``:
        plain os calls (half the cost of Path.read_bytes for a chunk; a whole small file is
        not worth a memory map)."""
        try:
            fd = os.open(os.path.join(self._root_text, key), os.O_RDONLY)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            self._missing(key)
            return None
        try:
            size = os.fstat(fd).st_size
            data = os.pread(fd, size, 0)
            while len(data) < size:  # a short read: keep reading to the end
                more = os.pread(fd, size - len(data), len(data))
                if not more:
                    break
                data += more
            return data
        except IsADirectoryError:
            self._missing(key)
            return None
        finally:
            os.close(fd)

    def mapped(self, key: str) -> memoryview | None:
        """The whole file as a view of a kept memory map, so a reader slices its inner chunks
        itself; None where there is no whole file (missing, or pieces in a cache folder):
        ``read_ranges`` answers then, with its errors."""
        try:
            return mapped_files.view(os.path.join(self._root_text, key))
        except (OSError, ValueError):
            return None

    def read_range(self, key: str, start: int, length: int) -> bytes | None:
        """``length`` bytes at ``start`` of a file (``start < 0``: from its end); an inner
        chunk of a shard is read without reading the shard."""
        found = self.read_ranges(key, ((start, length),))
        return None if found is None else bytes(found[0])

    def read_ranges(self, key: str, ranges: Sequence[Span]) -> Sequence[bytes | memoryview] | None:
        """The bytes of each ``(start, length)`` of one file (``start < 0``: from its end;
        ``length`` None: to the end), as views of a kept memory map (no copy); in a cache
        holding only pieces of the file, from the pieces (``ChunkMissingError`` for a range
        no piece holds)."""
        path = os.path.join(self._root_text, key)
        found = _read_whole(path, ranges)
        if found is not None:
            return found
        pieces = PieceIndex.scan(path + PARTS_SUFFIX) if is_chunk_key(key) else None
        if pieces is None:
            self._missing(key)
            return None
        read: list[bytes | memoryview] = []
        for (start, length), data in zip(ranges, pieces.read_all(ranges), strict=True):
            if data is None:
                if start < 0:
                    what = f"its last {length} bytes"
                elif length is None:
                    what = f"bytes {start} to the end"
                else:
                    what = f"{length} bytes at {start}"
                raise ChunkMissingError(
                    f"chunk {key} of {self.root}: {what} were never fetched into this cache"
                )
            read.append(data)
        return read

    def discard_key(self, key: str) -> bool:
        return False  # the catalog itself: nothing to refetch from

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        value = await super().get(key, prototype, byte_range)
        if value is None and byte_range is not None:
            return await asyncio.to_thread(self._pieces_get, key, prototype, byte_range)
        return value if value is not None else self._missing(key)

    def get_sync(
        self,
        key: str,
        *,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        value = super().get_sync(key, prototype=prototype, byte_range=byte_range)
        if value is None and byte_range is not None:
            return self._pieces_get(key, prototype, byte_range)
        return value if value is not None else self._missing(key)

    def _pieces_get(
        self, key: str, prototype: BufferPrototype | None, byte_range: ByteRequest
    ) -> Buffer | None:
        """A ranged ``get`` of a file this cache holds pieces of (zarr-python's shard reads)."""
        found = self.read_ranges(key, [span_of(byte_range)])
        return None if found is None else _buffer(found[0], prototype)


def _buffer(data: bytes | memoryview, prototype: BufferPrototype | None) -> Buffer:
    # A copy: zarr may keep the buffer longer than a kept memory map should live.
    return (prototype or default_buffer_prototype()).buffer.from_bytes(bytes(data))


def _read_whole(path: str, ranges: Sequence[Span]) -> list[memoryview] | None:
    """Views of each range of a whole file (cut short at its end) from a kept memory map, None
    when there is no such file."""
    try:
        view = mapped_files.view(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except (OSError, ValueError):
        if os.path.isdir(path):  # mmap's ENODEV for a folder
            return None
        raise
    size = len(view)
    found: list[memoryview] = []
    for start, length in ranges:
        begin = max(0, size + start) if start < 0 else min(start, size)
        found.append(view[begin : size if length is None else begin + length])
    return found


def _slice(data: bytes, start: int, length: int | None) -> bytes:
    """A ``Span`` of bytes held in memory (as ``_pread`` reads it from a file)."""
    if start < 0:
        start = max(0, len(data) + start)
    return data[start:] if length is None else data[start : start + length]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    bytes_fetched: int = 0


#: The chunk cache's size bound unless a caller sets one (20 GiB).
DEFAULT_CACHE_MAX_BYTES = 20 * 2**30


class ChunkCache:
    """A size-bounded folder of files keyed by catalog-relative path, shared across processes."""

    def __init__(self, root: str | Path, max_bytes: int = DEFAULT_CACHE_MAX_BYTES) -> None:
        self.root = Path(root).expanduser().resolve()
        self.max_bytes = int(max_bytes)
        self.stats = CacheStats()
        self._written_since_check = 0
        self._lock = threading.Lock()
        self._paths: dict[str, Path] = {}
        (self.root / ".mamamia").mkdir(parents=True, exist_ok=True)

    def path(self, relative: str) -> Path:
        """Where ``relative`` lies in the cache; ``ValueError`` for a key that escapes it. The
        answers are remembered (a bounded number): resolving a path costs a system call per
        folder, and a warm crop asks for the same few keys again and again."""
        found = self._paths.get(relative)
        if found is not None:
            return found
        target = (self.root / relative).resolve()
        if not target.is_relative_to(self.root):
            raise ValueError(f"cache key {relative!r} escapes the cache folder")
        if len(self._paths) >= _REMEMBERED_PATHS:
            self._paths.clear()
        self._paths[relative] = target
        return target

    def read(self, relative: str) -> bytes | None:
        target = self.path(relative)
        try:
            data = target.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        with contextlib.suppress(OSError):
            os.utime(target)  # recency for LRU eviction
        with self._lock:
            self.stats.hits += 1
        return data

    def is_known_empty(self, relative: str) -> bool:
        return self.path(relative + EMPTY_SUFFIX).exists()

    def write(self, relative: str, data: bytes) -> None:
        write_atomic(self.path(relative), data)
        with self._lock:
            self.stats.misses += 1
            self.stats.bytes_fetched += len(data)
            self._written_since_check += len(data)
            check = self._written_since_check > max(self.max_bytes // 20, 1 << 20)
            if check:
                self._written_since_check = 0
        if check:
            self.evict()

    def count_hit(self) -> None:
        with self._lock:
            self.stats.hits += 1

    def mark_empty(self, relative: str) -> None:
        write_atomic(self.path(relative + EMPTY_SUFFIX), b"")

    def entries(self) -> list[tuple[Path, int, float]]:
        """(path, size, last use) of every cached volume file."""
        found: list[tuple[Path, int, float]] = []
        volumes = self.root / "volumes"
        for folder, _dirs, files in os.walk(volumes):
            for name in files:
                path = Path(folder) / name
                with contextlib.suppress(FileNotFoundError):
                    info = path.stat()
                    found.append((path, info.st_size, info.st_mtime))
        return found

    def size(self) -> int:
        return sum(size for _path, size, _used in self.entries())

    def evict(self, max_bytes: int | None = None) -> int:
        """Delete least-recently-used chunks (and stale partial files) until under the bound."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        removed = 0
        with (self.root / ".mamamia" / "evict.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = self.entries()
            now = time.time()
            for path, _size, used in entries:
                if ATOMIC_TEMP_PREFIX in path.name and now - used > 3600:
                    path.unlink(missing_ok=True)
            chunks = [e for e in entries if ATOMIC_TEMP_PREFIX not in e[0].name]
            total = sum(size for _path, size, _used in chunks)
            # Metadata (zarr.json) is tiny and needed to open arrays offline, and a shard's index
            # (piece ``end-<n>``) to read any of its pieces: evict chunks first, metadata last.
            chunks.sort(
                key=lambda e: (e[0].name == "zarr.json", e[0].name.startswith("end-"), e[2])
            )
            for path, size, _used in chunks:
                if total <= limit:
                    break
                path.unlink(missing_ok=True)
                mapped_files.forget(str(path))  # a kept map would hold its disk space
                total -= size
                removed += 1
        return removed

    def clear(self) -> int:
        return self.evict(max_bytes=0)


#: fetch(relative_path) -> bytes, or None when the server has no such key (HTTP 404).
Fetcher = Callable[[str], "bytes | None"]


class HttpCachedStore(LocalStore):
    """A read-only zarr store for one array: chunks come from the cache, else from the server.

    ``prefix`` is the array's catalog-relative path (``volumes/<CASE>/<GEN>.zarr/0``). With
    ``fetch_ranges``, a shard's byte ranges are fetched as the reader asks for them (ranges at
    most ``gap`` bytes apart as one) and cached as pieces; without it (or for an open-ended
    range) the whole object is fetched once.
    """

    def __init__(
        self,
        cache: ChunkCache,
        prefix: str,
        fetch: Fetcher,
        fetch_ranges: RangeFetcher | None = None,
        *,
        gap: int = COALESCE_GAP,
    ) -> None:
        super().__init__(cache.path(prefix), read_only=True)
        self._cache = cache
        self._prefix = prefix.strip("/")
        self._fetch = fetch
        self._fetch_ranges = fetch_ranges
        self._gap = gap
        # One fetch per key at a time: decode threads that miss the same key (a shard another
        # thread just dropped as damaged, or overlapping boxes) wait for one download instead
        # of each making one.
        self._fetching: dict[str, threading.Lock] = {}
        self._fetching_guard = threading.Lock()
        # The pieces last seen of each object (stale at worst: a miss looks on disk again).
        self._pieces: dict[str, PieceIndex] = {}

    def with_read_only(self, read_only: bool = True) -> HttpCachedStore:
        return type(self)(self._cache, self._prefix, self._fetch, self._fetch_ranges, gap=self._gap)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HttpCachedStore) and other._prefix == self._prefix

    def __hash__(self) -> int:
        return hash(self._prefix)

    async def _open(self, *, mode: Any = None) -> None:
        self._is_open = True

    def _ensure_open_sync(self) -> None:
        self._is_open = True

    def _key_lock(self, relative: str) -> threading.Lock:
        with self._fetching_guard:
            return self._fetching.setdefault(relative, threading.Lock())

    def read_key(self, key: str) -> bytes | None:
        """The key's bytes from the cache, else from the server (then cached whole)."""
        relative = f"{self._prefix}/{key}"
        data = self._cache.read(relative)
        if data is not None:
            return data
        with self._key_lock(relative):
            return self._fetch_whole(relative)

    def _fetch_whole(self, relative: str) -> bytes | None:
        """The whole object, cached (call with the key's lock held)."""
        data = self._cache.read(relative)  # another thread may have fetched it meanwhile
        if data is not None:
            return data
        if self._cache.is_known_empty(relative):
            return None
        data = self._fetch(relative)
        if data is None:
            # Generations are immutable, so an absent key stays absent: remember it.
            self._cache.mark_empty(relative)
            return None
        self._keep_whole(relative, data)
        return data

    def _keep_whole(self, relative: str, data: bytes) -> None:
        path = self._cache.path(relative)
        self._cache.write(relative, data)
        mapped_files.forget(str(path))
        # The whole object answers every range now: its pieces are redundant.
        shutil.rmtree(str(path) + PARTS_SUFFIX, ignore_errors=True)
        self._pieces.pop(relative, None)

    def read_range(self, key: str, start: int, length: int) -> bytes | None:
        """``length`` bytes at ``start`` (``start < 0``: the last ``length`` bytes)."""
        found = self.read_ranges(key, ((start, length),))
        return None if found is None else bytes(found[0])

    def read_ranges(self, key: str, ranges: Sequence[Span]) -> list[bytes | memoryview] | None:
        """The bytes of each range of one object: from the cache (the whole object or pieces)
        where it holds them, the others fetched in as few requests as the source allows
        (neighbours coalesced) and cached as pieces. None where the object was never written."""
        relative = f"{self._prefix}/{key}"
        found = self._cached(relative, ranges, look_again=False)
        if found is not None and all(data is not None for data in found):
            return [data for data in found if data is not None]
        with self._key_lock(relative):
            found = self._cached(relative, ranges, look_again=True)
            if found is None:
                return None
            missing = [span for span, data in zip(ranges, found, strict=True) if data is None]
            if missing:
                fetched = self._fetch_missing(relative, missing)
                if fetched is None:
                    return None
                if isinstance(fetched, bytes):
                    return [_slice(fetched, start, length) for start, length in ranges]
                found = [
                    data if data is not None else _cut(fetched, span)
                    for span, data in zip(ranges, found, strict=True)
                ]
        return [data or b"" for data in found]

    def _cached(
        self, relative: str, ranges: Sequence[Span], *, look_again: bool
    ) -> list[bytes | memoryview | None] | None:
        """Each range from the cache (None where it has no piece holding it); None when the
        object is known never to have been written."""
        path = str(self._cache.path(relative))
        whole = _read_whole(path, ranges)
        if whole is not None:
            self._cache.count_hit()
            mapped_files.touch(path)  # recency for LRU eviction; the map stays
            return list[bytes | memoryview | None](whole)
        pieces = None if look_again else self._pieces.get(relative)
        if pieces is None:
            pieces = PieceIndex.scan(path + PARTS_SUFFIX)
            if pieces is None:
                if look_again and self._cache.is_known_empty(relative):
                    return None
                pieces = PieceIndex(path + PARTS_SUFFIX)
            self._pieces[relative] = pieces
        found: list[bytes | memoryview | None] = list(pieces.read_all(ranges))
        if any(data is not None for data in found):
            self._cache.count_hit()
        return found

    def _fetch_missing(
        self, relative: str, missing: Sequence[Span]
    ) -> bytes | list[tuple[int, bytes | memoryview]] | None:
        """Fetch ranges no cached piece holds: the whole object (bytes) where the source sent
        it, else the fetched (coalesced) ranges as ``(start, bytes)``, each cached as a piece."""
        if self._fetch_ranges is None or any(length is None for _start, length in missing):
            return self._fetch_whole(relative)
        closed = [(start, length) for start, length in missing if length is not None]
        suffix = max((length for start, length in closed if start < 0), default=0)
        wanted = coalesce((span for span in closed if span[0] >= 0), self._gap)
        if suffix:
            wanted.append((-suffix, suffix))
        answer = self._fetch_ranges(relative, wanted)
        if answer is None:
            self._cache.mark_empty(relative)
            return None
        if answer.whole is not None:
            self._keep_whole(relative, answer.whole)
            return answer.whole
        parts = _parts_of(answer, len(wanted), relative)
        fetched: list[tuple[int, bytes | memoryview]] = []
        for (start, length), data in zip(wanted, parts, strict=True):
            kept: bytes | memoryview = data
            if data and (start >= 0 or len(data) == length):
                name = f"{relative}{PARTS_SUFFIX}/{piece_name(start, len(data))}"
                self._cache.write(name, data)
                # Read on from the piece just written: its map (and the inner chunks checked
                # in it) is then what the next, warm read of these bytes finds.
                with contextlib.suppress(OSError):
                    kept = mapped_files.view(str(self._cache.path(name)))
                if len(kept) != len(data):
                    kept = data  # replaced meanwhile: answer what was fetched
            fetched.append((start, kept))
        self._pieces.pop(relative, None)  # look on disk again next time
        return fetched

    def holds(self, key: str, spans: Callable[[], Sequence[tuple[int, int]] | None]) -> bool:
        """True when the cache answers every one of ``spans()`` of ``key`` without a request:
        the whole object, or pieces covering each span (``spans`` is asked only then)."""
        relative = f"{self._prefix}/{key}"
        path = str(self._cache.path(relative))
        if os.path.isfile(path):
            return True
        pieces = PieceIndex.scan(path + PARTS_SUFFIX)
        if pieces is None:
            return False
        wanted = spans()
        return wanted is not None and all(pieces.find(s, n) is not None for s, n in wanted)

    def discard_key(self, key: str) -> bool:
        """Drop a (damaged) cached copy, whole or pieces, so the next read fetches it again."""
        relative = f"{self._prefix}/{key}"
        path = self._cache.path(relative)
        path.unlink(missing_ok=True)
        mapped_files.forget(str(path))
        shutil.rmtree(str(path) + PARTS_SUFFIX, ignore_errors=True)
        self._pieces.pop(relative, None)
        return True

    def _load(
        self, key: str, prototype: BufferPrototype | None, byte_range: ByteRequest | None
    ) -> Buffer | None:
        if byte_range is None:
            data = self.read_key(key)
        else:
            found = self.read_ranges(key, [span_of(byte_range)])
            data = None if found is None else bytes(found[0])
        return None if data is None else _buffer(data, prototype)

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        return await asyncio.to_thread(self._load, key, prototype, byte_range)

    def get_sync(
        self,
        key: str,
        *,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        return self._load(key, prototype, byte_range)


def _parts_of(answer: RangeAnswer, count: int, relative: str) -> tuple[bytes, ...]:
    if answer.parts is None or len(answer.parts) != count:
        raise ChunkCorruptError(f"{relative}: the source answered {count} ranges wrongly")
    return answer.parts


def _cut(fetched: Sequence[tuple[int, bytes | memoryview]], span: Span) -> bytes | memoryview:
    """One asked range from the ranges just fetched (a suffix from the suffix fetched)."""
    start, length = span
    assert length is not None  # open-ended ranges fetch the whole object
    for first, data in fetched:
        if start < 0 and first < 0:
            return data[max(0, len(data) - length) :]
        if 0 <= first <= start < first + len(data):
            return data[start - first : start - first + length]
    return b""  # past the end of the object: the reader reports it truncated
