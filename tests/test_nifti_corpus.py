"""Every NIfTI file nibabel ships in its test data, and crafted variants of them, through the
ingest reader: an accepted volume equals SimpleITK's read bit for bit (the catalog's rule), with
its NaN/inf voxels counted; a refused one gets a message naming the file and the field."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from mamamia_ingest._nifti import (
    LoadedVolume,
    NiftiError,
    PrivateDir,
    load_volume,
    read_header_info,
)

BUDGET = 1 << 30
NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"
NIBABEL_FILES = sorted(p for p in NIBABEL_DATA.iterdir() if ".nii" in p.name)


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateDir]:
    with PrivateDir(tmp_path_factory.mktemp("private")) as p:
        yield p


def _file_values(path: Path) -> np.ndarray[Any, Any]:
    """The file's own voxels (no scaling), ``(z, y, x)``, as nibabel decodes them."""
    img = nib.load(path)
    raw = np.asanyarray(img.dataobj.get_unscaled())  # type: ignore[attr-defined]
    return np.asarray(raw.reshape(raw.shape[:3], order="F").transpose(2, 1, 0))


def _read(path: Path, private: PrivateDir) -> LoadedVolume:
    return load_volume(path, read_header_info(path, private, BUDGET), private, BUDGET)


def _accepts(path: Path, private: PrivateDir) -> None:
    vol = _read(path, private)
    image = sitk.ReadImage(str(path))
    # Geometry exactly as SimpleITK reads it (qform-only, sform-only, big-endian alike).
    assert vol.info.size_xyz == image.GetSize()
    assert vol.info.spacing_xyz == image.GetSpacing()
    assert vol.info.origin_xyz == image.GetOrigin()
    assert vol.info.direction == image.GetDirection()
    want = sitk.GetArrayFromImage(image)
    assert vol.array.dtype == want.dtype, path.name
    assert vol.array.shape == want.shape, path.name
    assert vol.array.tobytes() == want.tobytes(), path.name  # bit for bit, NaN included
    values = _file_values(path)
    expected_non_finite = (
        int(np.count_nonzero(~np.isfinite(values))) if values.dtype.kind == "f" else 0
    )
    assert vol.non_finite == expected_non_finite, path.name
    if vol.finite is not None:
        assert np.array_equal(vol.finite, np.isfinite(values))


def _refuses(path: Path, private: PrivateDir, rule: str, *words: str) -> None:
    with pytest.raises(NiftiError) as caught:
        _read(path, private)
    assert caught.value.rule == rule, caught.value.message
    assert path.name in caught.value.message
    for word in words:
        assert word in caught.value.message
    assert "0x" not in caught.value.message  # no pointer addresses: reports reproducible
    assert str(path.parent) not in caught.value.message


# The verdict for each file nibabel ships: None = accepted, else (rule, words in the message).
NIBABEL_VERDICTS: dict[str, tuple[str, ...] | None] = {
    "anatomical.nii": None,
    "example4d.nii.gz": ("dims", "3D"),
    "example_nifti2.nii.gz": ("file_type", "NIfTI-2"),
    "functional.nii": ("dims", "3D"),
    "reoriented_anat_moved.nii": None,
    "resampled_anat_moved.nii": None,  # big-endian float32 with 153 NaN
    "row_major.dconn.nii": ("file_type", "NIfTI-2"),
    "standard.nii.gz": None,
}


def test_the_corpus_is_the_one_expected() -> None:
    # A new nibabel release adding a file makes this fail, so each file gets a verdict.
    assert {p.name for p in NIBABEL_FILES} == set(NIBABEL_VERDICTS)


@pytest.mark.parametrize("path", NIBABEL_FILES, ids=lambda p: p.name)
def test_nibabel_test_data(path: Path, private: PrivateDir) -> None:
    verdict = NIBABEL_VERDICTS[path.name]
    if verdict is None:
        _accepts(path, private)
    else:
        _refuses(path, private, verdict[0], *verdict[1:])


def test_big_endian_nan_file_is_counted() -> None:
    path = NIBABEL_DATA / "resampled_anat_moved.nii"
    with PrivateDir() as private:
        info = read_header_info(path, private, BUDGET)
        vol = load_volume(path, info, private, BUDGET)
    assert vol.non_finite == 153
    assert np.isfinite(vol.array).all()


# Crafted variants: a header field patched in the bytes of a real file.
def _patch(src: Path, out: Path, edits: list[tuple[int, str, Any]], pad: int = 0) -> Path:
    """``src`` with header fields overwritten and ``pad`` zero bytes before the voxels."""
    data = bytearray(src.read_bytes())
    data[352:352] = bytes(pad)
    order = "<" if struct.unpack_from("<i", data, 0)[0] == 348 else ">"
    for offset, fmt, value in edits:
        struct.pack_into(order + fmt, data, offset, value)
    out.write_bytes(bytes(data))
    return out


def _nib(out: Path, array: np.ndarray[Any, Any], edit: Callable[[Any], None] | None = None) -> Path:
    img = nib.Nifti1Image(array, np.diag([0.8, 0.9, 2.5, 1.0]), dtype=array.dtype)
    if edit is not None:
        edit(img)
    nib.save(img, out)
    return out


def _float_with_non_finite(dtype: type) -> np.ndarray[Any, Any]:
    a = np.random.default_rng(3).normal(100, 20, (7, 6, 5)).astype(dtype)
    a[0, 0, :3] = [np.nan, np.inf, -np.inf]
    a[3, 2, 1] = np.nan
    return a


def _int64(dtype: type) -> np.ndarray[Any, Any]:
    a = np.arange(7 * 6 * 5, dtype=dtype).reshape(7, 6, 5)
    a.flat[5] = (1 << 62) + 1 if dtype is np.int64 else (1 << 63) + 1  # not a float64 value
    return a


def _qform_only(img: Any) -> None:
    img.set_qform(np.diag([0.8, 0.9, 2.5, 1.0]), code=1)
    img.set_sform(None, code=0)


def _sform_only(img: Any) -> None:
    aff = np.array([[0, -0.9, 0, 5], [0.8, 0, 0, -3], [0, 0, 2.5, 1], [0, 0, 0, 1]])
    img.set_sform(aff, code=2)
    img.set_qform(None, code=0)


def _extensions(img: Any) -> None:
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"a comment" * 9))
    img.header.extensions.append(nib.nifti1.Nifti1Extension(4, b"<afni/>"))


def _slope(slope: float, inter: float) -> Callable[[Any], None]:
    def edit(img: Any) -> None:
        img.header.set_slope_inter(slope, inter)

    return edit


ANAT = NIBABEL_DATA / "anatomical.nii"  # big-endian int16
SMALL = np.random.default_rng(1).integers(-300, 900, (7, 6, 5)).astype(np.int16)

ACCEPTED: dict[str, Callable[[Path], Path]] = {
    "float32_nan_inf": lambda d: _nib(d / "f4.nii.gz", _float_with_non_finite(np.float32)),
    "float64_nan_inf": lambda d: _nib(d / "f8.nii", _float_with_non_finite(np.float64)),
    "int64": lambda d: _nib(d / "i8.nii.gz", _int64(np.int64)),
    "uint64": lambda d: _nib(d / "u8.nii", _int64(np.uint64)),
    "big_endian_int16": lambda d: _patch(ANAT, d / "be.nii", []),
    "scl_slope_0": lambda d: _patch(ANAT, d / "slope0.nii", [(112, "f", 0.0), (116, "f", 0.0)]),
    "scaled": lambda d: _nib(d / "scaled.nii", SMALL, _slope(2.5, -7.0)),
    "qform_only": lambda d: _nib(d / "qform.nii.gz", SMALL, _qform_only),
    "sform_only": lambda d: _nib(d / "sform.nii.gz", SMALL, _sform_only),
    "extensions": lambda d: _nib(d / "ext.nii.gz", SMALL, _extensions),
    "vox_offset_padded": lambda d: _patch(ANAT, d / "pad.nii", [(108, "f", 400.0)], 48),
    "vox_offset_not_16_aligned": lambda d: _patch(ANAT, d / "odd.nii", [(108, "f", 356.0)], 4),
}

REFUSED: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "bitpix_8_for_int16": (
        lambda d: _patch(ANAT, d / "bitpix.nii", [(72, "h", 8)]),
        ("header", "bitpix 16", "bitpix 8"),
    ),
    "vox_offset_fraction": (
        lambda d: _patch(ANAT, d / "frac.nii", [(108, "f", 352.5)]),
        ("header", "vox_offset 352.5"),
    ),
    "vox_offset_zero": (
        lambda d: _patch(ANAT, d / "zero.nii", [(108, "f", 0.0)]),
        ("header", "vox_offset 0"),
    ),
    "vox_offset_nan": (
        lambda d: _patch(ANAT, d / "nanoff.nii", [(108, "f", float("nan"))]),
        ("header", "vox_offset nan"),
    ),
    "scl_slope_nan": (
        lambda d: _patch(ANAT, d / "slopenan.nii", [(112, "f", float("nan"))]),
        ("header", "scl_slope nan"),
    ),
    "scl_slope_0_with_inter": (
        lambda d: _patch(ANAT, d / "slope0i.nii", [(112, "f", 0.0), (116, "f", 5.0)]),
        ("header", "scl_inter 5.0"),
    ),
    "datatype_rgb": (
        lambda d: _patch(ANAT, d / "rgb.nii", [(70, "h", 128), (72, "h", 24)]),
        ("pixel_type", "datatype 128", "rgb24"),
    ),
    "datatype_unknown": (
        lambda d: _patch(ANAT, d / "dt.nii", [(70, "h", 3)]),
        ("pixel_type", "datatype 3"),
    ),
    "negative_dim": (
        lambda d: _patch(ANAT, d / "negdim.nii", [(44, "h", -4)]),
        ("dims", "size <= 0"),
    ),
    "pair_magic": (
        lambda d: _patch(ANAT, d / "ni1.nii", [(344, "4s", b"ni1\x00")]),
        ("file_type", "magic"),
    ),
    "extension_overruns_voxels": (
        lambda d: _patch(
            ANAT,
            d / "extrun.nii",
            [(108, "f", 368.0), (348, "4s", b"\x01\x00\x00\x00"), (352, "i", 32), (356, "i", 6)],
        ),
        ("header", "runs past vox_offset 368"),
    ),
    "extension_bad_esize": (
        lambda d: _patch(
            ANAT,
            d / "extsize.nii",
            [(108, "f", 368.0), (348, "4s", b"\x01\x00\x00\x00"), (352, "i", 10), (356, "i", 6)],
        ),
        ("header", "esize 10"),
    ),
    "nifti2": (
        lambda d: (
            nib.save(nib.Nifti2Image(SMALL, np.eye(4)), d / "two.nii")  # type: ignore[func-returns-value]
            or d / "two.nii"
        ),
        ("file_type", "NIfTI-2"),
    ),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_crafted_accepted(name: str, tmp_path: Path, private: PrivateDir) -> None:
    _accepts(ACCEPTED[name](tmp_path), private)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_crafted_refused(name: str, tmp_path: Path, private: PrivateDir) -> None:
    make, (rule, *words) = REFUSED[name]
    _refuses(make(tmp_path), private, rule, *words)
