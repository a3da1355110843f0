"""Untrusted names from Synapse become local paths only through these checks."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["STATE_DIR", "UnsafeName", "check_segment", "local_path"]

#: Our bookkeeping folder inside the mirror; no upstream entry may use this name at the root.
STATE_DIR = ".mamamia-sync"

_WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {
    f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)
}


class UnsafeName(ValueError):
    """A name from Synapse that must not become a path segment."""


def check_segment(name: str) -> str:
    """Return ``name`` if it is one safe path segment, else raise :class:`UnsafeName`."""
    if not isinstance(name, str) or name == "":
        raise UnsafeName("empty name")
    if name in (".", ".."):
        raise UnsafeName(f"name {name!r} is a relative path step")
    if "\x00" in name:
        raise UnsafeName(f"name {name!r} holds a NUL byte")
    if "/" in name or "\\" in name or (os.altsep and os.altsep in name):
        raise UnsafeName(f"name {name!r} holds a path separator")
    if any(ord(c) < 32 for c in name):
        raise UnsafeName(f"name {name!r} holds a control character")
    if len(name.encode("utf-8")) > 255:
        raise UnsafeName(f"name {name[:40]!r}... is longer than 255 bytes")
    if name.endswith(".partial"):
        raise UnsafeName(f"name {name!r} collides with our partial-download suffix")
    if len(name) >= 2 and name[1] == ":":
        raise UnsafeName(f"name {name!r} looks like a drive path")
    if os.name == "nt" and name.split(".")[0].lower() in _WINDOWS_RESERVED:
        raise UnsafeName(f"name {name!r} is a reserved device name")
    return name


def local_path(dest: Path, segments: list[str]) -> Path:
    """``dest/segments...``, each segment checked, and the result proven to lie under ``dest``.

    ``dest`` must already be resolved. The final check also catches a symlinked folder inside
    the mirror pointing elsewhere.
    """
    if not segments:
        raise UnsafeName("empty path")
    for segment in segments:
        check_segment(segment)
    if segments[0] == STATE_DIR:
        raise UnsafeName(f"top-level name {STATE_DIR!r} is reserved for the sync state")
    candidate = dest.joinpath(*segments)
    resolved = candidate.resolve()
    if not resolved.is_relative_to(dest):
        raise UnsafeName(f"path {'/'.join(segments)!r} resolves outside the mirror ({resolved})")
    return candidate
