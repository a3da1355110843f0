"""Limits of the safe-SQL engine, one frozen value the server fills from its settings.

The class lives beside the guard in ``mamamia.sqlguard``, which the local catalog runs too.
"""

from __future__ import annotations

from mamamia.sqlguard import QueryLimits

__all__ = ["QueryLimits"]
