"""What a sync does with each file, decided from the upstream listing and the local state alone.

Pure functions over values: no network, no writes. The run asks the network only about the
files a plan sends to ``check``, and removes only what a plan lists as ``gone``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass

from mamamia._sync._listing import Listed
from mamamia._sync._mirror_state import Entry

__all__ = ["DeletionPlan", "FilePlan", "plan_deletions", "plan_files"]


@dataclass(frozen=True)
class FilePlan:
    """``current``: up to date (no request, no hashing); ``check``: (file, forced) pairs whose
    file handle must be asked for, then reused, adopted or downloaded."""

    current: tuple[tuple[Listed, Entry], ...]
    check: tuple[tuple[Listed, bool], ...]


@dataclass(frozen=True)
class DeletionPlan:
    """``gone``: recorded files whose entity left the listing (deleted upstream), by path;
    ``replaced``: ids deleted and uploaded again under the same path (the new entity owns
    the file, so only the old record goes)."""

    gone: tuple[tuple[str, Entry], ...]
    replaced: tuple[str, ...]


def plan_files(
    listed: Iterable[Listed],
    files: Mapping[str, Entry],
    *,
    stat_matches: Callable[[Entry], bool],
    force: Set[str] = frozenset(),
) -> FilePlan:
    """Split ``listed`` into files the state proves current and files to check upstream.

    A file is current when the state has its id at the same path, version and modifiedOn, and
    ``stat_matches`` says the local file still has the size and mtime recorded. ``force``
    (repair) sends ids to ``check`` whatever the state says.
    """
    current: list[tuple[Listed, Entry]] = []
    check: list[tuple[Listed, bool]] = []
    for item in listed:
        forced = item.synapse_id in force
        entry = files.get(item.synapse_id)
        if (
            not forced
            and entry is not None
            and entry.path == item.path
            and entry.version == item.version
            and entry.modified_on == item.modified_on
            and stat_matches(entry)
        ):
            current.append((item, entry))
        else:
            check.append((item, forced))
    return FilePlan(tuple(current), tuple(check))


def plan_deletions(
    listed_ids: Set[str], files: Mapping[str, Entry], selected: Callable[[str], bool]
) -> DeletionPlan:
    """The recorded files (among those ``selected`` by path) that a complete listing lacks."""
    live_paths = {entry.path for syn_id, entry in files.items() if syn_id in listed_ids}
    gone: list[tuple[str, Entry]] = []
    replaced: list[str] = []
    for syn_id, entry in sorted(files.items(), key=lambda kv: kv[1].path):
        if syn_id in listed_ids or not selected(entry.path):
            continue
        if entry.path in live_paths:
            replaced.append(syn_id)
        else:
            gone.append((syn_id, entry))
    return DeletionPlan(tuple(gone), tuple(replaced))
