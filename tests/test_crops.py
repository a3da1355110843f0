"""Crop streaming: sizes, labels at the index, tumour ratio, resampling, z-score, sharding, grid."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk

import mamamia
from crops_catalog import PhantomCase, build_catalog
from mamamia import CropStream, GridStitcher, InvalidRequest, NotFoundError


@pytest.fixture(scope="module")
def crop_cases(
    tmp_path_factory: pytest.TempPathFactory, catalog_format: int
) -> tuple[Path, dict[str, PhantomCase]]:
    """The hand-written crop catalog, once per catalog format."""
    root = tmp_path_factory.mktemp(f"crops-catalog-{catalog_format}")
    return root, build_catalog(root, catalog_format=catalog_format)


@pytest.fixture(scope="module")
def cat(crop_cases: tuple[Path, dict[str, PhantomCase]]) -> mamamia.Catalog:
    return mamamia.open(crop_cases[0])


@pytest.fixture(scope="module")
def cases(crop_cases: tuple[Path, dict[str, PhantomCase]]) -> dict[str, PhantomCase]:
    return crop_cases[1]


def test_the_crop_catalog_is_read_by_the_direct_reader(
    crop_cases: tuple[Path, dict[str, PhantomCase]], catalog_format: int
) -> None:
    from mamamia._chunks import ChunkArray

    root, cases = crop_cases
    cat = mamamia.open(root)
    assert cat.manifest["format_version"] == catalog_format
    image = cat.case("CROP_002").image
    assert isinstance(image._array, ChunkArray)  # not zarr-python's fallback
    (array,) = root.glob("volumes/CROP_002/*.zarr/0")
    codecs = [c["name"] for c in json.loads((array / "zarr.json").read_bytes())["codecs"]]
    sharded = catalog_format == 2
    assert codecs == (["sharding_indexed"] if sharded else ["bytes", "blosc", "crc32c"])
    files = [p for p in (array / "c").rglob("*") if p.is_file()]
    assert len(files) == (1 if sharded else 3 * 3 * 3 * 4)  # (3, 24, 36, 52) in (1, 8, 16, 16)
    assert np.array_equal(image[...], cases["CROP_002"].image)


def padded_slice(volume: np.ndarray, index: tuple[int, ...], size: tuple[int, ...]) -> np.ndarray:
    """``volume[index : index + size]`` on the last three axes, zero outside (the reference)."""
    pad = [(0, 0)] * (volume.ndim - 3) + [(s, s) for s in size]
    big = np.pad(volume, pad)
    box = tuple(slice(i + s, i + 2 * s) for i, s in zip(index, size, strict=True))
    return big[(..., *box)]


def centre_voxel(crop: dict[str, Any]) -> int:
    z, y, x = (n // 2 for n in crop["label"].shape)
    return int(crop["label"][z, y, x])


def test_every_crop_has_the_asked_size_and_dtypes(cat: mamamia.Catalog) -> None:
    # Bigger than some volumes along z and x: those crops are padded to the size.
    size = (20, 16, 36)
    for sampler in ("tumor", "uniform", "grid"):
        stream = cat.crops(cat.cohort("true"), size=size, sampler=sampler, per_case=2)
        assert isinstance(stream, CropStream)
        crops = list(stream)
        assert len(crops) == len(stream) > 0
        for crop in crops:
            assert set(crop) == {"patient_id", "image", "label", "index", "spacing", "affine"}
            assert crop["image"].shape == (3, *size)  # phases 0, 1 and the subtraction
            assert crop["image"].dtype == np.float32
            assert crop["label"].shape == size
            assert crop["label"].dtype == np.uint8
            assert len(crop["index"]) == 3
            assert all(isinstance(v, int) for v in crop["index"])


def test_label_and_image_equal_the_volume_at_index_with_padding(
    cat: mamamia.Catalog, cases: dict[str, PhantomCase]
) -> None:
    size = (16, 24, 24)
    stream = cat.crops(
        cat.cohort("patient_id != 'CROP_003'"),  # CROP_003 has no phase 2
        size=size,
        phases=(2, 0),
        subtraction=True,
        normalize=None,
        per_case=6,
        seed=3,
    )
    overhanging = 0
    for crop in stream:
        case = cases[crop["patient_id"]]
        index = crop["index"]
        assert np.array_equal(crop["label"], padded_slice(case.expert, index, size))
        image = case.image.astype(np.float32)
        expected = np.stack(
            [
                padded_slice(image[2], index, size),
                padded_slice(image[0], index, size),
                padded_slice(image[1] - image[0], index, size),
            ]
        )
        assert np.array_equal(crop["image"], expected)
        overhanging += any(
            i < 0 or i + s > n for i, s, n in zip(index, size, case.shape, strict=True)
        )
    assert overhanging > 0, "no crop reached a border: the padding went untested"


def test_automatic_label_and_no_label(cat: mamamia.Catalog, cases: dict[str, PhantomCase]) -> None:
    for crop in cat.crops(["CROP_001"], size=8, label="automatic", per_case=4, pos_ratio=1.0):
        case = cases["CROP_001"]
        assert np.array_equal(crop["label"], padded_slice(case.automatic, crop["index"], (8, 8, 8)))
    crops = list(cat.crops(["crop_001"], size=8, label=None))
    assert "label" not in crops[0]
    assert crops[0]["patient_id"] == "CROP_001"


def test_tumour_crops_hold_tumour_at_the_asked_ratio(cat: mamamia.Catalog) -> None:
    tumour_cases = cat.cohort("tumor_voxels > 0")
    assert len(tumour_cases) == 6
    # Small crops in much larger volumes: a uniform crop rarely meets a tumour by chance.
    common = {"size": (4, 4, 4), "sampler": "tumor", "seed": 11}
    half = list(cat.crops(tumour_cases, pos_ratio=0.5, per_case=34, **common))
    assert len(half) == 204
    with_tumour = sum(crop["label"].any() for crop in half) / len(half)
    assert 0.35 <= with_tumour <= 0.65
    always = list(cat.crops(tumour_cases, pos_ratio=1.0, per_case=34, **common))
    # A tumour crop is centred on an expert voxel, so it holds tumour, always.
    assert all(centre_voxel(crop) == 1 for crop in always)
    never = list(cat.crops(tumour_cases, pos_ratio=0.0, per_case=34, **common))
    assert sum(crop["label"].any() for crop in never) / len(never) < 0.15


def test_multifocal_case_gets_crops_on_every_focus(
    cat: mamamia.Catalog, cases: dict[str, PhantomCase]
) -> None:
    case = cases["CROP_002"]
    assert len(case.blobs) == 2
    hits = [0, 0]
    for crop in cat.crops(["CROP_002"], size=(5, 5, 5), pos_ratio=1.0, per_case=60, seed=5):
        centre = tuple(i + 2 for i in crop["index"])
        assert case.expert[centre] == 1
        for n, (start, size) in enumerate(case.blobs):
            if all(s <= c < s + k for c, s, k in zip(centre, start, size, strict=True)):
                hits[n] += 1
    assert sum(hits) == 60
    assert min(hits) > 0, f"one focus was never sampled: {hits}"


def test_case_without_tumour_falls_back_to_uniform_crops(cat: mamamia.Catalog) -> None:
    crops = list(cat.crops(["CROP_004"], size=8, pos_ratio=1.0, per_case=5))
    assert len(crops) == 5
    assert not any(crop["label"].any() for crop in crops)
    assert len({crop["index"] for crop in crops}) > 1


def _sitk_resample(
    volume: np.ndarray,
    spacing_xyz: tuple[float, ...],
    start_zyx: tuple[int, ...],
    size_zyx: tuple[int, ...],
    target_zyx: tuple[float, ...],
    interpolator: int,
) -> np.ndarray:
    """SimpleITK's resampling of the crop window: the independent reference."""
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing(spacing_xyz)
    resampler = sitk.ResampleImageFilter()
    resampler.SetOutputSpacing(tuple(reversed(target_zyx)))
    resampler.SetSize([int(n) for n in reversed(size_zyx)])
    origin = [start_zyx[2 - a] * spacing_xyz[a] for a in range(3)]
    resampler.SetOutputOrigin(origin)
    resampler.SetOutputDirection(image.GetDirection())
    resampler.SetInterpolator(interpolator)
    resampler.SetDefaultPixelValue(0)
    return sitk.GetArrayFromImage(resampler.Execute(image))


def test_spacing_resamples_to_the_asked_voxel_size(
    cat: mamamia.Catalog, cases: dict[str, PhantomCase]
) -> None:
    # Ratios chosen so no nearest-neighbour coordinate falls on a .5 tie within 10 voxels.
    target = (2.34, 0.93, 1.13)
    size = (10, 10, 10)
    checked = 0
    stream = cat.crops(
        ["CROP_001", "CROP_005"],
        size=size,
        spacing=target,
        normalize=None,
        subtraction=False,
        phases=(1,),
        pos_ratio=1.0,
        per_case=4,
        seed=2,
    )
    for crop in stream:
        case = cases[crop["patient_id"]]
        assert crop["spacing"] == target
        assert crop["image"].shape == (1, *size)
        reference = _sitk_resample(
            case.image[1].astype(np.float32),
            case.spacing_xyz,
            crop["index"],
            size,
            target,
            sitk.sitkLinear,
        )
        labels = _sitk_resample(
            case.expert, case.spacing_xyz, crop["index"], size, target, sitk.sitkNearestNeighbor
        )
        # Compare where SimpleITK's window lies wholly inside (its border rule differs by a hair).
        inside = reference != 0
        assert inside.mean() > 0.3
        np.testing.assert_allclose(
            crop["image"][0][inside], reference[inside], rtol=1e-4, atol=1e-2
        )
        assert np.array_equal(crop["label"][inside], labels[inside])
        # pos_ratio 1: the middle voxel is tumour even after resampling.
        assert centre_voxel(crop) == 1
        checked += 1
    assert checked == 8


def test_spacing_equal_to_the_source_is_plain_slicing(
    cat: mamamia.Catalog, cases: dict[str, PhantomCase]
) -> None:
    case = cases["CROP_003"]  # 1 mm isotropic
    for crop in cat.crops(["CROP_003"], size=6, spacing=1.0, normalize=None, per_case=3):
        assert np.array_equal(crop["label"], padded_slice(case.expert, crop["index"], (6, 6, 6)))
        assert np.array_equal(
            crop["image"][0],
            padded_slice(case.image[0].astype(np.float32), crop["index"], (6, 6, 6)),
        )


def test_zscore_uses_the_catalog_statistics(
    cat: mamamia.Catalog, cases: dict[str, PhantomCase]
) -> None:
    stats = {
        (row["patient_id"], row["phase"]): (row["mean"], row["std"])
        for row in cat.sql(
            "SELECT patient_id, phase, mean, std FROM volumes WHERE kind = 'image'"
        ).to_pylist()
    }
    size = (14, 14, 14)  # CROP_006 has 12 slices: its crops overhang
    padded_seen = False
    for crop in cat.crops(cat.cohort("true"), size=size, per_case=3, seed=4, sampler="uniform"):
        pid = crop["patient_id"]
        case = cases[pid]
        inside = padded_slice(np.ones(case.shape, dtype=bool), crop["index"], size)
        image = case.image.astype(np.float32)
        for channel, phase in enumerate((0, 1)):
            mean, std = stats[(pid, phase)]
            expected = np.where(
                inside,
                (padded_slice(image[phase], crop["index"], size) - np.float32(mean))
                / np.float32(std),
                0,
            )
            np.testing.assert_allclose(crop["image"][channel], expected, rtol=1e-6, atol=1e-5)
        subtraction = padded_slice(image[1] - image[0], crop["index"], size) / np.float32(
            stats[(pid, 0)][1]
        )
        np.testing.assert_allclose(crop["image"][2], subtraction, rtol=1e-6, atol=1e-5)
        # Padding is exactly 0 after normalisation.
        assert not crop["image"][:, ~inside].any()
        padded_seen |= not inside.all()
    assert padded_seen


def test_the_same_seed_gives_the_same_crops_and_another_epoch_others(cat: mamamia.Catalog) -> None:
    cohort = cat.cohort("true")

    def run(**options: Any) -> list[tuple[str, tuple[int, int, int], bytes]]:
        stream = cat.crops(cohort, size=8, per_case=2, **options)
        return [
            (c["patient_id"], c["index"], c["image"].tobytes() + c["label"].tobytes())
            for c in stream
        ]

    first = run(seed=7, epoch=0, threads=4)
    assert run(seed=7, epoch=0, threads=1, prefetch=1) == first  # threads never change the crops
    other_epoch = run(seed=7, epoch=1)
    assert other_epoch != first
    assert [c[1] for c in other_epoch] != [c[1] for c in first]
    assert run(seed=8, epoch=0) != first
    stream = cat.crops(cohort, size=8, per_case=2, seed=7)
    stream.set_epoch(1)
    assert [(c["patient_id"], c["index"]) for c in stream] == [(c[0], c[1]) for c in other_epoch]


def test_a_stream_queries_its_cases_once_and_later_epochs_read_the_same_rows(
    cat: mamamia.Catalog,
) -> None:
    cohort = cat.cohort("true")
    queries: list[str] = []

    class Counting:
        """The catalog, counting the SQL the stream sends."""

        def __getattr__(self, name: str) -> Any:
            return getattr(cat, name)

        def sql(self, query: str, **params: Any) -> Any:
            queries.append(query)
            return cat.sql(query, **params)

    stream = CropStream(Counting(), cohort.case_ids, cat.crops(cohort, size=8).options)  # type: ignore[arg-type]
    first = [(c["patient_id"], c["index"], c["image"].tobytes()) for c in stream]
    asked = len(queries)
    assert asked >= 1
    stream.set_epoch(1)
    again = [(c["patient_id"], c["index"], c["image"].tobytes()) for c in stream]
    assert len(queries) == asked  # the second epoch sent no query
    fresh = cat.crops(cohort, size=8, epoch=1)
    assert again == [(c["patient_id"], c["index"], c["image"].tobytes()) for c in fresh]
    assert {pid for pid, _i, _b in again} == {pid for pid, _i, _b in first}


def test_shards_cover_each_case_once_per_epoch(cat: mamamia.Catalog) -> None:
    cohort = cat.cohort("true")
    for epoch in (0, 1):
        seen: list[str] = []
        for rank in range(2):
            stream = cat.crops(cohort, size=8, rank=rank, world_size=2, epoch=epoch)
            for worker in range(2):
                part = CropStream(
                    cat,
                    stream.case_ids,
                    stream.options,
                    epoch=epoch,
                    rank=rank,
                    world_size=2,
                    worker=worker,
                    num_workers=2,
                )
                seen += [crop["patient_id"] for crop in part]
        assert sorted(seen) == cohort.case_ids


def test_even_pads_every_rank_to_the_same_length(cat: mamamia.Catalog) -> None:
    cohort = cat.cohort("true")  # 7 cases over 3 ranks: 3, 2, 2 unless padded
    uneven = [len(cat.crops(cohort, size=8, rank=r, world_size=3)) for r in range(3)]
    assert sorted(uneven) == [2, 2, 3]
    streams = [cat.crops(cohort, size=8, rank=r, world_size=3, even=True) for r in range(3)]
    assert [len(s) for s in streams] == [3, 3, 3]
    ids = [crop["patient_id"] for s in streams for crop in s]
    assert len(ids) == 9
    assert set(ids) == set(cohort.case_ids)


def test_epoch_order_is_shuffled(cat: mamamia.Catalog) -> None:
    cohort = cat.cohort("true")
    orders = {tuple(cat.crops(cohort, epoch=e).shard_case_ids()) for e in range(5)}
    assert len(orders) > 1
    assert all(sorted(order) == cohort.case_ids for order in orders)


def test_grid_and_stitcher_reconstruct_the_volume(
    cat: mamamia.Catalog, cases: dict[str, PhantomCase]
) -> None:
    stream = cat.crops(
        cat.cohort("true"),
        size=(8, 16, 20),
        overlap=(2, 5, 4),
        sampler="grid",
        phases=(0, 1),
        subtraction=False,
        normalize=None,
    )
    crops = list(stream)
    assert len(crops) == len(stream)
    stitched = dict(stream.stitch((crop, crop["image"]) for crop in crops))
    labels = dict(stream.stitch((crop, crop["label"][None]) for crop in crops))
    assert sorted(stitched) == sorted(cases)
    for pid, volume in stitched.items():
        assert np.array_equal(volume, cases[pid].image[:2].astype(np.float32))
        assert np.array_equal(labels[pid][0], cases[pid].expert.astype(np.float32))


def test_grid_tiles_overlap_and_reach_every_border(cat: mamamia.Catalog) -> None:
    stream = cat.crops(["CROP_003"], size=(8, 8, 8), overlap=4, sampler="grid", normalize=None)
    starts = sorted({crop["index"] for crop in stream})
    zs = sorted({s[0] for s in starts})
    assert zs == [0, 4, 8]  # 16 slices, tiles of 8 stepping 4
    assert len(starts) == len(stream) == 3 * 7 * 7  # 30 voxels: 0, 4, ..., 20, 22


def test_stitcher_rejects_incomplete_coverage() -> None:
    stitcher = GridStitcher((4, 4, 4))
    stitcher.add(np.ones((2, 2, 2)), (0, 0, 0))
    assert not stitcher.complete
    with pytest.raises(InvalidRequest, match="covered by no tile"):
        stitcher.result()
    stitcher.add(np.full((6, 6, 6), 3.0), (-1, -1, -1))  # overhanging tile: padding dropped
    assert stitcher.complete
    result = stitcher.result()
    assert result[0, 0, 0] == 2.0
    assert result[3, 3, 3] == 3.0


class _CountingArray:
    """A real zarr array that records which case each read touched."""

    def __init__(self, array: Any, case: str, reads: list[str]) -> None:
        self._array, self._case, self._reads = array, case, reads
        self.shape, self.dtype = array.shape, array.dtype

    def __getitem__(self, key: Any) -> Any:
        self._reads.append(self._case)
        return self._array[key]


class _CountingBackend:
    """The real local backend, with its arrays wrapped to count reads per case."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.reads: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def open_array(self, zarr_path: str) -> Any:
        case = zarr_path.split("/")[1]
        return _CountingArray(self._inner.open_array(zarr_path), case, self.reads)


def test_stream_reads_ahead_only_a_bounded_number_of_cases(
    crop_cases: tuple[Path, dict[str, PhantomCase]],
) -> None:
    from mamamia._local import LocalBackend

    backend = _CountingBackend(LocalBackend(crop_cases[0]))
    counting = mamamia.Catalog(backend)
    stream = counting.crops(counting.cohort("true"), size=8, threads=1, prefetch=2, per_case=3)
    iterator = iter(stream)
    next(iterator)
    time.sleep(0.5)  # give the pool time to run ahead if it were unbounded
    assert len(set(backend.reads)) <= 3  # prefetch 2 ahead, plus the one being consumed
    rest = list(iterator)
    assert len(rest) == 7 * 3 - 1
    assert len(set(backend.reads)) == 7


def test_bad_options_name_the_parameter(cat: mamamia.Catalog) -> None:
    cohort = cat.cohort("true")
    for options, word in [
        ({"size": (8, 8)}, "size"),
        ({"size": 0}, "size"),
        ({"sampler": "random"}, "sampler"),
        ({"pos_ratio": 1.5}, "pos_ratio"),
        ({"per_case": 0}, "per_case"),
        ({"normalize": "minmax"}, "normalize"),
        ({"label": "manual"}, "label"),
        ({"spacing": (1.0, -1.0, 1.0)}, "spacing"),
        ({"spacing": 1.0, "sampler": "grid"}, "spacing"),
        ({"overlap": 8, "size": 8, "sampler": "grid"}, "overlap"),
        ({"phases": (0, 0)}, "phases"),
        ({"rank": 2, "world_size": 2}, "rank"),
        ({"threads": 0}, "threads"),
    ]:
        with pytest.raises(InvalidRequest, match=word):
            cat.crops(cohort, **options)
    with pytest.raises(InvalidRequest, match="one string"):
        cat.crops("CROP_001")


def test_unknown_cases_and_missing_phases_are_named(cat: mamamia.Catalog) -> None:
    with pytest.raises(NotFoundError, match="CROP_999"):
        cat.crops(["CROP_001", "CROP_999"])
    # CROP_003 has 2 phases: phase 2 does not exist there.
    stream = cat.crops(["CROP_003"], phases=(0, 2), size=8)
    with pytest.raises(InvalidRequest, match=r"CROP_003 has 2 phases.*phase 2"):
        list(stream)


def test_early_stop_leaves_no_thread_behind(cat: mamamia.Catalog) -> None:
    import threading

    before = {t for t in threading.enumerate() if t.name.startswith("mamamia-crops")}
    stream = cat.crops(cat.cohort("true"), size=8, per_case=4, threads=3)
    for n, _crop in enumerate(stream):
        if n == 2:
            break
    after = {t for t in threading.enumerate() if t.name.startswith("mamamia-crops")}
    assert after <= before


# The shared phantom catalog (what `mamamia ingest` writes), checked against its raw .nii.gz.


def _raw_array(path: Path) -> np.ndarray:
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image)


def test_ingested_catalog_crops_match_the_raw_files(
    format_catalog_dir: Path, phantom_raw_dir: Path
) -> None:
    cat = mamamia.open(format_catalog_dir)
    cohort = cat.cohort("true")
    stats = {
        (row["patient_id"], row["phase"]): (row["mean"], row["std"])
        for row in cat.sql(
            "SELECT patient_id, phase, mean, std FROM volumes WHERE kind = 'image'"
        ).to_pylist()
    }
    size = (8, 24, 24)
    seen = set()
    for crop in cat.crops(cohort, size=size, pos_ratio=1.0, per_case=2, seed=1):
        pid = crop["patient_id"]
        seen.add(pid)
        raw = phantom_raw_dir / "images" / pid
        mask = _raw_array(phantom_raw_dir / "segmentations" / "expert" / f"{pid}.nii.gz")
        assert np.array_equal(crop["label"], padded_slice(mask, crop["index"], size))
        assert centre_voxel(crop) == 1  # pos_ratio 1: centred on tumour, every case
        inside = padded_slice(np.ones(mask.shape, dtype=bool), crop["index"], size)
        phases = [_raw_array(raw / f"{pid}_000{p}.nii.gz").astype(np.float32) for p in (0, 1)]
        for channel, phase in enumerate((0, 1)):
            mean, std = stats[(pid, phase)]
            # The catalog's statistics are the whole phase's own.
            assert mean == pytest.approx(float(phases[phase].mean()), rel=1e-5)
            assert std == pytest.approx(float(phases[phase].std()), rel=1e-4)
            expected = (
                padded_slice(phases[phase], crop["index"], size) - np.float32(mean)
            ) / np.float32(std)
            np.testing.assert_allclose(
                crop["image"][channel], np.where(inside, expected, 0), rtol=1e-5, atol=1e-4
            )
        enhancement = padded_slice(phases[1] - phases[0], crop["index"], size)
        np.testing.assert_allclose(
            crop["image"][2], enhancement / np.float32(stats[(pid, 0)][1]), rtol=1e-5, atol=1e-4
        )
    assert seen == set(cohort.case_ids)


def test_ingested_catalog_grid_round_trip(format_catalog_dir: Path, phantom_raw_dir: Path) -> None:
    cat = mamamia.open(format_catalog_dir)
    pid = cat.cohort("true").case_ids[0]
    stream = cat.crops(
        [pid], size=(8, 32, 32), sampler="grid", phases=(1,), subtraction=False, normalize=None
    )
    ((got, volume),) = list(stream.stitch((crop, crop["image"]) for crop in stream))
    assert got == pid
    raw = _raw_array(phantom_raw_dir / "images" / pid / f"{pid}_0001.nii.gz")
    assert np.array_equal(volume[0], raw.astype(np.float32))


def test_remote_catalog_streams_the_same_crops(
    format_catalog_dir: Path, format_live_server: Any, tmp_path: Path
) -> None:
    local = mamamia.open(format_catalog_dir)
    remote = mamamia.connect(format_live_server.url, cache_dir=tmp_path / "cache")
    options: dict[str, Any] = {"size": (8, 16, 16), "per_case": 2, "seed": 3}
    ids = local.cohort("true").case_ids
    assert remote.cohort("true").case_ids == ids
    for sampler, cases in (("tumor", ids), ("grid", ids[:2])):
        mine = list(local.crops(cases, sampler=sampler, **options))
        theirs = list(remote.crops(cases, sampler=sampler, **options))
        assert len(mine) == len(theirs) > 0
        for a, b in zip(mine, theirs, strict=True):
            assert (a["patient_id"], a["index"], a["spacing"]) == (
                b["patient_id"],
                b["index"],
                b["spacing"],
            )
            assert np.array_equal(a["image"], b["image"])
            assert np.array_equal(a["label"], b["label"])


@pytest.mark.parametrize(
    "spacing", [(1.3, 0.5, 0.77), (3.1, 2.2, 0.4), (2.0, 0.7, 0.8), (0.5, 0.5, 0.5)]
)
def test_resampled_tumour_crops_are_centred_on_tumour(
    cat: mamamia.Catalog, spacing: tuple[float, ...]
) -> None:
    crops = list(
        cat.crops(
            cat.cohort("tumor_voxels > 0"),
            size=(7, 9, 8),
            spacing=spacing,
            pos_ratio=1.0,
            per_case=10,
        )
    )
    assert len(crops) == 60
    assert all(centre_voxel(crop) == 1 for crop in crops)
    assert all(crop["image"].shape == (3, 7, 9, 8) for crop in crops)


@pytest.mark.parametrize("spacing", [None, (2.3, 0.93, 1.13)])
def test_shared_reads_give_the_same_crops_as_separate_ones(
    cat: mamamia.Catalog, spacing: tuple[float, ...] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mamamia._crops._read import CaseReader

    stream = cat.crops(["CROP_001"], size=(10, 12, 14), spacing=spacing)
    reader = CaseReader(cat.case("CROP_001"), stream.options)
    # Overlapping windows (one overhanging the origin, one wholly outside): one shared read.
    starts = [(-3, -2, 1), (0, 3, 3), (1, 4, 5), (2, 5, 4), (3, 6, 6), (30, 60, 60)]
    reads: list[Any] = []
    original = mamamia.Volume.__getitem__

    def counting(self: Any, key: Any) -> Any:
        reads.append(key)
        return original(self, key)

    monkeypatch.setattr(mamamia.Volume, "__getitem__", counting)
    shared = reader.read_many(starts)
    assert len(reads) == 3  # phase 0, phase 1 and the label, once each for all the crops
    monkeypatch.undo()
    for crop, start in zip(shared, starts, strict=True):
        alone = reader.read(start)
        assert crop["index"] == alone["index"] == start
        assert np.array_equal(crop["image"], alone["image"])
        assert np.array_equal(crop["label"], alone["label"])
