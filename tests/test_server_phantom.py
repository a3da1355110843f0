"""The server over the shared catalog that ``mamamia ingest`` built from the phantom.

Crops are checked against SimpleITK's read of the source .nii.gz, NIfTI crops against nibabel's
affine of the source, and slice previews against SimpleITK's own reorientation to LPS. Every
test runs on both catalog formats: ``live_server`` here is ``format_live_server``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from conftest import PHANTOM_IDS, LiveServer


@pytest.fixture
def live_server(format_live_server: LiveServer) -> LiveServer:
    return format_live_server


def _image_path(raw: Path, case: str, phase: int) -> Path:
    return raw / "images" / case / f"{case}_{phase:04d}.nii.gz"


def _get(live_server: LiveServer, path: str, **params: Any) -> httpx.Response:
    r = httpx.get(live_server.url + path, params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r


@pytest.mark.parametrize("case", PHANTOM_IDS)
def test_crop_equals_simpleitk(live_server: LiveServer, phantom_raw_dir: Path, case: str) -> None:
    source = sitk.ReadImage(str(_image_path(phantom_raw_dir, case, 1)))
    array = sitk.GetArrayFromImage(source)
    nz, ny, nx = array.shape
    box = {
        "z": f"{nz // 4}:{nz // 4 + max(1, nz // 2)}",
        "y": f"3:{ny - 2}",
        "x": f":{nx // 2 + 1}",
    }
    r = _get(live_server, f"/v1/cases/{case}/crop", phase=1, **box)
    crop = np.load(io.BytesIO(r.content), allow_pickle=False)
    np.testing.assert_array_equal(
        crop, array[nz // 4 : nz // 4 + max(1, nz // 2), 3 : ny - 2, : nx // 2 + 1]
    )
    origin = [float(v) for v in r.headers["x-origin-xyz"].split(",")]
    np.testing.assert_allclose(
        origin, source.TransformIndexToPhysicalPoint((0, 3, nz // 4)), atol=1e-4
    )
    mask_path = phantom_raw_dir / "segmentations" / "expert" / f"{case}.nii.gz"
    expert = sitk.GetArrayFromImage(sitk.ReadImage(str(mask_path)))
    raw = _get(live_server, f"/v1/cases/{case}/crop", kind="expert", format="raw", y=f"1:{ny}")
    shape = tuple(int(v) for v in raw.headers["x-shape"].split(","))
    got = np.frombuffer(raw.content, dtype=np.dtype(raw.headers["x-dtype"])).reshape(shape)
    np.testing.assert_array_equal(got, expert[:, 1:])


@pytest.mark.parametrize("case", ["DUKE_001", "ISPY1_1001"])
def test_nifti_crop_affine(
    live_server: LiveServer, phantom_raw_dir: Path, case: str, tmp_path: Path
) -> None:
    source = nib.load(str(_image_path(phantom_raw_dir, case, 0)))
    nx, ny, nz = source.shape[:3]
    start = (1, 2, 3)  # (x, y, z)
    r = _get(
        live_server, f"/v1/cases/{case}/crop", phase=0, format="nifti",
        x=f"{start[0]}:{nx - 1}", y=f"{start[1]}:{ny - 1}", z=f"{start[2]}:{nz - 1}",
    )  # fmt: skip
    path = tmp_path / "crop.nii.gz"
    path.write_bytes(r.content)
    crop = nib.load(str(path))
    shift = np.eye(4)
    shift[:3, 3] = start
    np.testing.assert_allclose(crop.affine, source.affine @ shift, atol=1e-4)
    np.testing.assert_array_equal(
        np.asarray(crop.dataobj), np.asarray(source.dataobj)[1 : nx - 1, 2 : ny - 1, 3 : nz - 1]
    )
    assert nib.aff2axcodes(crop.affine) == nib.aff2axcodes(source.affine)


def _png(live_server: LiveServer, case: str, **params: Any) -> tuple[np.ndarray, httpx.Response]:
    r = _get(live_server, f"/v1/cases/{case}/slice.png", **params)
    return np.asarray(Image.open(io.BytesIO(r.content))), r


def _windowed(values: np.ndarray, low: float, high: float) -> np.ndarray:
    scaled = np.clip((values.astype(np.float32) - low) / (high - low), 0, 1) * 255
    return scaled.astype(np.uint8)


def test_axial_slice_of_lps_volume_matches_simpleitk(
    live_server: LiveServer, phantom_raw_dir: Path
) -> None:
    image = sitk.ReadImage(str(_image_path(phantom_raw_dir, "DUKE_001", 1)))
    lps = sitk.GetArrayFromImage(sitk.DICOMOrient(image, "LPS"))
    nz, ny, nx = lps.shape
    assert ny == nx and image.GetSpacing()[0] == image.GetSpacing()[1]  # square: no resampling
    k = nz // 2
    png, r = _png(
        live_server, "DUKE_001", axis="axial", index=k, phase=1, size=nx, window=800, level=500
    )
    assert r.headers["x-level"] == "0"
    expected = _windowed(lps[k], 100, 900)  # axial seen from the feet: LPS rows/cols as stored
    assert png.shape == expected.shape
    assert np.abs(png.astype(int) - expected.astype(int)).max() <= 1


def test_sagittal_slice_of_ras_volume_matches_simpleitk(
    live_server: LiveServer, phantom_raw_dir: Path
) -> None:
    image = sitk.ReadImage(str(_image_path(phantom_raw_dir, "ISPY1_1001", 1)))
    assert image.GetDirection()[0] < 0  # stored RAS
    lps = sitk.GetArrayFromImage(sitk.DICOMOrient(image, "LPS"))
    nz, ny, nx = lps.shape
    assert nz == ny and image.GetSpacing()[1] == image.GetSpacing()[2]
    k = nx // 3  # index in the stored (RAS) array; RAS -> LPS flips x
    png, _ = _png(
        live_server, "ISPY1_1001", axis="sagittal", index=k, phase=1, size=ny, window=800, level=500
    )
    # sagittal: superior at the top (LPS z runs inferior -> superior), anterior on the left
    expected = _windowed(lps[::-1, :, nx - 1 - k], 100, 900)
    assert png.shape == expected.shape
    assert np.abs(png.astype(int) - expected.astype(int)).max() <= 1


def test_previews_use_the_downsampled_level(live_server: LiveServer) -> None:
    small, r = _png(live_server, "DUKE_001", axis="axial", size=24, overlay="expert")
    assert r.headers["x-level"] == "1"
    assert max(small.shape[:2]) == 24
    big, r = _png(live_server, "DUKE_001", axis="axial", size=256, phase="sub")
    assert r.headers["x-level"] == "0"
    assert max(big.shape) == 256
    for axis in ("axial", "coronal", "sagittal"):
        for case in ("DUKE_001", "NACT_01"):
            png, _ = _png(live_server, case, axis=axis, size=64)
            assert max(png.shape[:2]) == 64


def test_cohort_and_facets_over_the_ingested_table(live_server: LiveServer) -> None:
    cohort = httpx.post(
        live_server.url + "/v1/query", json={"where": "dataset = $d", "params": {"d": "NACT"}}
    ).json()
    assert sorted(row[0] for row in cohort["rows"]) == ["NACT_01", "NACT_02"]
    facets = _get(live_server, "/v1/facets", columns="dataset,tumor_subtype_group,pcr").json()
    assert facets["total"] == len(PHANTOM_IDS)
    assert sum(item["count"] for item in facets["facets"]["dataset"]) == len(PHANTOM_IDS)
    schema = _get(live_server, "/v1/tables/cases/schema").json()
    age = next(c for c in schema["columns"] if c["name"] == "age")
    assert age["unit"] and age["description"]


def test_zarr_route_serves_the_stored_files(live_server: LiveServer, catalog_format: int) -> None:
    # Format 2: one shard per array, read whole or by byte range (an inner chunk at a time).
    volumes = _get(live_server, "/v1/cases/DUKE_001/volumes").json()["volumes"]
    url = live_server.url + next(v["zarr_url"] for v in volumes if v["kind"] == "image")
    meta = httpx.get(url + "/zarr.json", timeout=30).json()
    codecs = [c["name"] for c in meta["codecs"]]
    assert codecs == (["sharding_indexed"] if catalog_format == 2 else ["bytes", "blosc", "crc32c"])
    rel = url.removeprefix(live_server.url + "/v1/zarr/")
    for key in ("c/0/0/0/0", "c/1/0/0/0"):
        on_disk = live_server.catalog / "volumes" / rel / key
        response = httpx.get(f"{url}/{key}", timeout=30)
        if catalog_format == 2 and key != "c/0/0/0/0":  # every phase lives in the one shard
            assert not on_disk.exists() and response.status_code == 404
            continue
        assert response.status_code == 200 and response.content == on_disk.read_bytes()
        part = httpx.get(f"{url}/{key}", headers={"Range": "bytes=-20"}, timeout=30)
        assert part.status_code == 206 and part.content == on_disk.read_bytes()[-20:]
