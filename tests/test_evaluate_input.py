"""mamamia evaluate on bad input (each a clear error or a listed warning), the command line, the
report page in headless Chromium, and every example of docs/evaluate.md and of the README's
evaluation section, run as written."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import mamamia.evaluate as ev
from conftest import LiveServer
from evaluate_data import EvalData, eval_data, read_mask, write_like
from mamamia._cli import main

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> EvalData:
    return eval_data(tmp_path_factory)


def _expert(data: EvalData, patient_id: str) -> np.ndarray:
    return read_mask(data.expert_file(patient_id))


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "pred"
    folder.mkdir()
    return folder


def test_geometry_and_labels_are_checked_and_all_listed(data: EvalData, tmp_path: Path) -> None:
    import SimpleITK as sitk

    folder = _folder(tmp_path)
    ref = _expert(data, "DUKE_001")
    write_like(ref[:, :, :-1].copy(), data.expert_file("DUKE_001"), folder / "DUKE_001.nii.gz")
    moved = sitk.GetImageFromArray(_expert(data, "DUKE_002"))
    moved.CopyInformation(sitk.ReadImage(str(data.expert_file("DUKE_002"))))
    moved.SetOrigin(tuple(o + 0.01 for o in moved.GetOrigin()))
    sitk.WriteImage(moved, str(folder / "DUKE_002.nii.gz"))
    labels = _expert(data, "DUKE_003").astype(np.uint8)
    labels[0, 0, 0], labels[0, 0, 1] = 2, 7
    write_like(labels, data.expert_file("DUKE_003"), folder / "DUKE_003.nii.gz")
    (folder / "NACT_01.nii.gz").write_bytes(b"not a nifti file")
    with pytest.raises(ev.EvaluationError) as info:
        ev.evaluate_segmentation(data.catalog, folder)
    message = str(info.value)
    assert "4 prediction(s) cannot be scored" in message
    assert re.search(
        r"DUKE_001: DUKE_001.nii.gz: shape \(z, y, x\) \(\d+, \d+, \d+\) differs", message
    )
    assert "DUKE_002: DUKE_002.nii.gz: origin (" in message
    assert "DUKE_003: DUKE_003.nii.gz: labels must be 0 and 1; found 2, 7" in message
    assert "NACT_01: NACT_01.nii.gz: unreadable" in message


def test_tiny_geometry_differences_are_accepted(data: EvalData, tmp_path: Path) -> None:
    import SimpleITK as sitk

    folder = _folder(tmp_path)
    image = sitk.ReadImage(str(data.expert_file("DUKE_001")))
    image.SetOrigin(tuple(o + 5e-5 for o in image.GetOrigin()))
    sitk.WriteImage(image, str(folder / "DUKE_001.nii.gz"))
    result = ev.evaluate_segmentation(
        data.catalog, folder, ev.EvaluateOptions(cohort="dataset = 'DUKE'")
    )
    assert next(c for c in result.cases if c.patient_id == "DUKE_001").dsc == 1.0


def test_two_files_for_one_case_and_unknown_files(data: EvalData, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    for name in ("DUKE_001.nii.gz", "duke_001.nii.gz"):
        shutil.copy(data.expert_file("DUKE_001"), folder / name)
    with pytest.raises(ev.EvaluationError, match="DUKE_001: both"):
        ev.evaluate_segmentation(data.catalog, folder)
    (folder / "duke_001.nii.gz").unlink()
    shutil.copy(data.expert_file("DUKE_001"), folder / "UNKNOWN_7.nii.gz")
    (folder / "notes.txt").write_text("ignored")
    result = ev.evaluate_segmentation(data.catalog, folder)
    assert result.unknown_predictions == ("UNKNOWN_7.nii.gz",)
    assert len(result.missing_predictions) == result.n_cases - 1
    assert any("no prediction" in w for w in result.warnings)
    with pytest.raises(ev.EvaluationError, match="not a directory"):
        ev.evaluate_segmentation(data.catalog, folder / "notes.txt")


def test_bad_options(data: EvalData) -> None:
    with pytest.raises(ev.EvaluationError, match="--cohort"):
        ev.evaluate_segmentation(data.catalog, None, ev.EvaluateOptions(cohort="no_such_col = 1"))
    with pytest.raises(ev.EvaluationError, match="jobs 0"):
        ev.EvaluateOptions(jobs=0)
    with pytest.raises(ev.EvaluationError, match="reference 'manual'"):
        ev.EvaluateOptions(reference="manual")  # type: ignore[arg-type]
    with pytest.raises(ev.EvaluationError, match="no case of the cohort"):
        ev.evaluate_segmentation(data.catalog, None, ev.EvaluateOptions(cohort="age > 1000"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("patient_id,pcr\nDUKE_001,1\n", "missing column(s) score"),
        ("id,label\n", "missing column(s) patient_id, pcr, score"),
        (
            "patient_id,pcr,score\nDUKE_001,1,high\n",
            "line 2 (DUKE_001): score 'high' is not a finite",
        ),
        ("patient_id,pcr,score\nDUKE_001,1,nan\n", "score 'nan' is not a finite number"),
        ("patient_id,pcr,score\nDUKE_001,2,0.5\n", "pcr '2' is not 0 or 1"),
        (
            "patient_id,pcr,score\nDUKE_001,1,0.5\nduke_001,0,0.1\n",
            "line 3 (duke_001): appears more than once",
        ),
        ("patient_id,pcr,score\n,1,0.5\n", "empty patient_id"),
    ],
)
def test_bad_pcr_csv(data: EvalData, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pred.csv"
    path.write_text(text)
    with pytest.raises(ev.EvaluationError) as info:
        ev.evaluate_pcr(data.catalog, path)
    assert message in str(info.value)


def test_pcr_summary_never_holds_nan(data: EvalData, tmp_path: Path) -> None:
    path = tmp_path / "pred.csv"
    path.write_text("patient_id,pcr,score,extra\nDUKE_001,true,0.9,x\n")
    result = ev.evaluate_pcr(data.catalog, path, ev.EvaluateOptions(cohort="dataset = 'DUKE'"))
    assert result.n_cases == 3 and len(result.missing_predictions) == 2
    json.loads(result.to_json())  # allow_nan=False: a NaN would raise


def test_cli_segmentation_and_pcr(data: EvalData, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "b.json"
    done = runner.invoke(
        main,
        [
            "evaluate",
            "segmentation",
            "--baseline",
            "automatic",
            "--catalog",
            str(data.catalog),
            "--json",
            str(out),
            "--csv",
            str(tmp_path / "b.csv"),
            "--html",
            str(tmp_path / "b.html"),
            "--jobs",
            "2",
        ],
    )
    assert done.exit_code == 0, done.output
    printed = json.loads(done.stdout)
    assert printed["task"] == "segmentation" and "cases" not in printed
    written = json.loads(out.read_text())
    assert written["ranking_score"] == printed["ranking_score"] and len(written["cases"]) == 12
    assert (tmp_path / "b.csv").read_text().startswith("patient_id,dsc,hd95,norm_hd,")
    page = (tmp_path / "b.html").read_text()
    assert "release baseline (automatic)" in page and "http://127.0.0.1:8000/#case=DUKE_001" in page
    both = runner.invoke(
        main, ["evaluate", "segmentation", str(tmp_path), "--baseline", "automatic"]
    )
    assert both.exit_code == 2 and "not both" in both.output
    csv = tmp_path / "p.csv"
    csv.write_text("patient_id,pcr,score\nDUKE_001,1\n")
    bad = runner.invoke(main, ["evaluate", "pcr", str(csv), "--catalog", str(data.catalog)])
    assert bad.exit_code == 1 and "score" in bad.output


def test_cli_names_the_extra_when_it_is_missing(data: EvalData) -> None:
    code = (
        "import sys; sys.modules['scipy'] = None\n"
        "from mamamia._cli import main\n"
        f"main(['evaluate', 'segmentation', '--baseline', 'automatic', '--catalog', {str(data.catalog)!r}])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "pip install 'mamamia[evaluate]'" in done.stderr


def test_report_renders_alone_in_chromium(data: EvalData, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    result = ev.evaluate_segmentation(data.catalog, None)
    page_path = tmp_path / "report.html"
    result.write_html(page_path, web_url="http://example.invalid")
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--headless"]
        )
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_path.as_uri())
        headings = page.locator("h2").all_inner_texts()
        links = page.locator("a").evaluate_all("els => els.map(e => e.href)")
        browser.close()
    assert requests == [page_path.as_uri()]  # self-contained: nothing else is fetched
    assert "Mean DSC by age and breast density" in headings
    assert "Mean DSC by age and menopausal status" in headings
    assert links and all(h.startswith("http://example.invalid/#case=") for h in links)


# --- the documentation's examples, as written ---------------------------------------------


def _blocks(text: str) -> list[tuple[str, str]]:
    return re.findall(r"```(python|console)\n(.*?)```", text, flags=re.S)


def _readme_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Evaluating like the challenge")
    end = readme.find("\n## ", start + 3)
    return readme[start : end if end > 0 else None]


@pytest.mark.parametrize("source", ["docs/evaluate.md", "README.md"])
def test_documentation_examples_run(
    source: str, data: EvalData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _readme_section() if source == "README.md" else (ROOT / source).read_text()
    blocks = _blocks(text)
    assert blocks, f"{source}: no example found"
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "catalog").symlink_to(data.catalog)
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    for patient_id in ("DUKE_001", "DUKE_002", "ISPY1_1001"):
        shutil.copy(data.expert_file(patient_id), predictions / f"{patient_id}.nii.gz")
    (tmp_path / "predictions.csv").write_text(
        "patient_id,pcr,score\nDUKE_001,1,0.8\nNACT_01,0,0.2\n"
    )
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for kind, body in blocks:
        if kind == "python":
            continue  # every Python block runs in tests/test_doc_examples.py
        for line in body.splitlines():
            if line.startswith("$ mamamia "):
                done = runner.invoke(main, shlex.split(line)[2:])
                assert done.exit_code == 0, f"{line}\n{done.output}"
    assert (tmp_path / "report.html").is_file() and (tmp_path / "pcr.json").is_file()


def test_a_server_url_gives_the_same_scores(
    live_server: LiveServer, catalog_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAMAMIA_CACHE_DIR", str(tmp_path / "cache"))
    local = ev.evaluate_segmentation(catalog_dir, None)
    remote = ev.evaluate_segmentation(live_server.url, None, ev.EvaluateOptions(jobs=2))
    assert remote.to_dict() == local.to_dict()
    assert any("breast_density: no scored case" in w for w in remote.warnings)  # first release
