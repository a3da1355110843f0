"""Click commands of mamamia-ingest, registered under the ``mamamia.commands`` entry points."""

from __future__ import annotations

from mamamia_ingest._cli_ingest import ingest_command, upgrade_command, verify_command
from mamamia_ingest._cli_phantom import phantom_command

__all__ = ["ingest_command", "phantom_command", "upgrade_command", "verify_command"]
