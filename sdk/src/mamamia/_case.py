"""One case: its fields and its lazy volumes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mamamia._errors import InvalidRequest, NotFoundError
from mamamia._volume import Geometry, Volume
from mamamia.raw import MASK_KINDS as RAW_MASK_KINDS

if TYPE_CHECKING:
    from mamamia._catalog import Catalog

__all__ = ["MASK_KINDS", "Case"]

MASK_KINDS: tuple[str, ...] = tuple(k.value for k in RAW_MASK_KINDS)


def _geometry(row: Mapping[str, Any]) -> Geometry:
    spacing = tuple(float(v) for v in row["spacing_xyz"])
    origin = tuple(float(v) for v in row["origin_xyz"])
    return Geometry(
        spacing_xyz=(spacing[0], spacing[1], spacing[2]),
        origin_xyz=(origin[0], origin[1], origin[2]),
        direction=tuple(float(v) for v in row["direction"]),
        orientation=str(row["orientation"]),
    )


class Case(Mapping[str, Any]):
    """A case's fields (a read-only mapping of the cases row) and its volumes."""

    def __init__(self, catalog: Catalog, fields: dict[str, Any], volumes: pa.Table) -> None:
        self._catalog = catalog
        self._fields = fields
        self._volumes = volumes
        self.patient_id = str(fields["patient_id"])
        self._rows_cache: list[dict[str, Any]] | None = None
        self._opened: dict[str, Volume] = {}  # kind -> Volume: arrays are opened once

    def __repr__(self) -> str:
        # Counted from the volumes table: len(case) is the number of fields, not of volumes.
        kinds: dict[str, int] = {}
        for kind in self._volumes.column("kind").to_pylist():
            kinds[str(kind)] = kinds.get(str(kind), 0) + 1
        held = ", ".join(
            f"{n} phases" if kind == "image" else f"{kind} mask" for kind, n in kinds.items()
        )
        return (
            f"<Case {self.patient_id} {self._fields.get('dataset')} fields={len(self)} "
            f"volumes=[{held}]>"
        )

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    @property
    def fields(self) -> dict[str, Any]:
        return dict(self._fields)

    @property
    def volumes(self) -> list[dict[str, Any]]:
        """Geometry of each stored volume (one row per kind and phase)."""
        if self._rows_cache is None:
            self._rows_cache = self._volumes.to_pylist()
        return [dict(row) for row in self._rows_cache]

    def _rows(self, kind: str) -> list[dict[str, Any]]:
        if self._rows_cache is None:
            self._rows_cache = self._volumes.to_pylist()
        return [row for row in self._rows_cache if row["kind"] == kind]

    @property
    def image(self) -> Volume:
        """All phases, lazily: ``case.image[phase, z, y, x]``."""
        opened = self._opened.get("image")
        if opened is not None:
            return opened
        rows = sorted(self._rows("image"), key=lambda row: row["phase"])
        if not rows:
            raise NotFoundError(f"case {self.patient_id} has no images in this catalog")
        volume = Volume(
            self._catalog.open_array(rows[0]["zarr_path"]),
            _geometry(rows[0]),
            patient_id=self.patient_id,
            kind="image",
            phase_times_s=[row.get("acquisition_time_s") for row in rows],
        )
        self._opened["image"] = volume
        return volume

    def mask(self, kind: str = "expert") -> Volume:
        """The expert or automatic tumour mask, lazily: ``case.mask()[z, y, x]``."""
        if kind not in MASK_KINDS:
            raise InvalidRequest(f"mask kind must be one of {MASK_KINDS}, not {kind!r}")
        opened = self._opened.get(kind)
        if opened is not None:
            return opened
        rows = self._rows(kind)
        if not rows:
            raise NotFoundError(f"case {self.patient_id} has no {kind} mask in this catalog")
        volume = Volume(
            self._catalog.open_array(rows[0]["zarr_path"]),
            _geometry(rows[0]),
            patient_id=self.patient_id,
            kind=kind,
        )
        self._opened[kind] = volume
        return volume

    def to_torchio(self, phases: Sequence[int] = (0, 1), label: str | None = "expert") -> Any:
        """A lazy ``torchio.Subject``: ``phase_<p>`` ScalarImages and a ``label`` LabelMap.

        Voxels are read from the catalog when TorchIO loads them, with the RAS affine TorchIO
        gives the same NIfTI file (docs/interop.md; ``pip install 'mamamia[torchio]'``).
        """
        from mamamia._interop._torchio import case_subject

        return case_subject(self, phases=phases, label=label)
