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
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mamamia._sync._cohort import case_of, find_clinical_table, is_table_file, select_cases
from mamamia._sync._download import (
    Cancelled,
    Downloader,
    DownloadFailed,
    RetryPolicy,
    fsync_dir,
    md5_file,
    partial_path,
)
from mamamia._sync._paths import STATE_DIR, UnsafeName, check_segment, local_path
from mamamia._sync._remote import (
    FILE_TYPE,
    FOLDER_TYPE,
    HandleInfo,
    Remote,
    RemoteError,
    SynapseRemote,
    check_synapse_id,
)
from mamamia._sync._report import Action, FileResult, SyncError, SyncReport
from mamamia._sync._state import Entry, MirrorState, StateLock

__all__ = ["Options", "run"]

_STATE_SAVE_EVERY_S = 2.0


@dataclass(frozen=True)
class Options:
    dest: Path
    source: str = "syn60868042"
    include: tuple[str, ...] = ()
    cohort: str | None = None
    jobs: int = 8
    dry_run: bool = False
    delete: bool = False
    verify: bool = False
    repair: bool = False
    synapse_config: Path | None = None
    progress: bool = True
    policy: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class Listed:
    synapse_id: str
    segments: tuple[str, ...]
    version: int
    modified_on: str | None

    @property
    def path(self) -> str:
        return "/".join(self.segments)


@dataclass(frozen=True)
class _Job:
    listed: Listed
    info: HandleInfo
    target: Path
    reason: str  # why it is fetched: new, changed, repair...


class _Bar:
    """A tqdm bar on stderr, or nothing (progress=False, or tqdm missing)."""

    def __init__(self, enabled: bool, **kwargs: Any) -> None:
        self._bar: Any = None
        self._lock = threading.Lock()
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(file=sys.stderr, dynamic_ncols=True, **kwargs)

    def update(self, n: int) -> None:
        if self._bar is not None and n:
            with self._lock:
                self._bar.update(n)

    def postfix(self, text: str) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _matches(path: str, globs: tuple[str, ...]) -> bool:
    lowered = path.lower()
    for glob in globs:
        pattern = glob.lower().strip("/")
        if fnmatch.fnmatchcase(lowered, pattern) or fnmatch.fnmatchcase(lowered, pattern + "/*"):
            return True
    return False


class _Sync:
    def __init__(self, options: Options, remote_factory: Callable[[], Remote] | None) -> None:
        self.o = options
        self.dest = options.dest
        self.report = SyncReport(
            dest=str(options.dest), source=options.source, dry_run=options.dry_run
        )
        self._remote_factory = remote_factory
        self._remote: Remote | None = None
        self.state = MirrorState.load(self.dest, options.source)
        self._state_lock = threading.Lock()
        self._report_lock = threading.Lock()
        self._last_save = time.monotonic()
        self._dirty = False
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=options.jobs, thread_name_prefix="mamamia-sync")
        self.cohort_cases: set[str] | None = None
        self.listing_complete = True
        self._client: Any = None
        self._downloader: Downloader | None = None
        self._bytes_bar: _Bar | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="mamamia-sync-")

    # ------------------------------------------------------------------ plumbing
    @property
    def remote(self) -> Remote:
        if self._remote is None:
            if self._remote_factory is not None:
                self._remote = self._remote_factory()
            else:
                self._remote = SynapseRemote(
                    config_path=self.o.synapse_config,
                    cache_dir=Path(self._tmp.name) / "synapseclient-cache",
                    retries=max(0, self.o.policy.attempts - 1),
                    backoff_s=self.o.policy.backoff_s,
                    connections=self.o.jobs + 2,
                )
        return self._remote

    def add(self, result: FileResult) -> None:
        with self._report_lock:
            self.report.add(result)

    def record(self, synapse_id: str, entry: Entry) -> None:
        with self._state_lock:
            self.state.files[synapse_id] = entry
            self._dirty = True
            if time.monotonic() - self._last_save > _STATE_SAVE_EVERY_S:
                self._save_locked()

    def forget(self, synapse_id: str) -> None:
        with self._state_lock:
            self.state.files.pop(synapse_id, None)
            self._dirty = True

    def _save_locked(self) -> None:
        if self.o.dry_run or not self._dirty:
            return
        self.state.save(self.dest)
        self._dirty = False
        self._last_save = time.monotonic()

    def save_state(self) -> None:
        with self._state_lock:
            self._save_locked()

    def close(self) -> None:
        self.stop.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        try:
            self.save_state()
        finally:
            if self._client is not None:
                self._client.close()
            self._tmp.cleanup()

    def map(
        self, fn: Callable[[Any], Any], items: list[Any], bar: _Bar | None = None
    ) -> Iterator[Any]:
        """Run ``fn`` over ``items`` on the pool; yield results as they finish."""
        futures = [self.pool.submit(fn, item) for item in items]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                if bar is not None:
                    bar.update(1)
                yield future.result()

    # ------------------------------------------------------------------ selection
    def selected(self, segments: tuple[str, ...]) -> bool:
        if self.cohort_cases is not None:
            if is_table_file(segments):
                return True  # the tables always come with a cohort
            case = case_of(segments)
            if case is None or case not in self.cohort_cases:
                return False
        return not self.o.include or _matches("/".join(segments), self.o.include)

    def pruned(self, segments: tuple[str, ...]) -> bool:
        """A folder whose whole subtree the cohort excludes (``images/<CASE>``): not listed."""
        if self.cohort_cases is None:
            return False
        if len(segments) == 2 and segments[0].lower() == "images":
            return segments[1].upper() not in self.cohort_cases
        return len(segments) == 1 and segments[0].lower() not in (
            "images",
            "segmentations",
            "patient_info_files",
        )

    # ------------------------------------------------------------------ listing
    def walk(
        self, starts: list[tuple[str, tuple[str, ...]]], recurse: bool
    ) -> tuple[list[Listed], list[tuple[str, tuple[str, ...]]]]:
        """List ``starts`` (id, path) and, if ``recurse``, everything below them."""
        files: list[Listed] = []
        folders: list[tuple[str, tuple[str, ...]]] = []
        bar = _Bar(self.o.progress, desc="listing", unit=" folders")
        futures: dict[Future[list[dict[str, Any]]], tuple[str, tuple[str, ...]]] = {
            self.pool.submit(self.remote.children, syn_id): (syn_id, segs)
            for syn_id, segs in starts
        }
        try:
            while futures:
                done, _ = wait(list(futures), timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    syn_id, segs = futures.pop(future)
                    bar.update(1)
                    try:
                        children = future.result()
                    except RemoteError as exc:
                        self.listing_complete = False
                        self.add(
                            FileResult(
                                "/".join(segs) + "/",
                                syn_id,
                                "failed",
                                reason=f"listing failed: {exc}",
                            )
                        )
                        continue
                    for child in children:
                        self._take_child(child, segs, files, folders, futures if recurse else None)
        finally:
            bar.close()
        return files, folders

    def _take_child(
        self,
        child: dict[str, Any],
        segs: tuple[str, ...],
        files: list[Listed],
        folders: list[tuple[str, tuple[str, ...]]],
        futures: dict[Future[list[dict[str, Any]]], tuple[str, tuple[str, ...]]] | None,
    ) -> None:
        name = child.get("name")
        child_id = str(child.get("id"))
        kind = child.get("type")
        shown = "/".join((*segs, str(name)))
        try:
            check_segment(name if isinstance(name, str) else "")
            if not segs and name == STATE_DIR:
                raise UnsafeName(f"top-level name {STATE_DIR!r} is reserved for the sync state")
        except UnsafeName as exc:
            self.add(FileResult(shown, child_id, "failed", reason=f"refused unsafe name: {exc}"))
            return
        assert isinstance(name, str)
        child_segs = (*segs, name)
        if kind == FOLDER_TYPE:
            if self.pruned(child_segs):
                return
            folders.append((child_id, child_segs))
            if futures is not None:
                futures[self.pool.submit(self.remote.children, child_id)] = (child_id, child_segs)
        elif kind == FILE_TYPE:
            version = child.get("versionNumber")
            files.append(Listed(child_id, child_segs, int(version or 0), child.get("modifiedOn")))

    # ------------------------------------------------------------------ per file
    def prepare(self, item: tuple[Listed, bool]) -> FileResult | _Job:
        """Decide what one listed file needs; a :class:`_Job` when bytes must be fetched."""
        try:
            return self._prepare(item)
        except OSError as exc:  # an unreadable local file, a failed local move
            listed = item[0]
            return FileResult(
                listed.path, listed.synapse_id, "failed", reason=f"{type(exc).__name__}: {exc}"
            )

    def _prepare(self, item: tuple[Listed, bool]) -> FileResult | _Job:
        listed, force = item
        if self.stop.is_set():
            raise Cancelled()
        try:
            target = local_path(self.dest, list(listed.segments))
        except UnsafeName as exc:
            return FileResult(
                listed.path, listed.synapse_id, "failed", reason=f"refused unsafe path: {exc}"
            )
        entry = self.state.files.get(listed.synapse_id)
        if (
            not force
            and entry is not None
            and entry.path == listed.path
            and entry.version == listed.version
            and entry.modified_on == listed.modified_on
            and entry.stat_matches(target)
        ):
            return FileResult(listed.path, listed.synapse_id, "skipped", size=entry.size)
        try:
            info = self.remote.handle(listed.synapse_id)
        except RemoteError as exc:
            return FileResult(listed.path, listed.synapse_id, "failed", reason=str(exc))
        if info.file_name:
            try:
                check_segment(info.file_name)
            except UnsafeName as exc:
                return FileResult(
                    listed.path,
                    listed.synapse_id,
                    "failed",
                    reason=f"refused unsafe file handle name: {exc}",
                )
        if not force:
            kept = self._reuse(listed, info, entry, target)
            if kept is not None:
                return kept
        if self.o.dry_run:
            return FileResult(listed.path, listed.synapse_id, "would_download", size=info.size)
        why = "repair" if force else ("changed upstream" if entry is not None else "new")
        return _Job(listed, info, target, why)

    def _entry(self, listed: Listed, info: HandleInfo, md5: str, target: Path) -> Entry:
        st = target.stat()
        return Entry(
            path=listed.path,
            version=listed.version or info.version,
            modified_on=listed.modified_on,
            file_handle_id=info.file_handle_id,
            md5=md5,
            size=info.size if info.size is not None else st.st_size,
            local_mtime_ns=st.st_mtime_ns,
            local_size=st.st_size,
        )

    def _reuse(
        self, listed: Listed, info: HandleInfo, entry: Entry | None, target: Path
    ) -> FileResult | None:
        """The local bytes are already right (metadata change, move, or unrecorded file)."""
        same_bytes = (
            entry is not None
            and info.md5 is not None
            and entry.md5 == info.md5
            and (info.size is None or entry.size == info.size)
        )
        if same_bytes and entry is not None:
            if entry.path == listed.path and entry.stat_matches(target):
                if not self.o.dry_run:
                    self.record(
                        listed.synapse_id,
                        replace(
                            entry,
                            version=listed.version,
                            modified_on=listed.modified_on,
                            file_handle_id=info.file_handle_id,
                        ),
                    )
                return FileResult(listed.path, listed.synapse_id, "skipped", size=entry.size)
            if entry.path != listed.path and not target.exists():
                with contextlib.suppress(UnsafeName):
                    old = local_path(self.dest, entry.path.split("/"))
                    if entry.stat_matches(old):
                        if self.o.dry_run:
                            return FileResult(
                                listed.path,
                                listed.synapse_id,
                                "skipped",
                                size=entry.size,
                                reason=f"would move from {entry.path}",
                            )
                        target.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(old, target)
                        _prune_empty(old.parent, self.dest)
                        self.record(listed.synapse_id, self._entry(listed, info, entry.md5, target))
                        return FileResult(
                            listed.path,
                            listed.synapse_id,
                            "skipped",
                            size=entry.size,
                            reason=f"moved from {entry.path}",
                        )
        if (
            info.md5 is not None
            and target.is_file()
            and (info.size is None or target.stat().st_size == info.size)
        ):
            with self._report_lock:
                self.report.files_hashed += 1
            if md5_file(target, self.stop) == info.md5:
                if not self.o.dry_run:
                    self.record(listed.synapse_id, self._entry(listed, info, info.md5, target))
                return FileResult(
                    listed.path,
                    listed.synapse_id,
                    "adopted",
                    size=info.size,
                    reason="local copy already matches",
                )
        return None

    def download(self, job: _Job) -> FileResult:
        listed, info, target = job.listed, job.info, job.target
        assert self._downloader is not None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # mkdir may have followed a symlinked folder: check again where we write.
            local_path(self.dest, list(listed.segments))
            partial = partial_path(target, info.file_handle_id)
            md5, attempts = self._downloader.fetch(
                partial,
                info.file_handle_id,
                info.md5,
                info.size,
                lambda: self.remote.download_url(info.file_handle_id, listed.synapse_id),
            )
            os.replace(partial, target)
            fsync_dir(target.parent)
            self._downloader.forget(info.file_handle_id)
            for stale in target.parent.glob(f"{_glob_escape(target.name)}.*.partial"):
                stale.unlink(missing_ok=True)
            self.record(listed.synapse_id, self._entry(listed, info, md5, target))
        except DownloadFailed as exc:
            return FileResult(
                listed.path,
                listed.synapse_id,
                "failed",
                size=info.size,
                reason=exc.reason,
                attempts=exc.attempts,
            )
        except (OSError, UnsafeName) as exc:
            return FileResult(
                listed.path,
                listed.synapse_id,
                "failed",
                size=info.size,
                reason=f"{type(exc).__name__}: {exc}",
            )
        action: Action = "repaired" if job.reason == "repair" else "downloaded"
        return FileResult(
            listed.path,
            listed.synapse_id,
            action,
            size=target.stat().st_size,
            reason=job.reason,
            attempts=attempts,
        )

    # ------------------------------------------------------------------ phases
    def _ensure_downloader(self) -> Downloader:
        if self._downloader is None:
            import httpx

            self._client = httpx.Client(
                timeout=httpx.Timeout(60.0, connect=30.0, pool=None),
                limits=httpx.Limits(
                    max_connections=self.o.jobs + 2, max_keepalive_connections=self.o.jobs
                ),
                follow_redirects=True,
            )
            self._downloader = Downloader(
                self._client,
                self.o.policy,
                MirrorState.state_dir(self.dest) / "partials",
                self.stop,
                on_progress=lambda n: self._bytes_bar.update(n) if self._bytes_bar else None,
                on_network_bytes=self._count_bytes,
            )
        return self._downloader

    def _count_bytes(self, n: int) -> None:
        with self._report_lock:
            self.report.bytes_downloaded += n

    def process(self, listed: list[Listed], force: set[str] | None = None) -> None:
        """Prepare every file, then fetch what needs fetching, with progress bars."""
        force = force or set()
        bar = _Bar(
            self.o.progress and bool(listed), desc="checking", unit=" files", total=len(listed)
        )
        jobs: list[_Job] = []
        try:
            for outcome in self.map(
                self.prepare, [(f, f.synapse_id in force) for f in listed], bar
            ):
                if isinstance(outcome, _Job):
                    jobs.append(outcome)
                else:
                    self.add(outcome)
                    if outcome.action == "would_download":
                        with self._report_lock:
                            self.report.bytes_planned += outcome.size or 0
        finally:
            bar.close()
        if not jobs:
            return
        planned = sum(job.info.size or 0 for job in jobs)
        with self._report_lock:
            self.report.bytes_planned += planned
        self._ensure_downloader()
        self._bytes_bar = _Bar(
            self.o.progress,
            desc="download",
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            total=planned,
        )
        done = 0
        try:
            self._bytes_bar.postfix(f"files 0/{len(jobs)}")
            for result in self.map(self.download, jobs):
                self.add(result)
                done += 1
                self._bytes_bar.postfix(f"files {done}/{len(jobs)}")
        finally:
            self._bytes_bar.close()
            self._bytes_bar = None

    def deletions(self, listed_ids: set[str]) -> None:
        if not self.listing_complete:
            self.report.warnings.append(
                "the listing was incomplete, so upstream deletions were not checked"
            )
            return
        live_paths = {e.path for i, e in self.state.files.items() if i in listed_ids}
        for syn_id, entry in sorted(self.state.files.items(), key=lambda kv: kv[1].path):
            if syn_id in listed_ids or not self.selected(tuple(entry.path.split("/"))):
                continue
            if entry.path in live_paths:
                # Deleted and uploaded again under the same name: the new entity owns the file.
                if not self.o.dry_run:
                    self.forget(syn_id)
                continue
            if not self.o.delete or self.o.dry_run:
                reason = (
                    "would be removed (--delete)"
                    if self.o.delete
                    else "kept locally; --delete removes it"
                )
                self.add(
                    FileResult(
                        entry.path, syn_id, "deleted_upstream", size=entry.size, reason=reason
                    )
                )
                continue
            self.add(
                FileResult(
                    entry.path, syn_id, "deleted_upstream", size=entry.size, reason="removed"
                )
            )
            try:
                path = local_path(self.dest, entry.path.split("/"))
                path.unlink(missing_ok=True)
                _prune_empty(path.parent, self.dest)
            except UnsafeName:
                pass  # never ours to delete
            except OSError as exc:
                reason = f"could not remove: {type(exc).__name__}: {exc}"
                self.add(FileResult(entry.path, syn_id, "failed", size=entry.size, reason=reason))
                continue
            self.forget(syn_id)
            self.add(FileResult(entry.path, syn_id, "removed", size=entry.size))

    def verify(self) -> set[str]:
        """Re-hash every selected file in the state; return the ids that differ.

        Offline: ``--include`` and ``--cohort`` select from the state (the cohort is evaluated on
        the local clinical table).
        """
        if self.o.cohort is not None and self.cohort_cases is None:
            self.cohort_cases = set(select_cases(find_clinical_table(self.dest), self.o.cohort))
            self.report.cohort_cases = sorted(self.cohort_cases)
        items = sorted(
            (kv for kv in self.state.files.items() if self.selected(tuple(kv[1].path.split("/")))),
            key=lambda kv: kv[1].path,
        )
        bad: set[str] = set()
        bar = _Bar(self.o.progress and bool(items), desc="verify", unit=" files", total=len(items))
        try:
            for syn_id, result in self.map(self._verify_one, items, bar):
                self.add(result)
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
            path = local_path(self.dest, entry.path.split("/"))
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
        with self._report_lock:
            self.report.files_hashed += 1
        md5 = md5_file(path, self.stop)
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
            self.record(
                syn_id, replace(entry, local_mtime_ns=st.st_mtime_ns, local_size=st.st_size)
            )
        return syn_id, FileResult(entry.path, syn_id, "verified", entry.size)

    def run_sync(self, force: set[str] | None = None) -> None:
        root = check_synapse_id(self.o.source)
        top_files, top_folders = self.walk([(root, ())], recurse=False)
        if not top_files and not top_folders and self.listing_complete:
            self.report.warnings.append(
                f"{root} lists no files or folders (is it a project or folder you can read?)"
            )
        listed = list(top_files)
        if self.o.cohort is not None:
            tables = [f for f in top_files if is_table_file(f.segments)]
            self.process(tables, force)
            self.cohort_cases = set(self._cohort_cases())
            self.report.cohort_cases = sorted(self.cohort_cases)
            top_folders = [f for f in top_folders if not self.pruned(f[1])]
            below, _ = self.walk(top_folders, recurse=True)
            listed += below
            rest = [f for f in below if self.selected(f.segments)]
        else:
            below, _ = self.walk(top_folders, recurse=True)
            listed += below
            rest = [f for f in listed if self.selected(f.segments)]
        self.report.files_listed = len(listed)
        self.report.files_selected = len(rest) + (
            len([f for f in top_files if is_table_file(f.segments)])
            if self.o.cohort is not None
            else 0
        )
        self.process(rest, force)
        self.deletions({f.synapse_id for f in listed})

    def _cohort_cases(self) -> list[str]:
        assert self.o.cohort is not None
        try:
            clinical = find_clinical_table(self.dest)
        except (SyncError, FileNotFoundError):
            clinical = None
        pending = [
            r
            for r in self.report.would_download
            if r.path.lower() == "clinical_and_imaging_info.xlsx"
        ]
        if self.o.dry_run and pending:
            # A dry run never writes into the mirror: fetch the table to a temporary folder.
            clinical = self._fetch_aside(pending[0])
        if clinical is None:
            failed = [r for r in self.report.failed if r.path.lower().endswith(".xlsx")]
            detail = f" ({failed[0].reason})" if failed else ""
            raise SyncError(f"--cohort: could not fetch clinical_and_imaging_info.xlsx{detail}")
        return select_cases(clinical, self.o.cohort)

    def _fetch_aside(self, result: FileResult) -> Path:
        info = self.remote.handle(result.synapse_id)
        target = Path(self._tmp.name) / "tables" / "clinical_and_imaging_info.xlsx"
        target.parent.mkdir(parents=True, exist_ok=True)
        downloader = Downloader(
            self._ensure_client(),
            self.o.policy,
            Path(self._tmp.name) / "partials",
            self.stop,
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
                lambda: self.remote.download_url(info.file_handle_id, result.synapse_id),
            )
        except DownloadFailed as exc:
            raise SyncError(
                f"--cohort: could not fetch clinical_and_imaging_info.xlsx: {exc.reason}"
            ) from exc
        os.replace(partial, target)
        return target

    def _ensure_client(self) -> Any:
        self._ensure_downloader()
        return self._client


def _glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


def _prune_empty(folder: Path, dest: Path) -> None:
    while folder != dest and folder.is_relative_to(dest):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def run(options: Options, remote_factory: Callable[[], Remote] | None = None) -> SyncReport:
    """Run one sync (or verify) as ``options`` say; see :func:`mamamia.sync`."""
    if options.repair and not options.verify:
        raise SyncError("--repair goes with --verify")
    if options.jobs < 1:
        raise SyncError(f"--jobs must be at least 1, not {options.jobs}")
    check_synapse_id(options.source)
    # Resolved once: every local path is proven to stay under this exact folder.
    options = replace(options, dest=options.dest.expanduser().resolve())
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
        job = _Sync(options, remote_factory)
        try:
            if options.verify:
                if not job.state.files:
                    raise SyncError(f"{dest} has no sync state to verify; run mamamia sync first")
                bad = job.verify()
                if options.repair and bad:
                    job.run_sync(force=bad)
                    repaired = {r.synapse_id for r in job.report.repaired}
                    job.report.mismatched = [
                        r for r in job.report.mismatched if r.synapse_id not in repaired
                    ]
            else:
                job.run_sync()
        except KeyboardInterrupt:
            job.stop.set()
            raise
        finally:
            job.close()
        if not options.dry_run:
            _write_report(dest, job.report)
        return job.report


def _write_report(dest: Path, report: SyncReport) -> None:
    """``DEST/.mamamia-sync/last-report.json``: the last run's full report, for later reading."""
    import json

    directory = MirrorState.state_dir(dest)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="last-report.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({**report.to_dict(), "finished": time.time()}, handle, indent=1)
        os.replace(tmp, directory / "last-report.json")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
