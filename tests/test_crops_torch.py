"""Crop streaming through torch: DataLoader workers (spawn), sharding across ranks, even shards.

torch is an optional extra (``make torch`` installs the CPU wheel); ``make test`` installs it
before pytest, so these tests run, never skip.
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import mamamia
from crops_catalog import PhantomCase, build_catalog
from mamamia._crops._stream import catalog_opener


@pytest.fixture(scope="session")
def torch_catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, PhantomCase]]:
    root = tmp_path_factory.mktemp("crops-torch-catalog")
    return root, build_catalog(root)


def _loader(dataset: torch.utils.data.IterableDataset, workers: int) -> DataLoader:
    # forkserver (or spawn): zarr's event-loop thread and DuckDB's threads make fork unsafe.
    # Preloading the imports into the fork server makes each worker start in a blink.
    if workers:
        multiprocessing.set_forkserver_preload(["torch", "mamamia", "mamamia._crops._torch"])
    return DataLoader(
        dataset,
        batch_size=2,
        num_workers=workers,
        multiprocessing_context="forkserver" if workers else None,
    )


def test_two_ranks_of_two_workers_cover_each_case_once_per_epoch(
    torch_catalog: tuple[Path, dict[str, PhantomCase]],
) -> None:
    root, cases = torch_catalog
    cat = mamamia.open(root)
    cohort = cat.cohort("true")
    streams = [
        cat.crops(cohort, size=(8, 8, 8), rank=rank, world_size=2, threads=1, seed=9)
        for rank in range(2)
    ]
    datasets = [stream.torch() for stream in streams]
    # The dataset pickles without an open catalog, and reopens it by path in each worker.
    assert pickle.loads(pickle.dumps(datasets[0])).case_ids == cohort.case_ids
    per_epoch = []
    for epoch in (0, 1):
        seen: list[str] = []
        for stream, dataset in zip(streams, datasets, strict=True):
            dataset.set_epoch(epoch)
            stream.set_epoch(epoch)
            plain = {(c["patient_id"], c["index"]): c["image"] for c in stream}
            got = {}
            for batch in _loader(dataset, workers=2):
                assert batch["image"].dtype == torch.float32
                assert batch["image"].shape[1:] == (3, 8, 8, 8)
                assert batch["label"].dtype == torch.uint8
                assert batch["index"].shape[1:] == (3,)
                assert batch["index"].dtype == torch.int64
                for i, pid in enumerate(batch["patient_id"]):
                    seen.append(pid)
                    got[(pid, tuple(int(v) for v in batch["index"][i]))] = batch["image"][i]
            assert len(got) == len(dataset) == len(stream)
            # Workers read exactly the crops the rank's plain stream reads.
            assert got.keys() == plain.keys()
            for key, image in got.items():
                assert np.array_equal(image.numpy(), plain[key])
        assert Counter(seen) == Counter(cohort.case_ids), f"epoch {epoch}: {Counter(seen)}"
        per_epoch.append(seen)
    assert per_epoch[0] != per_epoch[1]  # each epoch has its own order
    assert len(cases) == 7


def test_even_gives_every_rank_the_same_number_of_crops(
    torch_catalog: tuple[Path, dict[str, PhantomCase]],
) -> None:
    cat = mamamia.open(torch_catalog[0])
    cohort = cat.cohort("true")  # 7 cases over 2 ranks: 4 and 3 unless padded
    lengths = []
    seen: list[str] = []
    for rank in range(2):
        dataset = cat.crops(cohort, size=8, rank=rank, world_size=2, even=True, threads=1).torch()
        ids = [pid for batch in _loader(dataset, workers=0) for pid in batch["patient_id"]]
        assert len(ids) == len(dataset)
        lengths.append(len(ids))
        seen += ids
    assert lengths == [4, 4]
    assert set(seen) == set(cohort.case_ids)


def test_in_process_dataset_and_grid_stitching_of_tensors(
    torch_catalog: tuple[Path, dict[str, PhantomCase]],
) -> None:
    root, cases = torch_catalog
    cat = mamamia.open(root)
    stream = cat.crops(
        ["CROP_003"], size=(8, 16, 16), sampler="grid", normalize=None, subtraction=False
    )
    dataset = stream.torch()
    pairs = []
    for crop in DataLoader(dataset, batch_size=None, num_workers=0):
        # A "model" returning its input, as a tensor (the stitcher takes tensors too).
        pairs.append(
            ({"patient_id": crop["patient_id"], "index": crop["index"].tolist()}, crop["image"])
        )
    ((pid, volume),) = list(stream.stitch(pairs))
    assert pid == "CROP_003"
    assert np.array_equal(volume, cases["CROP_003"].image.astype(np.float32))


def test_remote_catalog_dataset_runs_in_dataloader_workers(
    format_catalog_dir: Path, format_live_server: Any, tmp_path: Path
) -> None:
    remote = mamamia.connect(format_live_server.url, cache_dir=tmp_path / "cache")
    local = mamamia.open(format_catalog_dir)
    ids = local.cohort("true").case_ids[:3]
    dataset = remote.crops(ids, size=8, seed=2).torch()
    got = [
        (crop["patient_id"], crop["index"].tolist())
        for crop in DataLoader(dataset, batch_size=None)
    ]
    want = [(crop["patient_id"], list(crop["index"])) for crop in local.crops(ids, size=8, seed=2)]
    assert got == want
    # Workers reconnect to the same server and catalog version through the picklable opener.
    assert catalog_opener(remote) is not None
    pickle.loads(pickle.dumps(dataset))
    in_workers = [
        (crop["patient_id"], crop["index"].tolist())
        for crop in DataLoader(
            dataset, batch_size=None, num_workers=2, multiprocessing_context="forkserver"
        )
    ]
    assert sorted(in_workers) == sorted(want)
