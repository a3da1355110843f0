"""``mamamia sync`` against a Synapse REST emulator over real HTTP, through the real synapseclient.

Each test gets its own emulator serving a small MAMA-MIA-layout tree (fake ``.nii.gz`` bytes, a
real xlsx cut down from the test data) as ``syn60868042``; the sync reads its endpoints from a
``.synapseConfig`` the way a user would point it at another Synapse.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

import mamamia
from mamamia import SyncError, SyncReport
from mamamia._cli import main as cli_main

sys.path.insert(0, str(Path(__file__).parent))
from synapse_emulator import SynapseEmulator, write_synapse_config

DATA = Path(__file__).parent / "data" / "clinical_and_imaging_info.xlsx"
TOKEN = "emulated-token"
FAST = {"backoff": 0.01, "progress": False}


# ---------------------------------------------------------------------------- test data
@pytest.fixture(scope="session")
def small_clinical(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int | None]]:
    """A real-format xlsx with a handful of real rows; returns it and {case: pcr}."""
    wb = openpyxl.load_workbook(DATA, read_only=True, data_only=True)
    rows = list(wb["dataset_info"].iter_rows(values_only=True))
    legend = list(wb["legend"].iter_rows(values_only=True))
    wb.close()
    header = list(rows[0])
    pcr_col, id_col = header.index("pcr"), header.index("patient_id")
    picked: list[tuple[object, ...]] = []
    wanted = {1: 2, 0: 2, None: 1}
    for row in rows[1:]:
        value = row[pcr_col]
        key = None if value is None else int(value)  # type: ignore[call-overload]
        if wanted.get(key, 0) > 0:
            wanted[key] -= 1
            picked.append(row)
    out = openpyxl.Workbook()
    sheet = out.active
    assert sheet is not None
    sheet.title = "dataset_info"
    sheet.append(header)
    for row in picked:
        sheet.append(list(row))
    legend_sheet = out.create_sheet("legend")
    for row in legend:
        legend_sheet.append(list(row))
    path = tmp_path_factory.mktemp("clinical") / "clinical_and_imaging_info.xlsx"
    out.save(path)
    pcr = {
        str(r[id_col]): (None if r[pcr_col] is None else int(r[pcr_col]))  # type: ignore[call-overload]
        for r in picked
    }
    return path, pcr


def _blob(seed: str, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def make_tree(root: Path, clinical: Path, cases: list[str]) -> Path:
    """A MAMA-MIA layout; the first case uses lowercase file names (a real variant)."""
    root.mkdir(parents=True)
    (root / "clinical_and_imaging_info.xlsx").write_bytes(clinical.read_bytes())
    (root / "train_test_splits.csv").write_text(
        "train_split,test_split\n" + "\n".join(f"{c}," for c in cases) + "\n"
    )
    (root / "preliminary_automatic_segmentations_quality_scores.csv").write_text(
        "patient_id,expert_1_qs,expert_2_qs\n" + "".join(f"{c},Good,Good\n" for c in cases)
    )
    for i, case in enumerate(cases):
        name = case.lower() if i == 0 else case
        folder = root / "images" / case
        folder.mkdir(parents=True)
        for phase in range(2):
            (folder / f"{name}_000{phase}.nii.gz").write_bytes(_blob(f"{case}{phase}", 3000 + i))
        for kind in ("expert", "automatic"):
            seg = root / "segmentations" / kind
            seg.mkdir(parents=True, exist_ok=True)
            mask_name = case if kind == "expert" else name
            (seg / f"{mask_name}.nii.gz").write_bytes(_blob(f"{case}{kind}", 700))
        info = root / "patient_info_files"
        info.mkdir(exist_ok=True)
        (info / f"{name}.json").write_text(json.dumps({"patient_id": case}))
    weights = root / "nnUNet_pretrained_weights"
    weights.mkdir()
    (weights / "full_image_dce_mri_tumor_segmentation.zip").write_bytes(_blob("w", 5000))
    return root


def tree_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".mamamia-sync" not in p.relative_to(root).parts
    }


class World:
    """One emulator over one source tree, plus a config file and a destination."""

    def __init__(self, tmp: Path, clinical: Path, cases: list[str], token: str | None = TOKEN):
        self.source = make_tree(tmp / "source", clinical, cases)
        self.cases = cases
        self.emu = SynapseEmulator(self.source, page_size=3, token=token).start()
        self.config = write_synapse_config(tmp / "synapseConfig", self.emu, token=token)
        self.dest = tmp / "mirror"

    def replace(self, rel: str, content: bytes) -> None:
        """A new upstream version (the source tree follows, so comparisons stay simple)."""
        self.emu.replace_file(rel, content)
        (self.source / rel).write_bytes(content)

    def delete(self, rel: str) -> None:
        self.emu.delete(rel)
        (self.source / rel).unlink()

    def sync(self, **kwargs: object) -> SyncReport:
        options: dict[str, object] = {**FAST, "synapse_config": self.config}
        options.update(kwargs)
        return mamamia.sync(self.dest, **options)  # type: ignore[arg-type]

    def cli(self, *args: str, **popen: object) -> subprocess.Popen[str]:
        command = [str(Path(sys.executable).parent / "mamamia"), "sync", str(self.dest)]
        command += ["--synapse-config", str(self.config), "--backoff", "0.01", *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("SYNAPSE_AUTH_TOKEN", None)
        return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **popen
        )


@pytest.fixture
def world(
    tmp_path: Path,
    small_clinical: tuple[Path, dict[str, int | None]],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    monkeypatch.delenv("SYNAPSE_AUTH_TOKEN", raising=False)
    clinical, pcr = small_clinical
    w = World(tmp_path, clinical, sorted(pcr))
    yield w
    w.emu.stop()


def run_cli(world: World, *args: str, timeout: float = 120) -> tuple[int, str, str]:
    """The installed ``mamamia`` console script in a subprocess (real exit status)."""
    proc = world.cli(*args)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def invoke(world: World, *args: str) -> tuple[int, str, str]:
    """The same command in-process (much faster to start than a new interpreter)."""
    argv = ["sync", str(world.dest), "--synapse-config", str(world.config), "--backoff", "0.01"]
    result = CliRunner().invoke(cli_main, [*argv, *args])
    return result.exit_code, result.stdout, result.stderr


# ---------------------------------------------------------------------------- basics
def test_first_sync_equals_source_byte_for_byte(world: World) -> None:
    report = world.sync()
    assert report.ok, report.summary()
    source = tree_files(world.source)
    assert tree_files(world.dest) == source
    assert len(report.downloaded) == len(source)
    assert report.bytes_downloaded == sum(len(b) for b in source.values())
    assert not list(world.dest.rglob("*.partial"))
    state = json.loads((world.dest / ".mamamia-sync" / "state.json").read_text())
    assert state["source"] == "syn60868042"
    entry = next(e for e in state["files"].values() if e["path"] == "train_test_splits.csv")
    body = (world.source / "train_test_splits.csv").read_bytes()
    assert entry["md5"] == hashlib.md5(body).hexdigest()
    assert entry["size"] == entry["local_size"] == len(body)
    assert entry["version"] == 1


def test_resync_of_unchanged_mirror_downloads_and_hashes_nothing(world: World) -> None:
    assert world.sync().ok
    state_file = world.dest / ".mamamia-sync" / "state.json"
    state_before = state_file.read_bytes()
    mtimes = {
        p: p.stat().st_mtime_ns
        for p in world.dest.rglob("*")
        if p.is_file() and ".mamamia-sync" not in p.parts
    }
    world.emu.reset_counts()
    report = world.sync()
    assert report.ok
    assert report.downloaded == []
    assert report.adopted == []
    assert len(report.skipped) == len(tree_files(world.source))
    assert report.files_hashed == 0
    assert report.bytes_downloaded == 0
    # Only the listing was asked: no bundle, no presigned URL, no blob.
    assert world.emu.count("blob") == 0
    assert world.emu.count("bundle2") == 0
    assert world.emu.count("batch") == 0
    assert world.emu.count("children") > 0
    assert state_file.read_bytes() == state_before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_changed_file_is_fetched_again(world: World) -> None:
    assert world.sync().ok
    case = world.cases[1]
    rel = f"segmentations/expert/{case}.nii.gz"
    world.replace(rel, b"new mask bytes")
    world.emu.reset_counts()
    report = world.sync()
    assert report.ok
    assert [r.path for r in report.downloaded] == [rel]
    assert (world.dest / rel).read_bytes() == b"new mask bytes"
    assert world.emu.count("blob") == 1
    state = json.loads((world.dest / ".mamamia-sync" / "state.json").read_text())
    assert next(e for e in state["files"].values() if e["path"] == rel)["version"] == 2


def test_upstream_deletion_is_reported_then_removed_with_delete(world: World) -> None:
    assert world.sync().ok
    rel = "nnUNet_pretrained_weights/full_image_dce_mri_tumor_segmentation.zip"
    world.delete(rel)
    report = world.sync()
    assert report.ok
    assert [r.path for r in report.deleted_upstream] == [rel]
    assert (world.dest / rel).exists(), "without --delete the local copy stays"
    assert "deleted upstream" in report.summary()
    report = world.sync(delete=True)
    assert [r.path for r in report.removed] == [rel]
    assert not (world.dest / rel).exists()
    assert not (world.dest / "nnUNet_pretrained_weights").exists(), "empty folders are pruned"
    assert world.sync().deleted_upstream == []


def test_local_edit_is_fetched_again(world: World) -> None:
    assert world.sync().ok
    rel = "train_test_splits.csv"
    (world.dest / rel).write_text("edited locally\n")
    report = world.sync()
    assert [r.path for r in report.downloaded] == [rel]
    assert (world.dest / rel).read_bytes() == (world.source / rel).read_bytes()


def test_existing_copy_without_state_is_adopted_not_downloaded(world: World) -> None:
    import shutil

    shutil.copytree(world.source, world.dest)
    (world.dest / "train_test_splits.csv").write_text("stale\n")
    world.emu.reset_counts()
    report = world.sync()
    assert report.ok
    assert [r.path for r in report.downloaded] == ["train_test_splits.csv"]
    assert len(report.adopted) == len(tree_files(world.source)) - 1
    assert world.emu.count("blob") == 1
    assert tree_files(world.dest) == tree_files(world.source)


# ---------------------------------------------------------------------------- faults
def test_injected_503s_and_429_are_survived(world: World) -> None:
    world.emu.fail_next("children", 2)
    world.emu.fail_next("bundle2", 2)
    world.emu.fail_next("batch", 2)
    world.emu.fail_next("blob", 3, status=503)
    report = world.sync()
    assert report.ok, report.summary()
    assert tree_files(world.dest) == tree_files(world.source)
    world.replace("train_test_splits.csv", b"v2\n")
    world.emu.fail_next("blob", 2, status=429, retry_after=0.05)
    report = world.sync()
    assert report.ok, report.summary()
    assert report.downloaded[0].attempts == 3
    assert (world.dest / "train_test_splits.csv").read_bytes() == b"v2\n"


def test_dropped_connection_mid_body_resumes_with_range(world: World) -> None:
    rel = f"images/{world.cases[2]}/{world.cases[2]}_0000.nii.gz"
    world.replace(rel, _blob("big", 400_000))
    world.emu.drop_mid_body(rel, times=2, fraction=0.4)
    report = world.sync(include=[rel])
    assert report.ok, report.summary()
    assert (world.dest / rel).read_bytes() == _blob("big", 400_000)
    [result] = report.downloaded
    assert result.attempts == 3
    assert world.emu.partial_responses == 2, "both retries resumed with a Range request"
    assert world.emu.blob_bytes_sent < 2 * 400_000


def test_corrupted_download_is_detected_and_retried(world: World) -> None:
    rel = f"images/{world.cases[0]}/{world.cases[0].lower()}_0001.nii.gz"
    world.emu.corrupt(rel, times=1)
    report = world.sync()
    assert report.ok, report.summary()
    [result] = [r for r in report.downloaded if r.path == rel]
    assert result.attempts == 2
    assert (world.dest / rel).read_bytes() == (world.source / rel).read_bytes()


def test_persistent_corruption_is_reported_with_exit_status_1(world: World) -> None:
    rel = f"images/{world.cases[0]}/{world.cases[0].lower()}_0001.nii.gz"
    world.emu.corrupt(rel, times=-1)
    code, out, err = run_cli(world, "--retries", "3", "--no-progress")
    assert code == 1
    assert rel in err
    assert "MD5 mismatch" in out
    assert not (world.dest / rel).exists(), "a corrupt file never reaches its final path"
    assert not list(world.dest.rglob("*.partial"))
    others = {k: v for k, v in tree_files(world.source).items() if k != rel}
    assert tree_files(world.dest) == others
    last = json.loads((world.dest / ".mamamia-sync" / "last-report.json").read_text())
    assert [f["path"] for f in last["failed"]] == [rel]
    report = world.sync(retries=2)
    [failed] = report.failed
    assert failed.path == rel
    assert failed.attempts == 2
    assert "MD5 mismatch" in (failed.reason or "")
    assert report.exit_code == 1


def test_killed_mid_file_resumes_and_completes(world: World) -> None:
    case = world.cases[3]
    rel = f"images/{case}/{case}_0001.nii.gz"
    big = _blob("huge", 3_000_000)
    world.replace(rel, big)
    world.emu.throttle(rel, 400_000)
    proc = world.cli("--no-progress", "--jobs", "2")
    target = world.dest / rel
    deadline = time.monotonic() + 60
    partial: list[Path] = []
    while time.monotonic() < deadline:
        partial = [p for p in target.parent.glob("*.partial") if p.stat().st_size > 100_000]
        if partial or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert partial, "no partial file appeared"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not target.exists()
    kept = partial[0].stat().st_size
    assert 0 < kept < len(big)
    world.emu.throttle(rel, None)
    world.emu.reset_counts()
    report = world.sync()
    assert report.ok, report.summary()
    assert target.read_bytes() == big
    assert tree_files(world.dest) == tree_files(world.source)
    assert world.emu.partial_responses >= 1
    assert world.emu.blob_bytes_sent < len(big) + 200_000, "the big file resumed, not restarted"
    assert not list(world.dest.rglob("*.partial"))


# ---------------------------------------------------------------------------- selection
def test_cohort_fetches_exactly_those_cases(
    world: World, small_clinical: tuple[Path, dict[str, int | None]]
) -> None:
    _, pcr = small_clinical
    chosen = sorted(c for c, v in pcr.items() if v == 1)
    assert 0 < len(chosen) < len(pcr)
    report = world.sync(cohort="pcr = 1")
    assert report.ok, report.summary()
    assert report.cohort_cases == chosen
    files = set(tree_files(world.dest))
    tables = {
        "clinical_and_imaging_info.xlsx",
        "train_test_splits.csv",
        "preliminary_automatic_segmentations_quality_scores.csv",
    }
    expected = set(tables)
    for rel in tree_files(world.source):
        parts = rel.split("/")
        if parts[0] == "images" and parts[1] in chosen:
            expected.add(rel)
        elif parts[0] in ("segmentations", "patient_info_files"):
            stem = parts[-1].split(".")[0].upper()
            if stem in chosen:
                expected.add(rel)
    assert files == expected
    # The lowercase-named first case matches too when it is in the cohort.
    assert all(any(f.startswith(f"images/{c}/") for f in files) for c in chosen)
    # A wider cohort later adds cases without touching what is there.
    world.emu.reset_counts()
    report = world.sync(cohort="pcr = 1 OR pcr IS NULL")
    assert report.ok
    assert set(report.cohort_cases or []) > set(chosen)
    assert all(r.path not in files for r in report.downloaded)


def test_cohort_with_a_bad_clause_names_it(world: World) -> None:
    with pytest.raises(SyncError, match="no_such_column"):
        world.sync(cohort="no_such_column = 1")


def test_cohort_clause_cannot_read_files(world: World, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("patient_id\nX\n")
    with pytest.raises(SyncError, match="--cohort"):
        world.sync(cohort=f"patient_id IN (SELECT patient_id FROM read_csv('{secret}'))")


def test_include_globs_filter_paths(world: World) -> None:
    report = world.sync(include=["segmentations/expert", "*.CSV"])
    assert report.ok
    files = set(tree_files(world.dest))
    assert files == {
        *(f"segmentations/expert/{c}.nii.gz" for c in world.cases),
        "train_test_splits.csv",
        "preliminary_automatic_segmentations_quality_scores.csv",
    }


def test_dry_run_transfers_nothing(world: World) -> None:
    report = world.sync(dry_run=True)
    source = tree_files(world.source)
    assert report.ok
    assert len(report.would_download) == len(source)
    assert report.bytes_planned == sum(len(b) for b in source.values())
    assert world.emu.count("blob") == 0
    assert not world.dest.exists()
    code, out, _ = invoke(world, "--dry-run", "--no-progress")
    assert code == 0
    assert "would download train_test_splits.csv" in out
    assert f"would download {len(source)} files" in out
    assert world.emu.count("blob") == 0
    assert not world.dest.exists()


def test_dry_run_with_cohort_writes_nothing(world: World) -> None:
    report = world.sync(dry_run=True, cohort="pcr = 0")
    assert report.ok
    assert report.cohort_cases
    assert len(report.cohort_cases) == 2
    assert not world.dest.exists()
    assert all(
        "images/" not in r.path or r.path.split("/")[1] in report.cohort_cases
        for r in report.would_download
    )


# ---------------------------------------------------------------------------- safety
def test_hostile_names_are_refused(world: World, tmp_path: Path) -> None:
    root = world.emu.project_id
    world.emu.add_file(root, "../evil", b"escaped")
    world.emu.add_file(root, "/tmp/evil-absolute", b"escaped")
    world.emu.add_file(root, "..", b"escaped")
    world.emu.add_file(root, "nul\x00byte", b"escaped")
    world.emu.add_file(root, "innocent.csv", b"escaped", file_name="../../handle-evil")
    bad_folder = world.emu.add_folder(root, "..")
    world.emu.add_file(bad_folder, "inside", b"escaped")
    world.emu.add_folder(root, ".mamamia-sync")
    report = world.sync()
    refused = sorted(r.path for r in report.failed)
    assert refused == sorted(
        [
            "../evil",
            "/tmp/evil-absolute",
            "..",
            "..",
            "nul\x00byte",
            "innocent.csv",
            ".mamamia-sync",
        ]
    )
    assert all("refused" in (r.reason or "") for r in report.failed)
    assert report.exit_code == 1
    assert not (tmp_path / "evil").exists()
    assert not Path("/tmp/evil-absolute").exists()
    assert not (world.dest / "innocent.csv").exists()
    assert tree_files(world.dest) == tree_files(world.source)
    assert not any(b"escaped" in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


def test_verify_and_repair_fix_a_flipped_byte(world: World) -> None:
    assert world.sync().ok
    rel = f"segmentations/automatic/{world.cases[0].lower()}.nii.gz"
    path = world.dest / rel
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    stat = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even a same-mtime edit is found
    report = world.sync()
    assert report.downloaded == [], "a stat-only sync cannot see it (that is what --verify is for)"
    report = world.sync(verify=True)
    assert [r.path for r in report.mismatched] == [rel]
    assert "MD5" in (report.mismatched[0].reason or "")
    assert report.exit_code == 1
    assert report.files_hashed == len(tree_files(world.source))
    code, _, err = invoke(world, "--verify", "--no-progress")
    assert code == 1
    assert rel in err
    report = world.sync(verify=True, repair=True)
    assert report.ok, report.summary()
    assert [r.path for r in report.repaired] == [rel]
    assert path.read_bytes() == (world.source / rel).read_bytes()
    assert world.sync(verify=True).mismatched == []


# ---------------------------------------------------------------------------- login, CLI
def test_token_from_environment_and_wrong_token(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_synapse_config(tmp_path / "no-token-config", world.emu, token=None)
    monkeypatch.setenv("SYNAPSE_AUTH_TOKEN", TOKEN)
    assert world.sync(synapse_config=config, include=["*.csv"]).ok
    monkeypatch.setenv("SYNAPSE_AUTH_TOKEN", "wrong")
    with pytest.raises(SyncError, match="SYNAPSE_AUTH_TOKEN"):
        world.sync(synapse_config=config)


def test_anonymous_against_a_server_that_wants_a_login(world: World, tmp_path: Path) -> None:
    config = write_synapse_config(tmp_path / "anon-config", world.emu, token=None)
    report = world.sync(synapse_config=config, retries=1)
    assert not report.ok
    assert any("anonymous" in (r.reason or "") for r in report.failed)


def test_anonymous_where_allowed(
    tmp_path: Path,
    small_clinical: tuple[Path, dict[str, int | None]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SYNAPSE_AUTH_TOKEN", raising=False)
    w = World(tmp_path, small_clinical[0], sorted(small_clinical[1]), token=None)
    try:
        assert w.sync(include=["*.csv"]).ok
        assert w.emu.count("userProfile") == 0
    finally:
        w.emu.stop()


def test_cli_help_and_argument_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli_main, ["--help"])
    assert result.exit_code == 0
    assert "sync" in result.output
    result = runner.invoke(cli_main, ["sync", "--help"])
    assert result.exit_code == 0
    for flag in (
        "--from",
        "--include",
        "--cohort",
        "--jobs",
        "--dry-run",
        "--delete",
        "--verify",
        "--repair",
        "--synapse-config",
    ):
        assert flag in result.output
    result = runner.invoke(cli_main, ["sync", str(tmp_path / "m"), "--repair"])
    assert result.exit_code == 2
    assert "--verify" in result.output
    result = runner.invoke(cli_main, ["sync", str(tmp_path / "m"), "--from", "not-an-id"])
    assert result.exit_code == 1
    assert "not-an-id" in result.output
    result = runner.invoke(
        cli_main, ["sync", str(tmp_path / "m"), "--synapse-config", str(tmp_path / "missing")]
    )
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_state_from_another_source_is_refused(world: World) -> None:
    assert world.sync(include=["*.csv"]).ok
    with pytest.raises(SyncError, match="mirrors syn60868042"):
        world.sync(source="syn123")


def test_damaged_state_file_names_itself(world: World) -> None:
    assert world.sync(include=["*.csv"]).ok
    (world.dest / ".mamamia-sync" / "state.json").write_text("{not json")
    with pytest.raises(SyncError, match=r"state\.json is damaged"):
        world.sync()


def test_upstream_move_moves_the_local_file_without_downloading(world: World) -> None:
    assert world.sync().ok
    world.emu.move("train_test_splits.csv", "tables", "splits.csv")
    (world.source / "tables").mkdir()
    (world.source / "train_test_splits.csv").rename(world.source / "tables" / "splits.csv")
    world.emu.reset_counts()
    report = world.sync()
    assert report.ok, report.summary()
    assert world.emu.count("blob") == 0
    assert tree_files(world.dest) == tree_files(world.source)
    assert any((r.reason or "").startswith("moved from") for r in report.skipped)
    assert not (world.dest / "train_test_splits.csv").exists()
    assert report.deleted_upstream == []


def test_replaced_entity_at_the_same_path_is_not_deleted(world: World) -> None:
    assert world.sync().ok
    rel = "train_test_splits.csv"
    world.emu.delete(rel)
    world.emu.add_file(world.emu.project_id, rel, b"a new entity\n")
    (world.source / rel).write_bytes(b"a new entity\n")
    report = world.sync(delete=True)
    assert report.ok, report.summary()
    assert report.removed == []
    assert (world.dest / rel).read_bytes() == b"a new entity\n"
    assert world.sync(delete=True).deleted_upstream == []


def test_a_bad_partial_file_is_never_trusted(world: World) -> None:
    rel = "nnUNet_pretrained_weights/full_image_dce_mri_tumor_segmentation.zip"
    handle = world.emu.handle_of(rel)
    target = world.dest / rel
    target.parent.mkdir(parents=True)
    # A part with the right name but foreign bytes, and a stale ETag: If-Range gives a 200.
    part = target.with_name(f"{target.name}.{handle.id}.partial")
    part.write_bytes(b"garbage" * 100)
    meta = world.dest / ".mamamia-sync" / "partials"
    meta.mkdir(parents=True)
    (meta / f"{handle.id}.json").write_text(json.dumps({"etag": '"stale"'}))
    report = world.sync(include=[rel])
    assert report.ok, report.summary()
    assert target.read_bytes() == (world.source / rel).read_bytes()
    assert world.emu.partial_responses == 0
    # Without an ETag the range is served (206), the MD5 catches it, and the file restarts.
    world.replace(rel, _blob("w2", 5000))
    handle = world.emu.handle_of(rel)
    part = target.with_name(f"{target.name}.{handle.id}.partial")
    part.write_bytes(b"x" * 1000)
    report = world.sync(include=[rel])
    assert report.ok, report.summary()
    assert report.downloaded[0].attempts == 2
    assert "MD5" not in report.summary()
    assert target.read_bytes() == _blob("w2", 5000)


def test_a_file_that_keeps_failing_is_reported_not_retried_forever(world: World) -> None:
    world.emu.fail_next("blob", 10_000, status=503)
    report = world.sync(retries=3, include=["*.csv"])
    assert report.exit_code == 1
    assert len(report.failed) == 2
    for failed in report.failed:
        assert failed.attempts == 3
        assert "HTTP 503" in (failed.reason or "")
    assert world.emu.count("blob") == 6


def test_ctrl_c_stops_promptly_keeps_the_part_and_the_state(world: World) -> None:
    case = world.cases[3]
    rel = f"images/{case}/{case}_0001.nii.gz"
    big = _blob("huge", 2_000_000)
    world.replace(rel, big)
    world.emu.throttle(rel, 200_000)
    proc = world.cli("--no-progress", "--jobs", "2")
    target = world.dest / rel
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if [p for p in target.parent.glob("*.partial") if p.stat().st_size > 50_000]:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "Traceback" not in err
    assert not target.exists()
    assert list(target.parent.glob("*.partial")), "the part is kept for the next run"
    state = json.loads((world.dest / ".mamamia-sync" / "state.json").read_text())
    assert state["files"], "what finished before Ctrl-C is recorded"
    for entry in state["files"].values():
        body = (world.dest / entry["path"]).read_bytes()
        assert hashlib.md5(body).hexdigest() == entry["md5"]
    world.emu.throttle(rel, None)
    report = world.sync()
    assert report.ok
    assert rel in [r.path for r in report.downloaded]
    assert len(report.skipped) == len(state["files"])
    assert tree_files(world.dest) == tree_files(world.source)


def test_a_cohort_mirror_of_the_phantom_ingests_as_it_is(
    phantom_raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mamamia_ingest import ingest

    monkeypatch.delenv("SYNAPSE_AUTH_TOKEN", raising=False)
    mirror = tmp_path / "mirror"
    with SynapseEmulator(phantom_raw_dir) as emu:
        config = write_synapse_config(tmp_path / "synapseConfig", emu)
        report = mamamia.sync(
            mirror,
            synapse_config=config,
            cohort="dataset = 'NACT' OR patient_id = 'DUKE_001'",
            progress=False,
        )
    assert report.ok, report.summary()
    assert report.cohort_cases == ["DUKE_001", "NACT_01", "NACT_02"]
    assert sorted(p.name for p in (mirror / "images").iterdir()) == report.cohort_cases
    result = ingest(mirror, tmp_path / "catalog", jobs=1, progress=False)
    assert result.failed == 0
    assert result.errors == []
    assert result.cases_with_images == 3


def test_verify_honours_include_and_cohort_offline(world: World) -> None:
    assert world.sync().ok
    world.emu.stop()  # --verify needs no Synapse
    report = world.sync(verify=True, include=["segmentations/expert"])
    assert sorted(r.path for r in report.verified) == [
        f"segmentations/expert/{c}.nii.gz" for c in world.cases
    ]
    report = world.sync(verify=True, cohort="pcr = 1")
    assert report.ok
    assert report.cohort_cases
    chosen = set(report.cohort_cases)
    for result in report.verified:
        parts = result.path.split("/")
        assert len(parts) == 1 or parts[1] in chosen or parts[-1].split(".")[0].upper() in chosen


def test_a_permission_error_fails_at_once(world: World) -> None:
    rel = "train_test_splits.csv"
    world.emu.deny(rel)
    report = world.sync(include=["*.csv"])
    [failed] = report.failed
    assert failed.path == rel
    assert failed.attempts == 1
    assert "UNAUTHORIZED" in (failed.reason or "")
    assert world.emu.count("batch") == 2  # the denied file once, the other csv once
    assert report.exit_code == 1


def test_an_empty_file_is_mirrored(world: World) -> None:
    folder = world.emu.ensure_folder("nnUNet_pretrained_weights")
    world.emu.add_file(folder, "EMPTY", b"")
    report = world.sync(include=["nnUNet_pretrained_weights"])
    assert report.ok, report.summary()
    assert (world.dest / "nnUNet_pretrained_weights" / "EMPTY").read_bytes() == b""
    assert world.sync(include=["nnUNet_pretrained_weights"]).downloaded == []


def test_an_unknown_or_empty_source_is_not_a_silent_success(world: World) -> None:
    report = world.sync(source="syn999999")
    assert report.exit_code == 1
    assert "listing failed" in (report.failed[0].reason or "")
    assert "deletions were not checked" in " ".join(report.warnings)
    empty = world.emu.add_folder(world.emu.project_id, "empty")
    report = mamamia.sync(
        world.dest.parent / "empty-mirror", source=empty, synapse_config=world.config, **FAST
    )  # type: ignore[arg-type]
    assert report.ok
    assert "lists no files or folders" in " ".join(report.warnings)
    assert "lists no files or folders" in report.summary()


def test_json_report_and_lazy_imports(world: World) -> None:
    code, out, _ = invoke(world, "--dry-run", "--json", "--no-progress", "--include", "*.csv")
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True
    assert data["dry_run"] is True
    assert {r["path"] for r in data["would_download"]} == {
        "train_test_splits.csv",
        "preliminary_automatic_segmentations_quality_scores.csv",
    }
    probe = (
        "import sys, mamamia._cli; "
        "heavy = [m for m in ('synapseclient', 'mamamia._sync._run', 'tqdm') if m in sys.modules]; "
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]", "mamamia --help must not import the sync machinery"


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    from mamamia._sync._download import RetryPolicy, _retry_after

    policy = RetryPolicy(attempts=5, backoff_s=1.0, max_backoff_s=60.0)
    for attempt, base in ((1, 1.0), (2, 2.0), (3, 4.0), (7, 60.0)):
        delays = {policy.delay(attempt) for _ in range(50)}
        assert all(0.5 * base <= d <= 1.5 * base for d in delays)
        assert len(delays) > 1, "jittered"
    assert 7.0 <= policy.delay(1, retry_after=7.0) <= 8.0
    assert policy.delay(1, retry_after=3600) <= 61.0, "capped"
    assert _retry_after("12") == 12.0
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert _retry_after("soon") is None


def test_unsafe_segments_are_refused(tmp_path: Path) -> None:
    from mamamia._sync._paths import UnsafeName, check_segment, local_path

    for bad in (
        "",
        ".",
        "..",
        "a/b",
        "a\\b",
        "/abs",
        "x\x00y",
        "tab\there",
        "f.partial",
        "x" * 256,
    ):
        with pytest.raises(UnsafeName):
            check_segment(bad)
    for good in ("DUKE_001_0000.nii.gz", "clinical_and_imaging_info.xlsx", "..hidden", "ünïcode"):
        assert check_segment(good) == good
    dest = tmp_path.resolve()
    (dest / "inside").mkdir()
    (dest / "link").symlink_to(tmp_path.parent)
    assert local_path(dest, ["inside", "f"]) == dest / "inside" / "f"
    with pytest.raises(UnsafeName, match="outside"):
        local_path(dest, ["link", "f"])
    with pytest.raises(UnsafeName, match="reserved"):
        local_path(dest, [".mamamia-sync", "state.json"])


def test_a_trickling_download_is_abandoned_not_waited_on(world: World, tmp_path: Path) -> None:
    import threading

    import httpx

    from mamamia._sync._download import Downloader, DownloadFailed, RetryPolicy

    rel = "nnUNet_pretrained_weights/full_image_dce_mri_tumor_segmentation.zip"
    world.replace(rel, _blob("slow", 200_000))
    world.emu.throttle(rel, 20_000)  # 16 KB pieces, one every 0.8 s
    handle = world.emu.handle_of(rel)
    policy = RetryPolicy(attempts=2, backoff_s=0.01, stall_s=1.0, stall_bytes=100_000)
    with httpx.Client() as client:
        downloader = Downloader(
            client, policy, tmp_path / "meta", threading.Event(), lambda n: None, lambda n: None
        )
        part = tmp_path / "file.partial"
        with pytest.raises(DownloadFailed, match="stalled") as info:
            downloader.fetch(
                part, handle.id, handle.md5, 200_000, lambda: world.emu.presigned_url(handle)
            )
    assert info.value.attempts == 2
    assert 0 < part.stat().st_size < 200_000, "the part is kept for a later resume"


def test_two_syncs_on_one_mirror_are_refused(world: World) -> None:
    from mamamia._sync._mirror_state import StateLock

    world.dest.mkdir()
    with StateLock(world.dest), pytest.raises(SyncError, match="another mamamia sync"):
        world.sync()
    assert world.sync(include=["*.csv"]).ok


# ---------------------------------------------------------------------------- sync by cohort
def _cohort_files(world: World, chosen: list[str]) -> set[str]:
    expected = {
        "clinical_and_imaging_info.xlsx",
        "train_test_splits.csv",
        "preliminary_automatic_segmentations_quality_scores.csv",
    }
    for rel in tree_files(world.source):
        parts = rel.split("/")
        if (parts[0] == "images" and parts[1] in chosen) or (
            parts[0] in ("segmentations", "patient_info_files")
            and parts[-1].split(".")[0].upper() in chosen
        ):
            expected.add(rel)
    return expected


def test_a_list_of_ids_mirrors_exactly_those_cases(world: World) -> None:
    chosen = sorted(world.cases)[:2]
    report = world.sync(cohort=[c.lower() for c in chosen])
    assert report.ok, report.summary()
    assert report.cohort_cases == chosen
    assert set(tree_files(world.dest)) == _cohort_files(world, chosen)


def test_a_cohort_file_dry_run_reports_bytes_and_files_then_mirrors(
    world: World, tmp_path: Path
) -> None:
    chosen = sorted(world.cases)[1:3]
    cohort_file = tmp_path / "cohort.json"
    cohort_file.write_text(
        json.dumps({"mamamia_cohort": 1, "query": "q", "case_ids": chosen, "catalog_version": "x"})
    )
    code, out, _ = invoke(world, "--cohort-file", str(cohort_file), "--dry-run", "--no-progress")
    assert code == 0, out
    expected = _cohort_files(world, chosen)
    sizes = {rel: len(body) for rel, body in tree_files(world.source).items()}
    assert f"would download {len(expected)} files" in out
    for rel in expected:
        assert f"would download {rel} ({sizes[rel]} bytes)" in out
    assert not world.dest.exists()
    code, out, _ = invoke(world, "--cohort-file", str(cohort_file), "--no-progress")
    assert code == 0, out
    assert set(tree_files(world.dest)) == expected


def test_a_cohort_object_is_taken_by_its_ids(world: World, catalog_dir: Path) -> None:
    cohort = mamamia.open(catalog_dir).cohort("patient_id = 'DUKE_001'")
    report = world.sync(cohort=cohort, dry_run=True)
    assert report.cohort_cases == ["DUKE_001"]


def test_bad_ids_and_files_are_named(world: World, tmp_path: Path) -> None:
    with pytest.raises(SyncError, match=r"'\.\./x'"):
        world.sync(cohort=["DUKE_001", "../x"])
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    code, out, err = invoke(world, "--cohort-file", str(bad))
    assert code == 1
    assert "not a mamamia cohort file" in out + err
    code, out, err = invoke(world, "--cohort-file", str(bad), "--cohort", "pcr = 1")
    assert code == 2
