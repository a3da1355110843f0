"""The streaming NIfTI reader (mamamia_ingest._nifti): voxels and geometry equal SimpleITK's
across gzip members, piece boundaries, tiny files, header extensions and the link fallback;
broken streams get the right rule."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

import mamamia_ingest._nifti as nifti
from ingest_helpers import write_volume
from mamamia_ingest._nifti import NiftiError, PrivateDir, load_volume, read_header_info

BUDGET = 1 << 30
ROT = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def _check(path: Path, private: PrivateDir) -> None:
    image = sitk.ReadImage(str(path))
    info = read_header_info(path, private, BUDGET)
    assert info.size_xyz == image.GetSize()
    assert info.spacing_xyz == image.GetSpacing()
    assert info.origin_xyz == image.GetOrigin()
    assert info.direction == image.GetDirection()
    vol = load_volume(path, info, private, BUDGET)
    want = sitk.GetArrayFromImage(image)
    assert vol.array.dtype == want.dtype
    np.testing.assert_array_equal(vol.array, want)
    assert vol.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def private(tmp_path: Path) -> Any:
    with PrivateDir(tmp_path) as p:
        yield p


def _array(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).integers(-2000, 3000, shape).astype(np.int16)


def test_volume_bigger_than_a_read_piece(tmp_path: Path, private: PrivateDir) -> None:
    # ~3.4 MB of voxels: several 1 MiB inflate pieces, the header split from the rest.
    path = write_volume(tmp_path / "a.nii.gz", _array((21, 300, 270)), direction=ROT)
    _check(path, private)


def test_tiny_volume_under_540_bytes(tmp_path: Path, private: PrivateDir) -> None:
    for name in ("t.nii.gz", "t.nii"):
        path = write_volume(tmp_path / name, _array((2, 2, 3)))
        assert (
            len(gzip.decompress(path.read_bytes()) if name.endswith("gz") else path.read_bytes())
            < 540
        )
        _check(path, private)


def test_two_gzip_members(tmp_path: Path, private: PrivateDir) -> None:
    one = write_volume(tmp_path / "one.nii.gz", _array((9, 40, 50), seed=3))
    raw = gzip.decompress(one.read_bytes())
    cut = len(raw) // 3
    two = tmp_path / "two.nii.gz"
    two.write_bytes(gzip.compress(raw[:cut]) + gzip.compress(raw[cut:]))
    _check(two, private)
    vol_one = load_volume(one, read_header_info(one, private, BUDGET), private, BUDGET)
    vol_two = load_volume(two, read_header_info(two, private, BUDGET), private, BUDGET)
    np.testing.assert_array_equal(vol_one.array, vol_two.array)


def test_garbage_after_the_stream_is_corrupt(tmp_path: Path, private: PrivateDir) -> None:
    path = write_volume(tmp_path / "g.nii.gz", _array((4, 10, 10)))
    path.write_bytes(path.read_bytes() + b"not gzip at all")
    info = read_header_info(path, private, BUDGET)
    with pytest.raises(NiftiError) as err:
        load_volume(path, info, private, BUDGET)
    assert err.value.rule == "corrupt"


def test_stream_cut_short_is_truncated(tmp_path: Path, private: PrivateDir) -> None:
    path = write_volume(tmp_path / "c.nii.gz", _array((8, 64, 64)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    info = read_header_info(path, private, BUDGET)
    with pytest.raises(NiftiError) as err:
        load_volume(path, info, private, BUDGET)
    assert err.value.rule == "truncated"


def test_header_extension_is_copied_for_itk(tmp_path: Path, private: PrivateDir) -> None:
    data = _array((5, 12, 14))
    affine = np.diag([-0.8, -0.9, 2.5, 1.0])
    affine[:3, 3] = [10.0, 20.0, -5.0]
    img = nib.Nifti1Image(np.ascontiguousarray(data.transpose(2, 1, 0)), affine)
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"a comment " * 40))
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    path = tmp_path / "ext.nii.gz"
    nib.save(img, str(path))
    raw, head = nifti._peek_header(path)
    assert raw.vox_offset > 352 and len(head) == raw.vox_offset  # the extension is in the copy
    _check(path, private)


def test_oversized_header_falls_back_to_a_link(
    tmp_path: Path, private: PrivateDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nifti, "_MAX_HEADER_COPY", 100)
    path = write_volume(tmp_path / "f.nii.gz", _array((4, 20, 30)), direction=ROT)
    _check(path, private)


def test_a_header_shared_byte_for_byte_is_read_by_itk_once(
    tmp_path: Path, private: PrivateDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    real = sitk.ImageFileReader.ReadImageInformation

    def counted(self: sitk.ImageFileReader) -> None:
        reads.append(self.GetFileName())
        real(self)

    monkeypatch.setattr(sitk.ImageFileReader, "ReadImageInformation", counted)
    # Two phases of one case: the same header bytes, other voxels; a third with other spacing.
    one = write_volume(tmp_path / "p0.nii.gz", _array((6, 20, 30), seed=1), direction=ROT)
    two = write_volume(tmp_path / "p1.nii.gz", _array((6, 20, 30), seed=2), direction=ROT)
    other = write_volume(tmp_path / "p2.nii.gz", _array((6, 20, 30)), spacing=(0.5, 0.5, 2.0))
    assert nifti._peek_header(one)[1] == nifti._peek_header(two)[1]
    infos = [read_header_info(p, private, BUDGET) for p in (one, two, other)]
    assert len(reads) == 2
    assert infos[0] == infos[1] != infos[2]
    for path, info in zip((one, two, other), infos, strict=True):
        image = sitk.ReadImage(str(path))
        assert (info.size_xyz, info.spacing_xyz, info.direction) == (
            image.GetSize(),
            image.GetSpacing(),
            image.GetDirection(),
        )
    # A header already read is still held to the budget of each call.
    with pytest.raises(NiftiError) as err:
        read_header_info(two, private, infos[1].nbytes - 1)
    assert err.value.rule == "voxel_budget"
