"""Atomic file writes: write a hidden temporary sibling, then ``os.replace`` it into place."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["TMP_PREFIX", "atomic_target", "write_bytes_atomic", "write_text_atomic"]

#: Temporary files start with this; a rerun removes any left behind by a killed run.
TMP_PREFIX = ".phantom-tmp-"


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffixes, so writers pick the same format);
    on success it replaces ``path``, on failure it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: Path, data: bytes) -> int:
    with atomic_target(path) as tmp:
        tmp.write_bytes(data)
    return len(data)


def write_text_atomic(path: Path, text: str) -> int:
    return write_bytes_atomic(path, text.encode("utf-8"))
