"""The compiled box read (``mamamia._boxread`` and its C loop) against zarr-python and the
Python path: the same voxels from every kind of source, edge shards, unwritten chunks and
boxes split over the decode pool; anything it refuses is read (or raised) the Python way."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

import mamamia._boxread as boxread
import mamamia._chunks as chunks_module
from mamamia._chunks import ChunkArray, open_chunk_array
from mamamia._errors import ChunkCorruptError
from mamamia._store import StrictLocalStore

SHAPE = (2, 37, 70, 66)
SHARDS = (1, 32, 64, 64)
INNER = (1, 16, 16, 16)
#: Boxes crossing shard and inner-chunk edges, a plane, a column, the whole array, a corner.
BOXES = [
    (1, slice(3, 35), slice(10, 69), slice(5, 66)),
    (0, slice(0, 37), slice(0, 70), slice(0, 66)),
    (slice(0, 2), slice(30, 34), slice(60, 70), slice(60, 66)),
    (1, 20, slice(None), slice(None)),
    (0, slice(None), slice(None), 40),
    (1, slice(36, 37), slice(69, 70), slice(65, 66)),
]


def _data() -> np.ndarray[Any, Any]:
    data = np.random.default_rng(5).integers(-900, 4000, size=SHAPE).astype("int16")
    data[0, :16, :16, :32] = 0  # fill value: zarr-python leaves these inner chunks unwritten
    return data


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("boxread") / "a.zarr"
    array = zarr.create_array(
        store=str(where),
        shape=SHAPE,
        chunks=INNER,
        shards=SHARDS,
        dtype="int16",
        fill_value=0,
        compressors=[BloscCodec(cname="lz4hc", clevel=3, shuffle="shuffle"), Crc32cCodec()],
    )
    array[...] = _data()
    return where


class RangesOnly(StrictLocalStore):
    """The local store without memory maps: every inner chunk through ``read_ranges``, as a
    cache or a remote source hands them over."""

    def mapped(self, key: str) -> memoryview | None:
        return None


class Calls:
    """Counts calls into the C module, passing them on (or, ``refuse``, refusing them all)."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.count = 0
        self.refuse = refuse
        self.module = boxread._boxdecode

    def read_shard(self, *args: Any) -> int:
        self.count += 1
        return -1 if self.refuse else int(self.module.read_shard(*args))

    def read_chunks(self, *args: Any) -> int:
        self.count += 1
        return -1 if self.refuse else int(self.module.read_chunks(*args))


def _span(key: Any, size: int, shard: int) -> tuple[int, int]:
    """The shard indexes ``[first, end)`` a selection along one axis meets."""
    lo, hi = (key, key + 1) if isinstance(key, int) else key.indices(size)[:2]
    return lo // shard, (hi - 1) // shard + 1


def _open(path: Path, store: StrictLocalStore) -> Any:
    return open_chunk_array(store, where=str(path), fallback=lambda: zarr.open_array(str(path)))


def test_the_compiled_loop_is_built_and_taken_here(path: Path) -> None:
    # The package's install compiles it wherever a C compiler is (as here and in CI).
    assert boxread.compiled()
    array = _open(path, StrictLocalStore(path))
    assert isinstance(array, ChunkArray) and array._boxes is not None


@pytest.mark.parametrize("source", [StrictLocalStore, RangesOnly])
def test_boxes_equal_zarr_python_and_decode_in_one_call(
    path: Path, source: type[StrictLocalStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls()
    monkeypatch.setattr(boxread, "_boxdecode", calls)

    def python_decode(*args: Any) -> bool:
        raise AssertionError("a chunk was decoded by the Python path")

    monkeypatch.setattr(chunks_module, "decode_items", python_decode)
    monkeypatch.setattr(chunks_module, "decode_all", python_decode)
    array = _open(path, source(path))
    reference = zarr.open_array(str(path), mode="r")
    for box in BOXES:
        before = calls.count
        got = array[box]
        # One call per shard the box meets (the box of the whole array meets 2 x 2 x 2 x 2 of
        # them, the others fewer), not one per inner chunk.
        shards = math.prod(
            len(range(*_span(k, n, s))) for k, n, s in zip(box, SHAPE, SHARDS, strict=True)
        )
        assert calls.count - before == shards, box
        assert np.array_equal(got, reference[box]), box
        assert np.array_equal(got, _data()[box]), box


@pytest.mark.parametrize("source", [StrictLocalStore, RangesOnly])
def test_a_large_box_is_split_over_the_decode_pool(
    path: Path, source: type[StrictLocalStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls()
    monkeypatch.setattr(boxread, "_boxdecode", calls)
    monkeypatch.setattr(boxread, "_SPLIT_BYTES", 0)
    monkeypatch.setattr(boxread, "DECODE_THREADS", 2)
    array = _open(path, source(path))
    assert np.array_equal(array[...], _data())
    # Each of the 16 shards' reads in two halves, but for the two corner shards (one per
    # phase) that hold a single inner chunk.
    assert calls.count == 2 * 16 - 2


@pytest.mark.parametrize("source", [StrictLocalStore, RangesOnly])
def test_the_python_path_reads_what_the_compiled_loop_refuses(
    path: Path, source: type[StrictLocalStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(refuse=True)
    monkeypatch.setattr(boxread, "_boxdecode", calls)
    array = _open(path, source(path))
    for box in BOXES:
        before = calls.count
        assert np.array_equal(array[box], _data()[box]), box
        assert calls.count > before  # refused, then read the Python way


def test_a_damaged_inner_chunk_still_raises_chunk_corrupt_error(path: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "a.zarr"
    shutil.copytree(path, copy)
    shard = copy / "c" / "1" / "0" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    raw[40] ^= 0xFF  # inside the first inner chunk written
    shard.write_bytes(bytes(raw))
    array = _open(copy, StrictLocalStore(copy))
    with pytest.raises(ChunkCorruptError, match="crc32c"):
        array[1, 0:16, 0:16, 0:16]


def test_both_paths_share_one_memo_of_checked_chunks(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    copy = tmp_path / "a.zarr"  # a fresh memory map: nothing checked yet
    shutil.copytree(path, copy)
    store = StrictLocalStore(copy)
    array = _open(copy, store)
    box = (1, slice(0, 32), slice(0, 64), slice(0, 64))  # shard c/1/0/0/0, all 2 x 4 x 4 chunks
    assert np.array_equal(array[box], _data()[box])  # the compiled loop checks each once
    whole = store.mapped("c/1/0/0/0")
    assert whole is not None
    flags = array._shards.checked_in(whole, "c/1/0/0/0")
    assert sum(flags) == 2 * 4 * 4
    checks: list[int] = []
    real = chunks_module.crc32c.crc32c
    monkeypatch.setattr(chunks_module.crc32c, "crc32c", lambda data: checks.append(1) or real(data))
    array._boxes = None  # the Python path now: the same flags, so nothing is checked again
    assert np.array_equal(array[box], _data()[box])
    assert checks == []


def test_the_c_module_refuses_malformed_arguments() -> None:
    from mamamia._blosc_items import entry_points

    module = boxread._boxdecode
    found = entry_points()
    assert module is not None and found is not None
    out = np.zeros((4, 4, 4), dtype="int16")
    common = (*found, 4, 4, 4, 2, 4, b"\0\0", out.ctypes.data, 32, 8)
    axis = ([0], [0], [4], [0])
    index = np.zeros((1, 2), dtype="<u8")
    with pytest.raises(TypeError, match="takes 15 arguments"):
        module.read_shard(*common, [axis] * 3, index, b"")
    with pytest.raises(ValueError, match="four equal lists"):
        module.read_shard(*common, [axis, axis, ([0, 1], [0], [4], [0])], index, b"", None)
    with pytest.raises(ValueError, match="3 to 8 axes"):
        module.read_shard(*common, [axis] * 2, index, b"", None)
    with pytest.raises(ValueError, match="shorter than the index"):
        module.read_shard(*common, [axis] * 3, np.zeros((4, 2), "<u8"), b"", bytearray(2))
    with pytest.raises(ValueError, match="fill"):
        module.read_shard(*common[:7], b"\0", *common[8:], [axis] * 3, index, b"", None)
    with pytest.raises(ValueError, match="one chunk"):
        module.read_chunks(*common, [axis] * 3, [None, None], [None, None], 1)
    with pytest.raises(ValueError, match="outside the index"):
        module.read_chunks(*common, [([3], [0], [4], [0]), axis, axis], [b""], [bytearray(2)], 2)
    # An index entry pointing past the shard, or a chunk too short for its header: refused,
    # the box left to the Python path (which names it).
    past = np.array([[8, 100]], dtype="<u8")
    assert module.read_shard(*common, [axis] * 3, past, b"x" * 50, None) == -1
    assert module.read_chunks(*common, [axis] * 3, [b"short"], [None], 1) == -1
