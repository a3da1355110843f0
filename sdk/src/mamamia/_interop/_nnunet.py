"""``Cohort.export_nnunet``: a cohort as an nnU-Net v2 raw dataset.

Layout (nnU-Net v2's own)::

    DatasetXXX_NAME/
      imagesTr/{case}_{XXXX}.nii.gz   one file per channel: the phases asked for, subtraction last
      labelsTr/{case}.nii.gz          the expert (or automatic) mask, 0 background, 1 tumour
      imagesTs/{case}_{XXXX}.nii.gz   the cases of the test split (no labels)
      dataset.json                    channel_names, labels, numTraining, file_ending + provenance
      splits_final.json               5 folds over the training cases

Voxels are the catalog's, bit for bit (the subtraction is float32); spacing, origin and
direction are the source's. ``dataset.json`` is written last, so its presence marks a finished
export; a rerun skips the files already there.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mamamia._atomic import write_atomic
from mamamia._errors import InvalidRequest
from mamamia._interop._files import (
    SUBTRACTION,
    ExportReport,
    FileJob,
    check_phases,
    claim_folder,
    require_cases,
    write_files,
)

if TYPE_CHECKING:
    from mamamia._cohort import Cohort

__all__ = ["FOLDS", "NnunetOptions", "export_nnunet", "nnunet_folds"]

#: nnU-Net's default number of cross-validation folds.
FOLDS = 5
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_LABELS = ("expert", "automatic")


@dataclass(frozen=True, init=False)
class NnunetOptions:
    """The options of an nnU-Net v2 export, checked once (``InvalidRequest`` names the bad one).

    ``dataset_id`` 1..999 and ``name`` give the folder ``Dataset{id:03d}_{name}``; ``phases`` are
    the image channels in order, ``subtraction`` adds phase 1 - phase 0 last; ``label`` is the
    mask written to ``labelsTr``; cases whose ``split`` column equals ``test_split`` go to
    ``imagesTs`` (``None``: every case trains); ``jobs`` files are written at once.
    """

    dataset_id: int
    name: str
    phases: tuple[int, ...]
    subtraction: bool
    label: str
    test_split: str | None
    jobs: int
    progress: bool

    def __init__(
        self,
        *,
        dataset_id: int = 105,
        name: str = "MAMAMIA",
        phases: Sequence[int] = (0, 1),
        subtraction: bool = False,
        label: str = "expert",
        test_split: str | None = "test",
        jobs: int = 2,
        progress: bool = True,
    ) -> None:
        if not isinstance(dataset_id, int) or isinstance(dataset_id, bool):
            raise InvalidRequest(f"dataset_id must be an int in 1..999, not {dataset_id!r}")
        if not 1 <= dataset_id <= 999:
            raise InvalidRequest(f"dataset_id must be in 1..999, not {dataset_id}")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidRequest(
                f"name must be letters, digits, '_' or '-' (at most 64), not {name!r}"
            )
        phase_list = tuple(phases)
        if not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in phase_list):
            raise InvalidRequest(f"phases must be non-negative ints, not {phases!r}")
        if len(set(phase_list)) != len(phase_list):
            raise InvalidRequest(f"phases lists a phase twice: {phases!r}")
        if not phase_list and not subtraction:
            raise InvalidRequest("phases is empty and subtraction is off: no channel to write")
        if label not in _LABELS:
            raise InvalidRequest(f"label must be one of {_LABELS}, not {label!r}")
        if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
            raise InvalidRequest(f"jobs must be an int >= 1, not {jobs!r}")
        values: dict[str, Any] = {
            "dataset_id": dataset_id,
            "name": name,
            "phases": phase_list,
            "subtraction": bool(subtraction),
            "label": label,
            "test_split": test_split,
            "jobs": jobs,
            "progress": bool(progress),
        }
        for key, value in values.items():
            object.__setattr__(self, key, value)

    @property
    def folder_name(self) -> str:
        return f"Dataset{self.dataset_id:03d}_{self.name}"

    def channel_names(self) -> dict[str, str]:
        names = [f"phase_{p}" for p in self.phases]
        if self.subtraction:
            names.append("subtraction")
        return {str(i): name for i, name in enumerate(names)}


def nnunet_folds(train_ids: Sequence[str], folds: int = FOLDS) -> list[dict[str, list[str]]]:
    """Deterministic folds: cases ordered by the SHA-256 of their id, dealt round-robin.

    A case's fold depends only on its id and its rank in that order, never on a random state,
    so the same cohort gives the same ``splits_final.json`` on every machine.
    """
    ordered = sorted(train_ids, key=lambda pid: hashlib.sha256(pid.encode("utf-8")).hexdigest())
    val = [sorted(ordered[i::folds]) for i in range(folds)]
    return [{"train": sorted(pid for pid in train_ids if pid not in set(v)), "val": v} for v in val]


def export_nnunet(
    cohort: Cohort, out: str | Path, options: NnunetOptions | None = None
) -> ExportReport:
    """Write ``cohort`` as nnU-Net v2's ``DatasetXXX_NAME`` under ``out`` (see the module doc)."""
    opts = options or NnunetOptions()
    catalog = cohort.catalog
    ids = cohort.case_ids
    require_cases(catalog, ids)
    folder = Path(out) / opts.folder_name
    provenance = {
        "catalog_version": catalog.version,
        "cohort_ids_hash": cohort.ids_hash,
        "channels": list(opts.channel_names().values()),
        "label": opts.label,
        "test_split": opts.test_split,
    }
    splits = (
        cohort.table.column("split").to_pylist() if "split" in cohort.table.schema.names else []
    )
    split_of = dict(zip(ids, splits, strict=False))
    test = [
        pid for pid in ids if opts.test_split is not None and split_of.get(pid) == opts.test_split
    ]
    test_ids = set(test)
    train = [pid for pid in ids if pid not in test_ids]
    label_column = f"has_{opts.label}"
    has_label = dict(
        zip(ids, cohort.table.column(label_column).to_pylist(), strict=True)
        if label_column in cohort.table.schema.names
        else []
    )
    unlabelled = [pid for pid in train if has_label.get(pid) is False]
    if unlabelled:
        raise InvalidRequest(
            f"{len(unlabelled)} training cases have no {opts.label} mask, which nnU-Net needs: "
            f"{unlabelled[:10]}; narrow the cohort (e.g. WHERE has_{opts.label})"
        )
    jobs: list[FileJob] = []
    channels = [*opts.phases, *((SUBTRACTION,) if opts.subtraction else ())]
    for pid in ids:
        check_phases(catalog.case(pid), opts.phases, opts.subtraction)
        images = "imagesTs" if pid in test_ids else "imagesTr"
        for index, phase in enumerate(channels):
            target = folder / images / f"{pid}_{index:04d}.nii.gz"
            jobs.append(FileJob(pid, "image", phase, target))
        if images == "imagesTr":
            jobs.append(FileJob(pid, opts.label, None, folder / "labelsTr" / f"{pid}.nii.gz"))
    # Claimed only once the cohort and options are known to be exportable: a refused export
    # leaves no folder that a corrected rerun would then refuse as "another export".
    claim_folder(folder, provenance)
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    report = write_files(
        catalog, jobs, folder, threads=opts.jobs, progress=opts.progress, desc="nnunet export"
    )
    write_atomic(folder / "splits_final.json", json.dumps(nnunet_folds(train), indent=2) + "\n")
    citation = catalog.citation()
    dataset = {
        "channel_names": opts.channel_names(),
        "labels": {"background": 0, "tumor": 1},
        "numTraining": len(train),
        "file_ending": ".nii.gz",
        "name": opts.name,
        "licence": citation.licence,
        "citation": [dict(item) for item in citation.citations],
        "mamamia": {**provenance, "cohort_query": cohort.query, "case_ids": ids},
    }
    write_atomic(folder / "dataset.json", json.dumps(dataset, indent=2, default=str) + "\n")
    return report
