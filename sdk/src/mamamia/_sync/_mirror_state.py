"""The mirror's own state file: what we fetched, and what the local copy looked like after.

``DEST/.mamamia-sync/state.json``, replaced atomically (``write_atomic`` with fsync), so a
kill at any moment leaves either the old or the new state. A file present on disk but missing
from the state (killed between the rename and the next state write) is hashed once and adopted.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mamamia._atomic import write_atomic
from mamamia._sync._paths import STATE_DIR
from mamamia._sync._report import SyncError

__all__ = ["FORMAT", "Entry", "MirrorState", "StateLock"]

FORMAT = 1


@dataclass
class Entry:
    """One mirrored file, keyed by its Synapse id in :class:`MirrorState`."""

    path: str  # relative, '/'-separated
    version: int
    modified_on: str | None
    file_handle_id: str
    md5: str
    size: int
    local_mtime_ns: int
    local_size: int

    def stat_matches(self, local: Path) -> bool:
        try:
            st = local.stat()
        except OSError:
            return False
        return st.st_size == self.local_size and st.st_mtime_ns == self.local_mtime_ns


@dataclass
class MirrorState:
    source: str
    files: dict[str, Entry]

    @staticmethod
    def state_dir(dest: Path) -> Path:
        return dest / STATE_DIR

    @classmethod
    def path_for(cls, dest: Path) -> Path:
        return cls.state_dir(dest) / "state.json"

    @classmethod
    def load(cls, dest: Path, source: str) -> MirrorState:
        path = cls.path_for(dest)
        if not path.exists():
            return cls(source=source, files={})
        try:
            raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("format") != FORMAT:
                raise SyncError(
                    f"{path}: state format {raw.get('format')!r} is not {FORMAT}; "
                    "upgrade mamamia or move the folder away"
                )
            files = {syn_id: Entry(**entry) for syn_id, entry in raw["files"].items()}
            state = cls(source=str(raw["source"]), files=files)
        except SyncError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise SyncError(
                f"{path} is damaged ({exc}); delete it to rebuild the state "
                "(existing files are then hashed once and kept)"
            ) from exc
        if state.source != source:
            raise SyncError(
                f"{dest} mirrors {state.source}, not {source}; use another folder "
                f"or --from {state.source}"
            )
        return state

    def save(self, dest: Path) -> None:
        body = {
            "format": FORMAT,
            "source": self.source,
            "files": {k: asdict(v) for k, v in sorted(self.files.items())},
        }
        write_atomic(self.path_for(dest), json.dumps(body, indent=1), fsync=True)


class StateLock:
    """An exclusive lock on a mirror, so two syncs never write the same files."""

    def __init__(self, dest: Path) -> None:
        self._path = MirrorState.state_dir(dest) / "lock"
        self._fd: int | None = None

    def __enter__(self) -> StateLock:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; the state file stays atomic anyway
            return self
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._fd)
            self._fd = None
            raise SyncError(
                f"another mamamia sync is running on {self._path.parent.parent}"
            ) from exc
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
