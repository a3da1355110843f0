"""The HTTP server against a real uvicorn on 127.0.0.1 (random port), with httpx."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import nibabel as nib
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import SimpleITK as sitk
from PIL import Image

from mamamia_server import ServerSettings, create_app
from mamamia_server._formats import jsonable
from server_catalog import CASES, LiveServer, session_catalog

CROP_CAP = 12_000


@pytest.fixture(scope="session")
def served_catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return session_catalog(tmp_path_factory)


@pytest.fixture(scope="session")
def server(served_catalog: tuple[Path, Path]) -> Iterator[str]:
    settings = ServerSettings(
        catalog=served_catalog[0],
        crop_voxel_cap=CROP_CAP,
        query_time_limit_ms=1000,
        default_row_limit=50,
        max_row_limit=500,
    )
    with LiveServer(create_app(settings)) as live:
        yield live.url


@pytest.fixture(scope="session")
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c


def _cases_parquet(catalog: Path) -> Path:
    manifest = json.loads((catalog / "catalog.json").read_text())
    return catalog / manifest["tables"]["cases"]["path"]


def _duck(catalog: Path, sql: str) -> pa.Table:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW cases AS SELECT * FROM read_parquet('{_cases_parquet(catalog)}')")
    return con.sql(sql).to_arrow_table()


def _source(raw: Path, case: str, phase: int) -> Path:
    return raw / "images" / case.lower() / f"{case.lower()}_{phase:04d}.nii.gz"


def _assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert set(body) >= {"type", "title", "status", "detail", "instance"}
    assert body["status"] == status
    assert body["type"].startswith("urn:mamamia:problem:")
    assert "/tmp" not in response.text and "/work" not in response.text
    return body


# ------------------------------------------------------------------------------ catalog


def test_health_names_the_version(client: httpx.Client, served_catalog: tuple[Path, Path]) -> None:
    version = json.loads((served_catalog[0] / "catalog.json").read_text())["catalog_version"]
    r = client.get("/v1/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["catalog_version"] == version
    assert r.headers["x-catalog-version"] == version


def test_catalog_tables_and_schema(client: httpx.Client) -> None:
    info = client.get("/v1/catalog").json()
    assert info["counts"] == {"cases": len(CASES), "volumes": 13, "readings": 300}
    assert info["licence"] == "CC BY-NC 4.0"
    assert info["citations"][0]["doi"]
    # the manifest's absolute source path is not echoed
    assert "raw_root" not in json.dumps(info["manifest"])
    tables = client.get("/v1/tables").json()["tables"]
    assert {t["name"] for t in tables} == {"cases", "volumes", "readings"}
    schema = client.get("/v1/tables/cases/schema").json()
    columns = {c["name"]: c for c in schema["columns"]}
    assert columns["age"]["unit"] == "years"
    assert columns["age"]["type"] == "int64"
    assert columns["dataset"]["values"] == ["DUKE", "ISPY1", "ISPY2", "NACT"]
    assert columns["patient_id"]["nullable"] is False
    # columns without field metadata are documented from mamamia_schema.COLUMN_DOCS
    assert columns["tumor_subtype_group"]["description"]
    _assert_problem(client.get("/v1/tables/nope/schema"), 404)


# ------------------------------------------------------------------------------ queries


def test_query_json_matches_duckdb(client: httpx.Client, served_catalog: tuple[Path, Path]) -> None:
    sql = "SELECT patient_id, age, pcr, enhancement_ratio, tumor_bbox_min_zyx, acquisition_date FROM cases"
    r = client.post("/v1/query", json={"sql": sql})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = _duck(served_catalog[0], sql + " ORDER BY patient_id")
    assert body["total"] == expected.num_rows
    assert body["truncated"] is False and body["next_cursor"] is None
    assert [c["name"] for c in body["columns"]] == expected.column_names
    want = [[jsonable(v) for v in row.values()] for row in expected.to_pylist()]
    assert body["rows"] == want
    # NaN became null, lists stay arrays, dates are ISO 8601
    by_id = {row[0]: row for row in body["rows"]}
    assert by_id["ISPY2_100001"][3] is None
    assert by_id["DUKE_001"][4] == [int(v) for v in by_id["DUKE_001"][4]]
    assert by_id["DUKE_001"][5] == "2020-01-01"
    assert r.headers["x-catalog-version"] == body["catalog_version"]


@pytest.mark.parametrize("how", ["param", "accept"])
@pytest.mark.parametrize("fmt", ["arrow", "parquet", "csv"])
def test_query_binary_formats_round_trip(
    client: httpx.Client, served_catalog: tuple[Path, Path], fmt: str, how: str
) -> None:
    sql = "SELECT patient_id, dataset, age, enhancement_ratio FROM cases WHERE age > $min"
    accept = {
        "arrow": "application/vnd.apache.arrow.stream",
        "parquet": "application/vnd.apache.parquet",
        "csv": "text/csv",
    }[fmt]
    kwargs: dict[str, Any] = {"json": {"sql": sql, "params": {"min": 40}}}
    if how == "param":
        kwargs["params"] = {"format": fmt}
    else:
        kwargs["headers"] = {"Accept": accept}
    r = client.post("/v1/query", **kwargs)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(accept)
    expected = _duck(served_catalog[0], sql.replace("$min", "40") + " ORDER BY patient_id")
    if fmt == "arrow":
        got = pa.ipc.open_stream(r.content).read_all()
    elif fmt == "parquet":
        got = pq.read_table(io.BytesIO(r.content))
    else:
        got = pacsv.read_csv(io.BytesIO(r.content))
    assert got.column_names == expected.column_names
    assert got.column("patient_id").to_pylist() == expected.column("patient_id").to_pylist()
    assert got.column("age").to_pylist() == expected.column("age").to_pylist()
    np.testing.assert_allclose(
        np.array(got.column("enhancement_ratio").to_pylist(), dtype=float),
        np.array(expected.column("enhancement_ratio").to_pylist(), dtype=float),
    )
    assert r.headers["x-total-rows"] == str(expected.num_rows)


def test_query_pages_follow_cursors(
    client: httpx.Client, served_catalog: tuple[Path, Path]
) -> None:
    sql = "SELECT patient_id, kind, phase FROM volumes"
    rows: list[list[Any]] = []
    body = client.post("/v1/query", json={"sql": sql, "limit": 3}).json()
    pages = 1
    rows += body["rows"]
    while body["next_cursor"]:
        assert body["truncated"] is True
        r = client.post("/v1/query", json={"cursor": body["next_cursor"]})
        assert r.status_code == 200, r.text
        body = r.json()
        rows += body["rows"]
        pages += 1
    assert pages == 5 and body["total"] == 13 and len(rows) == 13
    # the pages hold the whole result exactly once, in the same order every time
    again = client.post("/v1/query", json={"sql": sql, "limit": 13}).json()["rows"]
    assert rows == again
    assert len({tuple(map(str, r)) for r in rows}) == 13


def test_cursor_is_validated(client: httpx.Client) -> None:
    first = client.post(
        "/v1/query", json={"sql": "SELECT patient_id FROM cases", "limit": 1}
    ).json()
    cursor = first["next_cursor"]
    head, mac = cursor.split(".")
    forged = head[:-2] + ("A" if head[-2] != "A" else "B") + head[-1] + "." + mac
    _assert_problem(client.post("/v1/query", json={"cursor": forged}), 400)
    _assert_problem(client.post("/v1/query", json={"cursor": "garbage"}), 400)
    other = {"cursor": cursor, "sql": "SELECT age FROM cases"}
    _assert_problem(client.post("/v1/query", json=other), 400)
    same = {"cursor": cursor, "sql": "SELECT patient_id FROM cases"}
    assert client.post("/v1/query", json=same).status_code == 200


def test_where_query_and_cohort_link(
    client: httpx.Client, served_catalog: tuple[Path, Path]
) -> None:
    where = "age < $a AND dataset <> 'NACT'"
    r = client.post("/v1/query", json={"where": where, "params": {"a": 60}})
    assert r.status_code == 200, r.text
    ids = [row[0] for row in r.json()["rows"]]
    assert ids == ["DUKE_001", "ISPY2_100001"]
    cohort = client.get("/v1/cohort", params={"where": "age < 60 AND dataset <> 'NACT'"}).json()
    assert [row[0] for row in cohort["rows"]] == ids
    assert f"version={cohort['catalog_version']}" in cohort["link"]
    again = client.get(cohort["link"]).json()
    assert again["rows"] == cohort["rows"]
    everyone = client.get("/v1/cohort").json()
    assert everyone["total"] == len(CASES)
    _assert_problem(client.get("/v1/cohort", params={"version": "0000000000000000"}), 409)


def test_rejected_and_stopped_queries_then_normal(client: httpx.Client) -> None:
    for bad in (
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT 1; DROP TABLE cases",
        "COPY cases TO '/tmp/x.csv'",
        "SELECT value FROM duckdb_settings()",
    ):
        body = _assert_problem(client.post("/v1/query", json={"sql": bad}), 400)
        assert "root:" not in body["detail"]
    _assert_problem(
        client.post("/v1/query", json={"where": "1) UNION SELECT * FROM volumes --"}), 400
    )
    _assert_problem(client.post("/v1/query", json={"sql": "SELECT nope FROM cases"}), 400)
    _assert_problem(client.post("/v1/query", json={}), 422)
    _assert_problem(client.post("/v1/query", json={"sql": "SELECT 1", "where": "TRUE"}), 422)
    _assert_problem(client.post("/v1/query", json={"sql": "SELECT 1", "limit": 501}), 413)
    _assert_problem(client.post("/v1/query", json={"sql": "SELECT 1 AS " + "x" * 30_000}), 413)
    slow = "SELECT count(*) AS n FROM readings a, readings b, readings c, readings d"
    body = _assert_problem(client.post("/v1/query", json={"sql": slow}), 504)
    assert "time limit" in body["detail"]
    r = client.post("/v1/query", json={"sql": "SELECT count(*) AS n FROM cases"})
    assert r.status_code == 200 and r.json()["rows"] == [[len(CASES)]]


def test_facets_match_duckdb(client: httpx.Client, served_catalog: tuple[Path, Path]) -> None:
    r = client.get("/v1/facets", params={"columns": "dataset,pcr,tumor_subtype_group"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == len(CASES)
    for column in ("dataset", "pcr", "tumor_subtype_group"):
        expected = _duck(
            served_catalog[0], f"SELECT {column} AS v, count(*) AS n FROM cases GROUP BY 1"
        )
        want = {
            jsonable(v): n
            for v, n in zip(expected["v"].to_pylist(), expected["n"].to_pylist(), strict=True)
        }
        got = {item["value"]: item["count"] for item in body["facets"][column]}
        assert got == want
    pcr = body["facets"]["pcr"]
    assert pcr[-1] == {"value": None, "count": 1}  # nulls counted, listed last
    narrowed = client.get("/v1/facets", params={"columns": "dataset", "where": "age > 50"}).json()
    assert narrowed["total"] == 2
    assert {i["value"] for i in narrowed["facets"]["dataset"]} == {"ISPY1", "ISPY2"}
    body = _assert_problem(client.get("/v1/facets", params={"columns": "dataset,secret"}), 422)
    assert "secret" in body["detail"]


# ------------------------------------------------------------------------------ cases


def test_case_fields_and_volumes(client: httpx.Client) -> None:
    r = client.get("/v1/cases/duke_001")
    assert r.status_code == 200
    fields = r.json()["fields"]
    assert fields["patient_id"] == "DUKE_001" and fields["age"] == 45
    volumes = client.get("/v1/cases/ISPY1_1001/volumes").json()["volumes"]
    images = [v for v in volumes if v["kind"] == "image"]
    assert [v["phase"] for v in images] == [0, 1, 2]
    assert images[0]["direction"] == [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0]
    assert images[0]["zarr_url"].startswith("/v1/zarr/ISPY1_1001/")
    assert client.get(images[0]["zarr_url"] + "/zarr.json").status_code == 200
    _assert_problem(client.get("/v1/cases/NOPE_1"), 404)
    _assert_problem(client.get("/v1/cases/NOPE_1/volumes"), 404)
    _assert_problem(client.get("/v1/cases/ISPY2_100001/crop", params={"x": "0:2"}), 404)


@pytest.mark.parametrize("case", ["DUKE_001", "ISPY1_1001"])
def test_crop_equals_simpleitk_source(
    client: httpx.Client, served_catalog: tuple[Path, Path], case: str
) -> None:
    raw = served_catalog[1]
    source = sitk.GetArrayFromImage(sitk.ReadImage(str(_source(raw, case, 1))))
    r = client.get(
        f"/v1/cases/{case}/crop", params={"phase": 1, "z": "2:7", "y": "3:20", "x": "5:"}
    )
    assert r.status_code == 200, r.text
    crop = np.load(io.BytesIO(r.content), allow_pickle=False)
    np.testing.assert_array_equal(crop, source[2:7, 3:20, 5:])
    assert crop.dtype == source.dtype
    expert = sitk.GetArrayFromImage(
        sitk.ReadImage(str(raw / "segmentations" / "expert" / f"{case.lower()}.nii.gz"))
    )
    r = client.get(
        f"/v1/cases/{case}/crop", params={"kind": "expert", "z": "1:9", "y": ":", "x": "4:20"}
    )
    np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), expert[1:9, :, 4:20])


def test_crop_raw_headers(client: httpx.Client, served_catalog: tuple[Path, Path]) -> None:
    case = "ISPY1_1001"
    image = sitk.ReadImage(str(_source(served_catalog[1], case, 0)))
    r = client.get(
        f"/v1/cases/{case}/crop", params={"z": "3:5", "y": "10:14", "x": "7:9", "format": "raw"}
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    shape = tuple(int(v) for v in r.headers["x-shape"].split(","))
    assert shape == (2, 4, 2)
    data = np.frombuffer(r.content, dtype=np.dtype(r.headers["x-dtype"]).newbyteorder("<")).reshape(
        shape
    )
    np.testing.assert_array_equal(data, sitk.GetArrayFromImage(image)[3:5, 10:14, 7:9])
    origin = [float(v) for v in r.headers["x-origin-xyz"].split(",")]
    np.testing.assert_allclose(origin, image.TransformIndexToPhysicalPoint((7, 10, 3)))
    np.testing.assert_allclose(
        [float(v) for v in r.headers["x-spacing-xyz"].split(",")], image.GetSpacing()
    )
    np.testing.assert_allclose(
        [float(v) for v in r.headers["x-direction"].split(",")], image.GetDirection()
    )


@pytest.mark.parametrize("case", ["DUKE_001", "ISPY1_1001"])
def test_crop_nifti_lies_where_it_was(
    client: httpx.Client, served_catalog: tuple[Path, Path], case: str, tmp_path: Path
) -> None:
    source_path = _source(served_catalog[1], case, 1)
    source = nib.load(str(source_path))
    r = client.get(
        f"/v1/cases/{case}/crop",
        params={"phase": 1, "z": "2:6", "y": "5:17", "x": "3:11", "format": "nifti"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/gzip"
    out = tmp_path / "crop.nii.gz"
    out.write_bytes(r.content)
    assert gzip.decompress(r.content)[:4] == (348).to_bytes(4, "little")
    crop = nib.load(str(out))
    shift = np.eye(4)
    shift[:3, 3] = (3, 5, 2)  # (i, j, k) = (x, y, z) of the first voxel
    np.testing.assert_allclose(crop.affine, source.affine @ shift, atol=1e-5)
    np.testing.assert_array_equal(
        np.asarray(crop.dataobj), np.asarray(source.dataobj)[3:11, 5:17, 2:6]
    )


def test_crop_errors(client: httpx.Client) -> None:
    body = _assert_problem(client.get("/v1/cases/DUKE_001/crop", params={"z": "0:13"}), 422)
    assert "z" in body["detail"] and "12" in body["detail"]
    _assert_problem(client.get("/v1/cases/DUKE_001/crop", params={"x": "9:9"}), 422)
    one = client.get("/v1/cases/DUKE_001/crop", params={"z": "5", "y": "0:2", "x": "0:2"})
    assert np.load(io.BytesIO(one.content)).shape == (1, 2, 2)
    _assert_problem(client.get("/v1/cases/DUKE_001/crop", params={"format": "tiff"}), 422)
    _assert_problem(client.get("/v1/cases/DUKE_001/crop", params={"x": "a:b"}), 422)
    _assert_problem(client.get("/v1/cases/DUKE_001/crop", params={"phase": 2, "z": "0:1"}), 422)
    _assert_problem(
        client.get("/v1/cases/DUKE_001/crop", params={"kind": "expert", "phase": 0, "z": "0:1"}),
        422,
    )
    _assert_problem(client.get("/v1/cases/DUKE_001/crop", params={"kind": "liver"}), 422)
    body = _assert_problem(client.get("/v1/cases/DUKE_001/crop"), 413)  # 12*40*48 voxels
    assert str(CROP_CAP) in body["detail"]


# ------------------------------------------------------------------------------ slices


def _png(client: httpx.Client, case: str, **params: Any) -> np.ndarray:
    r = client.get(f"/v1/cases/{case}/slice.png", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(r.content)))


def test_slice_png_changes_with_index_and_axis(client: httpx.Client) -> None:
    a = _png(client, "DUKE_001", axis="axial", index=3, size=96)
    b = _png(client, "DUKE_001", axis="axial", index=8, size=96)
    c = _png(client, "DUKE_001", axis="coronal", index=20, size=96)
    assert max(a.shape) == 96 and a.ndim == 2
    assert not np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)
    # the axial plane keeps the physical aspect: 40 x 0.75 mm rows, 48 x 0.7 mm columns
    assert a.shape == (round(96 * 30 / 33.6), 96)
    sag = _png(client, "ISPY1_1001", axis="sagittal", size=64, phase="sub")
    assert sag.size > 0
    overlay = _png(client, "DUKE_001", axis="axial", index=6, size=128, overlay="expert")
    assert overlay.ndim == 3
    red = (overlay[..., 0] > 200) & (overlay[..., 1] < 80)
    assert red.any()
    fixed = _png(client, "DUKE_001", axis="axial", index=3, size=96, window=10, level=-1000)
    assert int(fixed.min()) == 255  # every voxel lies above the window: all white
    _assert_problem(client.get("/v1/cases/DUKE_001/slice.png", params={"index": 12}), 422)
    _assert_problem(client.get("/v1/cases/DUKE_001/slice.png", params={"axis": "oblique"}), 422)
    _assert_problem(client.get("/v1/cases/DUKE_001/slice.png", params={"window": 10}), 422)


# ------------------------------------------------------------------------------ zarr


def test_zarr_store_read_only(client: httpx.Client, served_catalog: tuple[Path, Path]) -> None:
    volumes = client.get("/v1/cases/DUKE_001/volumes").json()["volumes"]
    url = next(v["zarr_url"] for v in volumes if v["kind"] == "image")
    meta = client.get(url + "/zarr.json")
    assert meta.status_code == 200
    assert meta.json()["shape"] == [2, 12, 40, 48]
    etag = meta.headers["etag"]
    assert "immutable" in meta.headers["cache-control"]
    assert client.get(url + "/zarr.json", headers={"If-None-Match": etag}).status_code == 304
    chunk_url = url + "/c/1/0/0/0"
    rel = chunk_url.removeprefix("/v1/zarr/")
    on_disk = (served_catalog[0] / "volumes" / rel).read_bytes()
    assert client.get(chunk_url).content == on_disk
    head = client.head(chunk_url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(on_disk))
    part = client.get(chunk_url, headers={"Range": "bytes=2-9"})
    assert part.status_code == 206
    assert part.content == on_disk[2:10]
    for bad in (
        "/v1/zarr/..%2F..%2Fcatalog.json",
        "/v1/zarr/DUKE_001/%2E%2E/%2E%2E/catalog.json",
        "/v1/zarr/.hidden",
        "/v1/zarr/DUKE_001/nope.zarr/zarr.json",
    ):
        r = client.get(bad)
        assert r.status_code == 404, bad
        assert "format_version" not in r.text


# ------------------------------------------------------------------------------ errors


def test_problem_envelope(client: httpx.Client) -> None:
    r = client.get("/v1/no-such-route")
    body = _assert_problem(r, 404)
    assert body == {
        "type": "urn:mamamia:problem:not-found",
        "title": "Not Found",
        "status": 404,
        "detail": body["detail"],
        "instance": "/v1/no-such-route",
    }
    body = _assert_problem(client.get("/v1/cases/DUKE_001/slice.png", params={"size": 2}), 422)
    assert body["errors"][0]["loc"] == ["query", "size"]
    assert body["catalog_version"] is None or isinstance(body["catalog_version"], str)
    body = _assert_problem(
        client.get("/v1/cases/DUKE_001", params={"version": "ffffffffffffffff"}), 409
    )
    assert body["catalog_version"] == r.headers["x-catalog-version"]
    _assert_problem(client.get("/v1/cases/DUKE_001", params={"token": "secret"}), 400)
    _assert_problem(client.delete("/v1/health"), 405)
    big = b'{"sql": "' + b"x" * (3 * 2**20) + b'"}'
    body = _assert_problem(
        client.post("/v1/query", content=big, headers={"content-type": "application/json"}), 413
    )
    assert "limit" in body["detail"]


def test_fast_page_and_engine_page_agree(served_catalog: tuple[Path, Path]) -> None:
    from mamamia_server import _query

    app = create_app(ServerSettings(catalog=served_catalog[0]))
    state = app.state.holder.current()
    spec = _query.QuerySpec(sql="SELECT patient_id, kind, phase FROM volumes -- note", where=None)
    fast = [_query.run_page(state, spec, offset, 4) for offset in (0, 4, 8, 12, 16)]
    assert _query._ordered_page(state, spec.sql or "", 0, 4) is not None
    original = _query._ordered_page
    try:
        _query._ordered_page = lambda *args: None  # type: ignore[assignment]
        slow = [_query.run_page(state, spec, offset, 4) for offset in (0, 4, 8, 12, 16)]
    finally:
        _query._ordered_page = original
    assert [p.total for p in fast] == [p.total for p in slow] == [13] * 5
    assert [p.truncated for p in fast] == [p.truncated for p in slow] == [True] * 3 + [False] * 2
    rows = lambda pages: [r for p in pages for r in p.table.to_pylist()]  # noqa: E731
    assert sorted(map(str, rows(fast))) == sorted(map(str, rows(slow)))
    assert len(rows(fast)) == 13


def test_scrub_and_cursor_units() -> None:
    from mamamia_server._cursor import decode_cursor, encode_cursor
    from mamamia_server._problem_responses import ApiError, scrub

    text = "cannot read /srv/catalogs/mama/tables/x.parquet; see /v1/tables/cases/schema"
    assert scrub(text) == "cannot read <path>; see /v1/tables/cases/schema"
    assert scrub("/srv/cat/volumes/A/0 is missing", ["/srv/cat"]) == "volumes/A/0 is missing"
    token = encode_cursor({"o": 5, "v": "abc"}, b"k1")
    assert decode_cursor(token, b"k1") == {"o": 5, "v": "abc"}
    with pytest.raises(ApiError) as info:
        decode_cursor(token, b"k2")  # another server's (or worker's) key
    assert info.value.status == 400
