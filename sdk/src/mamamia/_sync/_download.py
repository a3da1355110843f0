"""Fetch one file's bytes: resumable, verified before it is moved into place, bounded retries.

The bytes go to ``<target>.<fileHandleId>.partial`` next to the target (a file handle's bytes
never change, so a part left by a killed run is safe to resume), with ``Range`` + ``If-Range``
(the ETag is kept in the state folder). Size and MD5 are checked on the partial file, which is
then fsynced and ``os.replace``d, so a wrong file never sits at the final path.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mamamia._atomic import write_atomic
from mamamia._sync._report import SyncError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "Cancelled",
    "DownloadFailed",
    "Downloader",
    "RetryPolicy",
    "fsync_dir",
    "md5_file",
    "partial_path",
]

_BLOCK = 1 << 20
#: Statuses worth another try; 403 usually means the presigned URL expired (we ask anew).
_RETRY_STATUSES = {403, 408, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``attempts`` tries per file; exponential backoff with jitter between them."""

    attempts: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    #: An attempt that moves fewer than ``stall_bytes`` in ``stall_s`` seconds is abandoned
    #: (and resumed): the read timeout alone never fires on a connection that trickles.
    stall_s: float = 60.0
    stall_bytes: int = 64 * 1024

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        base = min(self.max_backoff_s, self.backoff_s * 2.0 ** (attempt - 1))
        jittered: float = base * random.uniform(0.5, 1.5)
        if retry_after is not None:
            # Honour the server's Retry-After (capped), with a little jitter on top.
            return min(self.max_backoff_s, retry_after) + random.uniform(0, self.backoff_s)
        return jittered


class DownloadFailed(SyncError):
    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


class Cancelled(Exception):
    """The sync is stopping (Ctrl-C); the partial file is kept for the next run."""


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _Fatal(Exception):
    pass


def partial_path(target: Path, file_handle_id: str) -> Path:
    return target.with_name(f"{target.name}.{file_handle_id}.partial")


def md5_file(path: Path, stop: threading.Event | None = None) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            if stop is not None and stop.is_set():
                raise Cancelled()
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not supported (Windows): the file itself was fsynced
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Downloader:
    """Shared by the worker threads; every call to :meth:`fetch` is independent."""

    def __init__(
        self,
        client: httpx.Client,
        policy: RetryPolicy,
        meta_dir: Path,
        stop: threading.Event,
        on_progress: Callable[[int], None],
        on_network_bytes: Callable[[int], None],
    ) -> None:
        self._client = client
        self._policy = policy
        self._meta_dir = meta_dir
        self._stop = stop
        self._on_progress = on_progress
        self._on_network_bytes = on_network_bytes

    def _etag_file(self, file_handle_id: str) -> Path:
        return self._meta_dir / f"{file_handle_id}.json"

    def _load_etag(self, file_handle_id: str) -> str | None:
        try:
            data = json.loads(self._etag_file(file_handle_id).read_text(encoding="utf-8"))
            etag = data.get("etag")
            return str(etag) if etag else None
        except (OSError, ValueError, AttributeError):
            return None

    def _save_etag(self, file_handle_id: str, etag: str) -> None:
        write_atomic(self._etag_file(file_handle_id), json.dumps({"etag": etag}))

    def forget(self, file_handle_id: str) -> None:
        self._etag_file(file_handle_id).unlink(missing_ok=True)

    def fetch(
        self,
        partial: Path,
        file_handle_id: str,
        expected_md5: str | None,
        expected_size: int | None,
        get_url: Callable[[], str],
    ) -> tuple[str, int]:
        """Leave verified bytes in ``partial`` (fsynced); return (md5, attempts used).

        Raises :class:`DownloadFailed` after ``policy.attempts`` tries, naming the last reason.
        """
        reported = 0  # progress already shown for this file (never goes backwards)

        def progress(position: int) -> None:
            nonlocal reported
            if position > reported:
                self._on_progress(position - reported)
                reported = position

        last = "no attempt made"
        for attempt in range(1, self._policy.attempts + 1):
            if self._stop.is_set():
                raise Cancelled()
            try:
                if (
                    expected_size is not None
                    and partial.exists()
                    and partial.stat().st_size == expected_size
                ):
                    # A previous run got every byte but died before the rename.
                    md5 = md5_file(partial, self._stop)
                    if expected_md5 is None or md5 == expected_md5:
                        progress(expected_size)
                        return md5, attempt
                    self._discard(partial, file_handle_id)
                url = get_url()
                md5 = self._stream(url, partial, file_handle_id, expected_size, progress)
                size = partial.stat().st_size
                if expected_size is not None and size != expected_size:
                    if size > expected_size:
                        self._discard(partial, file_handle_id)
                    raise _Retry(f"got {size} bytes, expected {expected_size}")
                if expected_md5 is not None and md5 != expected_md5:
                    self._discard(partial, file_handle_id)
                    raise _Retry(f"MD5 mismatch: got {md5}, expected {expected_md5}")
                return md5, attempt
            except _Fatal as exc:
                raise DownloadFailed(str(exc), attempt) from exc
            except Cancelled:
                raise
            except Exception as exc:  # _Retry, httpx transport errors, RemoteError, OSError
                retry_after = exc.retry_after if isinstance(exc, _Retry) else None
                last = _reason(exc)
                if getattr(exc, "permanent", False):
                    raise DownloadFailed(last, attempt) from exc
                if isinstance(exc, OSError) and not _transient_os_error(exc):
                    raise DownloadFailed(f"local write failed: {last}", attempt) from exc
                if attempt < self._policy.attempts and self._stop.wait(
                    self._policy.delay(attempt, retry_after)
                ):
                    raise Cancelled() from exc
        raise DownloadFailed(
            f"gave up after {self._policy.attempts} attempts; last error: {last}",
            self._policy.attempts,
        )

    def _discard(self, partial: Path, file_handle_id: str) -> None:
        partial.unlink(missing_ok=True)
        self.forget(file_handle_id)

    def _stream(
        self,
        url: str,
        partial: Path,
        file_handle_id: str,
        expected_size: int | None,
        progress: Callable[[int], None],
    ) -> str:
        have = partial.stat().st_size if partial.exists() else 0
        if expected_size is not None and have > expected_size:
            self._discard(partial, file_handle_id)
            have = 0
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
            etag = self._load_etag(file_handle_id)
            if etag:
                headers["If-Range"] = etag
        with self._client.stream("GET", url, headers=headers) as response:
            status = response.status_code
            if status == 416:
                # Our part is not a prefix the server recognises: start over.
                self._discard(partial, file_handle_id)
                raise _Retry("HTTP 416 on resume; restarting the file")
            if status in _RETRY_STATUSES or 500 <= status < 600:
                raise _Retry(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
            if status not in (200, 206):
                raise _Fatal(f"HTTP {status} from the download URL")
            digest = hashlib.md5()
            if status == 206:
                match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
                if match is None or int(match.group(1)) != have:
                    self._discard(partial, file_handle_id)
                    raise _Retry("the server resumed at another offset; restarting the file")
                with partial.open("rb") as existing:
                    while block := existing.read(_BLOCK):
                        digest.update(block)
                mode = "ab"
            else:
                have = 0  # a 200 (If-Range stale, or no range support) is the whole body
                mode = "wb"
            etag = response.headers.get("ETag")
            if etag:
                self._save_etag(file_handle_id, etag)
            progress(have)
            position = have
            window_start, window_from = time.monotonic(), position
            partial.parent.mkdir(parents=True, exist_ok=True)
            with partial.open(mode) as out:
                for chunk in response.iter_raw():
                    if self._stop.is_set():
                        out.flush()
                        raise Cancelled()
                    now = time.monotonic()
                    if now - window_start > self._policy.stall_s:
                        if position - window_from < self._policy.stall_bytes:
                            raise _Retry(
                                f"stalled: {position - window_from} bytes in "
                                f"{now - window_start:.0f} s"
                            )
                        window_start, window_from = now, position
                    out.write(chunk)
                    digest.update(chunk)
                    position += len(chunk)
                    self._on_network_bytes(len(chunk))
                    progress(position)
                out.flush()
                os.fsync(out.fileno())
        return digest.hexdigest()


def _transient_os_error(exc: OSError) -> bool:
    import errno

    return exc.errno not in (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    if isinstance(exc, _Retry):
        return text
    return f"{name}: {text}" if text else name
