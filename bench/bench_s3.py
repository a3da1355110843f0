"""Catalogs on object storage and distributed ingest: crop latency from S3 against the local
catalog, and ingest throughput with the Dask executor at 1 and 2 workers.

Everything runs on this machine: a moto S3 server on 127.0.0.1 (loopback, so the S3 figures are
the protocol's and the cache's overhead, not a network's), a phantom raw folder of ``--ids`` at
``--scale`` made once under bench/out/ (git-ignored).

1. Ingest: the local process executor (baseline) against ``--executor dask`` on a LocalCluster of
   the same number of worker processes, started before the clock (cluster start-up is reported
   apart). MB of uncompressed voxels per second, and seconds per case.
2. Ingest to S3: staging + publish, against the same ingest into a local folder; MB uploaded.
3. Crops (``size`` ^3, ``per_case`` per case, 8 reader threads): the local catalog (baseline)
   against ``s3://`` with a cold chunk cache and again with a warm one; ms per crop and GET
   requests per crop.

    uv run python bench/bench_s3.py [--scale 0.25] [--size 48]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from _data import phantom_raw
from _table import COLUMNS, markdown_table

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
DEFAULT_IDS = ("DUKE_001", "DUKE_002", "ISPY1_1001", "ISPY2_100899", "NACT_01", "NACT_02")


def prepare(scale: float, ids: tuple[str, ...]) -> Path:
    return phantom_raw(OUT / f"s3-raw-{scale:g}-{len(ids)}", ids, scale, seed=1)


def _voxel_mb(catalog: Path) -> float:
    import mamamia

    with mamamia.open(catalog) as cat:
        rows = cat.sql("SELECT shape FROM volumes WHERE kind = 'image'").column("shape").to_pylist()
    return sum(2 * z * y * x for z, y, x in rows) / 1e6


def _row(metric: str, ours: float, baseline: float | None, name: str, unit: str,
         target: str = "") -> dict[str, Any]:  # fmt: skip
    ratio = (ours / baseline) if baseline else None
    return {"benchmark": "s3", "metric": metric, "ours": ours, "baseline": baseline,
            "baseline_name": name, "ratio": ratio, "target": target, "unit": unit}  # fmt: skip


def _ingest_time(raw: Path, out: Path | str, **options: Any) -> float:
    from mamamia_ingest import ingest

    if isinstance(out, Path) and out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    report = ingest(raw, out, progress=False, **options)
    assert report.failed == 0, report.summary()
    return time.perf_counter() - started


def _start_s3() -> tuple[Any, str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
    )
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/bench", method="PUT"))
    return server, endpoint


def _crops(cat: Any, size: int, per_case: int) -> tuple[int, float]:
    started = time.perf_counter()
    n = sum(1 for _ in cat.crops(cat.cohort("has_images"), size=size, per_case=per_case, seed=3,
                                 threads=8))  # fmt: skip
    return n, time.perf_counter() - started


def run(
    scale: float = 0.25, ids: tuple[str, ...] = DEFAULT_IDS, size: int = 48, per_case: int = 4
) -> list[dict[str, Any]]:
    import logging

    from dask.distributed import Client, LocalCluster

    import mamamia
    from mamamia._objstore import ObjectStoreBackend

    logging.getLogger("distributed").setLevel(logging.ERROR)
    raw = prepare(scale, ids)
    rows: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    os.environ["MAMAMIA_CACHE_DIR"] = str(work / "cache")
    try:
        local = work / "local"
        for workers in (1, 2):
            base = _ingest_time(raw, local, jobs=workers)
            started = time.perf_counter()
            with (
                LocalCluster(
                    n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=None
                ) as cluster,  # fmt: skip
                Client(cluster),
            ):
                startup = time.perf_counter() - started
                dask_s = _ingest_time(raw, work / f"dask{workers}", jobs=workers,
                                      executor="dask", scheduler=cluster.scheduler_address)  # fmt: skip
            mb = _voxel_mb(local)
            rows.append(_row(f"ingest MB/s, dask {workers} worker(s)", mb / dask_s, mb / base,
                             f"local processes, --jobs {workers}", "MB/s", ">= 0.8x"))  # fmt: skip
            rows.append(_row(f"ingest s/case, dask {workers} worker(s)", dask_s / len(ids),
                             base / len(ids), f"local processes, --jobs {workers}", "s"))  # fmt: skip
            rows.append(_row(f"dask LocalCluster start, {workers} worker(s)", startup, None, "",
                             "s"))  # fmt: skip
        server, _endpoint = _start_s3()
        try:
            url = "s3://bench/catalog"
            base = _ingest_time(raw, local, jobs=2)
            s3_s = _ingest_time(raw, url, jobs=2)
            rows.append(_row("ingest to s3:// (stage + publish) s", s3_s, base,
                             "ingest to a local folder", "s"))  # fmt: skip
            from mamamia._objstore import ObjectStore

            stored = sum(size for _p, size in ObjectStore(url).list())
            rows.append(_row("catalog bytes on the store", stored / 1e6, _voxel_mb(local),
                             "uncompressed voxels", "MB"))  # fmt: skip

            with mamamia.open(local) as cat:
                n, local_s = _crops(cat, size, per_case)
            cold = ObjectStoreBackend(url, cache_dir=work / "crop-cache")
            with mamamia.Catalog(cold) as cat:
                n_cold, cold_s = _crops(cat, size, per_case)
            warm = ObjectStoreBackend(url, cache_dir=work / "crop-cache")
            with mamamia.Catalog(warm) as cat:
                n_warm, warm_s = _crops(cat, size, per_case)
            assert n == n_cold == n_warm
            rows.append(_row(f"crop {size}^3 ms, s3 cold cache", 1e3 * cold_s / n,
                             1e3 * local_s / n, "local catalog", "ms"))  # fmt: skip
            rows.append(_row(f"crop {size}^3 ms, s3 warm cache", 1e3 * warm_s / n,
                             1e3 * local_s / n, "local catalog", "ms", "<= 1.5x"))  # fmt: skip
            rows.append(_row("GETs per crop, cold cache", cold.fetches / n, None, "", "requests"))
            rows.append(_row("GETs per crop, warm cache", warm.fetches / n, None, "", "requests"))
            fetched = cold.cache.stats.bytes_fetched
            rows.append(_row("MB fetched per crop, cold cache", fetched / 1e6 / n, None, "", "MB"))
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--per-case", type=int, default=4)
    args = parser.parse_args()
    rows = run(scale=args.scale, size=args.size, per_case=args.per_case)
    print(markdown_table(rows, COLUMNS[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
