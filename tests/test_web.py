"""The browser page, driven in headless Chromium against a real server on a phantom catalog.

Debian's chromium (/usr/bin/chromium, installed by .ci/run) through Playwright for Python;
never `playwright install`. Screenshots land in test-artifacts/web/ (gitignored).
"""

from __future__ import annotations

import base64
import csv
import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright

from conftest import LiveServer, start_server
from mamamia_server._volume_reads import plane_layout

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "web-test-token-7f3a"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "web"
EXPERT_RGB = (255, 40, 40)  # the server's expert outline colour (mamamia_server._volume_reads)
WAIT_MS = 30_000


@pytest.fixture(scope="session")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def web_url(live_server: LiveServer) -> str:
    return live_server.url


@pytest.fixture(scope="module")
def auth_url(catalog_dir: Path) -> Iterator[str]:
    server = start_server(catalog_dir, tokens=[TOKEN])
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def api(web_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web_url, timeout=60) as client:
        yield client


# Module scope: Chromium and the token server go away once these tests are done.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 950})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    page.set_default_timeout(WAIT_MS)
    yield page
    context.close()
    # Refused requests (the 4xx the tests provoke) are logged by Chromium too; the page shows
    # those itself. Anything else (a script error) fails the test.
    unexpected = [e for e in errors if not e.startswith("Failed to load resource")]
    assert not unexpected, f"the page logged errors: {unexpected}"


def _total(api: httpx.Client, **body: Any) -> int:
    response = api.post("/v1/query", json={**body, "limit": 1})
    response.raise_for_status()
    return int(response.json()["total"])


def _wait_rows(page: Page, previous: str | None = None) -> str:
    """Wait for a finished query (and one other than `previous`); return the row count text."""
    page.wait_for_function(
        "(before) => { const t = document.querySelector('#row-count').textContent;"
        " return / rows?$/.test(t) && t !== before }",
        arg=previous,
    )
    return page.inner_text("#row-count")


def _run_query(page: Page, text: str, *, sql: bool = False) -> None:
    page.check("input[name=mode][value=sql]" if sql else "input[name=mode][value=where]")
    page.fill("#query-text", text)
    page.evaluate("() => { document.querySelector('#row-count').textContent = '' }")
    page.click("#run-query")
    page.wait_for_function(
        "() => { const t = document.querySelector('#row-count').textContent;"
        " return / rows?$/.test(t) || t === 'The query failed.' }"
    )


def _loaded(page: Page, plane: str) -> int:
    return int(page.get_attribute(f"#view-{plane} .stage", "data-loaded") or 0)


def _wait_loaded(page: Page, plane: str, more_than: int) -> None:
    page.wait_for_function(
        "([plane, n]) => Number(document.querySelector(`#view-${plane} .stage`).dataset.loaded"
        " || 0) > n && !document.querySelector(`#view-${plane} .stage`).hasAttribute('aria-busy')",
        arg=[plane, more_than],
    )


def _picture(page: Page, plane: str) -> np.ndarray:
    """The RGB pixels the page shows for one plane (read back from the <img> via a canvas)."""
    # The loaded counter can run ahead of the <img> decoding its new blob: wait for real pixels.
    page.wait_for_function(
        "(plane) => { const img = document.querySelector(`#view-${plane} img`);"
        " return img && img.complete && img.naturalWidth > 0; }",
        arg=plane,
    )
    data_url = page.evaluate(
        """(plane) => {
            const img = document.querySelector(`#view-${plane} img`);
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            canvas.getContext('2d').drawImage(img, 0, 0);
            return canvas.toDataURL('image/png');
        }""",
        plane,
    )
    raw = base64.b64decode(data_url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def _shot(page: Page, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def test_page_and_static_files_are_served(api: httpx.Client) -> None:
    page = api.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Content-Security-Policy" in page.headers
    for asset in ("app.js", "api.js", "ui.js", "summary.js", "viewer.js", "app.css"):
        response = api.get(f"/static/{asset}")
        assert response.status_code == 200, asset
        assert f"static/{asset}" in page.text or asset != "app.js"
    assert api.get("/static/nothing.js").status_code == 404


def test_query_row_count_matches_api(
    page: Page, web_url: str, api: httpx.Client, artifacts: Path
) -> None:
    page.goto(web_url + "/")
    _wait_rows(page)
    everyone = _total(api, where="TRUE")
    assert page.inner_text("#row-count") == f"{everyone} {'row' if everyone == 1 else 'rows'}"
    assert page.locator("#results tbody tr").count() == min(everyone, 50)
    # The schema side list: columns with types, click to insert.
    assert page.locator("#schema-list .col-name", has_text="age").first.is_visible()

    datasets = api.get("/v1/facets", params={"columns": "dataset"}).json()["facets"]["dataset"]
    dataset = next(f["value"] for f in datasets if f["value"] is not None)
    where = f"dataset = '{dataset}' AND age IS NOT NULL"
    _run_query(page, where)
    expected = _total(api, where=where)
    assert 0 < expected < everyone
    assert page.inner_text("#row-count") == f"{expected} {'row' if expected == 1 else 'rows'}"
    assert page.locator("#results tbody tr").count() == expected
    cells = page.locator("#results tbody tr td:nth-child(2)").all_inner_texts()
    assert set(cells) == {dataset}

    # A refused query shows the server's problem readably (status, title, detail).
    _run_query(page, "no_such_column > 1")
    problem = page.inner_text("#query-problem")
    assert "400" in problem or "422" in problem
    assert "no_such_column" in problem
    _shot(page, artifacts, "query-problem")

    # Paging with cursors: a SQL query over the volumes table, 25 rows a page.
    volumes = _total(api, sql="SELECT * FROM volumes")
    assert volumes > 25, "the phantom catalog should have more than 25 volume rows"
    page.select_option("#page-size", "25")
    _run_query(page, "SELECT patient_id, kind, phase FROM volumes ORDER BY ALL", sql=True)
    assert page.inner_text("#row-count") == f"{volumes} rows"
    assert page.inner_text("#page-info") == f"1–25 of {volumes}"
    first_page = page.locator("#results tbody tr").all_inner_texts()
    page.click("#page-next")
    page.wait_for_function(
        "() => document.querySelector('#page-info').textContent.startsWith('26–')"
    )
    second_page = page.locator("#results tbody tr").all_inner_texts()
    assert len(second_page) == min(25, volumes - 25)
    assert not set(first_page) & set(second_page)
    page.click("#page-prev")
    page.wait_for_function(
        "() => document.querySelector('#page-info').textContent.startsWith('1–')"
    )
    assert page.locator("#results tbody tr").all_inner_texts() == first_page
    _shot(page, artifacts, "query-sql-paged")


def test_downloads_hold_the_cohort(
    page: Page, web_url: str, api: httpx.Client, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    page.goto(web_url + "/")
    _wait_rows(page)
    where = "age >= 40 OR age IS NULL"
    _run_query(page, where)
    expected = _total(api, where=where)
    assert expected > 0
    with page.expect_download() as csv_download:
        page.click("#download-csv")
    csv_path = tmp_path / "cohort.csv"
    csv_download.value.save_as(csv_path)
    with csv_path.open(newline="", encoding="utf-8") as handle:
        records = list(csv.reader(handle))
    assert records[0][0] == "patient_id"
    assert len(records) == expected + 1
    with page.expect_download() as parquet_download:
        page.click("#download-parquet")
    parquet_path = tmp_path / "cohort.parquet"
    parquet_download.value.save_as(parquet_path)
    table = pq.read_table(parquet_path)
    assert table.num_rows == expected
    assert all(age is None or age >= 40 for age in table.column("age").to_pylist())


def test_summary_charts_and_table1(
    page: Page, web_url: str, api: httpx.Client, artifacts: Path
) -> None:
    page.goto(web_url + "/#summary")
    for chart in ("dataset", "subtype", "pcr", "field", "age"):
        page.wait_for_selector(f"#chart-{chart} .chart-body[data-rendered] svg")
    facets = api.get(
        "/v1/facets", params={"columns": "dataset,pcr,tumor_subtype_group,field_strength"}
    ).json()
    total = facets["total"]
    assert page.inner_text("#summary-scope").startswith(f"{total} cases")
    # Each bar chart draws one bar per value, with the API's counts in its label.
    for chart, column in (
        ("dataset", "dataset"),
        ("pcr", "pcr"),
        ("subtype", "tumor_subtype_group"),
    ):
        bars = page.locator(f"#chart-{chart} svg rect.bar")
        assert bars.count() == len(facets["facets"][column])
        label = page.get_attribute(f"#chart-{chart} svg", "aria-label") or ""
        for item in facets["facets"][column]:
            assert f": {item['count']}" in label
    dataset_label = page.get_attribute("#chart-dataset svg", "aria-label") or ""
    for item in facets["facets"]["dataset"]:
        if item["value"] is not None:
            assert f"{item['value']}: {item['count']}" in dataset_label
    ages = api.post(
        "/v1/query", json={"sql": "SELECT count(age), avg(age) FROM cases", "limit": 1}
    ).json()["rows"][0]
    titles = page.locator("#chart-age svg rect.bar title").all_text_contents()
    histogram_total = sum(int(t.rsplit(": ", 1)[1]) for t in titles)
    assert histogram_total == ages[0]
    table1 = page.inner_text("#table1")
    assert f"Cohort (n = {total})" in table1
    assert f"{ages[1]:.1f} (" in table1  # mean (SD) of age
    for heading in ("Dataset", "pCR", "Menopause", "Ethnicity group", "Field strength (T)"):
        assert heading in table1
    # Kinetic and shape rows: median [IQR] as the API computes it.
    ftv = api.post(
        "/v1/query",
        json={
            "sql": "SELECT median(ftv_cm3), quantile_cont(ftv_cm3, 0.25), "
            "quantile_cont(ftv_cm3, 0.75) FROM cases",
            "limit": 1,
        },
    ).json()["rows"][0]
    ftv_row = page.inner_text("#table1 tr[data-column='ftv_cm3']")
    assert f"{ftv[0]:.2f} [{ftv[1]:.2f}–{ftv[2]:.2f}]" in ftv_row
    assert "Washout fraction, median [IQR]" in table1
    _shot(page, artifacts, "summary")

    # The summary follows the cohort: one dataset only, so one dataset bar.
    dataset = next(f for f in facets["facets"]["dataset"] if f["value"] is not None)
    page.click("#tab-cohort")
    _wait_rows(page)
    _run_query(page, f"dataset = '{dataset['value']}'")
    page.click("#tab-summary")
    page.wait_for_function(
        "(n) => document.querySelector('#summary-scope').textContent.startsWith(n + ' case')",
        arg=str(dataset["count"]),
    )
    page.wait_for_selector("#chart-dataset .chart-body[data-rendered] svg")
    assert page.locator("#chart-dataset svg rect.bar").count() == 1

    # A SQL cohort is summarised from its own result (wrapped as a subquery).
    page.click("#tab-cohort")
    sql = "SELECT * FROM cases WHERE age IS NOT NULL"
    _run_query(page, sql, sql=True)
    page.keyboard.press("Tab")
    # The tabs are one tab stop; the arrow keys move between them.
    page.focus("#tab-cohort")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("() => document.activeElement.id") == "tab-summary"
    assert page.locator("#panel-summary").is_visible()
    page.wait_for_function(
        "(n) => document.querySelector('#summary-scope').textContent"
        " === `${n} case${n === 1 ? '' : 's'}: the SQL result`",
        arg=_total(api, sql=sql),
    )
    page.wait_for_selector("#chart-age .chart-body[data-rendered] svg")


def _box_fraction(page: Page, plane: str) -> tuple[float, float, float, float]:
    """The drawn tumour box as fractions of the picture: (row0, row1, col0, col1)."""
    got = page.evaluate(
        """(plane) => {
            const svg = document.querySelector(`#view-${plane} svg.overlay`);
            const box = svg.querySelector('rect.box');
            const [, , w, h] = svg.getAttribute('viewBox').split(' ').map(Number);
            const v = (a) => Number(box.getAttribute(a));
            return [v('y') / h, (v('y') + v('height')) / h, v('x') / w, (v('x') + v('width')) / w,
                    box.getAttribute('visibility'), box.dataset.inside];
        }""",
        plane,
    )
    assert got[4] == "visible" and got[5] == "true", f"{plane}: box not drawn at the tumour"
    return float(got[0]), float(got[1]), float(got[2]), float(got[3])


PLANES = ("axial", "coronal", "sagittal")


def _check_box_against_outline(page: Page, image: dict[str, Any], case_id: str) -> None:
    """In each plane, the server's expert outline (red pixels) lies inside the drawn box."""
    for plane in PLANES:
        picture = _picture(page, plane)
        red = np.all(picture == np.array(EXPERT_RGB, dtype=np.uint8), axis=2)
        assert red.any(), f"{case_id} {plane}: no expert outline at the tumour's centre"
        rows, cols = np.nonzero(red)
        r0, r1, c0, c1 = _box_fraction(page, plane)
        height, width = red.shape
        layout = plane_layout(image["direction"], plane)
        # Slack: a voxel of the preview level (2x downsampled) plus a pixel of resampling.
        slack_r = 2.0 / image["shape"][layout.row_axis] + 1.0 / height
        slack_c = 2.0 / image["shape"][layout.col_axis] + 1.0 / width
        where = f"{case_id} {plane} ({image['orientation']})"
        assert r0 - slack_r <= rows.min() / height, where
        assert (rows.max() + 1) / height <= r1 + slack_r, where
        assert c0 - slack_c <= cols.min() / width, where
        assert (cols.max() + 1) / width <= c1 + slack_c, where


def test_case_viewer(page: Page, web_url: str, api: httpx.Client, artifacts: Path) -> None:
    page.goto(web_url + "/")
    _wait_rows(page)
    # A case with a tumour box and two phases at least (for the subtraction image).
    where = "tumor_bbox_min_zyx IS NOT NULL AND num_phases >= 2"
    _run_query(page, where)
    assert _total(api, where=where) > 0
    row = page.locator("#results tbody tr").first
    case_id = row.get_attribute("data-case")
    assert case_id
    # Keyboard only: focus the row and press Enter.
    row.focus()
    page.keyboard.press("Enter")
    assert page.locator("#panel-case").is_visible()
    page.wait_for_function(
        "(id) => document.querySelector('#case-title').dataset.case === id", arg=case_id
    )
    for plane in ("axial", "coronal", "sagittal"):
        _wait_loaded(page, plane, 0)
    fields = api.get(f"/v1/cases/{case_id}").json()["fields"]
    volumes = api.get(f"/v1/cases/{case_id}/volumes").json()["volumes"]
    image = next(v for v in volumes if v["kind"] == "image")
    assert case_id in page.inner_text("#fields")
    assert str(fields["dataset"]) in page.inner_text("#fields")
    _shot(page, artifacts, "case-viewer")

    # Phases: each phase, and the subtraction image.
    options = page.locator("#phase option").evaluate_all("(os) => os.map((o) => o.value)")
    assert "sub" in options and "0" in options and "1" in options

    # Keyboard: ArrowUp moves the axial slice by one and the picture changes.
    before = _picture(page, "axial")
    index = int(page.get_attribute("#view-axial .stage", "data-index") or -1)
    n = _loaded(page, "axial")
    page.focus("#view-axial .stage")
    key = "ArrowUp" if index == 0 else "ArrowDown"
    page.keyboard.press(key)
    _wait_loaded(page, "axial", n)
    moved = int(page.get_attribute("#view-axial .stage", "data-index") or -1)
    assert moved == index + (1 if key == "ArrowUp" else -1)
    after = _picture(page, "axial")
    assert before.shape != after.shape or not np.array_equal(before, after)

    # The wheel scrolls slices too (one notch, one slice).
    n = _loaded(page, "coronal")
    coronal_before = _picture(page, "coronal")
    coronal_index = int(page.get_attribute("#view-coronal .stage", "data-index") or -1)
    page.hover("#view-coronal .stage")
    page.mouse.wheel(0, 100 if coronal_index == 0 else -100)
    _wait_loaded(page, "coronal", n)
    assert int(page.get_attribute("#view-coronal .stage", "data-index") or -1) != coronal_index
    assert not np.array_equal(coronal_before, _picture(page, "coronal"))

    # PageUp/PageDown step by ten (clamped to the volume).
    n = _loaded(page, "sagittal")
    sagittal_index = int(page.get_attribute("#view-sagittal .stage", "data-index") or -1)
    last = image["shape"][plane_layout(image["direction"], "sagittal").normal_axis] - 1
    page.focus("#view-sagittal .stage")
    if sagittal_index > 0:
        page.keyboard.press("PageDown")
        expected = max(0, sagittal_index - 10)
    else:
        page.keyboard.press("PageUp")
        expected = min(last, 10)
    page.wait_for_function(
        "(k) => document.querySelector('#view-sagittal .stage').dataset.index === String(k)",
        arg=expected,
    )
    _wait_loaded(page, "sagittal", n)

    # Back to the tumour's centre.
    page.click("#goto-tumour")
    lo, hi = fields["tumor_bbox_min_zyx"], fields["tumor_bbox_max_zyx"]
    for plane in PLANES:
        axis = plane_layout(image["direction"], plane).normal_axis
        page.wait_for_function(
            "([p, k]) => { const s = document.querySelector(`#view-${p} .stage`);"
            " return s.dataset.index === String(k) && !s.hasAttribute('aria-busy') }",
            arg=[plane, (lo[axis] + hi[axis] - 1) // 2],
        )

    # The readout names the crosshair voxel and its LPS position (docs/design.md's formula).
    centre = [(a + b - 1) // 2 for a, b in zip(lo, hi, strict=True)]
    ijk = np.array(centre[::-1], dtype=float)
    lps = np.asarray(image["origin_xyz"]) + np.asarray(image["direction"]).reshape(3, 3) @ (
        np.asarray(image["spacing_xyz"]) * ijk
    )
    readout = page.inner_text("#readout")
    assert f"voxel (z, y, x) = ({', '.join(map(str, centre))})" in readout
    assert "(" + ", ".join(f"{v:.1f}" for v in lps) + ") mm" in readout
    assert "in the tumour box" in readout

    # The subtraction image differs from phase 1.
    n = _loaded(page, "axial")
    phase1 = _picture(page, "axial")
    page.select_option("#phase", "sub")
    _wait_loaded(page, "axial", n)
    assert not np.array_equal(phase1, _picture(page, "axial"))

    # Both overlays are on from the start; the expert outline alone, in the server's colour,
    # lies inside the drawn box.
    assert page.is_checked("#ov-expert") and page.is_checked("#ov-automatic")
    counts = {plane: _loaded(page, plane) for plane in PLANES}
    page.uncheck("#ov-automatic")
    for plane in PLANES:
        _wait_loaded(page, plane, counts[plane])
    _check_box_against_outline(page, image, case_id)
    _shot(page, artifacts, "case-viewer-overlay")

    # A click on the axial picture moves the coronal and sagittal planes to that point: at the
    # box's centre, both land inside the box on their own normal axes.
    r0, r1, c0, c1 = _box_fraction(page, "axial")
    frame = page.locator("#view-axial .frame").bounding_box()
    assert frame is not None
    lo, hi = fields["tumor_bbox_min_zyx"], fields["tumor_bbox_max_zyx"]
    counts = {plane: _loaded(page, plane) for plane in ("coronal", "sagittal")}
    page.mouse.click(
        frame["x"] + frame["width"] * (c0 + c1) / 2, frame["y"] + frame["height"] * (r0 + r1) / 2
    )
    for plane in ("coronal", "sagittal"):
        _wait_loaded(page, plane, counts[plane])
        axis = plane_layout(image["direction"], plane).normal_axis
        index = int(page.get_attribute(f"#view-{plane} .stage", "data-index") or -1)
        assert lo[axis] <= index < hi[axis], (plane, index, lo, hi)

    # One view alone, large, and back.
    page.click("#view-axial .enlarge")
    assert page.locator("#view-coronal").is_hidden()
    assert page.locator("#view-axial .stage").bounding_box()["width"] > 1.5 * frame["width"]  # type: ignore[index]
    page.click("#view-axial .enlarge")
    assert page.locator("#view-coronal").is_visible()

    # Overlay off again: the outline is gone.
    n = _loaded(page, "axial")
    page.uncheck("#ov-expert")
    _wait_loaded(page, "axial", n)
    picture = _picture(page, "axial")
    assert not np.all(picture == np.array(EXPERT_RGB, dtype=np.uint8), axis=2).any()

    # Both overlays at once (composited in the page): both colours may show, expert at least.
    n = _loaded(page, "axial")
    page.check("#ov-expert")
    page.check("#ov-automatic")
    _wait_loaded(page, "axial", n)
    both = _picture(page, "axial")
    assert np.all(both == np.array(EXPERT_RGB, dtype=np.uint8), axis=2).any()

    # Window/level typed in: the picture changes.
    n = _loaded(page, "axial")
    page.fill("#window", "5")
    page.fill("#level", "0")
    page.press("#level", "Enter")
    page.locator("#window").dispatch_event("change")
    _wait_loaded(page, "axial", n)
    assert not np.array_equal(both, _picture(page, "axial"))

    # Auto again, then Shift+drag sets window and level from the automatic ones.
    n = _loaded(page, "axial")
    page.click("#wl-auto")
    _wait_loaded(page, "axial", n)
    assert page.input_value("#window") == "" and page.input_value("#level") == ""
    stage = page.locator("#view-axial .stage").bounding_box()
    assert stage is not None
    x, y = stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] / 2
    point = page.get_attribute("#view-coronal .stage", "data-index")
    page.keyboard.down("Shift")
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y - 30, steps=4)
    page.mouse.up()
    page.keyboard.up("Shift")
    assert float(page.input_value("#window")) > 0
    assert page.input_value("#level") != ""
    # A drag is not a click: the other planes stay where they were.
    assert page.get_attribute("#view-coronal .stage", "data-index") == point


def test_case_viewer_kinetic_chart(
    page: Page, web_url: str, api: httpx.Client, artifacts: Path
) -> None:
    rows = api.post(
        "/v1/query",
        json={
            "sql": "SELECT patient_id, kinetic_curve, ftv_cm3, kinetic_early_phase, "
            "kinetic_late_phase FROM cases WHERE kinetic_curve IS NOT NULL ORDER BY patient_id",
            "limit": 1,
        },
    ).json()["rows"]
    case_id, curve, ftv, early, late = rows[0]
    page.goto(web_url + f"/#case={case_id}")
    page.wait_for_selector("#kinetics-chart svg polyline.curve")
    assert page.locator("#kinetics-chart svg circle.curve-point").count() == len(curve)
    label = page.get_attribute("#kinetics-chart svg", "aria-label") or ""
    assert all(str(round(v)) in label for v in curve)
    assert page.locator("#kinetics-chart .phase-mark").count() == (2 if early != late else 1)
    assert page.inner_text("#kinetics-values dd[data-column='ftv_cm3']") == f"{ftv:.2f}"
    # The brightest point of the curve is drawn highest (smallest y).
    ys = [
        float(c.get_attribute("cy") or "nan")
        for c in page.locator("#kinetics-chart svg circle.curve-point").all()
    ]
    assert ys.index(min(ys)) == curve.index(max(curve))
    _shot(page, artifacts, "case-kinetics")


def test_unknown_case_shows_the_problem(page: Page, web_url: str) -> None:
    page.goto(web_url + "/#case=NO_SUCH_CASE_1")
    page.wait_for_selector("#case-problem strong")
    text = page.inner_text("#case-problem")
    assert "404" in text
    assert "NO_SUCH_CASE_1" in text


def test_auth_page_loads_without_token_then_data_with_it(
    page: Page, auth_url: str, artifacts: Path
) -> None:
    with httpx.Client(base_url=auth_url) as client:
        assert client.get("/").status_code == 200
        assert client.get("/static/app.js").status_code == 200
        assert client.get("/v1/tables").status_code == 401
        total = client.post(
            "/v1/query",
            json={"where": "TRUE", "limit": 1},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ).json()["total"]
    page.goto(auth_url + "/")
    page.wait_for_selector("#problems .problem")
    problem = page.inner_text("#problems")
    assert "401" in problem and "bearer token" in problem
    assert page.locator("#results tbody tr").count() == 0
    _shot(page, artifacts, "auth-no-token")

    page.fill("#token-input", TOKEN)
    page.click("#token-save")
    _wait_rows(page)
    assert page.inner_text("#row-count") == f"{total} rows"
    assert page.evaluate("() => sessionStorage.getItem('mamamia.token')") == TOKEN
    # Images need the token too: they arrive as blob: URLs fetched with the header.
    page.locator("#results tbody tr").first.click()
    _wait_loaded(page, "axial", 0)
    assert (page.get_attribute("#view-axial img", "src") or "").startswith("blob:")
    _shot(page, artifacts, "auth-with-token")

    # A wrong token is refused readably.
    page.fill("#token-input", "wrong-token")
    page.click("#token-save")
    page.wait_for_function(
        "() => document.querySelector('#problems').textContent.includes('not accepted')"
    )


def test_box_matches_the_mask_outline_in_every_case(
    page: Page, web_url: str, api: httpx.Client, artifacts: Path
) -> None:
    """LPS and RAS cases alike: the box the page draws is where the server draws the mask."""
    cases = api.post(
        "/v1/query",
        json={
            "sql": "SELECT patient_id FROM cases WHERE tumor_bbox_min_zyx IS NOT NULL ORDER BY 1"
        },
    ).json()["rows"]
    assert cases
    orientations = set()
    page.goto(web_url + "/#case")
    page.check("#ov-expert")
    page.uncheck("#ov-automatic")
    for (case_id,) in cases:
        image = next(
            v
            for v in api.get(f"/v1/cases/{case_id}/volumes").json()["volumes"]
            if v["kind"] == "image"
        )
        orientations.add(image["orientation"])
        counts = {plane: _loaded(page, plane) for plane in PLANES}
        page.fill("#case-id", case_id)
        page.press("#case-id", "Enter")
        page.wait_for_function(
            "(id) => document.querySelector('#case-title').dataset.case === id", arg=case_id
        )
        for plane in PLANES:
            _wait_loaded(page, plane, counts[plane])
        _check_box_against_outline(page, image, case_id)
        # The fields list stays readable whatever its longest value (a long UID once squeezed
        # the value column to nothing).
        value = page.locator("#fields dd").first
        assert value.inner_text() == case_id
        box = value.bounding_box()
        assert box is not None and box["width"] > 60, box
        _shot(page, artifacts, f"box-{case_id}")
    assert len(orientations) >= 2, f"want LPS and RAS cases, got {orientations}"


# Every axis permutation with every sign, and two oblique matrices.
def _directions() -> list[list[float]]:
    import itertools

    found = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            for col, row in enumerate(perm):
                m[row, col] = signs[col]
            found.append(m.ravel().tolist())
    a = np.deg2rad(25)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    found.append(rot.ravel().tolist())
    found.append((rot @ np.diag([-1.0, 1.0, -1.0])).T.ravel().tolist())
    return found


def test_page_plane_layout_equals_the_servers(page: Page, web_url: str) -> None:
    """viewer.js maps voxels to pixels exactly as mamamia_server._volume_reads.plane_layout cuts them."""
    page.goto(web_url + "/")
    directions = _directions()
    got = page.evaluate(
        """async (dirs) => {
            const m = await import('./static/viewer.js');
            return dirs.map((d) => ['axial', 'coronal', 'sagittal'].map((p) => m.planeLayout(d, p)));
        }""",
        directions,
    )
    for direction, layouts in zip(directions, got, strict=True):
        for plane, js in zip(PLANES, layouts, strict=True):
            py = plane_layout(direction, plane)
            assert js == {
                "normalAxis": py.normal_axis,
                "rowAxis": py.row_axis,
                "colAxis": py.col_axis,
                "flipRows": py.flip_rows,
                "flipCols": py.flip_cols,
            }, (direction, plane)
