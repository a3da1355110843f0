"""One suite over both backends: ``mamamia.open(path)`` and ``mamamia.connect(url)``.

Every test in ``TestBothBackends`` runs twice and compares with the other backend or with
SimpleITK's read of the source files, so the two give identical answers.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk

import mamamia
from conftest import LiveServer
from mamamia_schema import CatalogManifest


@pytest.fixture(scope="module")
def local(catalog_dir: Path) -> Iterator[mamamia.Catalog]:
    with mamamia.open(catalog_dir) as catalog:
        yield catalog


@pytest.fixture(scope="module")
def remote(
    live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[mamamia.Catalog]:
    cache = tmp_path_factory.mktemp("sdk-cache")
    with mamamia.connect(live_server.url, cache_dir=cache) as catalog:
        yield catalog


@pytest.fixture(params=["local", "remote"])
def cat(request: pytest.FixtureRequest) -> mamamia.Catalog:
    catalog: mamamia.Catalog = request.getfixturevalue(request.param)
    return catalog


def source_image(raw: Path, patient_id: str, phase: int) -> sitk.Image:
    folder = raw / "images" / patient_id
    (path,) = [
        p for p in folder.iterdir() if p.name.lower() == f"{patient_id.lower()}_{phase:04d}.nii.gz"
    ]
    return sitk.ReadImage(str(path))


WHERES = [
    ("dataset = 'DUKE'", {}),
    ("age < $age", {"age": 50}),
    ("pcr IS NULL OR NOT pcr", {}),
    ("view = 'sagittal' AND has_images", {}),
    ("dataset IN ('ISPY1', 'NACT') AND num_phases >= $n", {"n": 3}),
]


class TestBothBackends:
    def test_version_tables_citation(self, cat: mamamia.Catalog, local: mamamia.Catalog) -> None:
        assert cat.version == local.version
        assert {"cases", "volumes"} <= set(cat.tables())
        assert cat.citation() == local.citation()
        assert "CC BY-NC 4.0" in str(cat.citation())
        for table in ("cases", "volumes"):
            # The cache mirrors the catalog's own Parquet files: units and descriptions included.
            assert cat.schema(table).equals(local.schema(table), check_metadata=True)
        assert cat.schema("cases").field("age").metadata[b"unit"] == b"year"

    @pytest.mark.parametrize(("where", "params"), WHERES)
    def test_cohorts_are_identical(
        self, cat: mamamia.Catalog, local: mamamia.Catalog, where: str, params: dict[str, object]
    ) -> None:
        ours = cat.cohort(where, **params)
        theirs = local.cohort(where, **params)
        assert ours.case_ids == theirs.case_ids
        assert ours.to_arrow().to_pylist() == theirs.to_arrow().to_pylist()
        assert ours.ids_hash == theirs.ids_hash
        assert ours.catalog_version == local.version

    def test_cohort_by_sql_and_narrowing(self, cat: mamamia.Catalog) -> None:
        everyone = cat.cohort("TRUE")
        assert len(everyone) == 6
        by_sql = cat.cohort(sql="SELECT patient_id FROM volumes WHERE kind = 'expert'")
        assert set(by_sql.case_ids) <= set(everyone.case_ids)
        assert by_sql.case_ids == sorted(by_sql.case_ids)
        narrowed = everyone.where("dataset = $d", d="NACT")
        assert narrowed.case_ids == ["NACT_01", "NACT_02"]
        assert len(narrowed.where("patient_id = 'NACT_02'")) == 1
        assert "NACT_01" in narrowed and "DUKE_001" not in narrowed

    def test_sql_answers_match(self, cat: mamamia.Catalog, local: mamamia.Catalog) -> None:
        query = (
            "SELECT dataset, count(*) AS n, avg(age) AS mean_age FROM cases "
            "GROUP BY dataset ORDER BY dataset"
        )
        assert cat.sql(query).to_pylist() == local.sql(query).to_pylist()
        counted = cat.sql("SELECT count(*) AS n FROM cases WHERE age > $a", a=0)
        assert counted.column("n").to_pylist() == [6]

    def test_case_fields_and_volumes(self, cat: mamamia.Catalog, local: mamamia.Catalog) -> None:
        case = cat.case("nact_01")
        assert case.patient_id == "NACT_01"
        assert case.fields == local.case("NACT_01").fields
        assert case["dataset"] == "NACT"
        kinds = sorted({v["kind"] for v in case.volumes})
        assert kinds == ["automatic", "expert", "image"]

    @pytest.mark.parametrize("patient_id", ["DUKE_001", "ISPY1_1001"])
    def test_lazy_volume_equals_simpleitk(
        self, cat: mamamia.Catalog, phantom_raw_dir: Path, patient_id: str
    ) -> None:
        image = cat.case(patient_id).image
        source = source_image(phantom_raw_dir, patient_id, 1)
        voxels = sitk.GetArrayFromImage(source)
        assert image.shape[1:] == voxels.shape
        z, y, x = voxels.shape
        box = (slice(1, max(2, z - 1)), slice(y // 4, y // 2 + 1), slice(2, x - 1))
        assert np.array_equal(image[1, box[0], box[1], box[2]], voxels[box])
        assert image.spacing_xyz == pytest.approx(source.GetSpacing())
        assert image.spacing == pytest.approx(source.GetSpacing()[::-1])
        assert image.origin_xyz == pytest.approx(source.GetOrigin())
        assert image.direction == pytest.approx(source.GetDirection())
        mask = cat.case(patient_id).mask("expert")
        assert mask.shape == voxels.shape
        assert set(np.unique(mask[...]).tolist()) <= {0, 1}

    def test_errors_are_typed(self, cat: mamamia.Catalog) -> None:
        with pytest.raises(mamamia.NotFoundError):
            cat.case("DUKE_999")
        with pytest.raises(mamamia.InvalidRequest):
            cat.case("../etc/passwd")
        with pytest.raises(mamamia.QueryRejected):
            cat.sql("SELEC nonsense FROM")
        with pytest.raises(mamamia.QueryError):
            cat.cohort("no_such_column > 1")
        with pytest.raises(mamamia.InvalidRequest):
            cat.case("DUKE_001").mask("manual")
        with pytest.raises(mamamia.InvalidRequest):
            cat.case("DUKE_001").image.to_sitk()

    def test_cohort_save_and_load(self, cat: mamamia.Catalog, tmp_path: Path) -> None:
        cohort = cat.cohort("age < $age", age=60).where("has_images")
        saved = cohort.save(tmp_path / "cohort.json")
        body = json.loads(saved.read_text())
        assert body["catalog_version"] == cat.version and body["ids_hash"] == cohort.ids_hash
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            again = mamamia.load_cohort(saved, cat)
        assert again.case_ids == cohort.case_ids and again.change is None

    def test_loading_against_another_version_says_what_changed(
        self, cat: mamamia.Catalog, tmp_path: Path
    ) -> None:
        cohort = cat.cohort("dataset = 'NACT'")
        path = cohort.save(tmp_path / "cohort.json")
        body = json.loads(path.read_text())
        body["catalog_version"] = "0000000000000000"
        body["case_ids"] = ["NACT_01", "NACT_99"]
        path.write_text(json.dumps(body))
        with pytest.warns(mamamia.CohortChangedWarning, match="1 cases added"):
            again = mamamia.load_cohort(path, cat)
        assert again.change is not None
        assert again.change.added == ("NACT_02",) and again.change.removed == ("NACT_99",)


def test_nifti_export_puts_voxels_where_they_lie(local: mamamia.Catalog, tmp_path: Path) -> None:
    import nibabel as nib

    image = local.case("ISPY1_1001").image
    path = image.to_nifti(tmp_path / "phase1.nii.gz", phase=1)
    loaded = nib.load(str(path))
    assert np.allclose(loaded.affine, image.affine(ras=True))
    assert np.array_equal(np.asarray(loaded.dataobj).transpose(2, 1, 0), image[1])
    back = sitk.ReadImage(str(path))
    assert back.GetDirection() == pytest.approx(image.direction)
    assert back.GetOrigin() == pytest.approx(image.origin_xyz, abs=1e-4)


def test_newer_catalog_format_is_refused_plainly(catalog_copy: Path) -> None:
    manifest = json.loads((catalog_copy / "catalog.json").read_text())
    manifest["format_version"] = 99
    (catalog_copy / "catalog.json").write_text(json.dumps(manifest))
    with pytest.raises(mamamia.CatalogFormatError, match="upgrade"):
        mamamia.open(catalog_copy)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda m: m.pop("dataset_release"), "dataset_release"),
        (lambda m: m["tables"]["cases"].update(sha256="not-hex"), "tables.cases.sha256"),
        (lambda m: m["citations"][0].pop("kind"), "citations.0.kind"),
        (lambda m: m["tables"].pop("cases"), "'cases' table"),
    ],
)
def test_a_malformed_manifest_names_the_file_and_field(
    catalog_copy: Path, change: Callable[[dict[str, Any]], object], field: str
) -> None:
    manifest = json.loads((catalog_copy / "catalog.json").read_text())
    change(manifest)
    (catalog_copy / "catalog.json").write_text(json.dumps(manifest))
    with pytest.raises(mamamia.CatalogFormatError) as raised:
        mamamia.open(catalog_copy)
    assert "catalog.json" in str(raised.value) and field in str(raised.value)


def test_the_manifest_is_typed_and_its_mapping_is_its_json(catalog_dir: Path) -> None:
    with mamamia.open(catalog_dir) as cat:
        typed = cat.manifest_model
        assert isinstance(typed, CatalogManifest)
        assert cat.version == typed.catalog_version
        on_disk = json.loads((catalog_dir / "catalog.json").read_text())
        assert dict(cat.manifest) == on_disk
        with pytest.raises(TypeError):
            cat.manifest["catalog_version"] = "changed"  # type: ignore[index]


def test_missing_catalog_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(mamamia.CatalogNotFound, match="mamamia ingest"):
        mamamia.open(tmp_path)
