"""Voxels of one phantom case: tissue background, an enhancing tumour ellipsoid and its masks.

Everything physical (tumour position and size, tissue texture) is defined in millimetres in the
case's index-aligned frame (distance from the volume's outer corner along each index axis), so a
phantom at ``--scale 0.25`` is a coarser sampling of the same anatomy as one at scale 1.

Memory is bounded per phase: each phase is built straight into one SimpleITK image, slab by slab
(a few million voxels of float32 temporaries), written, and dropped before the next one. The
tumour and both masks only ever exist inside their bounding box.
"""

from __future__ import annotations

import functools
import math
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from mamamia import atomic_write

from ._spec import CaseSpec

__all__ = ["CaseModel", "build_case", "mask_image", "phase_image", "write_image"]

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
I16 = npt.NDArray[np.int16]

# Slabs hold about this many voxels: float32 temporaries stay near 4 MiB each.
_SLAB_VOXELS = 1_000_000
# Phases up to this many voxels (32 MiB of int16) are built in numpy and copied into SimpleITK
# once; larger ones are pasted slab by slab (slower per voxel, but no second copy).
_COPY_MAX_VOXELS = 16 * 2**20
# Noise comes from one per-case int16 buffer of at most this many values (a prime, so the
# repeat does not line up with rows or slices), read at a different offset for every phase.
_NOISE_BUFFER = 4_194_301


def _case_rng(seed: int, patient_id: str, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(patient_id.encode()), stream])


@dataclass(frozen=True)
class CaseModel:
    """A case's spec plus every random choice, fixed by (seed, patient_id)."""

    spec: CaseSpec
    seed: int
    origin_xyz: tuple[float, float, float]
    tumour_centre_mm: tuple[float, float, float]  # x, y, z in the index-aligned frame
    tumour_radii_mm: tuple[float, float, float]
    box_lo_zyx: tuple[int, int, int]  # mask box, half-open, array order
    box_hi_zyx: tuple[int, int, int]
    expert_box: U8
    automatic_box: U8
    rho2_box: F32  # squared normalized tumour radius per box voxel (rim enhancement)
    fat: float
    gland: float
    tumour_base: float
    enhancement: float
    tau_s: float
    washout_per_s: float
    bpe: float
    noise_sigma: float
    texture: tuple[tuple[F32, F32, F32], ...]  # plane waves: per-axis phase angles (x, y, z)
    body: npt.NDArray[np.bool_]  # in-plane body outline, broadcastable to (z, y, x)
    noise_offsets: tuple[int, ...]

    @property
    def dice(self) -> float:
        a = self.expert_box.astype(bool)
        b = self.automatic_box.astype(bool)
        total = int(a.sum()) + int(b.sum())
        return 2.0 * int((a & b).sum()) / total if total else 1.0

    @property
    def tumour_bbox_zyx(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """Expert-mask bounding box, ``min`` inclusive and ``max`` exclusive, array order."""
        where = np.argwhere(self.expert_box)
        lo = where.min(axis=0) + np.array(self.box_lo_zyx)
        hi = where.max(axis=0) + 1 + np.array(self.box_lo_zyx)
        return (
            (int(lo[0]), int(lo[1]), int(lo[2])),
            (int(hi[0]), int(hi[1]), int(hi[2])),
        )

    def uptake(self, t_s: float) -> float:
        """Relative contrast uptake at ``t_s`` seconds after the pre-contrast phase (0 at t=0)."""
        if t_s <= 0:
            return 0.0
        return (1.0 - math.exp(-t_s / self.tau_s)) * math.exp(-self.washout_per_s * t_s)


def _centres(n: int, spacing: float) -> npt.NDArray[np.float64]:
    """Voxel-centre positions (mm) along one axis of the index-aligned frame."""
    return (np.arange(n, dtype=np.float64) + 0.5) * spacing


def _ellipsoid(
    spec: CaseSpec,
    centre: npt.NDArray[np.float64],
    radii: npt.NDArray[np.float64],
    lo: npt.NDArray[np.int64],
    hi: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]:
    """Squared normalized distance to ``centre`` for each voxel of box [lo, hi) (xyz), zyx array."""
    s = spec.spacing_xyz
    dx = (_centres(spec.size_xyz[0], s[0])[lo[0] : hi[0]] - centre[0]) / radii[0]
    dy = (_centres(spec.size_xyz[1], s[1])[lo[1] : hi[1]] - centre[1]) / radii[1]
    dz = (_centres(spec.size_xyz[2], s[2])[lo[2] : hi[2]] - centre[2]) / radii[2]
    out: npt.NDArray[np.float64] = (
        dz[:, None, None] ** 2 + dy[None, :, None] ** 2 + dx[None, None, :] ** 2
    )
    return out


def _box(
    spec: CaseSpec, centre: npt.NDArray[np.float64], radii: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Index box (xyz, half-open) covering the ellipsoid, at least the voxel holding its centre."""
    size = np.array(spec.size_xyz)
    s = np.array(spec.spacing_xyz)
    lo = np.ceil((centre - radii) / s - 0.5).astype(np.int64)
    hi = np.floor((centre + radii) / s - 0.5).astype(np.int64) + 1
    inner = np.clip(np.floor(centre / s).astype(np.int64), 0, size - 1)
    lo = np.minimum(np.clip(lo, 0, size), inner)
    hi = np.maximum(np.clip(hi, 0, size), inner + 1)
    return lo, hi


def _plane_wave(rng: np.random.Generator, spec: CaseSpec) -> tuple[F32, F32, F32]:
    """A plane wave of random direction, wavelength 15-50 mm and phase, as per-axis angle
    profiles whose broadcast sum is the wave's angle at each voxel."""
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction) or 1.0
    k = direction * 2 * np.pi / rng.uniform(15.0, 50.0)
    phase = rng.uniform(0, 2 * np.pi)
    x, y, z = (
        (_centres(n, s) * kk).astype(np.float32)
        for n, s, kk in zip(spec.size_xyz, spec.spacing_xyz, k, strict=True)
    )
    return x + np.float32(phase), y, z


def _body_outline(spec: CaseSpec, rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    """An elliptic body outline in the acquisition plane, constant along the slice axis."""
    nx, ny, nz = spec.size_xyz
    half = [e / 2 for e in spec.extent_xyz]
    u = [
        (_centres(n, s) - h) / h
        for n, s, h in zip(spec.size_xyz, spec.spacing_xyz, half, strict=True)
    ]
    a, b = rng.uniform(0.88, 0.96), rng.uniform(0.8, 0.9)
    if spec.view == "axial":  # plane (y, x), slices along z
        inside = (u[1][:, None] / b) ** 2 + (u[0][None, :] / a) ** 2 <= 1.0
        return inside.reshape(1, ny, nx)
    inside = (u[2][:, None] / a) ** 2 + (u[1][None, :] / b) ** 2 <= 1.0  # plane (z, y)
    return inside.reshape(nz, ny, 1)


def build_case(spec: CaseSpec, seed: int) -> CaseModel:
    """Every random choice of one case; cheap (no full-volume arrays but the in-plane outline)."""
    rng = _case_rng(seed, spec.patient_id, 0)
    extent = np.array(spec.extent_xyz)
    d = np.array(spec.direction).reshape(3, 3).diagonal()
    spacing = np.array(spec.spacing_xyz)
    # Volume centre within a few cm of the scanner origin; origin = centre of voxel 0.
    centre_world = np.array([rng.uniform(-20, 20), rng.uniform(-10, 30), rng.uniform(-40, 40)])
    corner_world = centre_world - d * extent / 2
    origin = corner_world + d * spacing / 2

    radii = np.array([rng.uniform(5.0, 14.0) for _ in range(3)])
    radii = np.minimum(radii, 0.2 * extent)
    centre = extent * (0.5 + rng.uniform(-0.15, 0.15, size=3))
    # The automatic mask is the same lesion seen a little larger and off-centre.
    auto_radii = radii * rng.uniform(1.08, 1.18)
    auto_centre = centre + radii * rng.uniform(0.08, 0.15, size=3) * rng.choice([-1.0, 1.0], size=3)

    lo_e, hi_e = _box(spec, centre, radii)
    lo_a, hi_a = _box(spec, auto_centre, auto_radii)
    size = np.array(spec.size_xyz)
    lo = np.maximum(np.minimum(lo_e, lo_a) - 1, 0)
    hi = np.minimum(np.maximum(hi_e, hi_a) + 1, size)
    rho2 = _ellipsoid(spec, centre, radii, lo, hi)
    expert = rho2 <= 1.0
    if not expert.any():  # lesion smaller than a voxel: keep the voxel holding its centre
        k = np.clip(np.floor(centre / spacing).astype(np.int64), 0, size - 1) - lo
        expert[k[2], k[1], k[0]] = True
    automatic = _ellipsoid(spec, auto_centre, auto_radii, lo, hi) <= 1.0
    automatic = _perturbed(expert, automatic)

    fat_suppressed = spec.fat_suppressed
    fat = rng.uniform(60, 110) if fat_suppressed else rng.uniform(320, 420)
    gland = rng.uniform(170, 230)
    tex_rng = _case_rng(seed, spec.patient_id, 2)
    texture = tuple(_plane_wave(tex_rng, spec) for _ in range(4))
    body = _body_outline(spec, rng)
    nvox = spec.size_xyz[0] * spec.size_xyz[1] * spec.size_xyz[2]
    offsets = tuple(
        int(o) for o in rng.integers(0, max(1, min(nvox, _NOISE_BUFFER)), size=spec.num_phases)
    )
    return CaseModel(
        spec=spec,
        seed=seed,
        origin_xyz=(float(origin[0]), float(origin[1]), float(origin[2])),
        tumour_centre_mm=(float(centre[0]), float(centre[1]), float(centre[2])),
        tumour_radii_mm=(float(radii[0]), float(radii[1]), float(radii[2])),
        box_lo_zyx=(int(lo[2]), int(lo[1]), int(lo[0])),
        box_hi_zyx=(int(hi[2]), int(hi[1]), int(hi[0])),
        expert_box=expert.astype(np.uint8),
        automatic_box=automatic.astype(np.uint8),
        rho2_box=np.minimum(rho2, 1.0).astype(np.float32),
        fat=fat,
        gland=gland,
        tumour_base=gland * rng.uniform(0.9, 1.1),
        enhancement=rng.uniform(280, 560),
        tau_s=rng.uniform(50, 110),
        washout_per_s=rng.uniform(0.0, 5e-4),
        bpe=rng.uniform(0.05, 0.2),
        noise_sigma=rng.uniform(5.0, 10.0),
        texture=texture,
        body=body,
        noise_offsets=offsets,
    )


def _dice(a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_]) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else 1.0


def _perturbed(
    expert: npt.NDArray[np.bool_], automatic: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """The automatic mask: ``automatic`` when its Dice with ``expert`` is in (0.5, 1), else
    ``expert`` grown by one voxel along one axis (Dice >= 2/3 by construction)."""
    if 0.5 < _dice(expert, automatic) < 1.0:
        return automatic
    for axis in np.argsort(expert.shape)[::-1]:
        grown = expert.copy()
        index = [slice(None)] * 3
        source = [slice(None)] * 3
        index[axis] = slice(1, None)
        source[axis] = slice(None, -1)
        grown[tuple(index)] |= expert[tuple(source)]
        if grown.sum() > expert.sum():
            return grown
        grown = expert.copy()
        grown[tuple(source)] |= expert[tuple(index)]
        if grown.sum() > expert.sum():
            return grown
    return expert.copy()  # a one-voxel volume: nothing to perturb


def _noise_buffer(model: CaseModel) -> I16:
    spec = model.spec
    nvox = spec.size_xyz[0] * spec.size_xyz[1] * spec.size_xyz[2]
    return _noise_values(
        model.seed, spec.patient_id, max(1, min(nvox, _NOISE_BUFFER)), model.noise_sigma
    )


@functools.lru_cache(maxsize=2)  # the phases of one case share it
def _noise_values(seed: int, patient_id: str, count: int, sigma: float) -> I16:
    values = _case_rng(seed, patient_id, 1).standard_normal(count, dtype=np.float32)
    values *= sigma
    out = np.rint(values).astype(np.int16)
    out.flags.writeable = False
    return out


def _circular(buffer: I16, start: int, count: int) -> I16:
    """``count`` values of ``buffer`` read circularly from ``start`` (contiguous copies only)."""
    out = np.empty(count, dtype=np.int16)
    n = buffer.shape[0]
    pos = start % n
    done = 0
    while done < count:
        take = min(n - pos, count - done)
        out[done : done + take] = buffer[pos : pos + take]
        done += take
        pos = 0
    return out


def _new_image(model: CaseModel, pixel: int) -> sitk.Image:
    spec = model.spec
    image = sitk.Image(list(spec.size_xyz), pixel)
    image.SetSpacing(spec.spacing_xyz)
    image.SetOrigin(model.origin_xyz)
    image.SetDirection(spec.direction)
    return image


def _slabs(model: CaseModel) -> Iterator[tuple[int, int]]:
    nx, ny, nz = model.spec.size_xyz
    step = max(1, _SLAB_VOXELS // (nx * ny))
    for z0 in range(0, nz, step):
        yield z0, min(nz, z0 + step)


def phase_slabs(model: CaseModel, phase: int) -> Iterator[tuple[int, I16]]:
    """Phase ``phase`` as int16 slabs ``(z0, array[z0:z1, :, :])``, top to bottom."""
    spec = model.spec
    nx, ny, _ = spec.size_xyz
    uptake = model.uptake(spec.times_s[phase])
    gland_now = model.gland * (1.0 + model.bpe * uptake)
    tumour_gain = model.enhancement * uptake
    buffer = _noise_buffer(model)
    plane = nx * ny
    zlo, ylo, xlo = model.box_lo_zyx
    zhi, yhi, xhi = model.box_hi_zyx
    for z0, z1 in _slabs(model):
        k = z1 - z0
        # Glandular fraction from a smooth texture, a few oblique plane waves (organic blobs, no
        # axis-aligned grid): fat where it is low, gland where it is high.
        frac = np.zeros((k, ny, nx), dtype=np.float32)
        angle = np.empty((k, ny, nx), dtype=np.float32)
        for wx, wy, wz in model.texture:
            np.add(wz[z0:z1, None, None] + wy[None, :, None], wx[None, None, :], out=angle)
            frac += np.cos(angle, out=angle)
        np.clip(frac * 0.6 + 0.2, 0.0, 1.0, out=frac)
        value = model.fat + (gland_now - model.fat) * frac
        noise = _circular(buffer, model.noise_offsets[phase] + z0 * plane, k * plane).reshape(
            k, ny, nx
        )
        value += noise
        body = model.body[z0:z1] if model.body.shape[0] > 1 else model.body
        # Outside the body: air. Exact zeros, which also halve the gzip time of a phase.
        np.copyto(value, np.float32(0.0), where=~body)
        if z0 < zhi and z1 > zlo:
            a0, a1 = max(z0, zlo), min(z1, zhi)
            sub = value[a0 - z0 : a1 - z0, ylo:yhi, xlo:xhi]
            inside = model.expert_box[a0 - zlo : a1 - zlo].astype(bool)
            rim = 0.65 + 0.35 * model.rho2_box[a0 - zlo : a1 - zlo]
            lesion = (
                model.tumour_base + tumour_gain * rim + noise[a0 - z0 : a1 - z0, ylo:yhi, xlo:xhi]
            )
            np.copyto(sub, lesion, where=inside)
        np.clip(value, 0, 32767, out=value)
        yield z0, value.astype(np.int16)


def phase_image(model: CaseModel, phase: int) -> sitk.Image:
    """One phase as a SimpleITK int16 image.

    Small phases are assembled in numpy and copied into SimpleITK once (fast; the copy costs at
    most ``_COPY_MAX_VOXELS`` int16). Larger ones are pasted into the image slab by slab, in
    place, so a 1024x1024x160 phase never exists twice.
    """
    nx, ny, nz = model.spec.size_xyz
    if nx * ny * nz <= _COPY_MAX_VOXELS:
        array = np.empty((nz, ny, nx), dtype=np.int16)
        for z0, slab in phase_slabs(model, phase):
            array[z0 : z0 + slab.shape[0]] = slab
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(model.spec.spacing_xyz)
        image.SetOrigin(model.origin_xyz)
        image.SetDirection(model.spec.direction)
        return image
    image = _new_image(model, sitk.sitkInt16)
    for z0, slab in phase_slabs(model, phase):
        image[:, :, z0 : z0 + slab.shape[0]] = sitk.GetImageFromArray(slab)
    return image


def mask_image(model: CaseModel, kind: str) -> sitk.Image:
    """The ``expert`` or ``automatic`` mask (0/1 uint8) with the image's geometry."""
    image = _new_image(model, sitk.sitkUInt8)
    box = model.expert_box if kind == "expert" else model.automatic_box
    zlo, ylo, xlo = model.box_lo_zyx
    zhi, yhi, xhi = model.box_hi_zyx
    image[xlo:xhi, ylo:yhi, zlo:zhi] = sitk.GetImageFromArray(np.ascontiguousarray(box))
    return image


def write_image(image: sitk.Image, path: Path) -> int:
    """Write ``image`` as compressed NIfTI atomically; return the file's size in bytes."""
    with atomic_write(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
    return os.path.getsize(path)
