"""What one listed file needs, and fetching it: steps 1-3 of the `_run` docstring.

`FileFetcher` works over a run's `SyncSession`: `process` takes a list of files, lets
`_mirror_plan.plan_files` set aside those the state proves current (step 1), then on the
session's pool asks upstream about the rest, reuses bytes already on disk (a metadata change,
a move upstream, an unrecorded file) and downloads what is left, with progress bars.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mamamia._sync._download import (
    Cancelled,
    Downloader,
    DownloadFailed,
    fsync_dir,
    md5_file,
    partial_path,
)
from mamamia._sync._listing import HandleInfo, Listed, RemoteError
from mamamia._sync._mirror_plan import plan_files
from mamamia._sync._mirror_state import Entry, MirrorState
from mamamia._sync._paths import UnsafeName, check_segment, local_path
from mamamia._sync._report import Action, FileResult
from mamamia._sync._session import ProgressBar, SyncSession

__all__ = ["FileFetcher", "prune_empty"]


@dataclass(frozen=True)
class _Job:
    listed: Listed
    info: HandleInfo
    target: Path
    reason: str  # why it is fetched: new, changed, repair...


class FileFetcher:
    """The per-file steps of one run, over its session (which it shares, never owns)."""

    def __init__(self, session: SyncSession) -> None:
        self.s = session
        self._client: Any = None
        self._downloader: Downloader | None = None
        self._bytes_bar: ProgressBar | None = None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

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
        if self.s.stop.is_set():
            raise Cancelled()
        try:
            target = local_path(self.s.dest, list(listed.segments))
        except UnsafeName as exc:
            return FileResult(
                listed.path, listed.synapse_id, "failed", reason=f"refused unsafe path: {exc}"
            )
        entry = self.s.state.files.get(listed.synapse_id)
        try:
            info = self.s.remote.handle(listed.synapse_id)
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
        if self.s.o.dry_run:
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
                if not self.s.o.dry_run:
                    self.s.record(
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
                    old = local_path(self.s.dest, entry.path.split("/"))
                    if entry.stat_matches(old):
                        if self.s.o.dry_run:
                            return FileResult(
                                listed.path,
                                listed.synapse_id,
                                "skipped",
                                size=entry.size,
                                reason=f"would move from {entry.path}",
                            )
                        target.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(old, target)
                        prune_empty(old.parent, self.s.dest)
                        self.s.record(
                            listed.synapse_id, self._entry(listed, info, entry.md5, target)
                        )
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
            with self.s.report_lock:
                self.s.report.files_hashed += 1
            if md5_file(target, self.s.stop) == info.md5:
                if not self.s.o.dry_run:
                    self.s.record(listed.synapse_id, self._entry(listed, info, info.md5, target))
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
            local_path(self.s.dest, list(listed.segments))
            partial = partial_path(target, info.file_handle_id)
            md5, attempts = self._downloader.fetch(
                partial,
                info.file_handle_id,
                info.md5,
                info.size,
                lambda: self.s.remote.download_url(info.file_handle_id, listed.synapse_id),
            )
            os.replace(partial, target)
            fsync_dir(target.parent)
            self._downloader.forget(info.file_handle_id)
            for stale in target.parent.glob(f"{_glob_escape(target.name)}.*.partial"):
                stale.unlink(missing_ok=True)
            self.s.record(listed.synapse_id, self._entry(listed, info, md5, target))
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

    # ------------------------------------------------------------------ the downloader
    def ensure_client(self) -> Any:
        """The HTTP client the downloads use (made on first use)."""
        self._ensure_downloader()
        return self._client

    def _ensure_downloader(self) -> Downloader:
        if self._downloader is None:
            import httpx

            self._client = httpx.Client(
                timeout=httpx.Timeout(60.0, connect=30.0, pool=None),
                limits=httpx.Limits(
                    max_connections=self.s.o.jobs + 2, max_keepalive_connections=self.s.o.jobs
                ),
                follow_redirects=True,
            )
            self._downloader = Downloader(
                self._client,
                self.s.o.policy,
                MirrorState.state_dir(self.s.dest) / "partials",
                self.s.stop,
                on_progress=lambda n: self._bytes_bar.update(n) if self._bytes_bar else None,
                on_network_bytes=self._count_bytes,
            )
        return self._downloader

    def _count_bytes(self, n: int) -> None:
        with self.s.report_lock:
            self.s.report.bytes_downloaded += n

    def process(self, listed: list[Listed], force: set[str] | None = None) -> None:
        """Prepare every file, then fetch what needs fetching, with progress bars."""
        plan = plan_files(
            listed, self.s.state.files, stat_matches=self.s.stat_matches, force=force or set()
        )
        for item, entry in plan.current:
            self.s.add(FileResult(item.path, item.synapse_id, "skipped", size=entry.size))
        bar = ProgressBar(
            self.s.o.progress and bool(listed), desc="checking", unit=" files", total=len(listed)
        )
        bar.update(len(plan.current))
        jobs: list[_Job] = []
        try:
            for outcome in self.s.map(self.prepare, list(plan.check), bar):
                if isinstance(outcome, _Job):
                    jobs.append(outcome)
                else:
                    self.s.add(outcome)
                    if outcome.action == "would_download":
                        with self.s.report_lock:
                            self.s.report.bytes_planned += outcome.size or 0
        finally:
            bar.close()
        if not jobs:
            return
        planned = sum(job.info.size or 0 for job in jobs)
        with self.s.report_lock:
            self.s.report.bytes_planned += planned
        self._ensure_downloader()
        self._bytes_bar = ProgressBar(
            self.s.o.progress,
            desc="download",
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            total=planned,
        )
        done = 0
        try:
            self._bytes_bar.postfix(f"files 0/{len(jobs)}")
            for result in self.s.map(self.download, jobs):
                self.s.add(result)
                done += 1
                self._bytes_bar.postfix(f"files {done}/{len(jobs)}")
        finally:
            self._bytes_bar.close()
            self._bytes_bar = None


def _glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


def prune_empty(folder: Path, dest: Path) -> None:
    while folder != dest and folder.is_relative_to(dest):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
