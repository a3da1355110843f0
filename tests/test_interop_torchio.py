"""TorchIO: lazy subjects against TorchIO's own read of the exported NIfTI, and tio.Queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torchio as tio

import mamamia

IDS = ("DUKE_001", "NACT_01")
PATCH = (6, 6, 4)


@pytest.fixture(scope="session")
def nifti_subjects(catalog_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """The same cases written as NIfTI and read by TorchIO itself."""
    cat = mamamia.open(catalog_dir)
    out = tmp_path_factory.mktemp("torchio")
    items = cat.cohort("list_contains($ids, patient_id)", ids=list(IDS)).monai_datalist(
        out, phases=(0, 1), label="expert", progress=False
    )
    return [
        tio.Subject(
            patient_id=item["patient_id"],
            phase_0=tio.ScalarImage(item["image"][0]),
            phase_1=tio.ScalarImage(item["image"][1]),
            label=tio.LabelMap(item["label"]),
        )
        for item in items
    ]


def test_subject_is_lazy_and_equals_torchio_read(
    catalog_dir: Path, nifti_subjects: list[Any]
) -> None:
    cat = mamamia.open(catalog_dir)
    for theirs in nifti_subjects:
        ours = cat.case(theirs["patient_id"]).to_torchio(phases=(0, 1), label="expert")
        assert isinstance(ours["phase_0"], tio.ScalarImage)
        assert isinstance(ours["label"], tio.LabelMap)
        assert not ours["phase_0"]._loaded  # nothing read yet
        for key in ("phase_0", "phase_1", "label"):
            assert ours[key].affine == pytest.approx(theirs[key].affine, abs=1e-4)
            assert ours[key].data.dtype == theirs[key].data.dtype, key
            assert torch.equal(ours[key].data, theirs[key].data), key
            assert ours[key].orientation == theirs[key].orientation


def test_queue_over_our_subjects_yields_torchio_patches(
    catalog_dir: Path, nifti_subjects: list[Any]
) -> None:
    cat = mamamia.open(catalog_dir)
    ours = cat.cohort("list_contains($ids, patient_id)", ids=list(IDS)).torchio_subjects(
        phases=(0, 1), label="expert"
    )
    theirs = tio.SubjectsDataset(nifti_subjects)

    def patches(dataset: Any) -> list[Any]:
        torch.manual_seed(0)
        queue = tio.Queue(
            dataset, max_length=6, samples_per_volume=3, sampler=tio.UniformSampler(PATCH),
            num_workers=0, shuffle_subjects=False, shuffle_patches=False,
        )  # fmt: skip
        return [queue[i] for i in range(len(queue))]

    got, expected = patches(ours), patches(theirs)
    assert len(got) == len(expected) == 3 * len(IDS)
    for a, b in zip(got, expected, strict=True):
        assert a["patient_id"] == b["patient_id"]
        assert torch.equal(a[tio.LOCATION], b[tio.LOCATION])
        for key in ("phase_0", "phase_1", "label"):
            assert torch.equal(a[key].data, b[key].data), key
            assert a[key].affine == pytest.approx(b[key].affine, abs=1e-4)


def test_window_sampler_reads_only_patches_and_matches_torchio(
    catalog_dir: Path, nifti_subjects: list[Any]
) -> None:
    cat = mamamia.open(catalog_dir)
    ours = cat.cohort("list_contains($ids, patient_id)", ids=list(IDS)).torchio_subjects(
        phases=(0, 1), label="expert"
    )
    subject = ours[0]
    assert subject.spatial_shape == nifti_subjects[0].spatial_shape
    patch = mamamia.torchio_sampler(PATCH).extract_patch(subject, (1, 2, 3))
    assert not subject["phase_0"]._loaded, "the window sampler loaded the whole volume"
    theirs = tio.UniformSampler(PATCH).extract_patch(nifti_subjects[0], (1, 2, 3))
    for key in ("phase_0", "phase_1", "label"):
        assert torch.equal(patch[key].data, theirs[key].data), key
        assert patch[key].affine == pytest.approx(theirs[key].affine, abs=1e-4)
    assert torch.equal(patch[tio.LOCATION], theirs[tio.LOCATION])

    def patches(dataset: Any, sampler: Any) -> list[Any]:
        torch.manual_seed(1)
        queue = tio.Queue(
            dataset, max_length=6, samples_per_volume=3, sampler=sampler, num_workers=0,
            shuffle_subjects=False, shuffle_patches=False,
        )  # fmt: skip
        return [queue[i] for i in range(len(queue))]

    got = patches(ours, mamamia.torchio_sampler(PATCH))
    expected = patches(tio.SubjectsDataset(nifti_subjects), tio.UniformSampler(PATCH))
    assert len(got) == len(expected) == 3 * len(IDS)
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a[tio.LOCATION], b[tio.LOCATION])
        for key in ("phase_0", "phase_1", "label"):
            assert torch.equal(a[key].data, b[key].data), key


def test_queue_workers_reopen_the_catalog(catalog_dir: Path) -> None:
    cat = mamamia.open(catalog_dir)
    dataset = cat.cohort("patient_id = 'DUKE_001'").torchio_subjects(phases=(1,), label=None)
    queue = tio.Queue(
        dataset, max_length=2, samples_per_volume=2, sampler=tio.UniformSampler(PATCH),
        num_workers=1,
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(queue, batch_size=2, num_workers=0)
    batch = next(iter(loader))
    assert tuple(batch["phase_1"][tio.DATA].shape) == (2, 1, PATCH[0], PATCH[1], PATCH[2])


def test_bad_phase_names_the_case(catalog_dir: Path) -> None:
    cat = mamamia.open(catalog_dir)
    with pytest.raises(mamamia.InvalidRequest, match="case NACT_01 has 3 phases"):
        cat.case("NACT_01").to_torchio(phases=(0, 7))
