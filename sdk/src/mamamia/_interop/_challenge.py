"""``Cohort.export_challenge``: a cohort in the MAMA-MIA challenge's input layout.

The organisers' evaluation harness reads::

    images/<ID>/<id>_0000.nii.gz ... <id>_000N.nii.gz   every phase, as released
    patient_info_files/<id>.json                       the per-case JSON

with ``<ID>`` the uppercase patient id and ``<id>`` its lowercase form. A participant's model run
on this folder sees any cohort exactly as it would see the challenge's hidden cases.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mamamia._atomic import write_atomic
from mamamia._interop._files import (
    ExportReport,
    FileJob,
    claim_folder,
    require_cases,
    write_files,
)

if TYPE_CHECKING:
    from mamamia._cohort import Cohort

__all__ = ["export_challenge", "patient_info"]

# The per-case JSON's keys, and the cases column each falls back on when the catalog has no
# per-case JSON value (first release): ``info_<group>_<key>`` wins where it is set.
_INFO_KEYS: dict[str, dict[str, str | None]] = {
    "clinical_data": {"age": "age", "menopausal_status": "menopause", "breast_density": None},
    "primary_lesion": {"tumor_subtype": "tumor_subtype"},
    "imaging_data": {
        "bilateral": "bilateral_mri",
        "dataset": "dataset",
        "site": "site",
        "scanner_manufacturer": "manufacturer",
        "scanner_model": "scanner_model",
        "field_strength": "field_strength",
        "echo_time": "echo_time",
        "repetition_time": "repetition_time",
    },
}
_BOX = ("x_min", "x_max", "y_min", "y_max", "z_min", "z_max")


def patient_info(row: Mapping[str, Any]) -> dict[str, Any]:
    """The per-case JSON of one ``cases`` row, in the release's structure.

    ``primary_lesion.pcr`` is left out on purpose: it is what a challenge model predicts, and an
    input folder that holds the answer would make any evaluation on it meaningless.
    """
    info: dict[str, Any] = {"patient_id": str(row["patient_id"]).upper()}
    for group, keys in _INFO_KEYS.items():
        body: dict[str, Any] = {}
        for key, fallback in keys.items():
            value = row.get(f"info_{group}_{key}")
            if value is None and fallback is not None:
                value = row.get(fallback)
            body[key] = value
        info[group] = body
    box = {k: row.get(f"info_primary_lesion_breast_coordinates_{k}") for k in _BOX}
    if any(v is not None for v in box.values()):
        info["primary_lesion"]["breast_coordinates"] = box
    return info


def export_challenge(
    cohort: Cohort, out: str | Path, *, jobs: int = 2, progress: bool = True
) -> ExportReport:
    """Write ``cohort`` under ``out`` in the challenge's input layout (every phase of each case)."""
    catalog = cohort.catalog
    ids = cohort.case_ids
    require_cases(catalog, ids)
    root = Path(out)
    file_jobs: list[FileJob] = []
    for pid in ids:
        phases = catalog.case(pid).image.shape[0]
        lower = pid.lower()
        for phase in range(phases):
            target = root / "images" / pid / f"{lower}_{phase:04d}.nii.gz"
            file_jobs.append(FileJob(pid, "image", phase, target))
    claim_folder(
        root,
        {
            "catalog_version": catalog.version,
            "cohort_ids_hash": cohort.ids_hash,
            "layout": "challenge",
        },
    )
    report = write_files(
        catalog, file_jobs, root, threads=jobs, progress=progress, desc="challenge export"
    )
    for row in cohort.table.to_pylist():
        target = root / "patient_info_files" / f"{str(row['patient_id']).lower()}.json"
        write_atomic(target, json.dumps(patient_info(row), indent=2, default=str) + "\n")
    return report
