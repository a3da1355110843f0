"""Table 1 split by a categorical column, its CSV and Markdown exports, and the column picker."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page

from test_web import (  # the page's fixtures and helpers, shared with the page's main tests
    _run_query,
    _shot,
    _wait_rows,
    api,
    artifacts,
    browser,
    page,
    web_url,
)

__all__ = ["api", "artifacts", "browser", "page", "web_url"]  # fixtures, used by name

WHERE = "age >= 40"


def _sql(api: httpx.Client, sql: str) -> list[list[Any]]:
    response = api.post("/v1/query", json={"sql": sql, "limit": 10000})
    response.raise_for_status()
    rows: list[list[Any]] = response.json()["rows"]
    return rows


def _label(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _split_by(page: Page, column: str) -> None:
    page.select_option("#table1-split", column)
    page.wait_for_function(
        "(c) => [...document.querySelectorAll('#table1 thead th')]"
        ".some((th) => th.textContent.startsWith(c + ': '))"
        " && !document.querySelector('#charts').hasAttribute('aria-busy')",
        arg=column,
    )


def _open_summary(page: Page, web_url: str, where: str) -> None:
    page.goto(web_url + "/")
    _wait_rows(page)
    _run_query(page, where)
    page.click("#tab-summary")
    page.wait_for_selector("#table1 tbody tr")


def _table(page: Page) -> tuple[list[str], list[list[str]]]:
    header = page.locator("#table1 thead th").all_inner_texts()
    rows = [row.locator("td").all_inner_texts() for row in page.locator("#table1 tbody tr").all()]
    return header, rows


def test_split_counts_match_sql(
    page: Page, web_url: str, api: httpx.Client, artifacts: Path
) -> None:
    # A column with nulls in the cohort, so the "missing" column is exercised too.
    nullable = next(
        c
        for c in ("pcr", "tumor_subtype_group", "menopause", "ethnicity_group", "bmi_group")
        if _sql(api, f"SELECT count(*) - count({c}) FROM cases WHERE {WHERE}")[0][0] > 0
    )
    _open_summary(page, web_url, WHERE)
    for split in ("pcr", nullable):
        _split_by(page, split)
        header, rows = _table(page)
        groups = _sql(api, f"SELECT {split}, count(*) FROM cases WHERE {WHERE} GROUP BY 1")
        total = sum(n for _, n in groups)
        assert header[1] == f"Cohort (n = {total})"
        split_heads = header[2:]
        assert sorted(split_heads) == sorted(f"{split}: {_label(v)} (n = {n})" for v, n in groups)
        assert (f"{split}: missing" in " ".join(split_heads)) == any(v is None for v, _ in groups)
        order = [h.split(": ", 1)[1].rsplit(" (n = ", 1)[0] for h in split_heads]
        assert order[-1] == "missing" or "missing" not in order  # missing last
        assert rows[0] == [
            "Cases, n",
            str(total),
            *(h.rsplit("(n = ", 1)[1][:-1] for h in split_heads),
        ]
        # Every dataset level: one SQL count per (dataset, split value).
        cells = {
            (dataset, value): n
            for dataset, value, n in _sql(
                api,
                f"SELECT dataset, {split}, count(*) FROM cases WHERE {WHERE} GROUP BY 1, 2",
            )
        }
        dataset_rows = page.locator("#table1 tbody tr.level[data-column='dataset']")
        assert dataset_rows.count() == len({d for d, _ in cells})
        for row in dataset_rows.all():
            name, overall, *per_split = row.locator("td").all_inner_texts()
            assert overall.startswith(f"{sum(n for (d, _), n in cells.items() if d == name)} (")
            for label, text in zip(order, per_split, strict=True):
                value = next(v for v, _ in groups if _label(v) == label)
                assert text.startswith(f"{cells.get((name, value), 0)} ("), (name, label, text)
    _shot(page, artifacts, "table1-split")


def test_exports_hold_the_shown_numbers(page: Page, web_url: str, api: httpx.Client) -> None:
    names = []
    for where in (WHERE, "dataset = 'DUKE'"):
        _open_summary(page, web_url, where)
        _split_by(page, "pcr")
        header, rows = _table(page)
        with page.expect_download() as csv_download:
            page.click("#table1-csv")
        with page.expect_download() as md_download:
            page.click("#table1-markdown")
        csv_name = csv_download.value.suggested_filename
        md_name = md_download.value.suggested_filename
        assert re.fullmatch(r"mamamia-table1-\w+-[0-9a-f]{8}\.csv", csv_name), csv_name
        assert md_name == csv_name[: -len(".csv")] + ".md"
        names.append(csv_name)
        csv_path = csv_download.value.path()
        md_path = md_download.value.path()
        assert csv_path is not None and md_path is not None
        table = list(csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8"))))
        assert table[0] == ["Characteristic", "Level", *header[1:]]
        # The page shows the level (or the characteristic, on group rows) and the same cells.
        assert [[r[1] or r[0], *r[2:]] for r in table[1:]] == rows
        total = _sql(api, f"SELECT count(*) FROM cases WHERE {where}")[0][0]
        assert table[1][:3] == ["Cases, n", "", str(total)]
        md = md_path.read_text(encoding="utf-8").splitlines()
        assert md[1].startswith("| --- |")
        parsed = [[c.strip() for c in line.strip("|").split(" | ")] for line in md]
        assert [parsed[0], *parsed[2:]] == table
    assert names[0] != names[1]


def _result_columns(page: Page) -> list[str]:
    names: list[str] = page.evaluate(
        "() => [...document.querySelectorAll('#results thead th')]"
        ".map((th) => th.firstChild.textContent)"
    )
    return names


def test_column_picker(page: Page, web_url: str, artifacts: Path) -> None:
    page.goto(web_url + "/")
    _wait_rows(page)
    _run_query(page, WHERE)
    every = _result_columns(page)
    assert every[:4] == ["patient_id", "dataset", "age", "pcr"]  # key columns first
    assert "ftv_cm3" in every
    page.click("#column-picker summary")
    page.uncheck("#column-choices input[value='age']")
    _shot(page, artifacts, "column-picker")
    shown = _result_columns(page)
    assert "age" not in shown and shown == [c for c in every if c != "age"]
    # The choice holds for the next WHERE query.
    _run_query(page, "dataset = 'DUKE'")
    assert "age" not in _result_columns(page)
    page.click("#columns-keys")
    keys = ["patient_id", "dataset", "age", "pcr", "tumor_subtype_group", "split"]
    assert _result_columns(page) == [k for k in keys if k in every]
    assert page.locator("#results tbody tr").first.locator("td").count() == len(
        _result_columns(page)
    )
    page.click("#columns-all")
    assert _result_columns(page) == every
    # SQL results show every column they return, without the picker.
    page.click("#columns-keys")
    _run_query(page, "SELECT patient_id, ftv_cm3 FROM cases", sql=True)
    assert _result_columns(page) == ["patient_id", "ftv_cm3"]
    assert page.locator("#column-picker").is_hidden()
