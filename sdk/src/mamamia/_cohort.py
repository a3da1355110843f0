"""Cohorts: a set of cases that knows the query, parameters and catalog version it came from."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mamamia._atomic import write_atomic
from mamamia._errors import InvalidRequest, MamamiaError
from mamamia_schema import VolumeKind

if TYPE_CHECKING:
    from mamamia._case import Case
    from mamamia._catalog import Catalog
    from mamamia._interop import ExportReport, NnunetOptions

__all__ = [
    "Cohort",
    "CohortChange",
    "CohortChangedWarning",
    "cohort_sql",
    "ids_hash",
    "load_cohort",
]

_VOLUME_KINDS: tuple[str, ...] = tuple(k.value for k in VolumeKind)

_COHORT_FILE_VERSION = 1


def cohort_sql(where: str | None = None, sql: str | None = None) -> str:
    """The SELECT over ``cases`` that a WHERE expression or a patient_id query stands for."""
    if (where is None) == (sql is None):
        raise InvalidRequest("give exactly one of a WHERE expression or sql=")
    if where is not None:
        if not where.strip():
            raise InvalidRequest("the WHERE expression is empty")
        return f"SELECT * FROM cases WHERE ({where})"
    assert sql is not None
    return (
        f"SELECT * FROM cases WHERE patient_id IN (SELECT patient_id FROM ({sql}) AS cohort_source)"
    )


def ids_hash(case_ids: Sequence[str]) -> str:
    """A stable hash of a cohort's (sorted) patient ids."""
    digest = hashlib.sha256("\n".join(sorted(case_ids)).encode("utf-8"))
    return digest.hexdigest()[:16]


class CohortChangedWarning(UserWarning):
    """A saved cohort, re-run on another catalog version, selects different cases."""


@dataclass(frozen=True)
class CohortChange:
    """What a saved cohort gains or loses against another catalog version."""

    saved_version: str
    current_version: str
    added: tuple[str, ...]
    removed: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


@dataclass
class Cohort:
    """Cases selected by a query; ``len``, ``case_ids``, Arrow/pandas/polars views, narrowing."""

    catalog: Catalog = field(repr=False)
    query: str
    params: dict[str, Any]
    catalog_version: str
    table: pa.Table = field(repr=False)
    where_clauses: tuple[str, ...] = ()
    source_sql: str | None = None
    change: CohortChange | None = None

    @property
    def case_ids(self) -> list[str]:
        return [str(value) for value in self.table.column("patient_id").to_pylist()]

    @property
    def ids_hash(self) -> str:
        return ids_hash(self.case_ids)

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def __iter__(self) -> Iterator[Case]:
        for patient_id in self.case_ids:
            yield self.catalog.case(patient_id)

    def __contains__(self, patient_id: object) -> bool:
        return isinstance(patient_id, str) and patient_id.upper() in set(self.case_ids)

    def __repr__(self) -> str:
        return f"<Cohort {len(self)} cases of catalog {self.catalog_version}: {self.query!r}>"

    def to_arrow(self) -> pa.Table:
        return self.table

    def to_pandas(self) -> Any:
        try:
            import pandas  # noqa: F401 - only to give the install hint
        except ImportError as exc:
            raise ImportError("to_pandas needs pandas: pip install 'mamamia[pandas]'") from exc
        return self.table.to_pandas()

    def to_polars(self) -> Any:
        try:
            import polars as pl
        except ImportError as exc:
            raise ImportError("to_polars needs polars: pip install 'mamamia[polars]'") from exc
        return pl.from_arrow(self.table)

    def where(self, expression: str, /, **params: Any) -> Cohort:
        """This cohort narrowed by another WHERE expression over its columns."""
        merged = merge_params(self.params, params)
        query = f"SELECT * FROM ({self.query}) AS cohort WHERE ({expression})"
        return self.catalog.run_cohort(
            query,
            merged,
            where_clauses=(*self.where_clauses, expression),
            source_sql=self.source_sql,
        )

    def prefetch(self, kinds: Sequence[str] = _VOLUME_KINDS, *, progress: bool = True) -> int:
        """Fill the local chunk cache with these cases' volumes (remote catalogs; a local one
        already has them). Returns the number of chunks fetched."""
        if not self.catalog.remote or not self.case_ids:
            return 0
        paths = (
            self.catalog.sql(
                "SELECT DISTINCT zarr_path FROM volumes WHERE list_contains($ids, patient_id) "
                "AND list_contains($kinds, kind) ORDER BY zarr_path",
                ids=self.case_ids,
                kinds=list(kinds),
            )
            .column("zarr_path")
            .to_pylist()
        )
        from mamamia.progress import progress_bar

        with progress_bar(progress, desc="prefetch", unit="chunk") as bar:

            def tick(chunks: int) -> None:
                bar.update(chunks)

            return self.catalog.prefetch([str(p) for p in paths], on_chunk=tick)

    def export_nnunet(
        self, out: str | Path, options: NnunetOptions | None = None, **keywords: Any
    ) -> ExportReport:
        """Write this cohort as an nnU-Net v2 raw dataset under ``out`` (docs/interop.md).

        Pass a ``mamamia.NnunetOptions`` or its keywords (``dataset_id``, ``name``, ``phases``,
        ``subtraction``, ``label``, ``test_split``, ``jobs``, ``progress``).
        """
        from mamamia._interop import NnunetOptions, export_nnunet

        if options is not None and keywords:
            raise InvalidRequest("give a NnunetOptions or its keywords, not both")
        return export_nnunet(self, out, options or NnunetOptions(**keywords))

    def export_challenge(
        self, out: str | Path, *, jobs: int = 2, progress: bool = True
    ) -> ExportReport:
        """Write this cohort in the challenge's input layout (``images/<ID>/<id>_000N.nii.gz``,
        ``patient_info_files/<id>.json``); see docs/interop.md."""
        from mamamia._interop._challenge import export_challenge

        return export_challenge(self, out, jobs=jobs, progress=progress)

    def monai_datalist(
        self,
        folder: str | Path,
        *,
        phases: Sequence[int] = (0, 1),
        subtraction: bool = False,
        label: str | None = "expert",
        jobs: int = 2,
        progress: bool = True,
    ) -> list[dict[str, Any]]:
        """NIfTI files of this cohort under ``folder``, listed for MONAI's ``Dataset``.

        Items ``{"patient_id", "image": [one file per channel], "label": file}``; see
        docs/interop.md.
        """
        from mamamia._interop._monai import monai_datalist

        return monai_datalist(
            self, folder, phases=phases, subtraction=subtraction, label=label, jobs=jobs,
            progress=progress,
        )  # fmt: skip

    def torchio_subjects(
        self,
        phases: Sequence[int] = (0, 1),
        label: str | None = "expert",
        transform: Any = None,
    ) -> Any:
        """A ``torchio.SubjectsDataset`` of this cohort's lazy subjects (``Case.to_torchio``),
        ready for ``tio.Queue``; see docs/interop.md."""
        from mamamia._interop._torchio import cohort_subjects

        return cohort_subjects(self, phases=phases, label=label, transform=transform)

    def save(self, path: str | Path) -> Path:
        """Write the cohort definition and its case ids as JSON (atomically)."""
        target = Path(path)
        body = {
            "mamamia_cohort": _COHORT_FILE_VERSION,
            "query": self.query,
            "where": list(self.where_clauses),
            "sql": self.source_sql,
            "params": self.params,
            "catalog_version": self.catalog_version,
            "case_ids": self.case_ids,
            "ids_hash": self.ids_hash,
        }
        write_atomic(target, json.dumps(body, indent=2, default=str) + "\n")
        return target


def merge_params(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(left)
    for name, value in right.items():
        if name in merged and merged[name] != value:
            raise InvalidRequest(
                f"parameter ${name} is already {merged[name]!r} in this cohort; use another name"
            )
        merged[name] = value
    return merged


def load_cohort(path: str | Path, catalog: Catalog) -> Cohort:
    """Re-run a saved cohort on ``catalog``; if the version differs, say what changed."""
    source = Path(path)
    try:
        body = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MamamiaError(f"{source}: cannot read the cohort file: {exc}") from exc
    if not isinstance(body, dict) or body.get("mamamia_cohort") != _COHORT_FILE_VERSION:
        raise MamamiaError(f"{source}: not a mamamia cohort file (version 1)")
    cohort = catalog.run_cohort(
        str(body["query"]),
        dict(body.get("params") or {}),
        where_clauses=tuple(body.get("where") or ()),
        source_sql=body.get("sql"),
    )
    saved_ids = set(body.get("case_ids") or ())
    if body.get("catalog_version") != cohort.catalog_version or saved_ids != set(cohort.case_ids):
        change = CohortChange(
            saved_version=str(body.get("catalog_version")),
            current_version=cohort.catalog_version,
            added=tuple(sorted(set(cohort.case_ids) - saved_ids)),
            removed=tuple(sorted(saved_ids - set(cohort.case_ids))),
        )
        cohort.change = change
        if change.changed:
            warnings.warn(
                f"cohort {source.name} was saved on catalog {change.saved_version} and now runs "
                f"on {change.current_version}: {len(change.added)} cases added "
                f"{list(change.added)[:10]}, {len(change.removed)} removed "
                f"{list(change.removed)[:10]}",
                CohortChangedWarning,
                stacklevel=2,
            )
    return cohort
