"""The page never shows stale content under an error; slice numbers and download names."""

from __future__ import annotations

import re

from playwright.sync_api import Page

from test_web import (  # the page's fixtures and helpers, shared with the page's main tests
    _run_query,
    _wait_rows,
    api,
    artifacts,
    browser,
    page,
    web_url,
)

__all__ = ["api", "artifacts", "browser", "page", "web_url"]  # fixtures, used by name


def test_a_failed_query_leaves_no_previous_rows(page: Page, web_url: str) -> None:
    page.goto(web_url + "/")
    _wait_rows(page)
    _run_query(page, "dataset = 'DUKE'")
    assert page.locator("#results tbody tr").count() > 0
    _run_query(page, "agee < 50")
    assert page.inner_text("#row-count") == "The query failed."
    assert 'did you mean "age"' in page.inner_text("#query-problem")
    assert page.locator("#results tbody tr").count() == 0
    assert page.locator("#results thead th").count() == 0
    assert page.inner_text("#page-info") == ""
    assert page.is_disabled("#page-next") and page.is_disabled("#download-csv")


def test_an_unknown_case_hides_the_previous_case(page: Page, web_url: str) -> None:
    page.goto(web_url + "/#case=DUKE_001")
    page.wait_for_function(
        "() => document.querySelector('#case-title').dataset.case === 'DUKE_001'"
    )
    page.wait_for_selector("#view-axial .stage[data-loaded]")
    assert page.locator("#case-content").is_visible()
    # 0-based slice numbers, as the readout and the API's index=
    label = page.inner_text("#view-axial .slice-label").strip()
    index = page.get_attribute("#view-axial .stage", "data-index")
    match = re.search(r"slice (\d+) of 0–(\d+)", label)
    assert match and match[1] == index, label
    page.fill("#case-id", "DUKE_999")
    page.press("#case-id", "Enter")
    page.wait_for_selector("#case-problem strong")
    assert "404" in page.inner_text("#case-problem")
    assert page.locator("#case-content").is_hidden()
    assert page.locator("#fields dt").count() == 0


def test_downloads_are_named_per_cohort(page: Page, web_url: str) -> None:
    page.goto(web_url + "/")
    _wait_rows(page)
    names = []
    for where in ("dataset = 'DUKE'", "age >= 40"):
        _run_query(page, where)
        with page.expect_download() as download:
            page.click("#download-csv")
        names.append(download.value.suggested_filename)
    assert all(re.fullmatch(r"mamamia-cohort-\w+-[0-9a-f]{8}\.csv", n) for n in names), names
    assert names[0] != names[1]


def test_summary_only_for_one_row_per_case(page: Page, web_url: str) -> None:
    page.goto(web_url + "/")
    _wait_rows(page)
    _run_query(page, "SELECT dataset, count(*) AS n FROM cases GROUP BY dataset", sql=True)
    page.click("#tab-summary")
    page.wait_for_function(
        "() => document.querySelector('#summary-scope').textContent.startsWith('Not summarised')"
    )
    assert "no patient_id column" in page.inner_text("#summary-scope")
    assert page.locator("#table1 tbody tr").count() == 0
    page.click("#tab-cohort")
    _run_query(page, "SELECT c.patient_id FROM cases c JOIN volumes v USING (patient_id)", sql=True)
    page.click("#tab-summary")
    page.wait_for_function(
        "() => /rows for \\d+ cases/.test(document.querySelector('#summary-scope').textContent)"
    )
    page.click("#tab-cohort")
    _run_query(page, "SELECT * FROM cases WHERE age > 0", sql=True)
    page.click("#tab-summary")
    page.wait_for_function(
        "() => / cases?: the SQL result$/.test(document.querySelector('#summary-scope').textContent)"
    )
    assert page.locator("#table1 tbody tr").count() > 0


def test_key_columns_first_and_value_set_notice(page: Page, web_url: str) -> None:
    page.goto(web_url + "/")
    _wait_rows(page)
    _run_query(page, "dataset = 'DUKE'")
    heads = [h.split("\n")[0] for h in page.locator("#results thead th").all_inner_texts()]
    assert heads[:6] == ["patient_id", "dataset", "age", "pcr", "tumor_subtype_group", "split"]
    assert page.locator("#query-warnings").is_hidden()
    _run_query(page, "dataset = 'Duke'")
    assert page.inner_text("#row-count") == "0 rows"
    notice = page.inner_text("#query-warnings")
    assert "dataset = 'Duke' matches no row" in notice and "did you mean 'DUKE'?" in notice


def test_geometry_in_one_axis_order(page: Page, web_url: str) -> None:
    page.goto(web_url + "/#case=DUKE_001")
    page.wait_for_function(
        "() => document.querySelector('#case-title').dataset.case === 'DUKE_001'"
    )
    terms = page.locator("#fields dt").all_inner_texts()
    assert "shape (z, y, x)" in terms and "spacing (z, y, x) mm" in terms
    assert not any("xyz" in t for t in terms[: terms.index("spacing (z, y, x) mm") + 1])
