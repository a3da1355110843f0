"""Writing one Zarr v3 hierarchy directly: metadata documents and chunk files.

zarr-python writes each ``zarr.json`` through its event-loop thread with a temporary file and a
rename, and each chunk through its async codec pipeline; per case that is a few hundred small
file operations and thread hops that cost as much CPU as a sizeable part of the compression.
Here the same bytes are written with plain ``os`` calls: metadata documents are produced exactly
as zarr-python 3.1 serialises them (``json.dumps(..., indent=2)`` of the same keys in the same
order; ``tests/test_ingest_zarr_write.py`` compares them byte for byte with zarr's own output),
and chunks are encoded like zarr's codec pipeline (bytes little-endian -> blosc -> crc32c
appended little-endian; edge chunks padded with the fill value 0; keys ``c/t/z/y/x``). The
whole generation is published by one rename, so no file needs an atomic write of its own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import crc32c
import numcodecs
import numpy as np

__all__ = ["ChunkFolders", "ChunkWriter", "array_metadata", "group_metadata", "write_new_file"]

# zarr-python's default ``json_indent``.
_JSON_INDENT = 2
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def write_new_file(path: str, parts: list[bytes]) -> None:
    """Create ``path`` (it must not exist) holding ``parts`` concatenated: one open, one
    ``writev`` (no joined copy), one close."""
    fd = os.open(path, _NEW_FILE, 0o666)
    try:
        total = sum(len(p) for p in parts)
        done = os.writev(fd, parts)
        if done != total:  # a short write (rare on regular files): finish it plainly
            rest = b"".join(parts)[done:]
            while rest:
                rest = rest[os.write(fd, rest) :]
    finally:
        os.close(fd)


def _dumps(doc: dict[str, Any]) -> bytes:
    # allow_nan=False: the callers never pass NaN, and a NaN must fail rather than be written.
    return json.dumps(doc, indent=_JSON_INDENT, allow_nan=False).encode()


def group_metadata(attributes: dict[str, Any]) -> bytes:
    """A group's ``zarr.json`` as zarr-python writes it."""
    return _dumps({"attributes": attributes, "zarr_format": 3, "node_type": "group"})


def array_metadata(
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    dtype: np.dtype[Any],
    cname: str,
    clevel: int,
    dimension_names: tuple[str, ...],
) -> bytes:
    """An array's ``zarr.json`` as zarr-python writes it for ``fill_value=0`` and the codecs
    ``bytes | blosc(cname, clevel, shuffle) | crc32c``."""
    dt = np.dtype(dtype)
    if dt.kind not in "iuf":
        raise ValueError(f"unsupported voxel type {dt} for a Zarr array")
    bytes_codec: dict[str, Any] = {"name": "bytes"}
    if dt.itemsize > 1:
        bytes_codec["configuration"] = {"endian": "little"}
    doc: dict[str, Any] = {
        "shape": [int(s) for s in shape],
        "data_type": dt.name,
        "chunk_grid": {
            "name": "regular",
            "configuration": {"chunk_shape": [int(c) for c in chunks]},
        },
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0.0 if dt.kind == "f" else 0,
        "codecs": [
            bytes_codec,
            {
                "name": "blosc",
                "configuration": {
                    "typesize": dt.itemsize,
                    "cname": cname,
                    "clevel": clevel,
                    "shuffle": "shuffle",
                    "blocksize": 0,
                },
            },
            {"name": "crc32c"},
        ],
        "attributes": {},
        "dimension_names": list(dimension_names),
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }
    return _dumps(doc)


class ChunkFolders:
    """The ``c/...`` folders of one array, each made with one ``mkdir`` when first needed."""

    def __init__(self, array_dir: str) -> None:
        self.root = array_dir + "/c"
        os.mkdir(self.root)
        self._made: set[str] = set()

    def folder(self, *parts: int) -> str:
        """``c/<parts...>``, creating each missing level."""
        path = self.root
        for p in parts:
            path = f"{path}/{p}"
            if path not in self._made:
                os.mkdir(path)
                self._made.add(path)
        return path


class ChunkWriter:
    """Creates one array folder (its ``zarr.json`` first) and writes its chunks, ``(t, z, y, x)``
    arrays whose first chunk dimension is 1, one ``t`` at a time."""

    def __init__(
        self,
        folder: Path,
        shape: tuple[int, int, int, int],
        chunks: tuple[int, int, int, int],
        dtype: np.dtype[Any],
        cname: str,
        clevel: int,
    ) -> None:
        if chunks[0] != 1:
            raise ValueError(f"the first chunk dimension must be 1, got {chunks}")
        self.dir = str(folder)
        self.shape = shape
        self.chunks = chunks
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.codec = numcodecs.Blosc(
            cname=cname, clevel=clevel, shuffle=numcodecs.Blosc.SHUFFLE, blocksize=0
        )
        os.mkdir(self.dir)
        write_new_file(
            self.dir + "/zarr.json",
            [array_metadata(shape, chunks, self.dtype, cname, clevel, ("t", "z", "y", "x"))],
        )
        self._folders = ChunkFolders(self.dir)

    def close(self) -> None:
        """Nothing is left open (each chunk file is written whole); ``ShardWriter``'s twin."""

    def write(self, t: int, data: np.ndarray[Any, Any]) -> None:
        cz, cy, cx = self.chunks[1:]
        z, y, x = data.shape
        if (1, z, y, x) != (1, *self.shape[1:]) or not 0 <= t < self.shape[0]:
            raise ValueError(f"volume {data.shape} at t={t} does not fit array {self.shape}")
        encode = self.codec.encode
        for k in range(0, z, cz):
            for j in range(0, y, cy):
                folder = self._folders.folder(t, k // cz, j // cy)
                for i in range(0, x, cx):
                    block = data[k : k + cz, j : j + cy, i : i + cx]
                    if block.shape != (cz, cy, cx):
                        full = np.zeros((cz, cy, cx), self.dtype)
                        full[: block.shape[0], : block.shape[1], : block.shape[2]] = block
                        block = full
                    else:
                        block = np.ascontiguousarray(block, dtype=self.dtype)
                    encoded = encode(block)
                    crc = crc32c.crc32c(encoded).to_bytes(4, "little")
                    write_new_file(f"{folder}/{i // cx}", [encoded, crc])
