"""An unchanged re-run is decided in the ingest process from stat() and starts no pool; its
report and catalog equal those of the worker path; progress counts what is read."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import SimpleITK as sitk
from tqdm import tqdm

import mamamia_ingest._ingest as ingest_module
from mamamia_ingest import ingest, write_phantom
from mamamia_ingest._reuse_plan import ReusePlan


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reuse") / "raw"
    write_phantom(root, cases=3, scale=0.1, progress=False)
    return root


def _no_pool(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("an unchanged re-run started a process pool")


def _problems(report: Any) -> list[dict[str, Any]]:
    return [p.model_dump() for p in report.problems]


def test_phantom_ingest_has_no_extra_column_note(raw: Path, tmp_path: Path) -> None:
    report = ingest(raw, tmp_path / "catalog", jobs=1, progress=False)
    assert report.exit_code == 0, report.summary()
    assert [p for p in report.problems if p.rule == "extra_column"] == []
    assert "unknown columns" not in report.summary()


def test_unchanged_rerun_starts_no_pool_and_equals_the_worker_path(
    raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = tmp_path / "catalog"
    first = ingest(raw, catalog, jobs=2, progress=False)
    assert first.exit_code == 0 and first.built == 3, first.summary()
    # The worker path: every case sent to the pool, whose workers find their generation.
    with monkeypatch.context() as m:
        m.setattr(ingest_module, "plan_reuse", lambda jobs: ReusePlan([], list(jobs)))
        pooled = ingest(raw, catalog, jobs=2, progress=False)
    with monkeypatch.context() as m:
        m.setattr(ingest_module, "ProcessPoolExecutor", _no_pool)
        m.setattr(ingest_module, "_worker_context", _no_pool)
        m.setattr(ingest_module, "init_worker", _no_pool)
        planned = ingest(raw, catalog, jobs=2, progress=False)
    for report in (pooled, planned):
        assert (report.built, report.reused, report.bytes_read) == (0, 3, 0)
        assert report.catalog_version == first.catalog_version
        assert not report.published
        assert _problems(report) == _problems(first)


def test_changed_and_touched_files(raw: Path, tmp_path: Path) -> None:
    raw2 = tmp_path / "raw"
    shutil.copytree(raw, raw2)
    catalog = tmp_path / "catalog"
    first = ingest(raw2, catalog, jobs=2, progress=False)
    # Same content, new mtime: a worker hashes it and reuses the generation.
    touched = sorted(raw2.glob("images/*/*_0000.nii.gz"))[0]
    touched.write_bytes(touched.read_bytes())
    again = ingest(raw2, catalog, jobs=2, progress=False)
    assert (again.built, again.reused) == (0, 3)
    assert again.bytes_read == touched.stat().st_size
    assert again.catalog_version == first.catalog_version
    # New content: rebuilt.
    src = sorted(raw2.glob("images/*/*_0001.nii.gz"))[-1]
    img = sitk.ReadImage(str(src))
    a = sitk.GetArrayFromImage(img)
    a[0, 0, 0] += 1
    changed = sitk.GetImageFromArray(a)
    changed.CopyInformation(img)
    sitk.WriteImage(changed, str(src), useCompression=True)
    third = ingest(raw2, catalog, jobs=2, progress=False)
    assert (third.built, third.reused) == (1, 2)
    assert third.catalog_version != first.catalog_version


def _bar_count(stderr: str) -> str:
    """The last ``n/total`` the ingest bar drew."""
    counts = re.findall(r"ingest: [^|]*\|[^|]*\| ([\d.]+[kMG]?)/([\d.]+[kMG]?) \[", stderr)
    assert counts, stderr
    return counts[-1][0]


def test_the_bar_and_the_summary_agree(
    raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = tmp_path / "catalog"
    for expect_bar in (True, False):  # a build, then an unchanged re-run (nothing is read)
        stream = _Terminal()
        monkeypatch.setattr("sys.stderr", stream)
        report = ingest(raw, catalog, jobs=1, progress=True)
        monkeypatch.undo()
        if expect_bar:
            assert report.bytes_read > 0
            shown = tqdm.format_sizeof(report.bytes_read, divisor=1024)
            assert _bar_count(stream.getvalue()) == shown
            assert f"read {report.bytes_read / 1e6:.1f} MB" in report.summary()
        else:
            assert report.bytes_read == 0
            assert "ingest:" not in stream.getvalue()
            assert "read 0.0 MB" in report.summary()
