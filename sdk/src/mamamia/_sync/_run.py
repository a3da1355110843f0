"""The sync itself: list upstream, decide per file with stat only, fetch what changed, report.

Per listed file (``/entity/children`` gives id, name, version, modifiedOn):

1. state has it with the same version and modifiedOn, and the local file still has the
   size and mtime we recorded: up to date. No request, no hashing.
2. otherwise one entity bundle gives the file handle, MD5 and size. Same MD5 and size as the
   state (a metadata-only change, or a move upstream): update the state (move the local file).
   A local file of the right size that we have no record of (a killed run, or a mirror made by
   another tool) is hashed once and adopted when it matches.
3. otherwise download it (``_download``), and record the new state.

Ids in the state that the (complete) listing no longer has are deletions upstream: reported,
and removed with ``delete=True``. Per-file failures never raise: they land in the report.

A run wires three parts together: a ``SyncSession`` (thread pool, state and report
bookkeeping, listing), the pure plans of ``_mirror_plan`` (step 1 and the deletions, decided
from the listing and the state alone) and a ``FileFetcher`` (steps 2-3); here are the phases of
a whole run (deletions, verify and repair, the cohort's tables) and :func:`run`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from mamamia._atomic import write_atomic
from mamamia._sync._cohort_filter import (
    find_clinical_table,
    is_clinical_table,
    is_table_file,
    select_cases,
)
from mamamia._sync._download import Downloader, DownloadFailed, md5_file, partial_path
from mamamia._sync._listing import Remote, check_synapse_id
from mamamia._sync._mirror_plan import plan_deletions
from mamamia._sync._mirror_state import Entry, MirrorState, StateLock
from mamamia._sync._paths import UnsafeName, local_path
from mamamia._sync._per_file import FileFetcher, prune_empty
from mamamia._sync._report import FileResult, SyncError, SyncReport
from mamamia._sync._session import ProgressBar, SyncSession
from mamamia._sync._sync_options import SyncOptions
from mamamia.raw import CLINICAL_TABLE_NAMES

__all__ = ["run"]


class _SyncRun:
    """One run: a session and a fetcher, wired through the plans, phase by phase."""

    def __init__(self, session: SyncSession) -> None:
        self.s = session
        self.fetcher = FileFetcher(session)

    def close(self) -> None:
        try:
            self.s.close()
        finally:
            self.fetcher.close()

    # ------------------------------------------------------------------ phases
    def deletions(self, listed_ids: set[str]) -> None:
        if not self.s.listing_complete:
            self.s.report.warnings.append(
                "the listing was incomplete, so upstream deletions were not checked"
            )
            return
        plan = plan_deletions(
            listed_ids, self.s.state.files, lambda path: self.s.selected(tuple(path.split("/")))
        )
        if not self.s.o.dry_run:
            for syn_id in plan.replaced:
                self.s.forget(syn_id)
        for syn_id, entry in plan.gone:
            if not self.s.o.delete or self.s.o.dry_run:
                reason = (
                    "would be removed (--delete)"
                    if self.s.o.delete
                    else "kept locally; --delete removes it"
                )
                self.s.add(
                    FileResult(
                        entry.path, syn_id, "deleted_upstream", size=entry.size, reason=reason
                    )
                )
                continue
            self.s.add(
                FileResult(
                    entry.path, syn_id, "deleted_upstream", size=entry.size, reason="removed"
                )
            )
            try:
                path = local_path(self.s.dest, entry.path.split("/"))
                path.unlink(missing_ok=True)
                prune_empty(path.parent, self.s.dest)
            except UnsafeName:
                pass  # never ours to delete
            except OSError as exc:
                reason = f"could not remove: {type(exc).__name__}: {exc}"
                self.s.add(FileResult(entry.path, syn_id, "failed", size=entry.size, reason=reason))
                continue
            self.s.forget(syn_id)
            self.s.add(FileResult(entry.path, syn_id, "removed", size=entry.size))

    def verify(self) -> set[str]:
        """Re-hash every selected file in the state; return the ids that differ.

        Offline: ``--include`` and ``--cohort`` select from the state (the cohort is evaluated on
        the local clinical table).
        """
        if self.s.o.selects_cases and self.s.cohort_cases is None:
            self.s.cohort_cases = set(
                self.s.o.cohort_ids
                or select_cases(find_clinical_table(self.s.dest), self.s.o.cohort or "")
            )
            self.s.report.cohort_cases = sorted(self.s.cohort_cases)
        items = sorted(
            (
                kv
                for kv in self.s.state.files.items()
                if self.s.selected(tuple(kv[1].path.split("/")))
            ),
            key=lambda kv: kv[1].path,
        )
        bad: set[str] = set()
        bar = ProgressBar(
            self.s.o.progress and bool(items), desc="verify", unit=" files", total=len(items)
        )
        try:
            for syn_id, result in self.s.map(self._verify_one, items, bar):
                self.s.add(result)
                if result.action == "mismatch":
                    bad.add(syn_id)
        finally:
            bar.close()
        return bad

    def _verify_one(self, item: tuple[str, Entry]) -> tuple[str, FileResult]:
        try:
            return self._verify_file(item)
        except OSError as exc:
            syn_id, entry = item
            reason = f"unreadable: {type(exc).__name__}: {exc}"
            return syn_id, FileResult(entry.path, syn_id, "mismatch", entry.size, reason=reason)

    def _verify_file(self, item: tuple[str, Entry]) -> tuple[str, FileResult]:
        syn_id, entry = item
        try:
            path = local_path(self.s.dest, entry.path.split("/"))
        except UnsafeName as exc:
            return syn_id, FileResult(entry.path, syn_id, "mismatch", entry.size, reason=str(exc))
        if not path.is_file():
            return syn_id, FileResult(entry.path, syn_id, "mismatch", entry.size, reason="missing")
        st = path.stat()
        if st.st_size != entry.size:
            return syn_id, FileResult(
                entry.path,
                syn_id,
                "mismatch",
                entry.size,
                reason=f"size {st.st_size}, expected {entry.size}",
            )
        with self.s.report_lock:
            self.s.report.files_hashed += 1
        md5 = md5_file(path, self.s.stop)
        if md5 != entry.md5:
            return syn_id, FileResult(
                entry.path,
                syn_id,
                "mismatch",
                entry.size,
                reason=f"MD5 {md5}, expected {entry.md5}",
            )
        if not entry.stat_matches(path):
            # Same bytes, new mtime (touched, copied): remember it so stat-only checks pass again.
            self.s.record(
                syn_id, replace(entry, local_mtime_ns=st.st_mtime_ns, local_size=st.st_size)
            )
        return syn_id, FileResult(entry.path, syn_id, "verified", entry.size)

    def run_sync(self, force: set[str] | None = None) -> None:
        root = check_synapse_id(self.s.o.source)
        top_files, top_folders = self.s.walk([(root, ())], recurse=False)
        if not top_files and not top_folders and self.s.listing_complete:
            self.s.report.warnings.append(
                f"{root} lists no files or folders (is it a project or folder you can read?)"
            )
        listed = list(top_files)
        if self.s.o.selects_cases:
            tables = [f for f in top_files if is_table_file(f.segments)]
            self.fetcher.process(tables, force)
            self.s.cohort_cases = set(self._cohort_cases())
            self.s.report.cohort_cases = sorted(self.s.cohort_cases)
            top_folders = [f for f in top_folders if not self.s.pruned(f[1])]
            below, _ = self.s.walk(top_folders, recurse=True)
            listed += below
            rest = [f for f in below if self.s.selected(f.segments)]
        else:
            below, _ = self.s.walk(top_folders, recurse=True)
            listed += below
            rest = [f for f in listed if self.s.selected(f.segments)]
        self.s.report.files_listed = len(listed)
        self.s.report.files_selected = len(rest) + (
            len([f for f in top_files if is_table_file(f.segments)])
            if self.s.o.selects_cases
            else 0
        )
        self.fetcher.process(rest, force)
        self.deletions({f.synapse_id for f in listed})

    def _cohort_cases(self) -> list[str]:
        if self.s.o.cohort_ids is not None:
            return list(self.s.o.cohort_ids)
        assert self.s.o.cohort is not None
        try:
            clinical = find_clinical_table(self.s.dest)
        except (SyncError, FileNotFoundError):
            clinical = None
        pending = [r for r in self.s.report.would_download if is_clinical_table(r.path)]
        if self.s.o.dry_run and pending:
            # A dry run never writes into the mirror: fetch the table to a temporary folder.
            clinical = self._fetch_aside(pending[0])
        if clinical is None:
            failed = [r for r in self.s.report.failed if is_clinical_table(r.path)]
            detail = f" ({failed[0].reason})" if failed else ""
            raise SyncError(f"--cohort: could not fetch {CLINICAL_TABLE_NAMES[0]}{detail}")
        return select_cases(clinical, self.s.o.cohort)

    def _fetch_aside(self, result: FileResult) -> Path:
        info = self.s.remote.handle(result.synapse_id)
        target = self.s.scratch / "tables" / PurePosixPath(result.path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        downloader = Downloader(
            self.fetcher.ensure_client(),
            self.s.o.policy,
            self.s.scratch / "partials",
            self.s.stop,
            on_progress=lambda n: None,
            on_network_bytes=lambda n: None,
        )
        partial = partial_path(target, info.file_handle_id)
        try:
            downloader.fetch(
                partial,
                info.file_handle_id,
                info.md5,
                info.size,
                lambda: self.s.remote.download_url(info.file_handle_id, result.synapse_id),
            )
        except DownloadFailed as exc:
            raise SyncError(f"--cohort: could not fetch {result.path}: {exc.reason}") from exc
        os.replace(partial, target)
        return target


def run(options: SyncOptions, remote_factory: Callable[[], Remote] | None = None) -> SyncReport:
    """Run one sync (or verify) as ``options`` say; see :func:`mamamia.sync`."""
    dest = options.dest
    if dest.exists() and not dest.is_dir():
        raise SyncError(f"DEST {dest} exists and is not a folder")
    creates = not options.dry_run
    if creates:
        dest.mkdir(parents=True, exist_ok=True)
    lock: contextlib.AbstractContextManager[Any] = (
        StateLock(dest)
        if creates or MirrorState.state_dir(dest).is_dir()
        else contextlib.nullcontext()
    )
    with lock:
        job = _SyncRun(SyncSession(options, remote_factory))
        try:
            if options.verify:
                if not job.s.state.files:
                    raise SyncError(f"{dest} has no sync state to verify; run mamamia sync first")
                bad = job.verify()
                if options.repair and bad:
                    job.run_sync(force=bad)
                    report = job.s.report
                    repaired = {r.synapse_id for r in report.repaired}
                    report.mismatched = [
                        r for r in report.mismatched if r.synapse_id not in repaired
                    ]
            else:
                job.run_sync()
        except KeyboardInterrupt:
            job.s.stop.set()
            raise
        finally:
            job.close()
        if not options.dry_run:
            _write_report(dest, job.s.report)
        return job.s.report


def _write_report(dest: Path, report: SyncReport) -> None:
    """``DEST/.mamamia-sync/last-report.json``: the last run's full report, for later reading."""
    import json

    body = json.dumps({**report.to_dict(), "finished": time.time()}, indent=1)
    write_atomic(MirrorState.state_dir(dest) / "last-report.json", body)
