"""Ingest throughput against two floors measured in the same run on the same files, and the
chunk-shape comparison behind the default ``(1, 32, 128, 128)``.

Floors (single process, one thread, every source volume of the raw folder):

1. SimpleITK's ``ReadImage`` + ``GetArrayFromImage`` alone;
2. that read plus compressing the voxels with the chosen codec (blosc zstd clevel 3 + byte
   shuffle, then crc32c) in ``(1, 32, 128, 128)`` chunks, nothing written.

For context (no target): floor 3 is floor 2 plus writing its chunks as files in the catalog's
layout (one file per chunk, one folder per chunk row), and a probe times creating an empty file
and a folder. On the shared development VM (ext4 without a journal) a new inode costs 20 us to
over 1 ms of CPU depending on how many files were deleted nearby in the last minute (the
allocator skips recently deleted inodes one by one), so everything that writes files moves with
it; ingest writes ~230 files and folders per case at this scale, floor 2 none. The catalogs this
script writes are removed at the end of the run, not between measurements, for the same reason.
Every figure is the median of ``--repeat`` rounds (default 3) that each measure everything, and
every ratio the median of the ratios within each round (so it can differ from ours / baseline).

Ours: ``mamamia_ingest.ingest`` into a fresh catalog with ``--jobs 1`` and ``--jobs 2``. Its
"volumes" time is the end-to-end time minus a ``--tables-only`` run on the same folder (the
tables are a fixed cost independent of the volumes). Throughput is in MB of voxels (uncompressed)
per second. Targets: ours within 1.3x of floor 2 per core, and ``--jobs 2`` faster
than ``--jobs 1``. The kinetic and shape features (docs/features.md) are also timed alone on
volumes already read: their CPU over the rest of the ingest's may be at most 0.1 (they may raise
its ratio to floor 2 by 10 % at most). On a shared machine (other processes busy) the parallel
figure is noisy. Every catalog is written with an explicit ``format_version`` (1 above). Format 2
(docs/format.md) has its own floor 2, the same read plus format 2's blosc (LZ4HC clevel 3, byte
shuffle, 8 KiB blocks) and crc32c in its ``(1, 32, 32, 32)`` inner chunks, and its own row: ``ingest --format 2 --jobs 1``
within 1.3x of that floor per core, measured in the same rounds. For context (no target), in
the same rounds: format 2's floor 2 with edge inner chunks padded (those that stick out of the
volume compressed padded with zeros to whole inner chunks, as the shard writer must for Zarr: more
voxels to compress wherever a dimension is not a multiple of 64), format 2's floor 3 (floor 2
plus writing each volume's compressed chunks to one new file, as one shard per array does), and
``ingest --format 2 --jobs 1`` against that floor 3.

Chunk shapes: one synthetic DCE-like phase of 160x512x512 int16 (smooth body, noise, an
enhancing blob) is written with each shape, then read with zarr-python: random 64^3 crops, and
full axial (one z) and coronal (one y) slices; medians over repeated reads.

The raw folder is a phantom of four real rows (axial and sagittal, all four collections) at
``--scale`` (default 0.5: files of 5-20 MB of voxels, so per-file costs weigh as they do on
the real data), made once under bench/out/ (git-ignored).

    uv run python bench/bench_ingest.py [--scale 0.5] [--ids DUKE_001,NACT_01,...] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import google_crc32c
import numcodecs
import numcodecs.blosc
import numpy as np
import SimpleITK as sitk
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from _data import phantom_raw
from _table import markdown_table
from mamamia_ingest import ingest
from mamamia_ingest._shard_write import (
    FORMAT2_BLOCK_BYTES,
    FORMAT2_CLEVEL,
    FORMAT2_CNAME,
    FORMAT2_INNER_ZYX,
    unsplit_blocks,
)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
DEFAULT_IDS = ("DUKE_001", "ISPY1_1001", "ISPY2_100899", "NACT_01")
CHUNK_SHAPES = ((1, 32, 128, 128), (1, 64, 64, 64), (1, 16, 256, 256))


def prepare(scale: float, ids: tuple[str, ...]) -> Path:
    return phantom_raw(OUT / f"ingest-raw-{scale:g}-{'-'.join(ids)}", ids, scale, seed=1)


def _sources(raw: Path) -> list[Path]:
    return sorted(p for p in raw.rglob("*.nii.gz"))


def _cpu() -> float:
    """CPU seconds of this process (all threads) and of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def floor_read(files: list[Path]) -> tuple[float, float, int]:
    started, cpu = time.perf_counter(), _cpu()
    nbytes = 0
    for f in files:
        image = sitk.ReadImage(str(f))
        nbytes += sitk.GetArrayViewFromImage(image).nbytes
    return time.perf_counter() - started, _cpu() - cpu, nbytes


def _compress(
    array: np.ndarray[Any, Any],
    codec: numcodecs.Blosc,
    chunks: tuple[int, ...],
    *,
    pad: bool = False,
    parts: list[bytes] | None = None,
) -> int:
    """Stored bytes of ``array`` compressed in ``chunks`` (each with its crc32c). ``pad``: edge
    chunks padded with zeros to the full chunk shape, as a Zarr writer must; ``parts``: the
    encoded chunks and their CRCs are appended to it."""
    out = 0
    cz, cy, cx = chunks[1:]
    z, y, x = array.shape
    full = np.zeros((cz, cy, cx), array.dtype) if pad else None
    for k in range(0, z, cz):
        for j in range(0, y, cy):
            for i in range(0, x, cx):
                block = array[k : k + cz, j : j + cy, i : i + cx]
                if full is not None and block.shape != full.shape:
                    full.fill(0)
                    full[: block.shape[0], : block.shape[1], : block.shape[2]] = block
                    block = full
                data = codec.encode(np.ascontiguousarray(block))
                crc = google_crc32c.value(data)
                if parts is not None:
                    parts += (data, int(crc).to_bytes(4, "little"))
                out += len(data) + 4
    return out


#: Floor 2's codec and chunk shape per catalog format (docs/format.md): format 1's chunks, and
#: format 2's inner chunks (the shard's index is 16 bytes per inner chunk: left out).
FLOOR_CODECS = {
    1: ("zstd", 3, CHUNK_SHAPES[0]),
    2: (FORMAT2_CNAME, FORMAT2_CLEVEL, (1, *FORMAT2_INNER_ZYX)),
}


def _floor_codec(version: int) -> Any:
    """The floor's blosc codec: format 2's with its block size (and its blocks unsplit)."""
    cname, clevel, _chunks = FLOOR_CODECS[version]
    if version == 1:
        return numcodecs.Blosc(cname=cname, clevel=clevel, shuffle=numcodecs.Blosc.SHUFFLE)
    unsplit_blocks()
    return numcodecs.Blosc(
        cname=cname, clevel=clevel, shuffle=numcodecs.Blosc.SHUFFLE, blocksize=FORMAT2_BLOCK_BYTES
    )


def floor_read_compress(
    files: list[Path], version: int = 1, *, pad: bool = False
) -> tuple[float, float, int]:
    chunks = FLOOR_CODECS[version][2]
    codec = _floor_codec(version)
    started, cpu = time.perf_counter(), _cpu()
    stored = 0
    for f in files:
        image = sitk.ReadImage(str(f))
        array = sitk.GetArrayViewFromImage(image)
        stored += _compress(array, codec, chunks, pad=pad)
    return time.perf_counter() - started, _cpu() - cpu, stored


def floor_read_compress_write_volume(files: list[Path], dest: Path) -> tuple[float, float, int]:
    """Format 2's floor 2 plus writing each volume's compressed chunks, one after another, to
    one new file (a shard without its index): what any writer of one file per volume pays."""
    chunks = FLOOR_CODECS[2][2]
    codec = _floor_codec(2)
    dest.mkdir(parents=True)
    started, cpu = time.perf_counter(), _cpu()
    for n, f in enumerate(files):
        image = sitk.ReadImage(str(f))
        parts: list[bytes] = []
        _compress(sitk.GetArrayViewFromImage(image), codec, chunks, parts=parts)
        fd = os.open(dest / str(n), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            for at in range(0, len(parts), 512):  # below any system's IOV_MAX
                batch = parts[at : at + 512]
                done = os.writev(fd, batch)
                rest = b"".join(batch)[done:] if done < sum(map(len, batch)) else b""
                while rest:
                    rest = rest[os.write(fd, rest) :]
        finally:
            os.close(fd)
    return time.perf_counter() - started, _cpu() - cpu, len(files)


def floor_read_compress_write(files: list[Path], dest: Path) -> tuple[float, float, int]:
    """Floor 2 plus writing its chunks as files in the catalog's layout (``c/t/z/y/x``, one
    folder per chunk row): what any writer of this format pays on this file system."""
    from mamamia_ingest._zarr_write import ChunkWriter

    dest.mkdir(parents=True)
    started, cpu = time.perf_counter(), _cpu()
    for n, f in enumerate(files):
        image = sitk.ReadImage(str(f))
        array = sitk.GetArrayViewFromImage(image)
        z, y, x = array.shape
        chunks = tuple(min(c, s) for c, s in zip(CHUNK_SHAPES[0][1:], array.shape, strict=True))
        writer = ChunkWriter(dest / str(n), (1, z, y, x), (1, *chunks), array.dtype, "zstd", 3)
        writer.write(0, array)
    elapsed, used = time.perf_counter() - started, _cpu() - cpu
    created = sum(len(d) + len(f) for _, d, f in os.walk(dest))
    return elapsed, used, created


def features_cpu(raw: Path) -> float:
    """CPU seconds of the per-case kinetic and shape features alone (docs/features.md), on
    volumes already read: what they add to ingest (at most 10 % of the rest of it)."""
    from mamamia import read_clinical_table
    from mamamia_ingest._kinetic_features import KineticsAccumulator
    from mamamia_ingest._shape_features import shape_features

    records = read_clinical_table(raw / "clinical_and_imaging_info.xlsx").by_id()
    used = 0.0
    for case_dir in sorted(p for p in (raw / "images").iterdir() if p.is_dir()):
        pid = case_dir.name
        phases = [sitk.ReadImage(str(f)) for f in sorted(case_dir.glob("*.nii.gz"))]
        masks = {
            kind: sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "segmentations" / kind / f)))
            for kind in ("expert", "automatic")
            for f in [f"{pid}.nii.gz"]
            if (raw / "segmentations" / kind / f).is_file()
        }
        arrays = [sitk.GetArrayFromImage(p) for p in phases]
        times = records[pid].acquisition_times if pid in records else None
        cpu = _cpu()
        acc = KineticsAccumulator(masks, times, len(arrays), phases[0].GetSpacing())
        for n, array in enumerate(arrays):
            acc.add(n, array)
        acc.features()
        shape_features(masks.get("expert"), phases[0].GetSpacing())
        used += _cpu() - cpu
    return used


def fs_probe(dest: Path, n: int = 400) -> float:
    """CPU microseconds to create one empty file plus one folder here, now (the cost of a new
    inode varies tenfold on a shared ext4 without a journal: it skips recently deleted ones)."""
    dest.mkdir(parents=True)
    cpu = _cpu()
    for i in range(n):
        os.mkdir(dest / f"d{i}")
        os.close(os.open(dest / f"d{i}" / "f", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    return (_cpu() - cpu) / (2 * n) * 1e6


def ours(
    raw: Path, jobs: int, keep: Path, tables_only: bool = False, version: int = 1
) -> tuple[float, float]:
    """(wall seconds, CPU seconds over all processes) of one ingest into a fresh catalog under
    ``keep`` (removed by the caller at the end of the run, not here: freshly deleted inodes
    make the next run's file creation slower on this file system), in catalog format
    ``version`` (explicit: the default of ``ingest`` may change)."""
    catalog = Path(tempfile.mkdtemp(dir=keep)) / "catalog"
    started, cpu = time.perf_counter(), _cpu()
    report = ingest(
        raw, catalog, jobs=jobs, tables_only=tables_only, progress=False, format_version=version
    )
    elapsed, used = time.perf_counter() - started, _cpu() - cpu
    if report.exit_code != 0:
        raise RuntimeError(report.summary())
    return elapsed, used


def synthetic_phase(shape: tuple[int, int, int] = (160, 512, 512)) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(0)
    z, y, x = shape
    zz, yy, xx = np.ogrid[:z, :y, :x]
    body = ((yy - y / 2) / (0.45 * y)) ** 2 + ((xx - x / 2) / (0.48 * x)) ** 2 < 1
    base = np.where(body, 300 + 0.2 * yy + 0.1 * zz, 0).astype(np.float32)
    blob = ((zz - z / 2) / 12) ** 2 + ((yy - y / 2) / 25) ** 2 + ((xx - x / 3) / 25) ** 2 < 1
    base += 500 * blob
    base += rng.normal(0, 25, shape).astype(np.float32) * body
    base += np.abs(rng.normal(0, 5, shape)).astype(np.float32) * ~body
    return np.clip(base, 0, 32767).astype(np.int16)


def chunk_comparison(crops: int = 40, slices: int = 8) -> list[dict[str, Any]]:
    phase = synthetic_phase()
    rng = np.random.default_rng(1)
    z, y, x = phase.shape
    corners = [
        (int(rng.integers(0, z - 64)), int(rng.integers(0, y - 64)), int(rng.integers(0, x - 64)))
        for _ in range(crops)
    ]
    rows: list[dict[str, Any]] = []
    results: dict[tuple[int, ...], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        for chunks in CHUNK_SHAPES:
            path = Path(tmp) / ("x".join(map(str, chunks)) + ".zarr")
            started = time.perf_counter()
            arr = zarr.create_array(
                store=zarr.storage.LocalStore(path),
                shape=(1, *phase.shape),
                chunks=chunks,
                dtype=phase.dtype,
                fill_value=0,
                compressors=[BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"), Crc32cCodec()],
                config={"write_empty_chunks": True},
            )
            arr[0] = phase
            write_s = time.perf_counter() - started
            size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            reader = zarr.open_array(path, mode="r")

            def timed(fn: Any, n: int) -> float:
                times = []
                for i in range(n):
                    t0 = time.perf_counter()
                    fn(i)
                    times.append(time.perf_counter() - t0)
                return statistics.median(times) * 1000

            crop_ms = timed(
                lambda i, r=reader: r[
                    0,
                    corners[i][0] : corners[i][0] + 64,
                    corners[i][1] : corners[i][1] + 64,
                    corners[i][2] : corners[i][2] + 64,
                ],
                crops,
            )
            axial_ms = timed(lambda i, r=reader: r[0, (i * 17) % z], slices)
            coronal_ms = timed(lambda i, r=reader: r[0, :, (i * 53) % y], slices)
            results[chunks] = {
                "crop": crop_ms,
                "axial": axial_ms,
                "coronal": coronal_ms,
                "ratio": phase.nbytes / size,
                "write": write_s,
            }
    default = results[CHUNK_SHAPES[0]]
    for chunks, r in results.items():
        name = "(" + ", ".join(map(str, chunks)) + ")"
        for metric, unit in (("crop", "ms"), ("axial", "ms"), ("coronal", "ms"), ("write", "s")):
            rows.append(
                {
                    "benchmark": "chunk shape",
                    "metric": f"{name} {metric}" + (" 64^3 crop" if metric == "crop" else ""),
                    "ours": r[metric],
                    "baseline_name": "default (1, 32, 128, 128)",
                    "baseline": default[metric],
                    "ratio": r[metric] / default[metric] if default[metric] else None,
                    "target": None,
                    "unit": unit,
                }
            )
        rows.append(
            {
                "benchmark": "chunk shape",
                "metric": f"{name} compression ratio",
                "ours": r["ratio"],
                "baseline_name": "default (1, 32, 128, 128)",
                "baseline": default["ratio"],
                "ratio": r["ratio"] / default["ratio"],
                "target": None,
                "unit": "x",
            }
        )
    return rows


def worker_startup() -> tuple[float, float]:
    """(wall, CPU) seconds for a pool of 2 ingest workers to start and answer once, in the
    start method ingest uses (forkserver: the first pool of a process starts the server, which
    imports zarr, SimpleITK, pyarrow... once; later pools fork from it)."""
    from concurrent.futures import ProcessPoolExecutor

    from mamamia_ingest._ingest import _worker_context
    from mamamia_ingest._volumes import init_worker

    started, cpu = time.perf_counter(), _cpu()
    with ProcessPoolExecutor(2, mp_context=_worker_context(), initializer=init_worker) as pool:
        list(pool.map(abs, [1, 2]))
    return time.perf_counter() - started, _cpu() - cpu


def _row(
    metric: str,
    ours_v: float,
    bname: str | None = None,
    bval: float | None = None,
    ratio: float | None = None,
    target: str | None = None,
    unit: str = "MB/s",
) -> dict[str, Any]:
    return {
        "benchmark": "ingest",
        "metric": metric,
        "ours": ours_v,
        "baseline_name": bname,
        "baseline": bval,
        "ratio": ratio,
        "target": target,
        "unit": unit,
    }


def run(
    scale: float = 0.5, ids: tuple[str, ...] = DEFAULT_IDS, repeat: int = 3
) -> list[dict[str, Any]]:
    repeat = max(1, repeat)
    OUT.mkdir(parents=True, exist_ok=True)
    # Some sandboxes set PYTHONDONTWRITEBYTECODE, so every new process would recompile
    # pandas, zarr and pyarrow from source: a cost no installed copy pays. Allow the cache.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    first_s, _ = worker_startup()  # starts the forkserver (and fills the bytecode cache)
    numcodecs.blosc.set_nthreads(1)  # one thread, as each ingest worker runs
    raw = prepare(scale, ids)
    files = _sources(raw)
    keep = Path(tempfile.mkdtemp(dir=OUT, prefix="ingest-runs-"))
    # Each figure is the median of ``repeat`` rounds, every round measuring everything in the
    # same order (the machine is shared: single runs move by tens of percent).
    m: dict[str, list[float]] = {}

    def add(**values: float) -> None:
        for k, v in values.items():
            m.setdefault(k, []).append(v)

    try:
        ours(raw, 1, keep, tables_only=True)  # warm the page cache and the imports
        fs_us = fs_probe(keep / "probe")
        for r in range(repeat):
            read_s, read_cpu, nbytes = floor_read(files)
            rc_s, rc_cpu, stored = floor_read_compress(files)
            _, rcw_cpu, created = floor_read_compress_write(files, keep / f"floor3-{r}")
            features = features_cpu(raw)
            tables_s, tables_cpu = ours(raw, 1, keep, tables_only=True)
            one_s, one_cpu = ours(raw, 1, keep)
            two_s, _ = ours(raw, 2, keep)
            rc2_s, rc2_cpu, stored2 = floor_read_compress(files, version=2)
            _, rc2p_cpu, stored2p = floor_read_compress(files, version=2, pad=True)
            _, rcw2_cpu, _ = floor_read_compress_write_volume(files, keep / f"floor3-f2-{r}")
            f2_s, f2_cpu = ours(raw, 1, keep, version=2)
            add(read_s=read_s, read_cpu=read_cpu, rc_s=rc_s, rc_cpu=rc_cpu, rcw_cpu=rcw_cpu)
            add(
                rc2_s=rc2_s,
                rc2_cpu=rc2_cpu,
                rc2p_cpu=rc2p_cpu,
                rcw2_cpu=rcw2_cpu,
                f2_vol=max(f2_s - tables_s, 1e-9),
                f2_vol_cpu=max(f2_cpu - tables_cpu, 1e-9),
            )
            add(
                vol1=max(one_s - tables_s, 1e-9),
                vol1_cpu=max(one_cpu - tables_cpu, 1e-9),
                vol1_ratio=max(one_cpu - tables_cpu, 1e-9) / rc_cpu,
                # what the kinetic and shape features add to ingest's ratio to floor 2
                features_rise=features / max(one_cpu - tables_cpu - features, 1e-9),
                one_s=one_s,
                # (forkserver workers' CPU is not ours to count)
                vol2=max(two_s - tables_s, 1e-9),
            )
    finally:
        shutil.rmtree(keep, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in m.items()}
    read_s, read_cpu, rc_s, rc_cpu, rcw_cpu = (
        med[k] for k in ("read_s", "read_cpu", "rc_s", "rc_cpu", "rcw_cpu")
    )
    vol1, vol1_cpu, one_s, vol2 = (med[k] for k in ("vol1", "vol1_cpu", "one_s", "vol2"))
    ratios = ", ".join(f"{v:.2f}" for v in m["vol1_ratio"])

    def paired(num: str, den: str) -> float:
        """Median over the rounds of num / den measured in the same round."""
        return statistics.median(a / b for a, b in zip(m[num], m[den], strict=True))

    start_s, _ = worker_startup()
    mb = nbytes / 1e6
    note = f"{mb:.0f} MB of voxels in {len(files)} files; medians of {repeat} rounds"
    cps = "MB/CPU-s"
    rows: list[dict[str, Any]] = [
        _row(f"floor 1: SimpleITK read, wall ({note})", mb / read_s),
        _row("floor 1: SimpleITK read, per CPU-second", mb / read_cpu, unit=cps),
        _row(
            f"floor 2: read + blosc-zstd3 + crc32c, wall (ratio {nbytes / stored:.2f}x)",
            mb / rc_s,
            "floor 1",
            mb / read_s,
            paired("read_s", "rc_s"),
        ),
        _row(
            "floor 2: read + compress, per CPU-second",
            mb / rc_cpu,
            "floor 1",
            mb / read_cpu,
            paired("read_cpu", "rc_cpu"),
            unit=cps,
        ),
        _row(
            f"floor 3 (context): floor 2 + its chunks written as files ({created} files and "
            "folders), per CPU-second",
            mb / rcw_cpu,
            "floor 2",
            mb / rc_cpu,
            paired("rcw_cpu", "rc_cpu"),
            unit=cps,
        ),
        _row(
            "file system here: CPU per new file or folder (context)",
            fs_us,
            unit="us",
        ),
        _row(
            "ingest --jobs 1 volumes, per CPU-second (time ratio vs floor 3)",
            mb / vol1_cpu,
            "floor 3",
            mb / rcw_cpu,
            paired("vol1_cpu", "rcw_cpu"),
            unit=cps,
        ),
        _row(
            f"ingest --jobs 1 volumes, CPU time / floor 2's in each round ({ratios})",
            statistics.median(m["vol1_ratio"]),
            unit="x",
        ),
        _row(
            "ingest --jobs 1 volumes, per CPU-second (time ratio vs floor 2)",
            mb / vol1_cpu,
            "floor 2",
            mb / rc_cpu,
            paired("vol1_cpu", "rc_cpu"),
            "<= 1.3",
            cps,
        ),
        _row(
            "ingest --jobs 1 volumes, wall (time ratio vs floor 2)",
            mb / vol1,
            "floor 2",
            mb / rc_s,
            paired("vol1", "rc_s"),
            "<= 1.3",
        ),
        _row(
            "kinetic + shape features (docs/features.md): their CPU / the rest of ingest "
            "--jobs 1 volumes' (the rise of its ratio to floor 2)",
            statistics.median(m["features_rise"]),
            target="<= 0.1",
            unit="x",
        ),
        _row(
            "ingest --jobs 1 end to end (tables included), wall",
            mb / one_s,
            "floor 2",
            mb / rc_s,
            paired("one_s", "rc_s"),
        ),
        _row(
            "ingest --jobs 2 volumes, wall (speed-up vs --jobs 1)",
            mb / vol2,
            "ingest --jobs 1",
            mb / vol1,
            paired("vol1", "vol2"),
            "> 1",
        ),
        _row(
            "forkserver start-up, first pool of a process (not in the rows above)",
            first_s,
            unit="s",
        ),
        _row("2-worker pool start-up from the running forkserver", start_s, unit="s"),
        _row(
            f"format 2 floor 2: read + blosc-{FORMAT2_CNAME}-{FORMAT2_CLEVEL} + crc32c in "
            f"{'x'.join(map(str, FORMAT2_INNER_ZYX))} inner chunks, per CPU-second "
            f"(ratio {nbytes / stored2:.2f}x)",
            mb / med["rc2_cpu"],
            "floor 1",
            mb / read_cpu,
            paired("read_cpu", "rc2_cpu"),
            unit=cps,
        ),
        _row(
            "format 2 floor 2 with edge inner chunks padded (context): the same, edge inner "
            "chunks padded with zeros to whole inner chunks as the shard writer must, per CPU-second "
            f"(stored {stored2p / stored2:.2f}x floor 2's bytes; time ratio vs format 2 floor 2)",
            mb / med["rc2p_cpu"],
            "format 2 floor 2",
            mb / med["rc2_cpu"],
            paired("rc2p_cpu", "rc2_cpu"),
            unit=cps,
        ),
        _row(
            "format 2 floor 3 (written one file per volume, context): format 2 floor 2 + each "
            "volume's compressed chunks written to one new file, per CPU-second (time ratio vs "
            "format 2 floor 2)",
            mb / med["rcw2_cpu"],
            "format 2 floor 2",
            mb / med["rc2_cpu"],
            paired("rcw2_cpu", "rc2_cpu"),
            unit=cps,
        ),
        _row(
            "ingest --format 2 --jobs 1 volumes, per CPU-second (time ratio vs format 2 floor 3)",
            mb / med["f2_vol_cpu"],
            "format 2 floor 3",
            mb / med["rcw2_cpu"],
            paired("f2_vol_cpu", "rcw2_cpu"),
            unit=cps,
        ),
        _row(
            "ingest --format 2 --jobs 1 volumes, per CPU-second (time ratio vs format 2 floor 2)",
            mb / med["f2_vol_cpu"],
            "format 2 floor 2",
            mb / med["rc2_cpu"],
            paired("f2_vol_cpu", "rc2_cpu"),
            "<= 1.3",
            cps,
        ),
        _row(
            "ingest --format 2 --jobs 1 volumes, wall (time ratio vs format 2 floor 2)",
            mb / med["f2_vol"],
            "format 2 floor 2",
            mb / med["rc2_s"],
            paired("f2_vol", "rc2_s"),
        ),
    ]
    rows += chunk_comparison()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--ids", default=",".join(DEFAULT_IDS))
    parser.add_argument("--repeat", type=int, default=3, help="rounds; figures are medians")
    args = parser.parse_args()
    rows = run(args.scale, tuple(args.ids.split(",")), max(1, args.repeat))
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
