"""Progress bars, one rule for every long-running call and command: a bar is drawn on stderr
only when the caller asks for one and stderr is a terminal, so logs, pipes and CI output never
fill with bar redraws."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["progress_bar", "progress_enabled"]


def progress_enabled(requested: bool = True) -> bool:
    """True when a bar was asked for and stderr is an interactive terminal."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(requested and isatty is not None and isatty())


def progress_bar(requested: bool = True, **options: Any) -> tqdm[Any]:
    """A tqdm bar on stderr, disabled (a no-op that still counts) unless `progress_enabled`."""
    from tqdm import tqdm

    options.setdefault("dynamic_ncols", True)
    return tqdm(file=sys.stderr, disable=not progress_enabled(requested), **options)
