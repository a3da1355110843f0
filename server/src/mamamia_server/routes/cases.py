"""``/v1/cases/{id}``: fields, volume geometry, crops and slice previews."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

import mamamia
from mamamia_schema import PATIENT_ID_PATTERN
from mamamia_server._catalog_state import CatalogState
from mamamia_server._deps import SettingsDep, StateDep
from mamamia_server._formats import jsonable
from mamamia_server._problem_responses import ApiError, problem_responses
from mamamia_server._volume_reads import (
    RANGE_PATTERN,
    crop_answer,
    cut,
    orient,
    parse_range,
    plane_layout,
    render_slice,
)

__all__ = ["router"]

router = APIRouter(tags=["cases"])

CASE_ID_PATTERN = PATIENT_ID_PATTERN
CaseId = Annotated[str, Path(pattern=CASE_ID_PATTERN, description="A patient_id, e.g. DUKE_001.")]

_ERRORS = problem_responses(400, 401, 404, 409, 422)


class CaseFields(BaseModel):
    catalog_version: str
    patient_id: str
    fields: dict[str, Any] = Field(description="Every column of the cases row.")


class CaseVolume(BaseModel):
    model_config = {"extra": "allow"}

    kind: str
    phase: int | None
    shape: list[int] = Field(description="(z, y, x)")
    dtype: str
    spacing_xyz: list[float]
    origin_xyz: list[float]
    direction: list[float]
    orientation: str
    zarr_url: str = Field(description="The full-resolution array under /v1/zarr.")


class CaseVolumes(BaseModel):
    catalog_version: str
    patient_id: str
    volumes: list[CaseVolume]


def _case(state: CatalogState, case_id: str) -> mamamia.Case:
    return state.case(case_id)


def zarr_url(zarr_path: str) -> str:
    relative = zarr_path.removeprefix("volumes/")
    return "/v1/zarr/" + relative


@router.get("/v1/cases/{case_id}", response_model=CaseFields, responses=_ERRORS)
def case_fields(state: StateDep, case_id: CaseId) -> CaseFields:
    """Every field of one case."""
    case = _case(state, case_id)
    return CaseFields(
        catalog_version=state.version,
        patient_id=case.patient_id,
        fields={k: jsonable(v) for k, v in case.fields.items()},
    )


@router.get("/v1/cases/{case_id}/volumes", response_model=CaseVolumes, responses=_ERRORS)
def case_volumes(state: StateDep, case_id: CaseId) -> CaseVolumes:
    """The geometry of each stored volume of one case (one row per kind and phase)."""
    case = _case(state, case_id)
    volumes = []
    for row in case.volumes:
        item = {k: jsonable(v) for k, v in row.items() if k != "patient_id"}
        item["zarr_url"] = zarr_url(str(row["zarr_path"]))
        volumes.append(CaseVolume.model_validate(item))
    return CaseVolumes(catalog_version=state.version, patient_id=case.patient_id, volumes=volumes)


_RANGE_QUERY = {"pattern": RANGE_PATTERN, "max_length": 21}
_CROP_CONTENT = {
    "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "application/gzip": {"schema": {"type": "string", "format": "binary"}},
}


@router.get(
    "/v1/cases/{case_id}/crop",
    response_class=Response,
    responses={
        200: {"description": "The crop (.npy, raw bytes or .nii.gz).", "content": _CROP_CONTENT},
        **problem_responses(400, 401, 404, 409, 413, 422),
    },
)
async def crop(
    state: StateDep,
    settings: SettingsDep,
    case_id: CaseId,
    kind: Annotated[Literal["image", "expert", "automatic"], Query()] = "image",
    phase: Annotated[
        int | None, Query(ge=0, le=999, description="Image phase (default 0); not for masks.")
    ] = None,
    z: Annotated[str | None, Query(**_RANGE_QUERY, description="start:stop, half-open")] = None,
    y: Annotated[str | None, Query(**_RANGE_QUERY, description="start:stop, half-open")] = None,
    x: Annotated[str | None, Query(**_RANGE_QUERY, description="start:stop, half-open")] = None,
    format: Annotated[Literal["npy", "raw", "nifti"], Query()] = "npy",
) -> Response:
    """A box of one volume: ``?z=10:74&y=100:164&x=80:144`` (omitted = the whole axis)."""
    # Async, so a crop costs no thread-pool hop: the chunk decodes run on the SDK's decode
    # pool and are awaited; only a volume not yet open (queries, metadata) goes to a thread.
    volume = state.opened_volume(case_id, kind)
    if volume is None:
        volume = await run_in_threadpool(state.volume, case_id, kind)
    if kind != "image" and phase is not None:
        raise ApiError(
            422, f"phase: a {kind} mask has no phases; leave phase out", slug="invalid-parameter"
        )
    nz, ny, nx = volume.spatial_shape
    (z0, z1), (y0, y1), (x0, x1) = (
        parse_range(z, nz, "z"),
        parse_range(y, ny, "y"),
        parse_range(x, nx, "x"),
    )
    voxels = (z1 - z0) * (y1 - y0) * (x1 - x0)
    if voxels > settings.crop_voxel_cap:
        raise ApiError(
            413,
            f"the crop has {voxels} voxels; this server returns at most {settings.crop_voxel_cap} "
            "per request: ask for smaller boxes",
            slug="crop-too-large",
        )
    p = 0 if phase is None else phase
    if kind == "image" and p >= volume.shape[0]:
        raise ApiError(
            422,
            f"phase {p} is outside 0..{volume.shape[0] - 1} for case {volume.patient_id}",
            slug="invalid-parameter",
        )
    box = (slice(z0, z1), slice(y0, y1), slice(x0, x1))
    return await crop_answer(volume, kind, phase, box, format)


def _plane_physical(
    shape_zyx: tuple[int, int, int],
    spacing_zyx: tuple[float, float, float],
    row_axis: int,
    col_axis: int,
) -> tuple[float, float]:
    return shape_zyx[row_axis] * spacing_zyx[row_axis], shape_zyx[col_axis] * spacing_zyx[col_axis]


@router.get(
    "/v1/cases/{case_id}/slice.png",
    response_class=Response,
    responses={
        200: {
            "description": "A PNG preview.",
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
        },
        **problem_responses(400, 401, 404, 409, 413, 422, 503),
    },
)
def slice_png(
    state: StateDep,
    settings: SettingsDep,
    case_id: CaseId,
    axis: Annotated[Literal["axial", "coronal", "sagittal"], Query()] = "axial",
    index: Annotated[
        int | None,
        Query(
            ge=0,
            le=100_000,
            description="Slice index along the plane's normal (full resolution); default: the middle.",
        ),
    ] = None,
    phase: Annotated[
        str,
        Query(
            pattern=r"^(\d{1,3}|sub)$",
            description="A phase number, or sub = phase 1 minus phase 0.",
        ),
    ] = "0",
    size: Annotated[
        int, Query(ge=16, le=4096, description="Longest edge of the PNG in pixels.")
    ] = 512,
    window: Annotated[
        float | None, Query(gt=0, le=1e9, description="Display window width.")
    ] = None,
    level: Annotated[
        float | None, Query(ge=-1e9, le=1e9, description="Display window centre.")
    ] = None,
    overlay: Annotated[
        Literal["expert", "automatic"] | None, Query(description="Outline this mask.")
    ] = None,
) -> Response:
    """A 2D preview in radiological convention; the plane follows the direction matrix."""
    if size > settings.slice_max_size:
        raise ApiError(
            422,
            f"size {size} is over this server's maximum of {settings.slice_max_size}",
            slug="invalid-parameter",
        )
    case = _case(state, case_id)
    image = case.image
    n_phases = image.shape[0]
    phases: tuple[int, ...]
    if phase == "sub":
        if n_phases < 2:
            raise ApiError(
                422,
                f"phase=sub needs two phases; case {case.patient_id} has {n_phases}",
                slug="invalid-parameter",
            )
        phases = (1, 0)
    else:
        p = int(phase)
        if p >= n_phases:
            raise ApiError(
                422,
                f"phase {p} is outside 0..{n_phases - 1} for case {case.patient_id}",
                slug="invalid-parameter",
            )
        phases = (p,)
    layout = plane_layout(image.direction, axis)
    shape = image.spatial_shape
    n_normal = shape[layout.normal_axis]
    k = n_normal // 2 if index is None else index
    if k >= n_normal:
        raise ApiError(
            422,
            f"index {k} is outside 0..{n_normal - 1} for the {axis} plane of case {case.patient_id}",
            slug="invalid-range",
        )
    phys_rows, phys_cols = _plane_physical(shape, image.spacing, layout.row_axis, layout.col_axis)
    scale = size / max(phys_rows, phys_cols)
    out_shape = (max(1, round(phys_rows * scale)), max(1, round(phys_cols * scale)))
    if out_shape[0] * out_shape[1] > settings.preview_max_pixels:
        raise ApiError(
            413,
            f"a {out_shape[1]}x{out_shape[0]} preview is over this server's "
            f"{settings.preview_max_pixels} pixels; ask for a smaller size",
            slug="preview-too-large",
        )

    image_rows = sorted((r for r in case.volumes if r["kind"] == "image"), key=lambda r: r["phase"])
    zarr_path = str(image_rows[0]["zarr_path"])
    low_res = state.level_array(zarr_path, 1)
    use_low = (
        low_res is not None
        and min(
            low_res.shape[1 + layout.row_axis] / out_shape[0],
            low_res.shape[1 + layout.col_axis] / out_shape[1],
        )
        >= 1.0
    )
    if use_low:
        assert low_res is not None
        k_low = min(
            k * low_res.shape[1 + layout.normal_axis] // n_normal,
            low_res.shape[1 + layout.normal_axis] - 1,
        )
        planes = [cut(low_res, (p,), layout, k_low).astype(np.float32) for p in phases]
    else:
        planes = [cut(image, (p,), layout, k).astype(np.float32) for p in phases]
    values = planes[0] - planes[1] if len(planes) == 2 else planes[0]
    values = orient(values, layout)

    if window is not None or level is not None:
        if window is None or level is None:
            raise ApiError(
                422, "give window and level together (or neither)", slug="invalid-parameter"
            )
        low, high = level - window / 2, level + window / 2
    else:
        low, high = _auto_window(values, image_rows, phases)

    mask_plane = None
    if overlay is not None:
        mask = case.mask(overlay)
        mask_rows = [r for r in case.volumes if r["kind"] == overlay]
        mask_low = state.level_array(str(mask_rows[0]["zarr_path"]), 1) if use_low else None
        if use_low and mask_low is not None and mask_low.shape[1:] == low_res.shape[1:]:  # type: ignore[union-attr]
            mask_plane = orient(cut(mask_low, (0,), layout, k_low), layout)
        else:
            mask_plane = orient(cut(mask, (), layout, k), layout)
    png = render_slice(
        values, out_shape=out_shape, low=low, high=high, mask=mask_plane, overlay=overlay
    )
    headers = {
        "X-Slice-Index": str(k),
        "X-Slice-Axis": axis,
        "X-Window-Low": repr(float(low)),
        "X-Window-High": repr(float(high)),
        "X-Level": "1" if use_low else "0",
    }
    return Response(png, media_type="image/png", headers=headers)


def _auto_window(
    values: np.ndarray[Any, Any], rows: list[dict[str, Any]], phases: tuple[int, ...]
) -> tuple[float, float]:
    # One phase: the volume's own p1..p99 (stable while scrolling); else the slice's.
    if len(phases) == 1:
        row = next((r for r in rows if r["phase"] == phases[0]), None)
        if row is not None:
            p1, p99 = row.get("p1"), row.get("p99")
            if (
                isinstance(p1, int | float)
                and isinstance(p99, int | float)
                and math.isfinite(p1)
                and math.isfinite(p99)
                and p99 > p1
            ):
                return float(p1), float(p99)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [1, 99])
    if high <= low:
        high = low + 1.0
    return float(low), float(high)
