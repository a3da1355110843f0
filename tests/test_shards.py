"""The direct chunk reader on sharded Zarr v3 arrays (``sharding_indexed``), against zarr-python.

Every array here is written by zarr-python itself, so the shard index, the inner chunk order
and the missing-chunk sentinel come from an independent writer. Shapes leave edge shards and
edge inner chunks on every spatial axis.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr.codecs import BloscCodec, Crc32cCodec

import mamamia
from mamamia._chunks import ChunkArray, open_chunk_array
from mamamia._store import ChunkCache, HttpCachedStore, StrictLocalStore

SHAPE = (3, 21, 37, 45)
SHARDS = (1, 16, 32, 32)
INNER = (1, 8, 16, 16)  # 2 x 2 x 2 inner chunks per shard
#: The layouts the reader takes: crc32c per inner chunk or on the index only; index at either end.
VARIANTS = {
    "inner-crc-end": (True, "end"),
    "index-crc-only": (False, "end"),
    "inner-crc-start": (True, "start"),
}


def _data() -> np.ndarray[Any, Any]:
    data = np.random.default_rng(11).integers(-500, 3000, size=SHAPE).astype("int16")
    data[0, :8, :16, :] = 0  # whole inner chunks of fill value: zarr-python does not write them
    return data


def _write(path: Path, inner_crc: bool, location: str) -> np.ndarray[Any, Any]:
    data = _data()
    compressors: list[Any] = [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")]
    if inner_crc:
        compressors.append(Crc32cCodec())
    shards: Any = {"shape": SHARDS, "index_location": location}
    array = zarr.create_array(
        store=str(path),
        shape=SHAPE,
        chunks=INNER,
        shards=shards,
        dtype="int16",
        fill_value=0,
        compressors=compressors,
        dimension_names=("t", "z", "y", "x"),
    )
    array[...] = data
    return data


class CountingStore(StrictLocalStore):
    """The local store, counting ranged reads (what a remote store would pay per request)."""

    def __init__(self, root: Path | str, *, read_only: bool = True) -> None:
        super().__init__(root)
        self.ranges: list[tuple[str, int, int]] = []

    def mapped(self, key: str) -> memoryview | None:
        return None  # no shard sliced from a memory map: every byte through read_ranges

    def read_ranges(self, key: str, ranges: Sequence[tuple[int, int | None]]) -> list[bytes] | None:
        # read_key and read_range come here too: every byte range is counted once.
        self.ranges.extend(
            (key, start, -1 if length is None else length) for start, length in ranges
        )
        return super().read_ranges(key, ranges)


def _open(path: Path, store: StrictLocalStore | None = None) -> Any:
    store = store if store is not None else StrictLocalStore(path)
    return open_chunk_array(
        store,
        where=str(path),
        fallback=lambda: zarr.open_array(store=store, mode="r", zarr_format=3),
    )


def _index(path: Path, key: str) -> np.ndarray[Any, Any]:
    """A shard's (offset, nbytes) table, parsed here independently of the reader."""
    raw = (path / key).read_bytes()
    count = int(np.prod([s // i for s, i in zip(SHARDS, INNER, strict=True)]))
    return np.frombuffer(raw[-(16 * count + 4) : -4], dtype="<u8").reshape(count, 2)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shards")
    paths = {}
    for name, (inner_crc, location) in VARIANTS.items():
        paths[name] = root / f"{name}.zarr"
        _write(paths[name], inner_crc, location)
    return paths


@pytest.mark.parametrize("variant", VARIANTS)
def test_sharded_arrays_take_the_fast_path(written: dict[str, Path], variant: str) -> None:
    array = _open(written[variant])
    assert isinstance(array, ChunkArray)
    assert array.shape == SHAPE and array.chunks == INNER
    assert np.array_equal(array[...], _data())
    assert np.array_equal(array[...], zarr.open_array(str(written[variant]), mode="r")[...])


def test_unwritten_inner_chunks_read_as_the_fill_value(written: dict[str, Path]) -> None:
    path = written["inner-crc-end"]
    table = _index(path, "c/0/0/0/0")
    assert (table == 2**64 - 1).all(axis=1).sum() == 2  # (0, 0, 0) and (0, 0, 1) never written
    array = _open(path)
    assert not array[0, 0:8, 0:16, 0:32].any()
    assert np.array_equal(array[0, 4:12, 10:20, 0:40], _data()[0, 4:12, 10:20, 0:40])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_boxes_equal_zarr_python(written: dict[str, Path], data: st.DataObject) -> None:
    path = written[data.draw(st.sampled_from(sorted(VARIANTS)))]
    key: list[Any] = [data.draw(st.integers(0, SHAPE[0] - 1))]
    for n in SHAPE[1:]:
        start = data.draw(st.integers(0, n - 1))
        stop = data.draw(st.integers(start + 1, n))
        step = data.draw(st.sampled_from([1, 1, 1, 3]))
        key.append(slice(start, stop, step))
    # Shards sliced from their memory map, or every inner chunk through read_ranges; decoded
    # by the compiled loop (mamamia._boxread) or chunk by chunk in Python.
    store = CountingStore(path) if data.draw(st.booleans()) else None
    array = _open(path, store)
    if data.draw(st.booleans()):
        array._boxes = None
    got = array[tuple(key)]
    assert np.array_equal(got, zarr.open_array(str(path), mode="r")[tuple(key)])


def test_the_index_is_read_once_and_only_touched_inner_chunks_are_read(
    written: dict[str, Path],
) -> None:
    path = written["inner-crc-end"]
    store = CountingStore(path)
    array = _open(path, store)
    store.ranges.clear()  # zarr.json, read at open
    assert np.array_equal(array[1, 0:8, 0:16, 0:16], _data()[1, 0:8, 0:16, 0:16])
    index_read, chunk_read = store.ranges
    assert index_read[0] == chunk_read[0] == "c/1/0/0/0" and index_read[1] < 0
    offset, nbytes = _index(path, "c/1/0/0/0")[0]
    assert chunk_read[1:] == (offset, nbytes)
    store.ranges.clear()
    array[1, 8:16, 16:32, 16:32]  # another inner chunk of the same shard: no index read
    assert [key for key, _start, _length in store.ranges] == ["c/1/0/0/0"]


def test_a_thin_box_is_decoded_on_the_calling_thread(
    written: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mamamia._decode_pool as pool_module

    path = written["inner-crc-end"]
    array = _open(path)
    array._boxes = None  # the Python path's rule (the compiled loop splits by bytes decoded)
    array[1, 3, :, :]  # the first decode tells the reader how many planes a blosc block holds
    handed_off: list[int] = []
    pool = pool_module.decode_pool()

    class Counting:
        def submit(self, *args: Any) -> Any:
            handed_off.append(1)
            return pool.submit(*args)

    monkeypatch.setattr(pool_module, "decode_pool", lambda: Counting())
    # One plane of 3 x 3 inner chunks (more than a crop's inline limit), yet nothing handed off.
    assert np.array_equal(array[1, 9, :, :], _data()[1, 9, :, :])
    assert handed_off == []
    assert np.array_equal(array[1, :, :, 7], _data()[1, :, :, 7])  # 3 x 3 whole chunks
    assert handed_off


def test_a_flipped_byte_in_an_inner_chunk_raises_chunk_corrupt_error(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    data = _write(path, True, "end")
    shard = path / "c" / "1" / "0" / "1" / "1"
    offset, nbytes = _index(path, "c/1/0/1/1")[4]  # its inner chunk (0, 1, 0, 0)
    raw = bytearray(shard.read_bytes())
    raw[int(offset) + int(nbytes) // 2] ^= 0x01
    shard.write_bytes(bytes(raw))
    array = _open(path)
    assert np.array_equal(array[1, 0:8, 32:37, 32:45], data[1, 0:8, 32:37, 32:45])
    with pytest.raises(mamamia.ChunkCorruptError, match=r"c/1/0/1/1 \(inner chunk 1/1/2/2\)"):
        array[1, 9, 33, 33]


def test_a_damaged_shard_index_raises_chunk_corrupt_error(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    _write(path, False, "end")
    shard = path / "c" / "2" / "0" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    raw[-10] ^= 0x40
    shard.write_bytes(bytes(raw))
    with pytest.raises(mamamia.ChunkCorruptError, match=r"c/2/0/0/0 has an index that fails"):
        _open(path)[2, 0, 0, 0]
    shard.write_bytes(bytes(raw[-20:]))
    with pytest.raises(mamamia.ChunkCorruptError, match="truncated"):
        _open(path)[2, 0, 0, 0]


def test_an_inner_chunk_cut_short_raises_naming_it(tmp_path: Path) -> None:
    # The index at the start survives a cut; the inner chunks past the new end do not.
    path = tmp_path / "a.zarr"
    _write(path, True, "start")
    shard = path / "c" / "2" / "0" / "0" / "0"
    raw = shard.read_bytes()
    shard.write_bytes(raw[: len(raw) - 100])
    for store in (None, CountingStore(path)):  # sliced from the map, or through read_ranges
        with pytest.raises(mamamia.ChunkCorruptError, match=r"c/2/0/0/0 \(inner chunk .*truncated"):
            _open(path, store)[2, :, :, :]


def test_a_missing_shard_raises_and_a_known_empty_one_reads_as_fill(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    _write(path, True, "end")
    (path / "c" / "0" / "1" / "0" / "0").unlink()
    array = _open(path)
    with pytest.raises(mamamia.ChunkMissingError, match="c/0/1/0/0"):
        array[0, 16:18, 0:2, 0:2]
    (path / "c" / "0" / "1" / "0" / "0.empty").write_bytes(b"")
    assert not _open(path)[0, 16:21, 0:32, 0:32].any()


def test_a_cache_without_ranged_reads_reads_shards_and_refetches_a_damaged_one(
    tmp_path: Path,
) -> None:
    source = tmp_path / "source.zarr"
    data = _write(source, True, "end")
    fetched: list[str] = []

    def fetch(relative: str) -> bytes | None:
        fetched.append(relative)
        target = source / relative.removeprefix("volumes/A/g.zarr/")
        return target.read_bytes() if target.is_file() else None

    cache = ChunkCache(tmp_path / "cache")
    array = open_chunk_array(
        HttpCachedStore(cache, "volumes/A/g.zarr", fetch), where="A", fallback=lambda: None
    )
    assert isinstance(array, ChunkArray)
    box = (2, slice(0, 16), slice(0, 32), slice(0, 32))
    assert np.array_equal(array[box], data[box])
    cached = cache.path("volumes/A/g.zarr/c/2/0/0/0")
    offset, _nbytes = _index(source, "c/2/0/0/0")[0]
    damaged = bytearray(cached.read_bytes())
    damaged[int(offset) + 20] ^= 0xFF
    cached.write_bytes(bytes(damaged))
    fetched.clear()
    assert np.array_equal(array[box], data[box])
    assert fetched == ["volumes/A/g.zarr/c/2/0/0/0"]
    assert cached.read_bytes() == (source / "c/2/0/0/0").read_bytes()


def test_a_shard_rewritten_in_place_between_reads_is_read_as_it_now_is(tmp_path: Path) -> None:
    # Local reads keep shards memory-mapped; a file another tool truncates or rewrites in place
    # (cp over it, rsync --inplace) must be mapped afresh, never read past its new end.
    path = tmp_path / "a.zarr"
    data = _write(path, True, "end")
    array = _open(path)
    assert np.array_equal(array[1, 0:16, 0:32, 0:32], data[1, 0:16, 0:32, 0:32])
    shard = path / "c" / "1" / "0" / "0" / "0"
    whole = shard.read_bytes()
    with shard.open("r+b") as handle:  # in place: same inode, shorter
        handle.truncate(len(whole) // 3)
    with pytest.raises(mamamia.ChunkCorruptError, match=r"c/1/0/0/0"):
        _open(path)[1, 0:16, 0:32, 0:32]
    with shard.open("r+b") as handle:  # and back, in place again
        handle.write(whole)
    assert np.array_equal(_open(path)[1, 0:16, 0:32, 0:32], data[1, 0:16, 0:32, 0:32])


def test_a_chunk_damaged_after_it_was_read_is_caught_on_the_next_read(tmp_path: Path) -> None:
    # Checked chunks are not checked again from the same memory map; a file changed since
    # (here one byte, in place) is mapped afresh, so its chunks are checked again.
    path = tmp_path / "a.zarr"
    data = _write(path, True, "end")
    array = _open(path)
    box = (1, slice(8, 16), slice(32, 48), slice(32, 48))  # inner chunk 1/1/2/2 whole
    assert np.array_equal(array[box], data[box])
    assert np.array_equal(array[box], data[box])  # again: from the checked map
    offset, nbytes = _index(path, "c/1/0/1/1")[4]  # that inner chunk's bytes
    shard = path / "c" / "1" / "0" / "1" / "1"
    time.sleep(0.01)  # a modification time the file system can tell apart
    with shard.open("r+b") as handle:
        handle.seek(int(offset) + int(nbytes) // 2)
        byte = handle.read(1)
        handle.seek(int(offset) + int(nbytes) // 2)
        handle.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(mamamia.ChunkCorruptError, match=r"c/1/0/1/1 \(inner chunk"):
        array[box]
