"""Ingest workers die with the ingest that started them, and never publish without it.

Worker processes are children of the forkserver, not of the ingest, so a parent-death signal
would watch the wrong process; and a killed ingest leaves several cases queued in the pool's
pipe, which its workers would otherwise go on building and renaming into the catalog. Each
worker therefore watches the ingest's pid (a pidfd on Linux: woken the moment it exits, no
polling) and exits at once when it is gone. Once the workers are gone, the forkserver and
the resource tracker see their pipes close and exit too.

Right before a generation is renamed into place, ``publish_refusal`` checks again that the
ingest is alive (else the worker exits) and that the catalog's ingest lock is held, so a worker
never publishes into a catalog whose lock its ingest does not hold.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import threading
import time
from pathlib import Path

__all__ = [
    "ORPHAN_EXIT",
    "owner_alive",
    "publish_refusal",
    "watch_owner",
]

#: Exit status of a worker whose ingest is gone (EX_SOFTWARE would hide it among crashes).
ORPHAN_EXIT = 75
_POLL_S = 0.2

_owner: int | None = None
_owner_fd: int | None = None


def watch_owner(pid: int) -> None:
    """Exit this process (``ORPHAN_EXIT``) as soon as process ``pid`` exits."""
    global _owner, _owner_fd
    _owner = pid
    try:
        _owner_fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(ORPHAN_EXIT)  # already gone before this worker started
    except (AttributeError, OSError):  # no pidfd (old kernel, not Linux): poll instead
        _owner_fd = None
    threading.Thread(target=_watch, name="mamamia-owner-watch", daemon=True).start()


def _watch() -> None:
    if _owner_fd is not None:
        select.select([_owner_fd], [], [])  # a pidfd turns readable when its process exits
    else:
        while owner_alive():
            time.sleep(_POLL_S)
    os._exit(ORPHAN_EXIT)


def owner_alive() -> bool:
    """Whether the ingest this process works for is still running (True in the ingest)."""
    if _owner is None:
        return True
    if _owner_fd is not None:
        readable, _, _ = select.select([_owner_fd], [], [], 0)
        return not readable
    try:
        os.kill(_owner, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish_refusal(catalog_root: Path) -> str | None:
    """Why a generation may not be published into ``catalog_root`` now (None: it may): no
    ingest holds the catalog's lock. Exits this process if its ingest is gone."""
    if not owner_alive():
        os._exit(ORPHAN_EXIT)
    fd = os.open(catalog_root, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # held, by the ingest this worker serves
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        return (
            f"{catalog_root.name}: no ingest holds this catalog's lock; "
            "a generation is published only under it"
        )
    finally:
        os.close(fd)
