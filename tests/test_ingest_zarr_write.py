"""The direct Zarr writer (mamamia_ingest._zarr_write) writes exactly the bytes zarr-python
writes for the same array: metadata documents and every chunk file, edge chunks included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from mamamia_ingest._zarr_write import ChunkWriter, group_metadata


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("dtype", "shape", "chunks", "cname", "clevel"),
    [
        ("int16", (2, 37, 70, 45), (1, 16, 32, 32), "zstd", 3),
        ("int16", (1, 5, 9, 8), (1, 5, 9, 8), "lz4", 5),
        ("uint8", (1, 20, 33, 17), (1, 8, 16, 16), "zstd", 3),
        ("uint16", (1, 9, 10, 11), (1, 4, 4, 4), "lz4", 5),
        ("float32", (2, 7, 12, 13), (1, 4, 8, 8), "zstd", 3),
        ("float64", (1, 6, 6, 6), (1, 4, 4, 4), "zstd", 3),
        ("int32", (1, 6, 6, 6), (1, 4, 4, 4), "zstd", 3),
    ],
)
def test_array_bytes_equal_zarr(
    tmp_path: Path,
    dtype: str,
    shape: tuple[int, int, int, int],
    chunks: tuple[int, int, int, int],
    cname: str,
    clevel: int,
) -> None:
    rng = np.random.default_rng(0)
    data: np.ndarray[Any, Any] = (rng.normal(100, 40, shape)).astype(dtype)
    ref = zarr.create_array(
        store=zarr.storage.LocalStore(tmp_path / "ref"),
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=0,
        compressors=[BloscCodec(cname=cname, clevel=clevel, shuffle="shuffle"), Crc32cCodec()],
        dimension_names=("t", "z", "y", "x"),
        config={"write_empty_chunks": True},
    )
    ref[...] = data
    writer = ChunkWriter(tmp_path / "ours", shape, chunks, np.dtype(dtype), cname, clevel)
    for t in range(shape[0]):
        writer.write(t, data[t])
    ours, theirs = _files(tmp_path / "ours"), _files(tmp_path / "ref")
    assert sorted(ours) == sorted(theirs)
    for key, value in theirs.items():
        assert ours[key] == value, key
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "ours", mode="r")[...], data)


def test_group_bytes_equal_zarr(tmp_path: Path) -> None:
    attrs = {"ome": {"version": "0.5", "labels": ["expert"]}, "mamamia": {"x": [1.5, None]}}
    group = zarr.create_group(store=zarr.storage.LocalStore(tmp_path / "g"), zarr_format=3)
    group.attrs.update(attrs)
    assert group_metadata(attrs) == (tmp_path / "g" / "zarr.json").read_bytes()


def test_writer_refuses_a_volume_of_another_shape(tmp_path: Path) -> None:
    writer = ChunkWriter(tmp_path / "a", (1, 4, 4, 4), (1, 2, 2, 2), np.dtype("int16"), "zstd", 3)
    with pytest.raises(ValueError, match="does not fit"):
        writer.write(0, np.zeros((4, 4, 5), np.int16))
    with pytest.raises(ValueError, match="does not fit"):
        writer.write(1, np.zeros((4, 4, 4), np.int16))
