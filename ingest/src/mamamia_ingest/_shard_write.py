"""Writing one sharded Zarr v3 array (catalog format 2) directly: one file per shard.

Each shard holds the inner chunks of one shard-sized box of one phase, each encoded exactly as
a format-1 chunk (bytes little-endian -> blosc -> crc32c), one after another in Morton order, then
the shard index zarr's ``sharding_indexed`` codec defines: one ``(offset, nbytes)`` pair of
little-endian uint64 per inner chunk, then the index's crc32c. Inner chunks that lie wholly
outside the array (in an edge shard) are not written and carry the ``2**64 - 1`` sentinel;
partly outside ones are padded with the fill value 0, as zarr-python does.

A full-size phase of 160 x 448 x 448 voxels is then part of one shard file instead of ~250
chunk files, while a crop still decodes only the small inner chunks it touches (docs/format.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import json
import os
import threading
from pathlib import Path
from typing import Any

import crc32c
import numcodecs
import numcodecs.blosc
import numpy as np

from mamamia_ingest._zarr_write import ChunkFolders, ChunkWriter, array_metadata, write_new_file

__all__ = [
    "FORMAT2_BLOCK_BYTES",
    "FORMAT2_CLEVEL",
    "FORMAT2_CNAME",
    "FORMAT2_CODEC",
    "FORMAT2_INNER_ZYX",
    "ShardWriter",
    "level_codec",
    "sharded_array_metadata",
    "unsplit_blocks",
    "volume_writer",
]

#: Format 2's inner chunk shape and codec, chosen by bench/bench_format.py (docs/format.md).
FORMAT2_INNER_ZYX: tuple[int, int, int] = (32, 32, 32)
#: LZ4HC, as nnU-Net's own preprocessed arrays: slower to write than LZ4, but its output
#: decodes about twice as fast, and a crop pays the decode every time it is read.
FORMAT2_CNAME, FORMAT2_CLEVEL = "lz4hc", 3
FORMAT2_CODEC = (
    "sharding_indexed(phase; bytes|blosc:lz4hc:3 (images) or lz4:5 (previews, masks):shuffle:"
    "8KiB blocks unsplit|crc32c; index crc32c at end)"
)
#: blosc's block size inside an inner chunk: 8 KiB, four z-planes of a 32 x 32 int16 tile
#: (eight of a uint8 mask's). A box that needs a few planes of an inner chunk decodes only
#: their blocks. blosc's default would split an LZ4 block into per-byte streams and then
#: scale it to at least 64 KiB (a whole 32^3 int16 chunk in one block); the writer
#: turns that split off (``unsplit_blocks``), which is recorded per chunk in its header, so
#: every blosc reader decodes it.
FORMAT2_BLOCK_BYTES = 8192

_MISSING = (2**64 - 1).to_bytes(8, "little") * 2
_MAX_PARTS = 512
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def sharded_array_metadata(
    shape: tuple[int, ...],
    shards: tuple[int, ...],
    inner: tuple[int, ...],
    dtype: np.dtype[Any],
    cname: str,
    clevel: int,
    dimension_names: tuple[str, ...],
) -> bytes:
    """An array's ``zarr.json`` with the shard grid ``shards`` and, inside each shard, inner
    chunks ``inner`` under the format-1 codec chain; the index ends the shard, checked by
    crc32c (zarr's default index codecs)."""
    doc = json.loads(array_metadata(shape, shards, dtype, cname, clevel, dimension_names))
    doc["codecs"][1]["configuration"]["blocksize"] = FORMAT2_BLOCK_BYTES
    doc["codecs"] = [
        {
            "name": "sharding_indexed",
            "configuration": {
                "chunk_shape": [int(n) for n in inner],
                "codecs": doc["codecs"],
                "index_codecs": [
                    {"name": "bytes", "configuration": {"endian": "little"}},
                    {"name": "crc32c"},
                ],
                "index_location": "end",
            },
        }
    ]
    return json.dumps(doc, indent=2, allow_nan=False).encode()


class ShardWriter:
    """Creates one sharded array folder (``zarr.json`` first) and writes its shards, for
    ``(t, z, y, x)`` arrays, one ``t`` at a time, then ``close()``.

    A shard one phase deep is written whole when its phase is (its chunks in zarr-python's
    Morton order, so the file equals zarr-python's). A shard spanning every phase (format 2's
    layout: one file per array) is appended to phase by phase, its index written by
    ``close()``: memory holds one phase and the index, never the shard."""

    def __init__(
        self,
        folder: Path,
        shape: tuple[int, int, int, int],
        shards: tuple[int, int, int, int],
        inner: tuple[int, int, int, int],
        dtype: np.dtype[Any],
        cname: str,
        clevel: int,
    ) -> None:
        if inner[0] != 1 or shards[0] not in (1, shape[0]):
            raise ValueError(
                f"the first chunk dimension must be 1 and the first shard dimension 1 or the "
                f"array's {shape[0]}, got chunks {inner}, shards {shards}"
            )
        if any(s < 1 or i < 1 or s % i for s, i in zip(shards, inner, strict=True)):
            raise ValueError(f"shard shape {shards} is not a whole number of chunks {inner}")
        self.dir = str(folder)
        self.shape = shape
        self.shards = shards
        self.inner = inner
        self.dtype = np.dtype(dtype).newbyteorder("<")
        unsplit_blocks()
        # What ``numcodecs.Blosc(...).encode`` calls, without its per-call buffer checks (the
        # buffer is always the writer's own contiguous chunk): the same bytes.
        self._compress = functools.partial(
            numcodecs.blosc.compress,
            cname=cname.encode(),
            clevel=clevel,
            shuffle=numcodecs.Blosc.SHUFFLE,
            blocksize=FORMAT2_BLOCK_BYTES,
        )
        self._counts = tuple(s // c for s, c in zip(shards[1:], inner[1:], strict=True))
        # One inner chunk's buffer, refilled for every chunk (blosc copies what it reads).
        self._block = np.empty(inner[1:], self.dtype)
        # Shards that span the phases: path -> (open file, its index entries, bytes so far).
        self._open: dict[str, tuple[int, list[bytes], int]] = {}
        os.mkdir(self.dir)
        write_new_file(
            self.dir + "/zarr.json",
            [
                sharded_array_metadata(
                    shape, shards, inner, self.dtype, cname, clevel, ("t", "z", "y", "x")
                )
            ],
        )
        self._folders = ChunkFolders(self.dir)

    def write(self, t: int, data: np.ndarray[Any, Any]) -> None:
        """Write phase ``t`` (a ``(z, y, x)`` volume) into every shard it crosses."""
        z, y, x = data.shape
        if (z, y, x) != self.shape[1:] or not 0 <= t < self.shape[0]:
            raise ValueError(f"volume {data.shape} at t={t} does not fit array {self.shape}")
        sz, sy, sx = self.shards[1:]
        deep = self.shards[0] > 1
        for k in range(0, z, sz):
            for j in range(0, y, sy):
                folder = self._folders.folder(t // self.shards[0], k // sz, j // sy)
                for i in range(0, x, sx):
                    path = f"{folder}/{i // sx}"
                    if not deep:
                        chunks, table = self._phase(data, (k, j, i), 0)
                        write_new_file(path, _parts(chunks, table))
                        continue
                    if path not in self._open:
                        fd = os.open(path, _NEW_FILE, 0o666)
                        slots = self.shards[0] * len(_morton_order(self._counts))
                        self._open[path] = (fd, [_MISSING] * slots, 0)
                    fd, index, done = self._open[path]
                    chunks, table = self._phase(data, (k, j, i), done)
                    _write_all(fd, chunks)
                    first = t * len(table)
                    index[first : first + len(table)] = table
                    self._open[path] = (fd, index, done + sum(len(c) for c in chunks))

    def close(self) -> None:
        """Write the index of every shard that spans the phases, and close it."""
        while self._open:
            _path, (fd, index, _done) = self._open.popitem()
            try:
                table = b"".join(index)
                _write_all(fd, [table, crc32c.crc32c(table).to_bytes(4, "little")])
            finally:
                os.close(fd)

    def _phase(
        self, data: np.ndarray[Any, Any], origin: tuple[int, int, int], offset: int
    ) -> tuple[list[bytes], list[bytes]]:
        """One phase's inner chunks of the shard at ``origin`` (in Morton order, each followed
        by its crc32c) and their index entries in C order, offsets counted from ``offset``."""
        cz, cy, cx = self.inner[1:]
        counts = self._counts
        parts: list[bytes] = []
        index = [_MISSING] * (counts[0] * counts[1] * counts[2])
        encode = self._compress
        buf = self._block
        for a, b, c in _morton_order(counts):
            k, j, i = origin[0] + a * cz, origin[1] + b * cy, origin[2] + c * cx
            if k >= data.shape[0] or j >= data.shape[1] or i >= data.shape[2]:
                continue  # wholly outside the array: the index keeps the sentinel
            block = data[k : k + cz, j : j + cy, i : i + cx]
            if block.shape != (cz, cy, cx):
                buf.fill(0)  # padded with the fill value, as zarr-python does
                np.copyto(
                    buf[: block.shape[0], : block.shape[1], : block.shape[2]],
                    block,
                    casting="unsafe",
                )
            else:
                np.copyto(buf, block, casting="unsafe")
            encoded = bytes(encode(buf))
            crc = crc32c.crc32c(encoded).to_bytes(4, "little")
            parts += (encoded, crc)
            size = len(encoded) + 4
            slot = (a * counts[1] + b) * counts[2] + c  # the index is in C order
            index[slot] = offset.to_bytes(8, "little") + size.to_bytes(8, "little")
            offset += size
        return parts, index


#: c-blosc 1's ``BLOSC_AUTO_SPLIT``: split blocks into per-byte streams for blosclz and snappy
#: only, never for LZ4, LZ4HC, zlib or zstd (its default, ``BLOSC_FORWARD_COMPAT_SPLIT``,
#: splits all but zstd).
_BLOSC_AUTO_SPLIT = 3
_split_set = threading.Lock()
_split_done = False


def unsplit_blocks() -> None:
    """Have numcodecs' c-blosc keep LZ4HC blocks whole, at the size asked for (once per
    process; it is c-blosc's global setting, the same for every caller, and changes no zstd
    chunk: format 1's bytes stay as they were). Where the setting cannot be reached the
    blocks are split and larger: slower partial decodes, the same voxels."""
    global _split_done
    with _split_set:
        if _split_done:
            return
        _split_done = True
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(numcodecs.blosc.__file__).blosc_set_splitmode(_BLOSC_AUTO_SPLIT)


def _parts(chunks: list[bytes], index: list[bytes]) -> list[bytes]:
    """A whole shard's byte parts: its chunks, its index, the index's crc32c."""
    table = b"".join(index)
    parts = [*chunks, table, crc32c.crc32c(table).to_bytes(4, "little")]
    # Far below any system's IOV_MAX (1024 on Linux): more parts than this are joined first.
    return parts if len(parts) <= _MAX_PARTS else [b"".join(parts)]


def _write_all(fd: int, parts: list[bytes]) -> None:
    """Append ``parts`` to an open file (``writev`` in batches, short writes finished)."""
    for at in range(0, len(parts), _MAX_PARTS):
        batch = parts[at : at + _MAX_PARTS]
        done = os.writev(fd, batch)
        if done == sum(len(part) for part in batch):
            continue  # the usual case: no copy of a phase's bytes to find an empty rest
        rest = b"".join(batch)[done:]
        while rest:
            rest = rest[os.write(fd, rest) :]


@functools.lru_cache(maxsize=16)
def _morton_order(counts: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """The inner chunks of a shard in Morton (Z-) order, the order zarr-python writes them in:
    neighbours in space lie near each other in the file, so a crop's ranges coalesce."""
    bits = [(n - 1).bit_length() for n in counts]

    def code(coords: tuple[int, ...]) -> int:
        out, at = 0, 0
        for bit in range(max(bits, default=0)):
            for dim, value in enumerate(coords):
                if bit < bits[dim]:
                    out |= ((value >> bit) & 1) << at
                    at += 1
        return out

    return tuple(sorted(itertools.product(*(range(n) for n in counts)), key=code))


def level_codec(level: str, *, label: bool, sharded: bool) -> tuple[str, int]:
    """(blosc cname, clevel) of an array's level ``"0"`` or ``"1"`` (an image's, or a mask's:
    ``label``). Format 1: zstd 3 at full resolution, lz4 5 for previews (read whole for
    slices). Format 2: an image's full resolution in ``FORMAT2_CNAME`` (crops decode it most,
    and it decodes fastest); previews and masks (mostly zeros, fast to decode either way) in
    lz4 5, which writes them several times faster (docs/format.md)."""
    if level != "0":
        return "lz4", 5
    if not sharded:
        return "zstd", 3
    return ("lz4", 5) if label else (FORMAT2_CNAME, FORMAT2_CLEVEL)


def volume_writer(
    folder: Path,
    shape: tuple[int, int, int, int],
    chunks: tuple[int, int, int, int],
    dtype: np.dtype[Any],
    cname: str,
    clevel: int,
    *,
    sharded: bool,
) -> ChunkWriter | ShardWriter:
    """Format 1's ``ChunkWriter``, or format 2's ``ShardWriter`` with one shard per array: every
    phase, each rounded up to whole ``chunks`` (so a case is a handful of files)."""
    if not sharded:
        return ChunkWriter(folder, shape, chunks, dtype, cname, clevel)
    shard = (shape[0], *(-(-n // c) * c for n, c in zip(shape[1:], chunks[1:], strict=True)))
    return ShardWriter(
        folder, shape, (shard[0], shard[1], shard[2], shard[3]), chunks, dtype, cname, clevel
    )
