"""Catalog format 2 in process: crops against nnU-Net v2's blosc2 loader, the training stream
against format 1, and objects per case on disk.

Data (made once under bench/out/, git-ignored): a phantom of the real table's first ``--cases``
rows (default 8) at ``--scale 1`` (the real dimensions), ingested twice from the same raw folder,
``format_version`` 1 and 2, both explicit.

1. Random 64^3 and 128^3 crops of one full-size phase (phase 1 of the first case, 160x448x448
   int16) through ``mamamia.open`` on the format-2 catalog, against an nnU-Net v2 ``.b2nd`` copy
   of the same voxels (LZ4HC 8, nnU-Net's block/chunk sizing for a 64^3 patch, as in
   bench_format.py) read two ways:

   (i) as nnU-Net v2's training loader reads it: ``nnUNetDatasetBlosc2.load_case`` calls
       ``blosc2.open(urlpath, mode='r', dparams={'nthreads': 1}, mmap_mode='r')`` on the case's
       ``.b2nd`` for every sample (and on its ``_seg.b2nd``, and unpickles its ``.pkl``; those
       two are not counted here), then the data loader slices the patch out of it: one open and
       one slice per crop. This is the target's baseline.
   (ii) the same array held open, one slice per crop (context).

   The same crops through TensorStore (``zarr3`` driver, ``file`` kvstore), zarr-python and
   ``mamamia.open`` on the format-1 catalog are context rows. Every reader is checked against
   the source voxels once. Rounds are interleaved: every reader reads the same boxes in each
   round, so load on the machine hits all of them alike.
2. The training stream ``cat.crops`` (64^3, phases 0 and 1 plus their subtraction, the expert
   label, ``per_case`` 1 and 8) over all cases, samples/s, format 2 against format 1 in the
   same rounds (alternating which goes first).
3. Files per case on disk (images, both masks, preview levels, ``zarr.json``), format 2
   against format 1.

    uv run python bench/bench_format2.py [--rounds 3] [--crops 60] [--stream-rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from _data import OUT, format_catalogs
from _table import markdown_table
from bench_format import write_b2nd

LOADER = (
    "nnU-Net v2 loader: blosc2.open(.b2nd, mmap_mode='r', nthreads 1) + slice per crop, "
    "as nnUNetDatasetBlosc2.load_case"
)
HELD = "nnU-Net v2 .b2nd held open (mmap, 1 thread), slice per crop"
OURS = "mamamia.open, format 2"


def row(
    benchmark: str,
    metric: str,
    ours: float,
    base_name: str,
    base: float | None,
    unit: str,
    target: str | None = None,
) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "metric": metric,
        "ours": ours,
        "baseline_name": base_name,
        "baseline": base,
        "ratio": ours / base if base else None,
        "target": target,
        "unit": unit,
    }


def _b2nd(phase: np.ndarray[Any, Any], path: Path) -> Path:
    """The phase as nnU-Net v2 stores a preprocessed case (written once, atomically)."""
    if path.is_file():
        return path
    partial = path.with_suffix(".partial.b2nd")
    partial.unlink(missing_ok=True)
    write_b2nd(phase, partial)
    partial.rename(path)
    return path


def random_boxes(shape: tuple[int, ...], size: int, n: int, seed: int) -> list[tuple[slice, ...]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lo = [int(rng.integers(0, d - min(size, d) + 1)) for d in shape]
        out.append(tuple(slice(a, a + min(size, d)) for a, d in zip(lo, shape, strict=True)))
    return out


def crop_rows(f1: Path, f2: Path, rounds: int, crops: int) -> list[dict[str, Any]]:
    """Random 64^3 and 128^3 crops of one full-size phase, every reader in every round."""
    import blosc2
    import tensorstore as ts
    import zarr

    import mamamia

    cat1, cat2 = mamamia.open(f1), mamamia.open(f2)
    case_id = cat2.cohort("true").case_ids[0]
    image1, image2 = cat1.case(case_id).image, cat2.case(case_id).image
    phase = np.asarray(image2[1])
    b2 = _b2nd(phase, f2.parent / f"{case_id}_0001.b2nd")
    held = blosc2.open(str(b2), mode="r", dparams={"nthreads": 1}, mmap_mode="r")
    zarr_path = cat2.sql(
        "SELECT zarr_path FROM volumes WHERE kind = 'image' AND patient_id = $id LIMIT 1",
        id=case_id,
    ).to_pylist()[0]["zarr_path"]
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(f2 / zarr_path)}}
    tstore = ts.open(spec, open=True, read=True).result()
    zarray = zarr.open_array(str(f2 / zarr_path), mode="r")

    def nnunet_loader(box: tuple[slice, ...]) -> Any:
        data = blosc2.open(str(b2), mode="r", dparams={"nthreads": 1}, mmap_mode="r")
        return data[box]

    readers: dict[str, Callable[[tuple[slice, ...]], Any]] = {
        OURS: lambda box: image2[(1, *box)],
        LOADER: nnunet_loader,
        HELD: lambda box: held[box],
        "TensorStore (zarr3 driver, file kvstore), format 2": lambda box: (
            tstore[(1, *box)].read().result()
        ),
        "zarr-python, format 2": lambda box: zarray[(1, *box)],
        "mamamia.open, format 1": lambda box: image1[(1, *box)],
    }
    tests = {
        64: random_boxes(phase.shape, 64, crops, seed=1),
        128: random_boxes(phase.shape, 128, max(5, crops // 4), seed=2),
    }
    for name, read in readers.items():
        for boxes in tests.values():
            assert np.array_equal(np.asarray(read(boxes[0])), phase[boxes[0]]), name
    times: dict[tuple[int, str], list[float]] = {}
    for _round in range(rounds):
        for size, boxes in tests.items():
            for name, read in readers.items():
                for box in boxes:
                    started = time.perf_counter()
                    read(box)
                    times.setdefault((size, name), []).append(time.perf_counter() - started)
    rows = []
    note = f"phase {'x'.join(str(n) for n in phase.shape)} int16"
    for size in tests:
        ms = {name: statistics.median(times[(size, name)]) * 1000 for name in readers}
        metric = f"random {size}^3 crop, in process, {note}"
        rows.append(row("format2", f"{metric}: {OURS}", ms[OURS], LOADER, ms[LOADER], "ms",
                         "<= 1.0x"))  # fmt: skip
        rows.append(row("format2", f"{metric}: {OURS} (context: the array held open)",
                         ms[OURS], HELD, ms[HELD], "ms"))  # fmt: skip
        for name in list(readers)[3:]:
            rows.append(row("format2", f"{metric}: {name} (context)", ms[name], LOADER,
                             ms[LOADER], "ms"))  # fmt: skip
    return rows


def stream_rows(f1: Path, f2: Path, rounds: int) -> list[dict[str, Any]]:
    """Samples/s of one epoch of the training stream, format 2 against format 1."""
    import mamamia

    cats = {1: mamamia.open(f1), 2: mamamia.open(f2)}
    ids = cats[2].cohort("has_expert").case_ids

    # One stream per format and per_case, iterated epoch after epoch (set_epoch), as a
    # training loop does; its first epoch, unclocked, starts its threads and reads its rows.
    streams = {
        (version, per_case): cats[version].crops(
            ids,
            size=(64, 64, 64),
            phases=(0, 1),
            subtraction=True,
            label="expert",
            per_case=per_case,
            seed=0,
        )
        for version in (1, 2)
        for per_case in (1, 8)
    }

    def epoch(version: int, per_case: int, number: int) -> float:
        stream = streams[(version, per_case)]
        stream.set_epoch(number)
        started = time.perf_counter()
        count = 0
        for crop in stream:
            assert crop["image"].shape == (3, 64, 64, 64) and crop["label"].shape == (64, 64, 64)
            count += 1
        assert count == len(ids) * per_case
        return count / (time.perf_counter() - started)

    for version, per_case in streams:
        epoch(version, per_case, 0)
    rates: dict[tuple[int, int], list[float]] = {}
    for r in range(rounds):
        for per_case in (1, 8):
            for version in (1, 2) if r % 2 == 0 else (2, 1):
                rates.setdefault((per_case, version), []).append(epoch(version, per_case, r + 1))
    rows = []
    for per_case in (1, 8):
        ours, base = (statistics.median(rates[(per_case, v)]) for v in (2, 1))
        metric = (
            f"training stream 64^3, phases 0+1 + subtraction + expert label, samples_per_volume "
            f"{per_case}, {len(ids)} full-size cases: format 2"
        )
        rows.append(row("format2", metric, ours, "the same stream on format 1", base,
                         "samples/s", ">= 2x"))  # fmt: skip
    return rows


def files_per_case(catalog: Path) -> dict[str, int]:
    """Stored files under each case's folder of volumes/ (every generation it holds)."""
    return {
        case.name: sum(1 for p in case.rglob("*") if p.is_file())
        for case in sorted((catalog / "volumes").iterdir())
    }


def disk_rows(f1: Path, f2: Path) -> list[dict[str, Any]]:
    one, two = files_per_case(f1), files_per_case(f2)
    return [
        row("format2", f"files per case on disk, format 2 ({label} over {len(two)} cases)",
             pick(two.values()), "format 1", pick(one.values()), "files", "<= 20 per case")
        for label, pick in (("most", max), ("median", statistics.median))
    ]  # fmt: skip


def run(
    scale: float = 1.0, cases: int = 8, rounds: int = 3, crops: int = 60, stream_rounds: int = 3
) -> list[dict[str, Any]]:
    _raw, f1, f2 = format_catalogs(scale, cases)
    OUT.mkdir(parents=True, exist_ok=True)
    rows = disk_rows(f1, f2)
    rows += crop_rows(f1, f2, rounds, crops)
    print("   crops done", file=sys.stderr, flush=True)
    rows += stream_rows(f1, f2, stream_rounds)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of crops")
    parser.add_argument("--crops", type=int, default=60, help="64^3 crops per round")
    parser.add_argument("--stream-rounds", type=int, default=3)
    args = parser.parse_args()
    rows = run(args.scale, args.cases, args.rounds, args.crops, args.stream_rounds)
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
