"""MONAI: crop samples against MONAI's own LoadImaged of the exported NIfTI, and transforms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import monai
import numpy as np
import pytest
import torch

import mamamia

# An axial and a sagittal case: the affine must hold for both orientations.
IDS = ("DUKE_001", "NACT_01")
# MONAI's own default axis letters, spelled out (leaving them implicit is deprecated).
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
SIZE = (8, 16, 12)


@pytest.fixture(scope="session")
def monai_files(catalog_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    cat = mamamia.open(catalog_dir)
    out = tmp_path_factory.mktemp("monai")
    datalist: list[Any] = cat.cohort(
        "list_contains($ids, patient_id)", ids=list(IDS)
    ).monai_datalist(out, phases=(0, 1), subtraction=True, label="expert", progress=False)
    return datalist


@pytest.fixture(scope="session")
def loaded(monai_files: list[Any]) -> dict[str, Any]:
    from monai.transforms import LoadImaged

    load = LoadImaged(keys=["image", "label"], ensure_channel_first=True)
    return {item["patient_id"]: load(item) for item in monai_files}


def _samples(catalog_dir: Path, **options: Any) -> list[dict[str, Any]]:
    cat = mamamia.open(catalog_dir)
    stream = cat.crops(
        list(IDS), size=SIZE, phases=(0, 1), subtraction=True, sampler="uniform",
        normalize=None, per_case=3, seed=3, layout="monai", **options,
    )  # fmt: skip
    return list(stream)


def test_datalist_lists_the_files(monai_files: list[Any]) -> None:
    assert [item["patient_id"] for item in monai_files] == sorted(IDS)
    for item in monai_files:
        assert len(item["image"]) == 3
        assert all(Path(p).is_file() for p in [*item["image"], item["label"]])


def test_samples_equal_monai_loaded_windows(catalog_dir: Path, loaded: dict[str, Any]) -> None:
    from monai.data import MetaTensor
    from monai.transforms import BorderPadd, Orientationd, SpatialCropd

    samples = _samples(catalog_dir)
    # Crops overhang small volumes (zero padding): pad MONAI's load the same way, in MONAI.
    pad = max(SIZE)
    padded = {
        pid: BorderPadd(keys=["image", "label"], spatial_border=pad)(dict(whole))
        for pid, whole in loaded.items()
    }
    assert len(samples) == 3 * len(IDS)
    for sample in samples:
        pid = sample["patient_id"]
        image, label = sample["image"], sample["label"]
        assert isinstance(image, MetaTensor)
        assert tuple(image.shape) == (3, SIZE[2], SIZE[1], SIZE[0])
        assert tuple(label.shape) == (1, SIZE[2], SIZE[1], SIZE[0])
        x, y, z = image.meta["location"]
        assert image.meta["index_zyx"] == (z, y, x)
        window = SpatialCropd(
            keys=["image", "label"],
            roi_start=(x + pad, y + pad, z + pad),
            roi_end=(x + pad + SIZE[2], y + pad + SIZE[1], z + pad + SIZE[0]),
        )(dict(padded[pid]))
        assert torch.equal(image.as_tensor(), window["image"].as_tensor().to(torch.float32))
        assert torch.equal(
            label.as_tensor().to(torch.uint8), window["label"].as_tensor().to(torch.uint8)
        )
        # The window's affine is what MONAI gives the same window of its own load.
        assert torch.allclose(image.affine.double(), window["image"].affine.double(), atol=1e-4)
        assert torch.allclose(label.affine.double(), window["label"].affine.double(), atol=1e-4)
        # ... and stays so after reorienting both to RAS.
        orient = Orientationd(keys=["image", "label"], axcodes="RAS", labels=RAS_LABELS)
        ours, theirs = orient({"image": image, "label": label}), orient(window)
        assert torch.equal(ours["image"].as_tensor(), theirs["image"].as_tensor().float())
        assert torch.allclose(
            ours["image"].affine.double(), theirs["image"].affine.double(), atol=1e-4
        )


def test_whole_volume_affine_equals_load_and_orientation(
    catalog_dir: Path, loaded: dict[str, Any]
) -> None:
    from monai.transforms import Orientationd

    cat = mamamia.open(catalog_dir)
    for pid in IDS:
        volume = cat.case(pid).image
        whole = loaded[pid]
        assert np.allclose(whole["image"].affine.numpy(), volume.affine(ras=True), atol=1e-4)
        ras = Orientationd(keys=["image"], axcodes="RAS", labels=RAS_LABELS)(dict(whole))
        # Reoriented, the voxels keep their spacing (as a set: the axes may be permuted).
        spacing = monai.data.utils.affine_to_spacing(ras["image"].affine).tolist()
        assert sorted(spacing) == pytest.approx(sorted(volume.spacing_xyz), abs=1e-4)


def test_a_monai_transform_chain_runs_on_the_samples(catalog_dir: Path) -> None:
    from monai.transforms import Compose, RandAffined, RandFlipd, ScaleIntensityd

    chain = Compose(
        [
            ScaleIntensityd(keys="image"),
            RandFlipd(keys=["image", "label"], prob=1.0, spatial_axis=0),
            RandAffined(
                keys=["image", "label"], prob=1.0, rotate_range=(0.1, 0.1, 0.1),
                mode=("bilinear", "nearest"), padding_mode="zeros",
            ),
        ]
    )  # fmt: skip
    chain.set_random_state(seed=0)
    for sample in _samples(catalog_dir):
        out = chain(dict(sample))
        assert tuple(out["image"].shape) == tuple(sample["image"].shape)
        assert float(out["image"].min()) >= -1e-5 and float(out["image"].max()) <= 1 + 1e-5
        assert set(torch.unique(out["label"]).tolist()) <= {0.0, 1.0}
        assert [op["class"] for op in out["image"].applied_operations] == [
            "RandFlipd",
            "RandAffined",
        ]


def test_native_crops_carry_their_window_affine(catalog_dir: Path) -> None:
    cat = mamamia.open(catalog_dir)
    for pid in IDS:
        volume = cat.case(pid).image
        crop = next(iter(cat.crops([pid], size=SIZE, sampler="uniform", seed=1)))
        z, y, x = crop["index"]
        expected = volume.affine(ras=True) @ np.array(
            [[1, 0, 0, x], [0, 1, 0, y], [0, 0, 1, z], [0, 0, 0, 1]], dtype=float
        )
        assert np.allclose(crop["affine"], expected)
        resampled = next(iter(cat.crops([pid], size=SIZE, sampler="uniform", spacing=2.0, seed=1)))
        assert np.allclose(np.linalg.norm(resampled["affine"][:3, :3], axis=0), 2.0)


def test_bad_layout_names_the_parameter(catalog_dir: Path) -> None:
    cat = mamamia.open(catalog_dir)
    with pytest.raises(mamamia.InvalidRequest, match="layout"):
        cat.crops(list(IDS), layout="tensorflow")


def test_monai_samples_through_the_torch_dataset(catalog_dir: Path) -> None:
    from monai.data import DataLoader, MetaTensor

    cat = mamamia.open(catalog_dir)
    stream = cat.crops(list(IDS), size=SIZE, sampler="uniform", per_case=2, layout="monai")
    batches = list(DataLoader(stream.torch(), batch_size=2, num_workers=0))
    assert sum(len(b["patient_id"]) for b in batches) == 2 * len(IDS)
    image = batches[0]["image"]
    assert isinstance(image, MetaTensor)
    assert tuple(image.shape) == (2, 3, SIZE[2], SIZE[1], SIZE[0])
    assert tuple(image.affine.shape) == (2, 4, 4)
    native = next(iter(cat.crops(list(IDS), size=SIZE, sampler="uniform").torch()))
    assert tuple(native["affine"].shape) == (4, 4)
