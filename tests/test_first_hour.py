"""Small things a new user meets in the first hour: repr, file formats, where a catalog is."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import mamamia
from conftest import LiveServer
from mamamia import CatalogNotFound
from mamamia._cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_case_repr_counts_volumes_not_fields(catalog_dir: Path) -> None:
    cat = mamamia.open(catalog_dir)
    case = cat.case("DUKE_001")
    phases = case.image.shape[0]
    text = repr(case)
    assert f"fields={len(case)}" in text
    assert f"{phases} phases" in text and "expert mask" in text
    assert f"volumes={len(case)}" not in text


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_file_formats_carry_every_column(catalog_dir: Path, tmp_path: Path, fmt: str) -> None:
    cat = mamamia.open(catalog_dir)
    every = cat.schema("cases").names
    out = tmp_path / f"c.{fmt}"
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["query", "has_expert", "--format", fmt, "-o", str(out), "--catalog", str(catalog_dir)],
    )
    assert result.exit_code == 0, result.output
    if fmt == "parquet":
        names = pq.read_schema(out).names
    elif fmt == "csv":
        names = pacsv.read_csv(out).column_names
    else:
        names = list(json.loads(out.read_text())[0])
    assert names == every
    pick = ["--columns", "patient_id,age", "--catalog", str(catalog_dir)]
    picked = runner.invoke(main, ["query", "has_expert", "--format", fmt, "-o", str(out), *pick])
    assert picked.exit_code == 0, picked.output
    if fmt == "parquet":
        assert pq.read_schema(out).names == ["patient_id", "age"]
    # the on-screen table stays short
    screen = runner.invoke(main, ["query", "has_expert", "--catalog", str(catalog_dir)])
    assert screen.output.splitlines()[0].split() == [
        "patient_id", "dataset", "age", "pcr", "tumor_subtype_group", "split"
    ]  # fmt: skip


def test_a_raw_folder_is_named_with_the_command_to_run(phantom_raw_dir: Path) -> None:
    with pytest.raises(
        CatalogNotFound, match="is a raw folder; ingest it with: mamamia ingest"
    ) as e:
        mamamia.open(phantom_raw_dir)
    assert f"mamamia ingest {phantom_raw_dir} {phantom_raw_dir.parent / 'catalog'}" in str(e.value)
    result = CliRunner().invoke(main, ["query", "true", "--catalog", str(phantom_raw_dir)])
    assert result.exit_code == 1 and "is a raw folder" in result.output


def test_server_locations_without_scheme_or_with_v1(
    live_server: LiveServer, tmp_path: Path
) -> None:
    host_port = live_server.url.removeprefix("http://")
    for location in (host_port, live_server.url + "/v1", live_server.url + "/v1/"):
        result = CliRunner().invoke(
            main,
            ["query", "true", "--format", "json", "--catalog", location],
            env={"MAMAMIA_CACHE_DIR": str(tmp_path)},
        )
        assert result.exit_code == 0, (location, result.output)
        assert len(json.loads(result.output)) == 6
    assert mamamia.open(host_port, cache_dir=tmp_path / "c").remote
    assert mamamia.connect(live_server.url + "/v1", cache_dir=tmp_path / "d").version


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_make_demo_installs_no_development_group() -> None:
    plan = _make("-n", "-B", "demo", "PORT=8765", "HOST=0.0.0.0").stdout
    syncs = [line for line in plan.splitlines() if " sync " in line]
    assert syncs and all("--no-dev" in line for line in syncs), syncs
    assert "--port 8765" in plan and "--host 0.0.0.0" in plan


def test_make_test_stops_at_once_without_the_browser(tmp_path: Path) -> None:
    absent = tmp_path / "chromium"
    result = _make("test", f"SYSTEM_TOOLS=/usr/bin/env {absent}")
    assert result.returncode != 0
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert lines == [
        "make test needs: chromium; install with: sudo apt-get install -y chromium podman runc "
        "debootstrap (or run .ci/run, which does)"
    ]
    assert "ruff" not in result.stdout + result.stderr  # nothing else ran
