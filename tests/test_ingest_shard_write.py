"""The direct sharded writer (catalog format 2) writes the bytes zarr-python writes for the same
array (metadata and every shard, edge shards included), and the SDK reads them voxel for voxel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from mamamia._chunks import ChunkArray, open_chunk_array
from mamamia._store import StrictLocalStore
from mamamia_ingest._shard_write import FORMAT2_BLOCK_BYTES, ShardWriter

CASES = [
    # dtype, shape, shards, inner, cname, clevel: edge shards and edge inner chunks on each axis
    ("int16", (2, 37, 70, 45), (1, 32, 64, 64), (1, 16, 32, 32), "zstd", 3),
    ("uint8", (1, 20, 33, 17), (1, 16, 32, 32), (1, 8, 16, 16), "lz4", 5),
    ("float32", (1, 7, 12, 13), (1, 8, 8, 8), (1, 4, 4, 8), "zstd", 3),
]


def _write(tmp_path: Path, case: tuple[Any, ...]) -> tuple[Path, np.ndarray[Any, Any]]:
    dtype, shape, shards, inner, cname, clevel = case
    data: np.ndarray[Any, Any] = np.random.default_rng(0).normal(100, 40, shape).astype(dtype)
    writer = ShardWriter(tmp_path / "ours", shape, shards, inner, np.dtype(dtype), cname, clevel)
    for t in range(shape[0]):
        writer.write(t, data[t])
    return tmp_path / "ours", data


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_zarr_python_and_the_sdk_read_what_the_writer_wrote(
    tmp_path: Path, case: tuple[Any, ...]
) -> None:
    path, data = _write(tmp_path, case)
    theirs = zarr.open_array(str(path), mode="r")
    assert theirs.shards == case[2] and theirs.chunks == case[3]
    assert np.array_equal(theirs[...], data)
    store = StrictLocalStore(path)
    ours = open_chunk_array(store, where=str(path), fallback=lambda: None)
    assert isinstance(ours, ChunkArray)
    assert np.array_equal(ours[...], data)
    box = (0, slice(3, 19), slice(5, 11), slice(2, 13))
    assert np.array_equal(ours[box], theirs[box])


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_metadata_and_shards_equal_zarr_pythons(tmp_path: Path, case: tuple[Any, ...]) -> None:
    dtype, shape, shards, inner, cname, clevel = case
    path, data = _write(tmp_path, case)
    ref = zarr.create_array(
        store=zarr.storage.LocalStore(tmp_path / "ref"),
        shape=shape,
        chunks=inner,
        shards=shards,
        dtype=dtype,
        fill_value=0,
        compressors=[
            BloscCodec(
                cname=cname, clevel=clevel, shuffle="shuffle", blocksize=FORMAT2_BLOCK_BYTES
            ),
            Crc32cCodec(),
        ],
        dimension_names=("t", "z", "y", "x"),
        config={"write_empty_chunks": True},
    )
    ref[...] = data
    ours = json.loads((path / "zarr.json").read_bytes())
    theirs = json.loads((tmp_path / "ref" / "zarr.json").read_bytes())
    assert ours == theirs
    files = sorted(p.relative_to(path) for p in path.rglob("*") if p.is_file())
    assert files == sorted(
        p.relative_to(tmp_path / "ref") for p in (tmp_path / "ref").rglob("*") if p.is_file()
    )
    for name in files:
        assert (path / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name


def test_a_shard_that_is_not_whole_chunks_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="whole number"):
        ShardWriter(
            tmp_path / "a", (1, 8, 8, 8), (1, 8, 8, 8), (1, 3, 8, 8), np.dtype("int16"), "lz4", 5
        )


def test_a_shard_spanning_every_phase_is_read_by_zarr_python_and_the_sdk(tmp_path: Path) -> None:
    shape, inner = (3, 21, 37, 45), (1, 8, 16, 16)
    data = np.random.default_rng(1).integers(-9, 900, shape).astype("int16")
    shards = (3, 24, 48, 48)  # the whole array in one file
    writer = ShardWriter(tmp_path / "a", shape, shards, inner, np.dtype("int16"), "lz4", 5)
    for t in range(shape[0]):
        writer.write(t, data[t])
    writer.close()
    files = sorted(str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*"))
    assert [f for f in files if f.startswith("c/") and (tmp_path / "a" / f).is_file()] == [
        "c/0/0/0/0"
    ]
    theirs = zarr.open_array(str(tmp_path / "a"), mode="r")
    assert np.array_equal(theirs[...], data)
    ours = open_chunk_array(StrictLocalStore(tmp_path / "a"), where="a", fallback=lambda: None)
    assert isinstance(ours, ChunkArray)
    assert np.array_equal(ours[...], data)
    assert np.array_equal(ours[2, 5:19, 3:30, 17:45], data[2, 5:19, 3:30, 17:45])


def test_a_first_shard_dimension_other_than_1_or_all_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="first shard dimension"):
        ShardWriter(
            tmp_path / "a", (3, 8, 8, 8), (2, 8, 8, 8), (1, 8, 8, 8), np.dtype("int16"), "lz4", 5
        )
