"""Exports and adapters for the field's tools: nnU-Net v2, the challenge layout, MONAI, TorchIO."""

from __future__ import annotations

from mamamia._interop._files import ExportReport
from mamamia._interop._nnunet import NnunetOptions, export_nnunet, nnunet_folds

__all__ = ["ExportReport", "NnunetOptions", "export_nnunet", "nnunet_folds"]
