"""Crops and slice previews of a case's volumes, read through the SDK's lazy Volume.

Only the chunks a crop or slice touches are read: the Volume (or, for previews, the 2x
downsampled level ``1`` of the same OME-Zarr image) is sliced with numpy indexing, and
zarr fetches exactly the intersecting chunks.
"""

from __future__ import annotations

import gzip
import io
import itertools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

import mamamia
from mamamia_server._problem_responses import ApiError

__all__ = [
    "RANGE_PATTERN",
    "Crop",
    "crop_answer",
    "crop_headers",
    "nifti_bytes",
    "npy_bytes",
    "parse_range",
    "plane_layout",
    "raw_bytes",
    "render_slice",
]

#: ``a:b``, ``a:``, ``:b``, ``:``, ``a`` (one index) or empty (whole axis); half-open.
RANGE_PATTERN = r"^(\d{1,9})?(:(\d{1,9})?)?$"
_RANGE = re.compile(RANGE_PATTERN)


def parse_range(text: str | None, size: int, axis: str) -> tuple[int, int]:
    """``[start, stop)`` of one axis of length ``size``; 422 if it is empty or leaves the volume."""
    if text is None or text == "":
        return 0, size
    match = _RANGE.match(text)
    if match is None:
        raise ApiError(422, f"{axis}={text!r} is not a range like 10:74", slug="invalid-range")
    start = int(match.group(1)) if match.group(1) else None
    if match.group(2) is None:  # a single index
        stop: int | None = (start or 0) + 1
    else:
        stop = int(match.group(3)) if match.group(3) else None
    try:
        # The SDK's rule: a box that leaves the volume, even partly, is refused, never clipped.
        return mamamia.box_range(axis, start, stop, size)
    except mamamia.BoxOutOfRange as exc:
        raise ApiError(422, str(exc), slug="invalid-range") from None


@dataclass(frozen=True)
class Crop:
    """One crop's voxels and where its first voxel lies."""

    data: npt.NDArray[Any]
    start_zyx: tuple[int, int, int]
    volume: mamamia.Volume


def crop_headers(crop: Crop) -> dict[str, str]:
    volume = crop.volume
    origin = volume.origin_of(crop.start_zyx)
    return {
        "X-Shape": ",".join(str(n) for n in crop.data.shape),
        "X-Dtype": crop.data.dtype.name,
        "X-Byte-Order": "little",
        "X-Spacing-XYZ": ",".join(repr(float(v)) for v in volume.spacing_xyz),
        "X-Origin-XYZ": ",".join(repr(float(v)) for v in origin),
        "X-Direction": ",".join(repr(float(v)) for v in volume.direction),
        "X-Start-ZYX": ",".join(str(n) for n in crop.start_zyx),
    }


def _little(data: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))


def raw_bytes(crop: Crop) -> bytes:
    return _little(crop.data).tobytes()


def npy_bytes(crop: Crop) -> bytes:
    sink = io.BytesIO()
    np.save(sink, _little(crop.data), allow_pickle=False)
    return sink.getvalue()


def nifti_bytes(crop: Crop) -> bytes:
    """A .nii.gz whose affine puts the crop exactly where it lies in the source (RAS, nibabel)."""
    import nibabel as nib

    affine = crop.volume.affine(ras=True)
    z0, y0, x0 = crop.start_zyx
    affine[:3, 3] = (affine @ np.array([x0, y0, z0, 1.0]))[:3]
    data = np.ascontiguousarray(crop.data.transpose(2, 1, 0))
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return gzip.compress(image.to_bytes(), compresslevel=1)


_CROP_MEDIA = {
    "raw": "application/octet-stream",
    "npy": "application/x-npy",
    "nifti": "application/gzip",
}


async def crop_answer(
    volume: mamamia.Volume,
    kind: str,
    phase: int | None,
    box: tuple[slice, slice, slice],
    fmt: str,
) -> Response:
    """Read a checked box of ``volume`` and answer it in ``fmt`` with the crop headers.

    The one answer of the crop route and of its lean path (``_fast_crop.py``)."""
    started = time.perf_counter()
    p = 0 if phase is None else phase
    data = await volume.read_async((p, *box) if kind == "image" else box)
    read_ms = (time.perf_counter() - started) * 1000
    result = Crop(data=np.asarray(data), start_zyx=(box[0].start, box[1].start, box[2].start),
                  volume=volume)  # fmt: skip
    headers = crop_headers(result)
    headers["Server-Timing"] = f"read;dur={read_ms:.2f}"
    if fmt == "raw":
        return Response(raw_bytes(result), media_type=_CROP_MEDIA[fmt], headers=headers)
    name = f"{volume.patient_id}_{kind}" + (f"_p{p}" if kind == "image" else "")
    if fmt == "nifti":
        headers["Content-Disposition"] = f'attachment; filename="{name}_crop.nii.gz"'
        body = await run_in_threadpool(nifti_bytes, result)  # gzip: seconds for big boxes
        return Response(body, media_type=_CROP_MEDIA[fmt], headers=headers)
    headers["Content-Disposition"] = f'attachment; filename="{name}_crop.npy"'
    return Response(npy_bytes(result), media_type=_CROP_MEDIA[fmt], headers=headers)


# ---------------------------------------------------------------------------------- slices

#: For each plane: the LPS axis it is normal to, then (LPS axis, sign) of increasing display
#: rows and columns. Radiological convention: axial seen from the feet (patient's right on the
#: image's left, anterior up), coronal seen from the front, sagittal with anterior on the left.
_PLANES: dict[str, tuple[int, tuple[int, int], tuple[int, int]]] = {
    "axial": (2, (1, +1), (0, +1)),
    "coronal": (1, (2, -1), (0, +1)),
    "sagittal": (0, (2, -1), (1, +1)),
}


def _lps_axes(direction: Sequence[float]) -> tuple[list[int], list[int]]:
    """For image axes i, j, k: the LPS axis each points along most, and the sign."""
    matrix = np.abs(np.asarray(direction, dtype=float).reshape(3, 3))
    best = max(
        itertools.permutations(range(3)),
        key=lambda perm: sum(matrix[perm[c], c] for c in range(3)),
    )
    signed = np.asarray(direction, dtype=float).reshape(3, 3)
    signs = [1 if signed[best[c], c] >= 0 else -1 for c in range(3)]
    return list(best), signs


@dataclass(frozen=True)
class PlaneLayout:
    """How to cut and orient one anatomical plane of a (z, y, x) array."""

    normal_axis: int  # array axis fixed by the slice index
    row_axis: int  # array axis that becomes display rows
    col_axis: int
    flip_rows: bool
    flip_cols: bool


def plane_layout(direction: Sequence[float], plane: str) -> PlaneLayout:
    """The array axes and flips that show ``plane`` in radiological convention."""
    lps, signs = _lps_axes(direction)
    normal, (row_lps, row_sign), (col_lps, col_sign) = _PLANES[plane]
    by_lps = {lps[c]: c for c in range(3)}  # LPS axis -> image axis (i=0, j=1, k=2)
    normal_c, row_c, col_c = by_lps[normal], by_lps[row_lps], by_lps[col_lps]
    return PlaneLayout(
        normal_axis=2 - normal_c,
        row_axis=2 - row_c,
        col_axis=2 - col_c,
        flip_rows=signs[row_c] != row_sign,
        flip_cols=signs[col_c] != col_sign,
    )


def orient(plane2d: npt.NDArray[Any], layout: PlaneLayout) -> npt.NDArray[Any]:
    """A 2D cut (remaining array axes in order) turned into display rows and columns."""
    remaining = [a for a in range(3) if a != layout.normal_axis]
    out = plane2d if remaining.index(layout.row_axis) == 0 else plane2d.T
    if layout.flip_rows:
        out = out[::-1, :]
    if layout.flip_cols:
        out = out[:, ::-1]
    return out


def cut(array: Any, leading: tuple[int, ...], layout: PlaneLayout, index: int) -> Any:
    """Read only one plane: ``array[leading..., <index on the normal axis>]``."""
    key: list[Any] = [slice(None)] * 3
    key[layout.normal_axis] = index
    return np.asarray(array[(*leading, *key)])


def _outline(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    inner[0, :] = inner[-1, :] = False
    inner[:, 0] = inner[:, -1] = False
    return mask & ~inner


_OVERLAY_COLOURS = {"expert": (255, 40, 40), "automatic": (40, 220, 255)}


def render_slice(
    plane: npt.NDArray[Any],
    *,
    out_shape: tuple[int, int],
    low: float,
    high: float,
    mask: npt.NDArray[Any] | None = None,
    overlay: str | None = None,
) -> bytes:
    """An oriented 2D plane as a PNG of ``out_shape`` (rows, cols), windowed to [low, high]."""
    from PIL import Image

    values = np.asarray(plane, dtype=np.float32)
    scaled = np.clip((values - low) / max(high - low, 1e-6), 0.0, 1.0) * 255.0
    grey = Image.fromarray(np.ascontiguousarray(scaled.astype(np.uint8)))
    rows, cols = out_shape
    grey = grey.resize((cols, rows), Image.Resampling.BILINEAR)
    if mask is not None and overlay is not None:
        labels = Image.fromarray(
            np.ascontiguousarray((np.asarray(mask) > 0).astype(np.uint8) * 255)
        )
        labels = labels.resize((cols, rows), Image.Resampling.NEAREST)
        edge = _outline(np.asarray(labels) > 0)
        rgb = np.repeat(np.asarray(grey)[:, :, None], 3, axis=2)
        rgb[edge] = _OVERLAY_COLOURS[overlay]
        image = Image.fromarray(rgb)
    else:
        image = grey
    sink = io.BytesIO()
    image.save(sink, format="PNG", compress_level=3)
    return sink.getvalue()
