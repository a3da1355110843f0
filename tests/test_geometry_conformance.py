"""The project's one geometry convention (README, docs/design.md), checked end to end.

For every phantom case and volume: SimpleITK's read of the source file, the volumes table, the
Zarr attributes ingest wrote, the SDK Volume, and the server's crop (headers and NIfTI affine)
all give the same shape, spacing, origin, direction and orientation, and the same voxel→LPS map.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

import mamamia
from conftest import PHANTOM_IDS, LiveServer


def source_files(raw: Path, patient_id: str) -> dict[tuple[str, int | None], Path]:
    found: dict[tuple[str, int | None], Path] = {}
    for path in (raw / "images" / patient_id).iterdir():
        stem = path.name.lower().removesuffix(".nii.gz")
        if path.name.lower().endswith(".nii.gz"):
            found[("image", int(stem.rsplit("_", 1)[1]))] = path
    for kind in ("expert", "automatic"):
        for path in (raw / "segmentations" / kind).iterdir():
            if path.name.lower() == f"{patient_id.lower()}.nii.gz":
                found[(kind, None)] = path
    return found


def orientation_of(image: sitk.Image) -> str:
    code: str = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())
    return code


@pytest.fixture(scope="module")
def local(catalog_dir: Path) -> mamamia.Catalog:
    return mamamia.open(catalog_dir)


@pytest.mark.parametrize("patient_id", PHANTOM_IDS)
def test_table_zarr_sdk_and_simpleitk_agree(
    patient_id: str, phantom_raw_dir: Path, catalog_dir: Path, local: mamamia.Catalog
) -> None:
    case = local.case(patient_id)
    rows = {(row["kind"], row["phase"]): row for row in case.volumes}
    sources = source_files(phantom_raw_dir, patient_id)
    assert set(rows) == set(sources)
    for key, path in sources.items():
        source = sitk.ReadImage(str(path))
        row = rows[key]
        assert tuple(row["shape"]) == sitk.GetArrayViewFromImage(source).shape
        assert tuple(row["spacing_xyz"]) == pytest.approx(source.GetSpacing(), abs=1e-9)
        assert tuple(row["origin_xyz"]) == pytest.approx(source.GetOrigin(), abs=1e-9)
        assert tuple(row["direction"]) == pytest.approx(source.GetDirection(), abs=1e-12)
        assert row["orientation"] == orientation_of(source)
    view = case["view"]
    image = case.image
    assert image.orientation == ("LPS" if view == "axial" else "RAS")
    # The attribute block ingest wrote beside OME-Zarr says the same.
    zarr_path = rows[("image", 0)]["zarr_path"]
    root = catalog_dir / zarr_path.rsplit("/", 1)[0]
    attrs = json.loads((root / "zarr.json").read_text())["attributes"]["mamamia"]
    assert attrs["space"] == "LPS"
    assert tuple(attrs["spacing_xyz"]) == pytest.approx(image.spacing_xyz)
    assert tuple(attrs["origin_xyz"]) == pytest.approx(image.origin_xyz)
    assert tuple(attrs["direction"]) == pytest.approx(image.direction)
    # The voxel → LPS map: SDK affine and origin_of equal SimpleITK's for corner voxels.
    source = sitk.ReadImage(str(sources[("image", 1)]))
    nz, ny, nx = image.spatial_shape
    for k, j, i in [(0, 0, 0), (nz - 1, 0, 0), (0, ny - 1, nx - 1), (nz // 2, ny // 3, nx // 2)]:
        expected = source.TransformIndexToPhysicalPoint((i, j, k))
        assert image.origin_of((k, j, i)) == pytest.approx(expected, abs=1e-6)
        point = image.affine() @ np.array([i, j, k, 1.0])
        assert tuple(point[:3]) == pytest.approx(expected, abs=1e-6)
    # nibabel reads the source's affine as the SDK's RAS affine.
    assert np.allclose(
        nib.load(str(sources[("image", 1)])).affine, image.affine(ras=True), atol=1e-5
    )


@pytest.mark.parametrize("patient_id", ["DUKE_002", "NACT_01"])
def test_server_crops_follow_the_convention(
    patient_id: str, live_server: LiveServer, phantom_raw_dir: Path, local: mamamia.Catalog
) -> None:
    image = local.case(patient_id).image
    source = sitk.ReadImage(str(source_files(phantom_raw_dir, patient_id)[("image", 1)]))
    voxels = sitk.GetArrayFromImage(source)
    nz, ny, nx = image.spatial_shape
    box = ((1, max(2, nz - 1)), (ny // 4, ny // 2 + 1), (nx // 3, nx - 1))
    query = "&".join(f"{a}={lo}:{hi}" for a, (lo, hi) in zip("zyx", box, strict=True))
    url = f"{live_server.url}/v1/cases/{patient_id}/crop?kind=image&phase=1&{query}"
    raw = httpx.get(url + "&format=raw", timeout=30)
    assert raw.status_code == 200
    shape = tuple(int(n) for n in raw.headers["x-shape"].split(","))
    data = np.frombuffer(raw.content, dtype=np.dtype(raw.headers["x-dtype"]).newbyteorder("<"))
    expected = voxels[box[0][0] : box[0][1], box[1][0] : box[1][1], box[2][0] : box[2][1]]
    assert np.array_equal(data.reshape(shape), expected)
    origin = [float(v) for v in raw.headers["x-origin-xyz"].split(",")]
    first = source.TransformIndexToPhysicalPoint((box[2][0], box[1][0], box[0][0]))
    assert origin == pytest.approx(first, abs=1e-6)
    assert [float(v) for v in raw.headers["x-spacing-xyz"].split(",")] == pytest.approx(
        source.GetSpacing()
    )
    assert [float(v) for v in raw.headers["x-direction"].split(",")] == pytest.approx(
        source.GetDirection()
    )
    nifti = httpx.get(url + "&format=nifti", timeout=30)
    crop = nib.Nifti1Image.from_bytes(gzip.decompress(nifti.content))
    # Every crop voxel lies where the same voxel of the source lies (in RAS, as nibabel gives).
    source_affine = nib.load(str(source_files(phantom_raw_dir, patient_id)[("image", 1)])).affine
    offset = np.array([box[2][0], box[1][0], box[0][0], 0.0])
    for ijk in [(0, 0, 0), (2, 1, 0), (shape[2] - 1, shape[1] - 1, shape[0] - 1)]:
        here = crop.affine @ np.array([*ijk, 1.0])
        there = source_affine @ (np.array([*ijk, 1.0]) + offset)
        assert here[:3] == pytest.approx(there[:3], abs=1e-4)
    assert np.array_equal(np.asarray(crop.dataobj).transpose(2, 1, 0), expected)
    npy = httpx.get(url, timeout=30)
    assert np.array_equal(np.load(io.BytesIO(npy.content)), expected)
