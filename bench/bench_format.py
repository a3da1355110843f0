"""Catalog format 2 candidates: inner chunk shape and codec of sharded phases, side by side.

One full-size phase (the phantom of the real table's first row at ``--scale 1``: that row's
dimensions) is written once per candidate, format 1's chunks included, plus an nnU-Net v2-style
blosc2 ``.b2nd`` copy (LZ4HC level 8, nnU-Net's block/chunk sizing for a 64^3 patch: blocks
that fit 80% of a 32 KiB L1, chunks grown towards 80% of a 1.4 MiB L3 share; read through mmap
with one thread), the baseline of every read row. Then, in interleaved rounds (every candidate
reads the same boxes in each round, so load on the machine hits all of them alike), it times:
random 64^3 and 128^3 crops, an axial, a coronal and a sagittal slice, the whole phase; and it
reports bytes and files on disk and write speed. zarr-python reading the chosen candidate is
a context row. Our reads go through the SDK's direct reader (``mamamia._chunks``, its compiled
box read ``mamamia._boxread`` where built); every read is checked against the source voxels
once.

    uv run python bench/bench_format.py [--rounds 3] [--crops 200] [--only-table]
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from _data import OUT, TABLE
from _table import markdown_table

BASELINE = "nnU-Net v2 blosc2 .b2nd (mmap, 1 thread)"
# (name, inner chunk z, y, x, cname, clevel, sharded); every sharded candidate has format 2's
# 8 KiB unsplit blosc blocks; the last is the choice (FORMAT2_INNER_ZYX, FORMAT2_CNAME).
CANDIDATES: list[tuple[str, tuple[int, int, int], str, int, bool]] = [
    ("format 1: chunks 32x128x128 zstd3", (32, 128, 128), "zstd", 3, False),
    ("shard, inner 32x32x32 zstd3", (32, 32, 32), "zstd", 3, True),
    ("shard, inner 32x64x64 zstd1", (32, 64, 64), "zstd", 1, True),
    ("shard, inner 64x64x64 lz4-5", (64, 64, 64), "lz4", 5, True),
    ("shard, inner 64x64x64 lz4hc-3", (64, 64, 64), "lz4hc", 3, True),
    ("shard, inner 64x32x32 lz4-5", (64, 32, 32), "lz4", 5, True),
    ("shard, inner 64x16x16 lz4hc-3", (64, 16, 16), "lz4hc", 3, True),
    ("shard, inner 64x32x32 lz4hc-3", (64, 32, 32), "lz4hc", 3, True),
    ("shard, inner 32x32x32 lz4hc-3", (32, 32, 32), "lz4hc", 3, True),
]


def nnunet_blosc2_params(
    image: tuple[int, ...], patch: tuple[int, ...], itemsize: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Block and chunk shape as nnU-Net v2 sizes them (``comp_blosc2_params``, restated):
    blocks halve from the patch's power-of-two cover until they fit 80% of L1, chunks grow by
    blocks until they near 80% of a core's L3 or 1.5 patches."""
    l1, l3, safety = 32768, 1441792, 0.8
    image4 = np.array((1, *image))
    patch_a = np.array(patch)
    block = np.array((1, *[2 ** max(0, math.ceil(math.log2(n))) for n in patch]))
    while np.prod(block) * itemsize > l1 * safety:
        order = np.argsort(block[1:] / patch_a)[::-1]
        idx = 0
        axis = order[idx]
        while block[axis + 1] == 1:
            idx += 1
            axis = order[idx]
        block[axis + 1] = 2 ** max(0, math.floor(math.log2(block[axis + 1] - 1)))
        block[axis + 1] = min(block[axis + 1], image4[axis + 1])
    block = np.minimum(block, image4)
    chunk = block.copy()
    while np.prod(chunk) * itemsize < l3 * safety:
        if all(chunk == image4):
            break
        order = np.argsort(chunk[1:] / block[1:])
        idx = 0
        axis = order[idx]
        while chunk[axis + 1] == image4[axis + 1]:
            idx += 1
            axis = order[idx]
        chunk[axis + 1] = min(chunk[axis + 1] + block[axis + 1], image4[axis + 1])
        if np.mean(chunk[1:] / patch_a) > 1.5:
            chunk[axis + 1] -= block[axis + 1]
            break
    return tuple(int(n) for n in block[1:]), tuple(int(n) for n in np.minimum(chunk, image4)[1:])


def write_b2nd(data: np.ndarray[Any, Any], path: Path) -> None:
    """``data`` as nnU-Net v2 stores a preprocessed case: blosc2 LZ4HC level 8, its block and
    chunk sizing for a 64^3 patch, one thread."""
    import blosc2

    blocks, chunks = nnunet_blosc2_params(data.shape, (64, 64, 64), data.dtype.itemsize)
    blosc2.asarray(
        data,
        urlpath=str(path),
        chunks=chunks,
        blocks=blocks,
        cparams={"codec": blosc2.Codec.LZ4HC, "clevel": 8, "nthreads": 1},
    )


def _phase() -> np.ndarray[Any, Any]:
    """Phase 1 of the phantom of the real table's first row, at full size (made once)."""
    import SimpleITK as sitk

    from mamamia_ingest import write_phantom

    raw = OUT / "format-phase"
    done = raw / "raw.done"
    if not done.exists():
        shutil.rmtree(raw, ignore_errors=True)
        write_phantom(raw, cases=1, scale=1.0, seed=0, table=TABLE, progress=False)
        done.write_text("ok\n")
    path = sorted(raw.rglob("*_0001.nii.gz"))[0]
    return np.ascontiguousarray(sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.int16))


def _write(folder: Path, data: np.ndarray[Any, Any], spec: tuple[Any, ...]) -> Any:
    from mamamia._chunks import open_chunk_array
    from mamamia._store import StrictLocalStore
    from mamamia_ingest._shard_write import ShardWriter
    from mamamia_ingest._zarr_write import ChunkWriter

    _name, inner, cname, clevel, sharded = spec
    shape = (1, *data.shape)
    if sharded:
        # One shard per phase: the phase rounded up to whole inner chunks.
        shard = (1, *(-(-n // c) * c for n, c in zip(data.shape, inner, strict=True)))
        writer: Any = ShardWriter(folder, shape, shard, (1, *inner), data.dtype, cname, clevel)
    else:
        writer = ChunkWriter(folder, shape, (1, *inner), data.dtype, cname, clevel)
    writer.write(0, data)
    store = StrictLocalStore(folder)
    return open_chunk_array(store, where=str(folder), fallback=lambda: None)


def _disk(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def run(rounds: int = 3, crops: int = 200) -> list[dict[str, Any]]:
    import blosc2

    data = _phase()
    z, y, x = data.shape
    work = OUT / "format-candidates"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    readers: dict[str, Callable[[tuple[slice, ...]], Any]] = {}
    facts: dict[str, dict[str, float]] = {}
    for spec in CANDIDATES:
        folder = work / spec[0].replace(" ", "_").replace(":", "").replace(",", "")
        started = time.perf_counter()
        array = _write(folder, data, spec)
        seconds = time.perf_counter() - started
        size, files = _disk(folder)
        facts[spec[0]] = {"write": data.nbytes / 2**20 / seconds, "bytes": size, "files": files}
        readers[spec[0]] = lambda box, a=array: a[(0, *box)]
    import zarr

    chosen = work / CANDIDATES[-1][0].replace(" ", "_").replace(":", "").replace(",", "")
    peer = zarr.open_array(str(chosen), mode="r")
    readers[f"zarr-python on {CANDIDATES[-1][0]}"] = lambda box: peer[(0, *box)]
    blocks, chunks = nnunet_blosc2_params(data.shape, (64, 64, 64), data.dtype.itemsize)
    b2 = work / "phase.b2nd"
    started = time.perf_counter()
    write_b2nd(data, b2)
    b2_write = data.nbytes / 2**20 / (time.perf_counter() - started)
    b2_array = blosc2.open(str(b2), mode="r", dparams={"nthreads": 1}, mmap_mode="r")
    readers[BASELINE] = lambda box: b2_array[box]
    facts[BASELINE] = {"write": b2_write, "bytes": b2.stat().st_size, "files": 1}

    rng = np.random.default_rng(0)

    def boxes(size: int, n: int) -> list[tuple[slice, ...]]:
        out = []
        for _ in range(n):
            lo = [int(rng.integers(0, d - min(size, d) + 1)) for d in data.shape]
            out.append(
                tuple(slice(a, a + min(size, d)) for a, d in zip(lo, data.shape, strict=True))
            )
        return out

    tests: dict[str, list[tuple[slice, ...]]] = {
        "random 64^3 crop": boxes(64, crops),
        "random 128^3 crop": boxes(128, max(10, crops // 4)),
        "axial slice": [(slice(z // 2, z // 2 + 1), slice(None), slice(None))],
        "coronal slice": [(slice(None), slice(y // 2, y // 2 + 1), slice(None))],
        "sagittal slice": [(slice(None), slice(None), slice(x // 2, x // 2 + 1))],
        "whole phase": [(slice(None), slice(None), slice(None))],
    }
    for name, read in readers.items():  # every reader returns the source voxels
        for box in (tests["random 64^3 crop"][0], tests["sagittal slice"][0]):
            assert np.array_equal(np.asarray(read(box)), data[box]), name
    times: dict[tuple[str, str], list[float]] = {}
    for _round in range(rounds):
        for test, test_boxes in tests.items():
            repeat = 1 if len(test_boxes) > 1 else 5
            for name, read in readers.items():
                for box in test_boxes:
                    for _ in range(repeat):
                        started = time.perf_counter()
                        read(box)
                        times.setdefault((test, name), []).append(time.perf_counter() - started)
    rows: list[dict[str, Any]] = []
    for test in tests:
        base = statistics.median(times[(test, BASELINE)]) * 1000
        for name in readers:
            ms = statistics.median(times[(test, name)]) * 1000
            rows.append(_row(test, name, ms, base, "ms", "<= 1.0x" if "crop" in test else None))
    for name, fact in facts.items():
        base = facts[BASELINE]
        rows.append(
            _row("MB on disk", name, fact["bytes"] / 2**20, base["bytes"] / 2**20, "MB", None)
        )
        rows.append(_row("files on disk", name, fact["files"], base["files"], "files", None))
        rows.append(_row("write speed", name, fact["write"], base["write"], "MB/s", None))
    print(f"phase {data.shape} int16; b2nd blocks {blocks} chunks {chunks}", file=sys.stderr)
    return rows


def _row(
    test: str, name: str, ours: float, base: float, unit: str, target: str | None
) -> dict[str, Any]:
    return {
        "benchmark": "format",
        "metric": f"{test}: {name}",
        "ours": ours,
        "baseline_name": BASELINE,
        "baseline": base,
        "ratio": ours / base if base else None,
        "target": target,
        "unit": unit,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--crops", type=int, default=200)
    args = parser.parse_args()
    print(markdown_table(run(args.rounds, args.crops)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
