"""The error of the evaluation commands, under the SDK's one exception tree."""

from __future__ import annotations

from mamamia import MamamiaError

__all__ = ["EXTRA_HINT", "EvaluationError"]

#: What to install when SimpleITK, scipy or pandas are missing.
EXTRA_HINT = "pip install 'mamamia[evaluate]'"


class EvaluationError(MamamiaError):
    """Predictions or options that cannot be scored; the message names every case and file."""
