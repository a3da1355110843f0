"""The frozen option objects: checked once when made, errors naming the parameter."""

from __future__ import annotations

import dataclasses

import pytest

from mamamia import CropOptions, InvalidRequest
from mamamia_ingest import IngestError, IngestOptions


def test_crop_options_normalise_and_stay_frozen() -> None:
    options = CropOptions(size=32, phases=2, spacing=1, threads=3)
    assert options.size == (32, 32, 32)
    assert options.phases == (2,) and options.channels == 2 and options.read_phases == (0, 1, 2)
    assert options.spacing == (1.0, 1.0, 1.0)
    assert options.overlap == (8, 8, 8)  # a quarter of the size
    assert options.prefetch == 6  # twice the threads
    assert CropOptions().threads is None and CropOptions().prefetch is None  # the stream decides
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.seed = 1  # type: ignore[misc]
    again = dataclasses.replace(options, epoch=3)
    assert again.epoch == 3 and again.size == options.size


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"size": (8, 8)}, "size must be three ints"),
        ({"phases": (1, 1)}, "phases lists a phase twice"),
        ({"phases": (), "subtraction": False}, "no channel"),
        ({"sampler": "random"}, "sampler must be one of"),
        ({"pos_ratio": 1.5}, r"pos_ratio must be a number in \[0, 1\]"),
        ({"per_case": 0}, "per_case must be an int >= 1"),
        ({"epoch": -1}, "epoch must be an int >= 0"),
        ({"rank": 2, "world_size": 2}, r"rank must be an int in \[0, world_size=2\)"),
        ({"threads": 0}, "threads must be an int >= 1"),
        ({"prefetch": 0}, "prefetch must be an int >= 1"),
        ({"sampler": "grid", "spacing": 1.0}, "does not combine with sampler='grid'"),
        ({"size": 8, "overlap": 8}, "overlap .* must be smaller than size"),
    ],
)
def test_crop_options_name_the_bad_parameter(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        CropOptions(**changes)  # type: ignore[arg-type]


def test_ingest_options_normalise_and_check() -> None:
    options = IngestOptions(jobs=2, cases=["duke_*, nact_01", " "], chunks=[8, 16, 16])
    assert options.cases == ("DUKE_*", "NACT_01")
    assert options.chunks == (8, 16, 16)
    assert options.volume_settings.chunks_zyx == (8, 16, 16)
    assert IngestOptions().jobs >= 1 and IngestOptions(cases=" , ").cases is None
    for bad, message in (
        ({"jobs": 0}, "--jobs must be at least 1"),
        ({"executor": "threads"}, "--executor must be 'processes' or 'dask'"),
        ({"scheduler": "tcp://h:8786"}, "--scheduler needs --executor dask"),
        ({"chunks": (8, 8)}, "--chunks must be three positive integers"),
        ({"chunks": ("a", 1, 1)}, "--chunks must be three positive integers"),
        ({"max_volume_bytes": 0}, "--max-volume-mb must be positive"),
    ):
        with pytest.raises(IngestError, match=message):
            IngestOptions(**bad)  # type: ignore[arg-type]
