"""One sync run's shared machinery: the thread pool, the state and report bookkeeping, which
files are selected, and the upstream listing.

`SyncSession` is one of the parts `_run` wires together (with `_per_file.FileFetcher` and the
plans of `_mirror_plan`); nothing here fetches a file's bytes.
"""

from __future__ import annotations

import fnmatch
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from mamamia._sync._cohort_filter import case_of, is_table_file
from mamamia._sync._listing import (
    FILE_TYPE,
    FOLDER_TYPE,
    Listed,
    Remote,
    RemoteError,
    SynapseRemote,
)
from mamamia._sync._mirror_state import Entry, MirrorState
from mamamia._sync._paths import STATE_DIR, UnsafeName, check_segment, local_path
from mamamia._sync._report import FileResult, SyncReport
from mamamia._sync._sync_options import SyncOptions
from mamamia.progress import progress_bar, progress_enabled
from mamamia.raw import IMAGES_DIR

__all__ = ["SyncSession"]

_STATE_SAVE_EVERY_S = 2.0


class ProgressBar:
    """A thread-safe tqdm bar on stderr, or nothing (`mamamia.progress` decides)."""

    def __init__(self, enabled: bool, **kwargs: Any) -> None:
        self._bar: Any = None
        self._lock = threading.Lock()
        if progress_enabled(enabled):
            self._bar = progress_bar(**kwargs)

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


class SyncSession:
    """The parts of one run every phase uses: options, state, report, pool, remote."""

    def __init__(self, options: SyncOptions, remote_factory: Callable[[], Remote] | None) -> None:
        self.o = options
        self.dest = options.dest
        self.report = SyncReport(
            dest=str(options.dest), source=options.source, dry_run=options.dry_run
        )
        self._remote_factory = remote_factory
        self._remote: Remote | None = None
        self.state = MirrorState.load(self.dest, options.source)
        self._state_lock = threading.Lock()
        self.report_lock = threading.Lock()
        self._last_save = time.monotonic()
        self._dirty = False
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=options.jobs, thread_name_prefix="mamamia-sync")
        self.cohort_cases: set[str] | None = None
        self.listing_complete = True
        self._tmp = tempfile.TemporaryDirectory(prefix="mamamia-sync-")

    @property
    def scratch(self) -> Path:
        """A private temporary folder, removed by `close`."""
        return Path(self._tmp.name)

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
        with self.report_lock:
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
            self._tmp.cleanup()

    def map(
        self, fn: Callable[[Any], Any], items: list[Any], bar: ProgressBar | None = None
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

    def stat_matches(self, entry: Entry) -> bool:
        """The local file at ``entry.path`` still has the size and mtime recorded."""
        try:
            return entry.stat_matches(local_path(self.dest, entry.path.split("/")))
        except UnsafeName:
            return False

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
        if len(segments) == 2 and segments[0].lower() == IMAGES_DIR:
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
        bar = ProgressBar(self.o.progress, desc="listing", unit=" folders")
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
