"""Training crops per second: ``cat.crops`` against a TorchIO ``Queue`` on the same cases.

One run of each, on the same cohort of phantom cases: ours reads the catalog's Zarr chunks
(local folder, and the same catalog through a real uvicorn on 127.0.0.1 with a fresh chunk
cache); TorchIO reads the raw ``.nii.gz`` files the catalog was ingested from, through
``SubjectsDataset`` + ``Queue`` with a ``LabelSampler`` (foreground probability 0.5, like our
``pos_ratio=0.5``) and ``ZNormalization``, at ``samples_per_volume`` 1 and 8. Both run in one
process (TorchIO ``num_workers=0``; ours on its own thread pool: ``threads=2`` locally,
the default 8 remotely).

The target rows use full-size volumes (``--scale 1``, the real table's dimensions, as the
dataset has them) on ``--cases`` (default 8) cases. The same rows are then measured on small
volumes (``--small-scale``, default 0.25: 1/64 of the voxels) for comparison: TorchIO's
whole-volume work shrinks with the volume while a crop still decodes whole chunks, so that
ratio is far lower and carries no target. Last, the peak memory of a full epoch of
``cat.crops`` over 20 and over 200 distinct small cases, each in a fresh process (peak RSS):
it must stay flat (within 20%).

The data are made once and reused under bench/out/ (git-ignored): phantom cases of the real
table's first rows (``mamamia_ingest.write_phantom``) and their catalog. The first run spends
several minutes making them (about 2 GB for 9 full-size cases).

TorchIO is not a dependency of the project and this script installs nothing. To measure the
baseline, put it into the venv after the CPU torch, so that uv does not pull a CUDA build
(torchio needs ``torch>=1.9``, which the installed 2.13.0 CPU wheel satisfies)::

    make torch
    uv pip install --python .venv/bin/python torchio

Without it the table says the baseline is missing instead of a ratio.

    uv run python bench/bench_crops.py [--scale 1] [--cases 8] [--size 32,64,64]
    uv run python bench/bench_crops.py --scale 0.5 --cases 10 --small-cases 0 --no-memory
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from _table import cell

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
TABLE = ROOT / "tests" / "data" / "clinical_and_imaging_info.xlsx"
BASELINE = "TorchIO Queue (.nii.gz)"
MEMORY_CASES = (20, 200)


def prepare(scale: float, cases: int) -> tuple[Path, Path]:
    """The phantom raw folder and its catalog (made once under bench/out/, then reused)."""
    from mamamia_ingest import ingest, write_phantom

    base = OUT / f"crops-scale{scale:g}-cases{cases}"
    # A finished set of at least as many cases at this scale serves as well (its first rows).
    made = sorted(
        (int(p.name.rsplit("cases", 1)[1]), p)
        for p in OUT.glob(f"crops-scale{scale:g}-cases*")
        if p.name.rsplit("cases", 1)[1].isdigit()
        and (p / "raw.done").exists()
        and (p / "catalog" / "catalog.json").exists()
    )
    usable = [p for n, p in made if n >= cases]
    if usable:
        base = usable[0]
    raw, catalog = base / "raw", base / "catalog"
    done = base / "raw.done"
    if not done.exists():
        print(f"making {cases} phantom cases at scale {scale:g} in {raw} (once) ...", flush=True)
        write_phantom(raw, cases=cases, scale=scale, seed=0, table=TABLE, progress=True)
        done.write_text("ok\n")
    if not (catalog / "catalog.json").exists():
        print(f"ingesting them into {catalog} (once) ...", flush=True)
        ingest(raw, catalog, progress=True)
    return raw, catalog


def crop_size(catalog: Any, ids: list[str], wanted: tuple[int, int, int]) -> tuple[int, int, int]:
    """The asked size, shrunk to fit every volume (TorchIO refuses patches larger than one)."""
    table = catalog.sql(
        "SELECT min(shape[1]) AS z, min(shape[2]) AS y, min(shape[3]) AS x FROM volumes "
        "WHERE kind = 'image' AND list_contains($ids, patient_id)",
        ids=ids,
    ).to_pylist()[0]
    smallest = (int(table["z"]), int(table["y"]), int(table["x"]))
    z, y, x = (min(w, s) for w, s in zip(wanted, smallest, strict=True))
    return (z, y, x)


def ours(
    catalog: Any,
    ids: list[str],
    size: tuple[int, int, int],
    per_case: int,
    threads: int | None = 2,
) -> float:
    """Crops per second of one epoch of ``cat.crops``."""
    stream = catalog.crops(
        ids, size=size, per_case=per_case, pos_ratio=0.5, seed=0, threads=threads
    )
    started = time.perf_counter()
    count = sum(1 for _ in stream)
    elapsed = time.perf_counter() - started
    assert count == len(ids) * per_case
    return count / elapsed


def torchio_rate(
    raw: Path, ids: list[str], size: tuple[int, int, int], per_case: int
) -> float | None:
    """Crops per second of one pass of a TorchIO Queue over the same cases, or None if absent."""
    try:
        import torchio as tio
    except ImportError:
        return None
    subjects = []
    for pid in ids:
        subjects.append(
            tio.Subject(
                pre=tio.ScalarImage(raw / "images" / pid / f"{pid}_0000.nii.gz"),
                post=tio.ScalarImage(raw / "images" / pid / f"{pid}_0001.nii.gz"),
                label=tio.LabelMap(raw / "segmentations" / "expert" / f"{pid}.nii.gz"),
            )
        )
    dataset = tio.SubjectsDataset(subjects, transform=tio.ZNormalization())
    # TorchIO's patch size is (x, y, z) in its (C, W, H, D) tensors.
    sampler = tio.LabelSampler(
        patch_size=(size[2], size[1], size[0]),
        label_name="label",
        label_probabilities={0: 0.5, 1: 0.5},
    )
    queue = tio.Queue(
        dataset,
        max_length=max(16, 2 * per_case),
        samples_per_volume=per_case,
        sampler=sampler,
        num_workers=0,
        shuffle_subjects=True,
        shuffle_patches=True,
        verbose=False,
    )
    from torch.utils.data import DataLoader

    # The Queue is a map-style dataset that refills forever: a DataLoader reads len(queue).
    started = time.perf_counter()
    count = sum(len(batch["label"]["data"]) for batch in DataLoader(queue, batch_size=1))
    elapsed = time.perf_counter() - started
    assert count == len(ids) * per_case
    return count / elapsed


def _remote_rates(
    catalog_dir: Path, ids: list[str], size: tuple[int, int, int]
) -> tuple[float, float] | None:
    """Crops per second through a real server on loopback: empty cache, then a warm one."""
    try:
        import uvicorn

        from mamamia_server import ServerSettings, create_app
    except ImportError:
        return None
    import socket

    import mamamia

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    app = create_app(ServerSettings(catalog=catalog_dir))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        with tempfile.TemporaryDirectory() as cache:
            remote = mamamia.connect(f"http://127.0.0.1:{port}", cache_dir=cache)
            # The remote default of threads (8): requests overlap while others wait.
            cold = ours(remote, ids, size, 1, threads=None)
            warm = ours(remote, ids, size, 1, threads=None)  # the same crops: all cached
            return cold, warm
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _warm_page_cache(raw: Path, catalog_dir: Path, ids: list[str]) -> None:
    """Read every file both readers will touch once, so neither pays for a cold disk."""
    paths: list[Path] = []
    for pid in ids:
        paths += sorted((raw / "images" / pid).glob(f"{pid}_000[01].nii.gz"))
        paths.append(raw / "segmentations" / "expert" / f"{pid}.nii.gz")
        paths += [p for p in (catalog_dir / "volumes" / pid).rglob("*") if p.is_file()]
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(1 << 20):
                pass


def _memory_probe(catalog_dir: Path, cases: int, size: tuple[int, int, int]) -> dict[str, Any]:
    """(In a fresh process) peak RSS of one epoch of crops over the first ``cases`` cases."""
    import mamamia

    catalog = mamamia.open(catalog_dir)
    ids = catalog.cohort("true").case_ids[:cases]
    if len(ids) < cases:
        raise SystemExit(f"the catalog has {len(ids)} cases, the probe wants {cases}")
    stream = catalog.crops(ids, size=size, per_case=1, seed=0, threads=2)
    start_rss = _rss_mb()
    count = sum(1 for _ in stream)
    return {"cases": cases, "crops": count, "peak_rss_mb": _peak_mb(), "start_rss_mb": start_rss}


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child would report its
    # parent's peak (this script's, with torch loaded) instead of its own.
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _probe_in_subprocess(
    catalog_dir: Path, cases: int, size: tuple[int, int, int]
) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--memory-probe",
        str(cases),
        "--catalog",
        str(catalog_dir),
        "--size",
        ",".join(str(v) for v in size),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _row(
    metric: str,
    mine: float | None,
    base: float | None,
    base_name: str,
    target: str | None,
    unit: str,
) -> dict[str, Any]:
    return {
        "benchmark": "crops",
        "metric": metric,
        "ours": mine,
        "baseline_name": base_name,
        "baseline": base,
        "ratio": mine / base if mine is not None and base else None,
        "target": target,
        "unit": unit,
    }


def _throughput_rows(
    catalog: Any,
    raw: Path,
    ids: list[str],
    spare: list[str],
    patch: tuple[int, int, int],
    note: str,
    targets: bool,
) -> list[dict[str, Any]]:
    """Crops/s of ours and of TorchIO at 1 and 8 samples per volume on one cohort."""
    # One crop of a case outside the cohort starts each reader's threads and imports.
    ours(catalog, spare, patch, 1)
    torchio_rate(raw, spare, patch, 1)
    rows: list[dict[str, Any]] = []
    for per_case, target in ((1, ">= 20x"), (8, ">= 3x")):
        mine = ours(catalog, ids, patch, per_case)
        theirs = torchio_rate(raw, ids, patch, per_case)
        name = BASELINE if theirs is not None else f"{BASELINE}: missing (pip install torchio)"
        metric = f"crops/s, local, samples_per_volume {per_case}, {note}"
        rows.append(_row(metric, mine, theirs, name, target if targets else None, "crops/s"))
        print(f"   {metric}: ours {mine:.3g}, baseline {theirs}", flush=True)
    return rows


def run(
    scale: float = 1.0,
    cases: int = 8,
    size: tuple[int, int, int] = (32, 64, 64),
    remote: bool = True,
    memory: bool = True,
    small_scale: float = 0.25,
    small_cases: int = 20,
) -> list[dict[str, Any]]:
    """Throughput on full-size volumes (the targets), then on small ones and the memory run."""
    import mamamia

    warnings.filterwarnings("ignore")
    rows: list[dict[str, Any]] = []
    raw, catalog_dir = prepare(scale, cases + 1)
    catalog = mamamia.open(catalog_dir)
    every = catalog.cohort("true").case_ids
    ids, spare = every[:cases], every[-1:]
    patch = crop_size(catalog, ids + spare, size)
    print(f"cohort: {len(ids)} cases at scale {scale:g}, crop size (z, y, x) {patch}", flush=True)
    _warm_page_cache(raw, catalog_dir, ids + spare)
    note = f"{len(ids)} cases at --scale {scale:g}"
    rows += _throughput_rows(catalog, raw, ids, spare, patch, note, targets=True)
    if remote:
        rates = _remote_rates(catalog_dir, ids, patch)
        baseline = rows[0]["baseline"]
        if rates is not None:
            for label, rate in zip(("cold", "warm"), rates, strict=True):
                metric = f"crops/s, remote ({label} chunk cache), samples_per_volume 1, {note}"
                rows.append(_row(metric, rate, baseline, rows[0]["baseline_name"], ">= 20x",
                                 "crops/s"))  # fmt: skip
    if small_cases:
        # Small volumes (1/64 of the voxels at 0.25): TorchIO's whole-volume work shrinks with
        # them while a crop still decodes whole chunks, so the ratio is far lower (no target).
        raw, catalog_dir = prepare(small_scale, max(MEMORY_CASES) if memory else small_cases + 1)
        catalog = mamamia.open(catalog_dir)
        every = catalog.cohort("true").case_ids
        ids, spare = every[:small_cases], every[-1:]
        patch = crop_size(catalog, ids + spare, size)
        _warm_page_cache(raw, catalog_dir, ids + spare)
        note = f"{len(ids)} small cases at --scale {small_scale:g}"
        rows += _throughput_rows(catalog, raw, ids, spare, patch, note, targets=False)
    if not memory:
        return rows
    raw, catalog_dir = prepare(small_scale, max(MEMORY_CASES))
    small, large = (_probe_in_subprocess(catalog_dir, n, patch) for n in MEMORY_CASES)
    rows.append(
        {
            "benchmark": "crops",
            "metric": f"peak RSS, one epoch over {large['cases']} vs {small['cases']} cases "
            f"(--scale {small_scale:g})",
            "ours": large["peak_rss_mb"],
            "baseline_name": f"same stream over {small['cases']} cases",
            "baseline": small["peak_rss_mb"],
            "ratio": large["peak_rss_mb"] / small["peak_rss_mb"],
            "target": "<= 1.2x",
            "unit": "MiB",
        }
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="phantom scale of the target runs (1 = real size)"
    )
    parser.add_argument("--cases", type=int, default=8, help="cohort size for the target runs")
    parser.add_argument(
        "--small-scale", type=float, default=0.25, help="scale of the small-volume and memory runs"
    )
    parser.add_argument(
        "--small-cases", type=int, default=20, help="cohort of the small-volume run (0: skip it)"
    )
    parser.add_argument("--size", default="32,64,64", help="crop size z,y,x")
    parser.add_argument("--no-remote", action="store_true", help="skip the loopback server run")
    parser.add_argument(
        "--no-memory",
        action="store_true",
        help="skip the 20 vs 200 cases memory run (then only --cases + 1 cases are made)",
    )
    parser.add_argument("--memory-probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--catalog", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    z, y, x = (int(v) for v in args.size.split(","))
    if args.memory_probe:
        print(json.dumps(_memory_probe(args.catalog, args.memory_probe, (z, y, x))))
        return 0
    rows = run(
        scale=args.scale,
        cases=args.cases,
        size=(z, y, x),
        remote=not args.no_remote,
        memory=not args.no_memory,
        small_scale=args.small_scale,
        small_cases=args.small_cases,
    )
    print("| metric | ours | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    for row in rows:
        base = cell(row["baseline"]) if row["baseline"] is not None else "missing"
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "n/a (no baseline)"
        print(
            f"| {row['metric']} | {cell(row['ours'])} {row['unit']} | {base} ({row['baseline_name']}) "
            f"| {ratio} | {row['target']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
