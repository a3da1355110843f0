"""``atomic_write``: write a hidden temporary sibling, then ``os.replace`` it onto the target.

Readers see the old file or the new one, never a half-written one; a crash mid-write leaves the
old file and a ``.partial-*`` sibling that the owners of a folder sweep (the chunk cache, the
phantom writer) and that listings skip.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

__all__ = ["ATOMIC_TEMP_PREFIX", "atomic_write", "write_atomic"]

#: Every temporary sibling's name starts with this (hidden, and it contains ``.partial-``).
ATOMIC_TEMP_PREFIX = ".partial-"


@contextmanager
def atomic_write(path: str | Path, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    The temporary name ends with ``path``'s own name, so writers that choose a format by suffix
    (``.nii.gz``) choose the same one. On an exception the temporary file is removed and
    ``path`` is untouched. ``fsync=True`` flushes the bytes to disk before the rename (for
    files whose loss after a power cut would matter: manifests, state). A replaced file keeps
    its permission bits; a new one gets those of a plain ``open`` (the umask).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{ATOMIC_TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{target.name}")
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        with suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: bytes | str, *, fsync: bool = False) -> int:
    """Replace ``path`` with ``data`` (text is UTF-8) through `atomic_write`; the bytes written."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_write(path, fsync=fsync) as tmp:
        tmp.write_bytes(raw)
    return len(raw)
