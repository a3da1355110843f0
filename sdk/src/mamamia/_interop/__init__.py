"""Exports and adapters for the field's tools: nnU-Net v2, the challenge layout, MONAI, TorchIO."""

from __future__ import annotations

from typing import Any

from mamamia._interop._files import ExportReport
from mamamia._interop._nnunet import NnunetOptions, export_nnunet, nnunet_folds

__all__ = ["ExportReport", "NnunetOptions", "export_nnunet", "nnunet_folds", "torchio_sampler"]


def torchio_sampler(patch_size: int | tuple[int, int, int]) -> Any:
    """A ``tio.UniformSampler`` for ``tio.Queue`` that reads only each patch's window.

    ``patch_size`` is TorchIO's (W, H, D) = (x, y, z). Over ``Cohort.torchio_subjects`` it
    slices the catalog's chunks instead of loading whole volumes, and draws exactly as TorchIO's
    own ``UniformSampler`` (same seed, same patches). Needs ``mamamia[torchio]``.
    """
    from mamamia._interop._torchio import CatalogUniformSampler

    return CatalogUniformSampler(patch_size)
