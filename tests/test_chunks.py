"""The SDK's direct chunk reader (``mamamia._chunks``) against zarr-python on the same arrays.

Arrays are written by zarr-python itself with the catalog's codec chain (bytes, blosc, crc32c),
so the reader is checked against an independent writer, selection by selection.
"""

from __future__ import annotations

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
CHUNKS = (1, 8, 16, 16)  # edge chunks on every spatial axis


def _write(path: Path, dtype: str = "int16", compressors: Any = None) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(7)
    data = rng.integers(-500, 3000, size=SHAPE).astype(dtype)
    array = zarr.create_array(
        store=str(path),
        shape=SHAPE,
        chunks=CHUNKS,
        dtype=dtype,
        fill_value=0,
        compressors=compressors
        if compressors is not None
        else [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"), Crc32cCodec()],
        dimension_names=("t", "z", "y", "x"),
    )
    array[...] = data
    return data


def _open(path: Path) -> Any:
    store = StrictLocalStore(path)
    return open_chunk_array(
        store,
        where=str(path),
        fallback=lambda: zarr.open_array(store=store, mode="r", zarr_format=3),
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray[Any, Any]]:
    path = tmp_path_factory.mktemp("chunks") / "a.zarr"
    return path, _write(path)


def test_the_catalog_layout_takes_the_fast_path(written: tuple[Path, Any]) -> None:
    path, data = written
    array = _open(path)
    assert isinstance(array, ChunkArray)
    assert array.shape == SHAPE and array.chunks == CHUNKS and array.dtype == np.int16
    assert np.array_equal(array[...], data)


def test_another_codec_chain_falls_back_to_zarr(tmp_path: Path) -> None:
    path = tmp_path / "gzip.zarr"
    data = _write(path, compressors=[zarr.codecs.GzipCodec()])
    array = _open(path)
    assert not isinstance(array, ChunkArray)
    assert np.array_equal(array[1, 2:9], data[1, 2:9])


SELECTIONS: list[Any] = [
    (1, slice(3, 19), slice(5, 36), slice(0, 45)),
    (0, 0, 0, 0),
    (-1, -1, slice(None), -3),
    (2, slice(None, None, 3), slice(30, 2, -4), slice(None, None, -1)),
    (Ellipsis, 7),
    (1, Ellipsis),
    (slice(0, 0), slice(None)),
    (2, slice(18, 40)),  # a stop past the end clips, as numpy does
    1,
    (slice(None), 4, slice(7, 8), slice(44, None)),
]


@pytest.mark.parametrize("key", SELECTIONS, ids=[repr(k)[:40] for k in SELECTIONS])
def test_basic_selections_equal_numpy(written: tuple[Path, Any], key: Any) -> None:
    path, data = written
    got = _open(path)[key]
    want = data[key]
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.array_equal(got, want)


def test_fancy_selections_go_through_zarr(written: tuple[Path, Any]) -> None:
    path, data = written
    array = _open(path)
    assert np.array_equal(array[1, [0, 5, 9]], data[1, [0, 5, 9]])


@pytest.mark.parametrize("key", [(3,), (0, 21), (0, 0, -38), (0, 0, 0, 0, 0)])
def test_out_of_range_indices_raise_index_error(written: tuple[Path, Any], key: Any) -> None:
    path, _data = written
    with pytest.raises(IndexError):
        _open(path)[key]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_boxes_equal_zarr_python(written: tuple[Path, Any], data: st.DataObject) -> None:
    path, source = written
    key: list[Any] = [data.draw(st.integers(0, SHAPE[0] - 1))]
    for n in SHAPE[1:]:
        start = data.draw(st.integers(0, n - 1))
        stop = data.draw(st.integers(start + 1, n))
        step = data.draw(st.sampled_from([1, 1, 1, 2, 5]))
        key.append(slice(start, stop, step))
    reference = zarr.open_array(str(path), mode="r")
    got = _open(path)[tuple(key)]
    assert np.array_equal(got, reference[tuple(key)])
    assert np.array_equal(got, source[tuple(key)])


def test_a_flipped_byte_raises_chunk_corrupt_error(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    _write(path)
    chunk = path / "c" / "1" / "1" / "1" / "1"
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    chunk.write_bytes(bytes(raw))
    array = _open(path)
    assert np.array_equal(array[1, 0:8, 0:16, 0:16], zarr.open_array(str(path))[1, 0:8, 0:16, 0:16])
    with pytest.raises(mamamia.ChunkCorruptError, match=r"c/1/1/1/1 fails its crc32c"):
        array[1, 8:9, 16:17, 16:17]


def test_a_truncated_chunk_raises_chunk_corrupt_error(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    _write(path)
    chunk = path / "c" / "0" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:10])
    with pytest.raises(mamamia.ChunkCorruptError, match="truncated"):
        _open(path)[0, 0, 0, 0]


def test_a_missing_chunk_raises_and_a_known_empty_one_reads_as_fill(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    _write(path)
    (path / "c" / "0" / "1" / "0" / "0").unlink()
    array = _open(path)
    with pytest.raises(mamamia.ChunkMissingError, match="c/0/1/0/0"):
        array[0, 8:10, 0:2, 0:2]
    (path / "c" / "0" / "1" / "0" / "0.empty").write_bytes(b"")
    assert not array[0, 8:16, 0:16, 0:16].any()


def test_a_corrupt_cached_chunk_is_fetched_again_once(tmp_path: Path) -> None:
    source = tmp_path / "source.zarr"
    data = _write(source)
    fetched: list[str] = []

    def fetch(relative: str) -> bytes | None:
        fetched.append(relative)
        target = source / relative.removeprefix("volumes/A/g.zarr/")
        return target.read_bytes() if target.is_file() else None

    cache = ChunkCache(tmp_path / "cache")
    store = HttpCachedStore(cache, "volumes/A/g.zarr", fetch)
    array = open_chunk_array(store, where="A", fallback=lambda: None)
    assert isinstance(array, ChunkArray)
    assert np.array_equal(array[2, 0:8, 0:16, 0:16], data[2, 0:8, 0:16, 0:16])
    cached = cache.path("volumes/A/g.zarr/c/2/0/0/0")
    damaged = bytearray(cached.read_bytes())
    damaged[20] ^= 0xFF
    cached.write_bytes(bytes(damaged))
    fetched.clear()
    assert np.array_equal(array[2, 0:8, 0:16, 0:16], data[2, 0:8, 0:16, 0:16])
    assert fetched == ["volumes/A/g.zarr/c/2/0/0/0"]
    assert cached.read_bytes() == (source / "c/2/0/0/0").read_bytes()


def test_catalog_volumes_read_through_the_fast_path(catalog_dir: Path) -> None:
    cat = mamamia.open(catalog_dir)
    case = cat.case(cat.cohort("has_images").case_ids[0])
    paths = {row["kind"]: row["zarr_path"] for row in case.volumes}
    for kind, volume in (("image", case.image), ("expert", case.mask("expert"))):
        assert isinstance(volume._array, ChunkArray)
        reference = zarr.open_array(str(catalog_dir / paths[kind]), mode="r")
        assert np.array_equal(volume._array[...], reference[...])


def test_partial_and_full_decodes_agree(
    written: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mamamia._blosc_items as blosc_items

    path, data = written
    box = (2, slice(3, 13), slice(5, 30), slice(1, 44))  # partial planes of two z-chunks
    whole = (slice(None), slice(None), slice(5, 30), slice(1, 44))  # whole chunks only
    partial, direct = _open(path)[box], _open(path)[whole]
    assert blosc_items._getitem is not None, "numcodecs' blosc_getitem should bind on this build"
    assert blosc_items._decompress is not None, "and so should blosc_decompress_ctx"
    monkeypatch.setattr(blosc_items, "_getitem", None)
    full = _open(path)[box]
    monkeypatch.setattr(blosc_items, "_decompress", None)  # numcodecs' own decompress
    numcodecs_box, numcodecs_whole = _open(path)[box], _open(path)[whole]
    for got in (partial, full, numcodecs_box):
        assert np.array_equal(got, data[box])
    assert np.array_equal(direct, data[whole]) and np.array_equal(numcodecs_whole, data[whole])


def test_async_reads_equal_sync_reads(catalog_dir: Path, written: tuple[Path, Any]) -> None:
    import asyncio

    cat = mamamia.open(catalog_dir)
    case = cat.case(cat.cohort("has_images").case_ids[0])
    image, mask = case.image, case.mask("expert")
    box = (1, slice(2, 20), slice(5, 40), slice(3, 50))

    async def both() -> tuple[Any, Any, Any]:
        return (
            await image.read_async(box),
            await mask.read_async(box[1:]),
            await _open(written[0]).getitem_async((1, [0, 3], slice(2, 9))),  # via zarr-python
        )

    got_image, got_mask, fancy = asyncio.run(both())
    assert np.array_equal(got_image, image[box]) and np.array_equal(got_mask, mask[box[1:]])
    assert np.array_equal(fancy, written[1][1, [0, 3], 2:9])


def test_an_async_read_raises_a_damaged_chunk_and_survives_cancellation(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "a.zarr"
    data = _write(path)
    chunk = path / "c" / "1" / "1" / "1" / "1"
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    chunk.write_bytes(bytes(raw))
    array = _open(path)
    assert isinstance(array, ChunkArray)
    many = (1, slice(0, 21), slice(0, 37), slice(0, 45))  # 27 chunks, one of them damaged

    async def scenario() -> Any:
        with pytest.raises(mamamia.ChunkCorruptError, match=r"c/1/1/1/1 fails its crc32c"):
            await array.getitem_async(many)
        task = asyncio.ensure_future(array.getitem_async((0, slice(None))))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The loop and the pool still serve reads after both.
        return await array.getitem_async((2, slice(0, 21), slice(3, 30), slice(1, 44)))

    got = asyncio.run(scenario())
    assert np.array_equal(got, data[2, 0:21, 3:30, 1:44])
