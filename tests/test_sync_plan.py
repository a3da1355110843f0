"""The sync's plans: decided from the upstream listing and the local state alone (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mamamia import SyncError
from mamamia._sync._download import RetryPolicy
from mamamia._sync._listing import Listed
from mamamia._sync._mirror_plan import plan_deletions, plan_files
from mamamia._sync._mirror_state import Entry
from mamamia._sync._sync_options import SyncOptions


def _entry(path: str, version: int = 1, modified_on: str | None = "t1") -> Entry:
    return Entry(
        path=path,
        version=version,
        modified_on=modified_on,
        file_handle_id="fh-" + path,
        md5="0" * 32,
        size=10,
        local_mtime_ns=5,
        local_size=10,
    )


def _listed(syn_id: str, path: str, version: int = 1, modified_on: str | None = "t1") -> Listed:
    return Listed(syn_id, tuple(path.split("/")), version, modified_on)


def test_plan_files_keeps_what_the_state_proves_current() -> None:
    files = {
        "syn1": _entry("images/A/a_0000.nii.gz"),
        "syn2": _entry("images/A/a_0001.nii.gz"),
        "syn3": _entry("images/B/b_0000.nii.gz"),
        "syn4": _entry("old/place.nii.gz"),
    }
    touched = {"images/B/b_0000.nii.gz"}  # the local file's size or mtime changed
    listed = [
        _listed("syn1", "images/A/a_0000.nii.gz"),  # current
        _listed("syn2", "images/A/a_0001.nii.gz", version=2),  # a new version upstream
        _listed("syn3", "images/B/b_0000.nii.gz"),  # touched locally
        _listed("syn4", "new/place.nii.gz"),  # moved upstream
        _listed("syn5", "images/C/c_0000.nii.gz"),  # new
        _listed("syn6", "images/A/a_0002.nii.gz", modified_on="t2"),  # not in the state
    ]
    plan = plan_files(listed, files, stat_matches=lambda e: e.path not in touched)
    assert [(item.synapse_id, entry.path) for item, entry in plan.current] == [
        ("syn1", "images/A/a_0000.nii.gz")
    ]
    assert [(item.synapse_id, forced) for item, forced in plan.check] == [
        ("syn2", False),
        ("syn3", False),
        ("syn4", False),
        ("syn5", False),
        ("syn6", False),
    ]


def test_plan_files_force_sends_current_files_to_check() -> None:
    files = {"syn1": _entry("a.json"), "syn2": _entry("b.json")}
    listed = [_listed("syn1", "a.json"), _listed("syn2", "b.json")]
    plan = plan_files(listed, files, stat_matches=lambda e: True, force={"syn2"})
    assert [item.synapse_id for item, _ in plan.current] == ["syn1"]
    assert [(item.synapse_id, forced) for item, forced in plan.check] == [("syn2", True)]


def test_plan_deletions_sorts_gone_and_replaced_and_respects_the_selection() -> None:
    files = {
        "syn1": _entry("b.json"),  # still listed
        "syn2": _entry("images/A/a.nii.gz"),  # gone upstream
        "syn3": _entry("b.json"),  # an older entity of a path that syn1 now owns
        "syn4": _entry("images/B/b.nii.gz"),  # gone, but outside the selection
        "syn5": _entry("a.json"),  # gone
    }
    plan = plan_deletions({"syn1"}, files, selected=lambda path: not path.startswith("images/B"))
    assert [(syn_id, entry.path) for syn_id, entry in plan.gone] == [
        ("syn5", "a.json"),
        ("syn2", "images/A/a.nii.gz"),
    ]
    assert plan.replaced == ("syn3",)
    assert plan_deletions(set(files), files, selected=lambda path: True).gone == ()


def test_sync_options_check_each_value_when_made(tmp_path: Path) -> None:
    options = SyncOptions(dest=tmp_path / "~" / "..", include="images/*")
    assert options.dest == tmp_path and options.include == ("images/*",)
    for bad, message in (
        ({"jobs": 0}, "--jobs must be at least 1"),
        ({"source": "60868042"}, "not a Synapse id"),
        ({"repair": True}, "--repair goes with --verify"),
        ({"policy": RetryPolicy(attempts=0)}, "retries must be at least 1"),
        ({"policy": RetryPolicy(backoff_s=-1)}, "backoff must not be negative"),
    ):
        with pytest.raises(SyncError, match=message):
            SyncOptions(dest=tmp_path, **bad)  # type: ignore[arg-type]
