"""Catalog format 2 over the network: crops over HTTP and S3, requests per cold crop, objects
per case on S3, and the viewer's slice previews, each against format 1 or the local read.

Data: the format-1 and format-2 catalogs of bench_format2.py (made once under bench/out/).
Each catalog is served by its own ``mamamia serve`` subprocess on 127.0.0.1 (one worker). The
figures measure whatever the SDK does today (whole objects into the chunk cache, or ranged
reads), so they move when its remote reads change.

1. Random 64^3 crops of phase 1 of the first case through ``mamamia.connect`` (the SDK's remote
   backend and its chunk cache): warm (every object the boxes need already cached) and cold (a
   fresh cache folder per crop; connecting and the case lookup are outside the clock, opening
   the image array and reading the box inside), against the same boxes read in process with
   ``mamamia.open`` on the same catalog, interleaved box by box. Format 2 carries the targets;
   format 1 is context. The server's crop route (``GET /v1/cases/{id}/crop?format=raw``,
   httpx) is a context row.
2. Requests per cold crop (the same span: open the image array, read the box): the SDK's
   ``ApiClient.requests_sent`` over HTTP; over S3 (a moto server on 127.0.0.1) the requests the
   server answered, counted by a WSGI wrapper around it, so ranged GETs count one by one.
   Format 2 against format 1.
3. Objects per case on S3: the first case ingested to ``s3://`` in each format.
4. Axial slice previews (``GET /v1/cases/{id}/slice.png``, phase 1, at the viewer's default
   size 320 and at 192, which the 2x preview level serves), format 2 against format 1, the same
   indices alternating between the two servers.

    uv run python bench/bench_format2_remote.py [--crops 12] [--cold 4] [--slices 12]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from _data import format_catalogs
from _table import markdown_table
from bench_format2 import random_boxes, row
from bench_server import serve


def _ms(fn: Callable[..., Any], *args: Any) -> float:
    started = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - started) * 1000


def _image(cat: Any, case_id: str) -> Any:
    return cat.case(case_id).image


def _image_path(backend: Any, case_id: str) -> str:
    """The zarr path of a case's image, from its volumes row."""
    import mamamia

    case = mamamia.Catalog(backend).case(case_id)
    return str(next(row["zarr_path"] for row in case.volumes if row["kind"] == "image"))


def _open_and_crop(case: Any, box: tuple[slice, ...]) -> Any:
    """A cold crop: open the case's image array (its ``zarr.json``), then read the box."""
    return case.image[(1, *box)]


def http_rows(
    catalogs: dict[int, tuple[Path, str]], case_id: str, crops: int, cold: int, work: Path
) -> list[dict[str, Any]]:
    import httpx

    import mamamia
    from mamamia._remote import RemoteBackend

    local = {v: _image(mamamia.open(path), case_id) for v, (path, _url) in catalogs.items()}
    shape = local[2].shape[1:]
    boxes = random_boxes(shape, 64, crops, seed=5)
    warm_images = {}
    for v, (_path, url) in catalogs.items():
        warm = mamamia.Catalog(RemoteBackend(url, cache_dir=work / f"warm{v}"))
        warm_images[v] = _image(warm, case_id)
        for box in boxes:  # fill the cache; every read is checked once
            assert np.array_equal(warm_images[v][(1, *box)], local[v][(1, *box)])
    client = httpx.Client(timeout=60)

    def crop_route(url: str, box: tuple[slice, ...]) -> bytes:
        query = {"phase": 1, "format": "raw"}
        query.update({a: f"{s.start}:{s.stop}" for a, s in zip("zyx", box, strict=True)})
        response = client.get(f"{url}/v1/cases/{case_id}/crop?{urllib.parse.urlencode(query)}")
        response.raise_for_status()
        return response.content

    first = np.frombuffer(crop_route(catalogs[2][1], boxes[0]), dtype=np.int16)
    assert np.array_equal(first, np.asarray(local[2][(1, *boxes[0])]).ravel())
    times: dict[str, list[float]] = {}
    for box in boxes:
        for v in (1, 2):
            times.setdefault(f"local{v}", []).append(_ms(local[v].__getitem__, (1, *box)))
            times.setdefault(f"warm{v}", []).append(_ms(warm_images[v].__getitem__, (1, *box)))
        url2 = catalogs[2][1]
        times.setdefault("route2", []).append(_ms(crop_route, url2, box))
    gets: dict[int, list[int]] = {}
    crop_gets: dict[int, list[int]] = {}
    for n, box in enumerate(boxes[:cold]):
        for v in (1, 2) if n % 2 == 0 else (2, 1):
            backend = RemoteBackend(catalogs[v][1], cache_dir=work / f"cold{v}-{n}")
            case = mamamia.Catalog(backend).case(case_id)
            before = backend.api.requests_sent
            times.setdefault(f"cold{v}", []).append(_ms(_open_and_crop, case, box))
            gets.setdefault(v, []).append(backend.api.requests_sent - before)
            backend.close()
            # The crop alone: the array opened first (its zarr.json read), in a fresh cache.
            backend = RemoteBackend(catalogs[v][1], cache_dir=work / f"open{v}-{n}")
            array = mamamia.Catalog(backend).open_array(_image_path(backend, case_id))
            before = backend.api.requests_sent
            array[(1, *box)]
            crop_gets.setdefault(v, []).append(backend.api.requests_sent - before)
            backend.close()
    client.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for v, extra in ((2, ""), (1, " (context)")):
        target = "<= 1.5x" if v == 2 else None
        base = f"the same crop in process, mamamia.open, format {v}"
        for cache in ("warm", "cold"):
            metric = f"crop 64^3 over HTTP (raw), mamamia.connect, {cache} chunk cache, format {v}"
            rows.append(row("format2-remote", metric + extra, med[f"{cache}{v}"], base,
                             med[f"local{v}"], "ms", target))  # fmt: skip
    rows.append(row("format2-remote", "crop 64^3, GET /v1/cases/{id}/crop?format=raw (httpx), "
                     "format 2 (context)", med["route2"], "the same crop in process, "
                     "mamamia.open, format 2", med["local2"], "ms"))  # fmt: skip
    rows.append(row("format2-remote", f"HTTP requests per cold 64^3 crop, mamamia.connect, "
                     f"the array's zarr.json included, format 2 (mean of {len(gets[2])})",
                     statistics.mean(gets[2]), "format 1", statistics.mean(gets[1]), "requests",
                     "report"))  # fmt: skip
    rows.append(row("format2-remote", f"HTTP requests per cold 64^3 crop, mamamia.connect, "
                     f"its array open (zarr.json read), format 2 (mean of {len(crop_gets[2])})",
                     statistics.mean(crop_gets[2]), "format 1", statistics.mean(crop_gets[1]),
                     "requests", "report; <= 2"))  # fmt: skip
    return rows


def slice_rows(urls: dict[int, str], case_id: str, depth: int, n: int) -> list[dict[str, Any]]:
    import httpx

    indices = [int(i) for i in np.linspace(depth // 8, depth - 1 - depth // 8, n)]
    times: dict[tuple[int, int], list[float]] = {}
    with httpx.Client(timeout=60) as client:

        def get(v: int, size: int, index: int) -> None:
            query = {"axis": "axial", "index": index, "phase": 1, "size": size}
            response = client.get(f"{urls[v]}/v1/cases/{case_id}/slice.png", params=query)
            response.raise_for_status()
            assert response.content.startswith(b"\x89PNG")

        for v in (1, 2):  # start each server's preview path
            get(v, 320, depth // 2)
        for k, index in enumerate(indices):
            for size in (320, 192):
                for v in (1, 2) if k % 2 == 0 else (2, 1):
                    times.setdefault((size, v), []).append(_ms(get, v, size, index))
    rows = []
    for size, target in ((320, "<= 1.0x"), (192, None)):
        note = "the viewer's default size" if size == 320 else "the preview level (context)"
        rows.append(row("format2-remote", f"axial slice preview slice.png size {size} ({note}), "
                         f"format 2", statistics.median(times[(size, 2)]), "format 1",
                         statistics.median(times[(size, 1)]), "ms", target))  # fmt: skip
    return rows


class _Counting:
    """A WSGI wrapper counting the requests a server answers (ranged GETs included)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self.lock:
            self.count += 1
        return self.app(environ, start_response)


@contextmanager
def moto_s3() -> Iterator[_Counting]:
    """A moto S3 server on 127.0.0.1 with a bucket ``bench``; yields its request counter."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")}  # fmt: skip
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint)  # fmt: skip
    # moto's server keeps its WSGI app here; wrapping it counts requests at the server.
    counter = _Counting(server._server.app)  # type: ignore[attr-defined]
    server._server.app = counter  # type: ignore[attr-defined]
    try:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/bench", method="PUT"))
        yield counter
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def s3_rows(
    raw: Path, case_id: str, shape: tuple[int, ...], cold: int, work: Path
) -> list[dict[str, Any]]:
    import mamamia
    from mamamia._objstore import ObjectStore, ObjectStoreBackend
    from mamamia_ingest import ingest

    rows = []
    with moto_s3() as counter:
        objects, gets, crop_gets, times = {}, {}, {}, {}
        largest = 0
        for v in (1, 2):
            url = f"s3://bench/format{v}"
            report = ingest(raw, url, cases=case_id, jobs=1, progress=False, format_version=v)
            assert report.exit_code == 0, report.summary()
            sizes = [size for _key, size in ObjectStore(url).list(f"volumes/{case_id}/")]
            objects[v] = len(sizes)
            largest = max(sizes) if v == 2 else largest
        boxes = random_boxes(shape, 64, cold, seed=7)
        for n in range(cold):
            for v in (1, 2) if n % 2 == 0 else (2, 1):
                backend = ObjectStoreBackend(
                    f"s3://bench/format{v}", cache_dir=work / f"s3-{v}-{n}"
                )
                case = mamamia.Catalog(backend).case(case_id)
                before = counter.count
                times.setdefault(v, []).append(_ms(_open_and_crop, case, boxes[n]))
                gets.setdefault(v, []).append(counter.count - before)
                # The crop alone: the array opened first (its zarr.json read), in a fresh cache.
                backend = ObjectStoreBackend(
                    f"s3://bench/format{v}", cache_dir=work / f"s3-open-{v}-{n}"
                )
                array = mamamia.Catalog(backend).open_array(_image_path(backend, case_id))
                before = counter.count
                array[(1, *boxes[n])]
                crop_gets.setdefault(v, []).append(counter.count - before)
        ranged = _moto_ranged_get_ms(largest)
        rows.append(row("format2-remote", f"objects per case on S3 (moto), format 2 ({case_id})",
                         objects[2], "format 1", objects[1], "objects", "<= 20 per case"))  # fmt: skip
        rows.append(row("format2-remote", f"S3 requests per cold 64^3 crop, the array's zarr.json "
                         f"included, format 2 (mean of {cold})", statistics.mean(gets[2]),
                         "format 1", statistics.mean(gets[1]), "requests", "report"))  # fmt: skip
        rows.append(row("format2-remote", f"S3 requests per cold 64^3 crop, its array open "
                         f"(zarr.json read), format 2 (mean of {cold})",
                         statistics.mean(crop_gets[2]), "format 1", statistics.mean(crop_gets[1]),
                         "requests", "report; <= 2"))  # fmt: skip
        rows.append(row("format2-remote", "crop 64^3 from S3 (moto), cold chunk cache, format 2 "
                         "(context)", statistics.median(times[2]), "format 1",
                         statistics.median(times[1]), "ms"))  # fmt: skip
        rows.append(row("format2-remote", "moto itself: one 256 KiB ranged GET from an object the "
                         f"size of the case's largest shard ({largest / 2**20:.0f} MiB) (context)",
                         ranged[largest], "the same GET from a 1 MiB object", ranged[2**20],
                         "ms"))  # fmt: skip
    return rows


def _moto_ranged_get_ms(size: int, repeat: int = 7) -> dict[int, float]:
    """Median time of one 256 KiB ranged GET from objects of ``size`` and of 1 MiB, on the moto
    server the caller started: moto reads the whole object for a ranged GET (S3 does not), so
    a cold crop from one large shard costs there what the shard's size costs."""
    from mamamia._objstore import ObjectStore

    store = ObjectStore("s3://bench/ranged-get")
    found = {}
    for n in (2**20, size):
        store.put(f"object-{n}", bytes(n))
        found[n] = statistics.median(
            _ms(store.get_ranges, f"object-{n}", [(4096, 2**18)]) for _ in range(repeat)
        )
    return found


def run(
    scale: float = 1.0, cases: int = 8, crops: int = 12, cold: int = 4, slices: int = 12
) -> list[dict[str, Any]]:
    import mamamia

    raw, f1, f2 = format_catalogs(scale, cases)
    case_id = mamamia.open(f2).cohort("true").case_ids[0]
    shape = tuple(int(n) for n in mamamia.open(f2).case(case_id).image.shape[1:])
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-format2-") as tmp, ExitStack() as stack:
        urls = {v: stack.enter_context(serve(path)) for v, path in ((1, f1), (2, f2))}
        catalogs = {1: (f1, urls[1]), 2: (f2, urls[2])}
        rows += http_rows(catalogs, case_id, crops, cold, Path(tmp))
        rows += slice_rows(urls, case_id, shape[0], slices)
        stack.close()
        rows += s3_rows(raw, case_id, shape, cold, Path(tmp))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--crops", type=int, default=12, help="warm crops per format")
    parser.add_argument("--cold", type=int, default=4, help="cold crops per format")
    parser.add_argument("--slices", type=int, default=12, help="slice indices per size")
    args = parser.parse_args()
    print(markdown_table(run(args.scale, args.cases, args.crops, args.cold, args.slices)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
