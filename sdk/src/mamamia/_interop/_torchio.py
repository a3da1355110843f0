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
import torch

from mamamia._errors import InvalidRequest, MamamiaError

if TYPE_CHECKING:
    from mamamia._case import Case
    from mamamia._catalog import Catalog
    from mamamia._cohort import Cohort
    from mamamia._volume import Volume

try:
    import torchio as tio
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("TorchIO subjects need torchio: pip install 'mamamia[torchio]'") from exc

__all__ = [
    "CatalogLabelMap",
    "CatalogScalarImage",
    "CatalogUniformSampler",
    "CatalogVolumeReader",
    "case_subject",
    "cohort_subjects",
]

_LABELS = ("expert", "automatic")


class _CatalogImage:
    """What both catalog image classes add to TorchIO's: shape and affine without a read.

    TorchIO loads a custom-reader image whole to learn its shape or affine (samplers ask for
    both before every patch); the catalog knows them already, so only voxels are ever read.
    """

    reader: Any
    _loaded: bool

    @property
    def shape(self) -> tuple[int, int, int, int]:
        if not self._loaded and isinstance(self.reader, CatalogVolumeReader):
            return (1, *self.reader.shape_whd)
        shape: tuple[int, int, int, int] = super().shape  # type: ignore[misc]
        return shape

    @property
    def affine(self) -> npt.NDArray[np.float64]:
        if not self._loaded and isinstance(self.reader, CatalogVolumeReader):
            return self.reader.affine.copy()
        affine: npt.NDArray[np.float64] = super().affine  # type: ignore[misc]
        return affine

    @affine.setter
    def affine(self, matrix: Any) -> None:
        self["affine"] = self._parse_affine(matrix)  # type: ignore[index, attr-defined]


class CatalogScalarImage(_CatalogImage, tio.ScalarImage):
    """A ``tio.ScalarImage`` whose "path" names a catalog volume, not a file.

    TorchIO rebuilds images with ``type(image)(path=image.path, ...)`` when it crops patches;
    this class keeps that from looking for the name on disk.
    """

    def __init__(self, *args: Any, verify_path: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, verify_path=verify_path, **kwargs)  # type: ignore[no-untyped-call]


class CatalogLabelMap(_CatalogImage, tio.LabelMap):
    """A ``tio.LabelMap`` whose "path" names a catalog mask (see ``CatalogScalarImage``)."""

    def __init__(self, *args: Any, verify_path: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, verify_path=verify_path, **kwargs)  # type: ignore[no-untyped-call]


class CatalogUniformSampler(tio.UniformSampler):
    """``tio.UniformSampler`` that reads only each patch's window from the catalog.

    Same draws as TorchIO's own (the same patches for the same torch seed); for the lazy images
    of ``Case.to_torchio`` it slices the catalog's chunks instead of loading whole volumes.
    Images already loaded, or of other kinds, are cropped as TorchIO does.
    """

    def extract_patch(self, subject: Any, index_ini: Any) -> Any:
        si, sj, sk = (int(v) for v in self.patch_size.tolist())
        i, j, k = (int(v) for v in index_ini)
        size, start = (si, sj, sk), (i, j, k)
        images = subject.get_images_dict(intensity_only=False)
        lazy = {
            name: image
            for name, image in images.items()
            if isinstance(image, _CatalogImage)
            and not image._loaded
            and isinstance(image.reader, CatalogVolumeReader)
        }
        if not lazy:
            return super().extract_patch(subject, index_ini)
        # TorchIO's Crop transform draws torch.rand(1) for its probability: draw it too, so
        # the same seed gives the same patches as tio.UniformSampler.
        torch.rand(1)
        patch = {key: value for key, value in subject.items() if key not in images}
        for name, image in images.items():
            if name in lazy:
                data, affine = image.reader.read_window(start, size)
                patch[name] = type(image)(tensor=data, affine=affine, path=image.path)
            else:  # already in memory: slice it (TorchIO's crop would draw again)
                data = image.data[:, i : i + si, j : j + sj, k : k + sk].clone()
                shift = np.eye(4)
                shift[:3, 3] = start
                patch[name] = type(image)(tensor=data, affine=image.affine @ shift, path=image.path)
        out = tio.Subject(patch)
        location = [*start, *(a + b for a, b in zip(start, size, strict=True))]
        out[tio.LOCATION] = torch.as_tensor(location)
        out.update_attributes()
        return out


class CatalogVolumeReader:
    """A TorchIO ``reader``: one phase or mask of one case, read from the catalog when called.

    Returns ``(array (1, x, y, z), RAS affine)`` as TorchIO's own NIfTI reader would. Pickles
    as the way to reopen its catalog (a folder; a server that says how), not as the catalog.
    """

    def __init__(self, catalog: Catalog, volume: Volume, phase: int | None) -> None:
        z, y, x = volume.spatial_shape
        self.shape_whd = (x, y, z)
        self.affine = volume.affine(ras=True)
        self._catalog: Catalog | None = catalog
        self._opener: Callable[[], Catalog] | None = catalog.reopener()
        self._version = catalog.version
        self.patient_id = volume.patient_id
        self.kind = volume.kind
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

    def _volume(self) -> Volume:
        case = self._open().case(self.patient_id)
        return case.image if self.kind == "image" else case.mask(self.kind)

    def __call__(self, path: Any) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]:
        volume = self._volume()
        data = volume[self.phase] if self.kind == "image" else volume.to_numpy()
        return np.ascontiguousarray(data.transpose(2, 1, 0)[None]), volume.affine(ras=True)

    def read_window(
        self, start_whd: Sequence[int], size_whd: Sequence[int]
    ) -> tuple[torch.Tensor, npt.NDArray[np.float64]]:
        """The voxels and affine of one window, (1, W, H, D), reading only its chunks."""
        (i, j, k), (si, sj, sk) = start_whd, size_whd
        box = (slice(k, k + sk), slice(j, j + sj), slice(i, i + si))
        volume = self._volume()
        data = volume[(self.phase, *box)] if self.kind == "image" else volume[box]
        shift = np.eye(4)
        shift[:3, 3] = (i, j, k)
        array = np.ascontiguousarray(data.transpose(2, 1, 0)[None])
        return torch.from_numpy(array), self.affine @ shift


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
        reader = CatalogVolumeReader(catalog, case.image, phase)
        images[f"phase_{phase}"] = CatalogScalarImage(
            path=Path(f"{pid}_{phase:04d}.mamamia"), reader=reader
        )
    if label is not None:
        # A missing mask fails here, naming the case, not in a worker later.
        reader = CatalogVolumeReader(catalog, case.mask(label), None)
        images["label"] = CatalogLabelMap(path=Path(f"{pid}_{label}.mamamia"), reader=reader)
    return tio.Subject(patient_id=pid, **images)


def cohort_subjects(
    cohort: Cohort,
    *,
    phases: Sequence[int] = (0, 1),
    label: str | None = "expert",
    transform: Any = None,
) -> Any:
    """``tio.SubjectsDataset`` of the cohort's lazy subjects: what ``tio.Queue`` takes.

    Subjects stay lazy when the dataset hands them out (``load_getitem=False``): with
    ``CatalogUniformSampler`` only the patches' windows are read.
    """
    subjects = [case_subject(case, phases=phases, label=label) for case in cohort]
    return tio.SubjectsDataset(subjects, transform=transform, load_getitem=False)
