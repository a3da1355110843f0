"""MONAI: crops as MONAI samples, and a cohort as a datalist of NIfTI files.

MONAI's ``LoadImaged`` reads a NIfTI as (H, W, D) = the file's (i, j, k) = our (x, y, z), with
the RAS affine nibabel reports. A sample from ``cat.crops(..., layout="monai")`` is exactly that
for the crop's window: ``image`` a ``MetaTensor`` (C, H, W, D), ``label`` (1, H, W, D), both with
the window's affine, and the window's place in the meta dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mamamia._interop._files import (
    SUBTRACTION,
    FileJob,
    check_phases,
    claim_folder,
    require_cases,
    write_files,
)

if TYPE_CHECKING:
    from mamamia._cohort import Cohort

__all__ = ["monai_datalist", "monai_sample"]


def _monai() -> Any:
    try:
        from monai.data.meta_tensor import MetaTensor
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("MONAI samples need monai: pip install 'mamamia[monai]'") from exc
    return MetaTensor


def monai_sample(crop: dict[str, Any]) -> dict[str, Any]:
    """A native crop dict as a MONAI sample (``image``/``label`` MetaTensors, same affine)."""
    meta_tensor = _monai()
    import torch

    z, y, x = (int(v) for v in crop["index"])
    affine = torch.as_tensor(np.asarray(crop["affine"], dtype=np.float64))
    image = np.ascontiguousarray(np.asarray(crop["image"]).transpose(0, 3, 2, 1))
    meta = {
        "patient_id": crop["patient_id"],
        "filename_or_obj": crop["patient_id"],
        # The window's first voxel in the source volume, (H, W, D) = (x, y, z) order as MONAI
        # indexes it, and the same in our (z, y, x) order.
        "location": (x, y, z),
        "index_zyx": (z, y, x),
        "spacing_zyx": tuple(float(v) for v in crop["spacing"]),
        "space": "RAS",
    }
    sample: dict[str, Any] = {
        "patient_id": crop["patient_id"],
        "image": meta_tensor(torch.from_numpy(image), affine=affine.clone(), meta=dict(meta)),
    }
    if "label" in crop:
        label = np.ascontiguousarray(np.asarray(crop["label"]).transpose(2, 1, 0)[None])
        sample["label"] = meta_tensor(
            torch.from_numpy(label), affine=affine.clone(), meta=dict(meta)
        )
    return sample


def monai_datalist(
    cohort: Cohort,
    folder: str | Path,
    *,
    phases: Sequence[int] = (0, 1),
    subtraction: bool = False,
    label: str | None = "expert",
    jobs: int = 2,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Write the cohort's volumes as NIfTI under ``folder`` and list them for MONAI.

    Each item is ``{"patient_id", "image": [one file per channel], "label": file}``, ready for
    ``monai.data.Dataset`` / ``CacheDataset`` with ``LoadImaged(keys=["image", "label"],
    ensure_channel_first=True)``. Files already written are kept (a rerun is cheap).
    """
    from mamamia._errors import InvalidRequest

    if label is not None and label not in ("expert", "automatic"):
        raise InvalidRequest(f"label must be 'expert', 'automatic' or None, not {label!r}")
    catalog = cohort.catalog
    ids = cohort.case_ids
    require_cases(catalog, ids)
    root = Path(folder)
    channels = [*phases, *((SUBTRACTION,) if subtraction else ())]
    if not channels:
        raise InvalidRequest("phases is empty and subtraction is off: no channel to write")
    jobs_list: list[FileJob] = []
    items: list[dict[str, Any]] = []
    for pid in ids:
        check_phases(catalog.case(pid), phases, subtraction)
        names = ["sub" if phase == SUBTRACTION else f"{phase:04d}" for phase in channels]
        files = [root / pid / f"{pid}_{name}.nii.gz" for name in names]
        jobs_list += [FileJob(pid, "image", p, f) for p, f in zip(channels, files, strict=True)]
        item: dict[str, Any] = {"patient_id": pid, "image": [str(f) for f in files]}
        if label is not None:
            target = root / pid / f"{pid}_{label}.nii.gz"
            jobs_list.append(FileJob(pid, label, None, target))
            item["label"] = str(target)
        items.append(item)
    claim_folder(root, {"catalog_version": catalog.version, "layout": "monai-datalist"})
    write_files(catalog, jobs_list, root, threads=jobs, progress=progress, desc="monai files")
    return items
