"""Mirror a Synapse project (the MAMA-MIA release, ``syn60868042``) into a local folder.

Kept import-light: synapseclient, httpx and DuckDB are imported only when a sync runs, so
``import mamamia`` and ``mamamia --help`` stay fast.
"""

from __future__ import annotations

from mamamia._sync._api import sync
from mamamia._sync._report import FileResult, SyncError, SyncReport

__all__ = ["FileResult", "SyncError", "SyncReport", "sync"]
