"""TorchIO: cases as lazy ``tio.Subject``s, a cohort as a ``tio.SubjectsDataset``.

Each image of a subject carries a reader that fetches its voxels from the catalog the first time
TorchIO asks for them (TorchIO's own lazy loading), in TorchIO's layout: (C, W, H, D) = our
(C, x, y, z), with the RAS affine TorchIO gives a NIfTI file. The readers pickle as the way to
reopen the catalog, so ``tio.Queue`` workers read for themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mamamia._errors import InvalidRequest, MamamiaError

if TYPE_CHECKING:
    from mamamia._case import Case
    from mamamia._catalog import Catalog
    from mamamia._cohort import Cohort

try:
    import torchio as tio
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("TorchIO subjects need torchio: pip install 'mamamia[torchio]'") from exc

__all__ = [
    "CatalogLabelMap",
    "CatalogScalarImage",
    "CatalogVolumeReader",
    "case_subject",
    "cohort_subjects",
]

_LABELS = ("expert", "automatic")


class CatalogScalarImage(tio.ScalarImage):
    """A ``tio.ScalarImage`` whose "path" names a catalog volume, not a file.

    TorchIO rebuilds images with ``type(image)(path=image.path, ...)`` when it crops patches;
    this class keeps that from looking for the name on disk.
    """

    def __init__(self, *args: Any, verify_path: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, verify_path=verify_path, **kwargs)  # type: ignore[no-untyped-call]


class CatalogLabelMap(tio.LabelMap):
    """A ``tio.LabelMap`` whose "path" names a catalog mask (see ``CatalogScalarImage``)."""

    def __init__(self, *args: Any, verify_path: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, verify_path=verify_path, **kwargs)  # type: ignore[no-untyped-call]


class CatalogVolumeReader:
    """A TorchIO ``reader``: one phase or mask of one case, read from the catalog when called.

    Returns ``(array (1, x, y, z), RAS affine)`` as TorchIO's own NIfTI reader would. Pickles
    as the way to reopen its catalog (a folder; a server that says how), not as the catalog.
    """

    def __init__(self, catalog: Catalog, patient_id: str, kind: str, phase: int | None) -> None:
        from mamamia._crops._stream import catalog_opener

        self._catalog: Catalog | None = catalog
        self._opener: Callable[[], Catalog] | None = catalog_opener(catalog)
        self._version = catalog.version
        self.patient_id = patient_id
        self.kind = kind
        self.phase = phase

    def __getstate__(self) -> dict[str, Any]:
        if self._opener is None:
            raise MamamiaError(
                "this catalog cannot be reopened in another process; use num_workers=0"
            )
        state = dict(self.__dict__)
        state["_catalog"] = None
        return state

    def _open(self) -> Catalog:
        if self._catalog is None:
            assert self._opener is not None
            self._catalog = self._opener()
            if self._catalog.version != self._version:
                raise MamamiaError(
                    f"catalog changed from {self._version} to {self._catalog.version} while "
                    f"case {self.patient_id} was being read; rebuild the subjects"
                )
        return self._catalog

    def __call__(self, path: Any) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]:
        case = self._open().case(self.patient_id)
        if self.kind == "image":
            volume = case.image
            assert self.phase is not None
            data = volume[self.phase]
        else:
            volume = case.mask(self.kind)
            data = volume.to_numpy()
        return np.ascontiguousarray(data.transpose(2, 1, 0)[None]), volume.affine(ras=True)


def case_subject(
    case: Case, *, phases: Sequence[int] = (0, 1), label: str | None = "expert"
) -> Any:
    """``tio.Subject`` of one case: ``phase_<p>`` ScalarImages and a ``label`` LabelMap (lazy)."""
    count = case.image.shape[0]
    if not phases:
        raise InvalidRequest("phases is empty: a subject needs at least one image")
    for phase in phases:
        if not isinstance(phase, int) or isinstance(phase, bool) or not 0 <= phase < count:
            raise InvalidRequest(
                f"case {case.patient_id} has {count} phases (0..{count - 1}), not {phase!r}"
            )
    if label is not None and label not in _LABELS:
        raise InvalidRequest(f"label must be one of {_LABELS} or None, not {label!r}")
    catalog = case._catalog
    pid = case.patient_id
    images: dict[str, Any] = {}
    for phase in phases:
        reader = CatalogVolumeReader(catalog, pid, "image", phase)
        images[f"phase_{phase}"] = CatalogScalarImage(
            path=Path(f"{pid}_{phase:04d}.mamamia"), reader=reader
        )
    if label is not None:
        case.mask(label)  # a missing mask fails here, naming the case, not in a worker later
        reader = CatalogVolumeReader(catalog, pid, label, None)
        images["label"] = CatalogLabelMap(path=Path(f"{pid}_{label}.mamamia"), reader=reader)
    return tio.Subject(patient_id=pid, **images)


def cohort_subjects(
    cohort: Cohort,
    *,
    phases: Sequence[int] = (0, 1),
    label: str | None = "expert",
    transform: Any = None,
) -> Any:
    """``tio.SubjectsDataset`` of the cohort's lazy subjects: what ``tio.Queue`` takes."""
    subjects = [case_subject(case, phases=phases, label=label) for case in cohort]
    return tio.SubjectsDataset(subjects, transform=transform)
