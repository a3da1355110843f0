"""A Volume behaves as an array, and one box rule holds in the SDK and over HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

import mamamia
from conftest import LiveServer
from mamamia import BoxOutOfRange, InvalidIndex, MamamiaError


@pytest.fixture(scope="module")
def case(catalog_dir: Path) -> mamamia.Case:
    return mamamia.open(catalog_dir).case("DUKE_001")


def test_numpy_reads_a_volume(case: mamamia.Case) -> None:
    mask = case.mask("expert")
    whole = mask.to_numpy()
    assert np.asarray(mask).shape == mask.shape == whole.shape
    assert int(np.sum(mask)) == int(whole.sum()) > 0
    assert np.asarray(mask, dtype=np.float32).dtype == np.float32
    assert len(case.image) == case.image.shape[0]
    assert case.image.size == int(np.prod(case.image.shape))
    assert case.image.ndim == 4 and mask.ndim == 3
    assert np.array_equal(np.array(case.image)[1], case.image[1])
    with pytest.raises(ValueError, match="copy"):
        np.asarray(mask, copy=False)


def test_index_errors_name_the_axis_and_range(case: mamamia.Case) -> None:
    phases, nz, ny, nx = case.image.shape
    with pytest.raises(BoxOutOfRange, match=rf"outside axis phase: it has {phases}") as info:
        case.image[phases, ...]
    assert isinstance(info.value, IndexError) and isinstance(info.value, MamamiaError)
    with pytest.raises(BoxOutOfRange, match=rf"part inside is z={nz - 2}:{nz}"):
        case.image[0, nz - 2 : nz + 5]
    with pytest.raises(BoxOutOfRange, match="no part of it is inside"):
        case.mask("expert")[:, ny + 1 : ny + 5]
    with pytest.raises(BoxOutOfRange, match="empty"):
        case.image[0, 3:3]
    with pytest.raises(InvalidIndex, match="too many indices") as bad:
        case.image[0, 0, 0, 0, 0]
    assert isinstance(bad.value, ValueError) and isinstance(bad.value, MamamiaError)
    with pytest.raises(InvalidIndex, match="step"):
        case.image[0, ::2]
    # Inside the volume, numpy's conventions hold: negative indices count from the end.
    assert np.array_equal(case.image[-1, -1], case.image[phases - 1, nz - 1])
    assert case.image[0, 1:3, :, 2:nx].shape == (2, ny, nx - 2)


def test_http_refuses_the_same_boxes_with_the_same_words(
    live_server: LiveServer, case: mamamia.Case
) -> None:
    _, nz, ny, nx = case.image.shape
    url = f"{live_server.url}/v1/cases/DUKE_001/crop"
    answer = httpx.get(url, params={"kind": "image", "phase": 0, "z": f"{nz - 2}:{nz + 5}"})
    assert answer.status_code == 422
    with pytest.raises(BoxOutOfRange) as info:
        case.image[0, nz - 2 : nz + 5]
    assert answer.json()["detail"] == str(info.value)
    inside = httpx.get(
        url, params={"kind": "image", "phase": 0, "z": f"{nz - 2}:{nz}", "format": "npy"}
    )
    assert inside.status_code == 200
    assert inside.headers["X-Start-ZYX"] == f"{nz - 2},0,0"
    assert inside.headers["X-Shape"] == f"2,{ny},{nx}"
