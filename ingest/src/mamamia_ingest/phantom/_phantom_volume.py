"""Voxels of one phantom case: breast anatomy, enhancing lesions with known kinetics, masks.

Everything physical (anatomy, lesion position, size and shape) is defined in millimetres in the
case's index-aligned frame (distance from the volume's outer corner along each index axis), so a
phantom at ``--scale 0.25`` is a coarser sampling of the same anatomy as one at scale 1.

Every tissue class, and every compartment of the tumour, follows a closed-form kinetic curve
(``_phantom_kinetics``), so the PE, SER and FTV of each phantom tumour are known exactly (``truth``).

Memory is bounded per phase: each phase is built straight into one SimpleITK image, slab by slab
(a few million voxels of float32 temporaries), written, and dropped before the next one. The
lesions and both masks only ever exist inside their bounding box.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from mamamia import atomic_write

from .._kinetic_features import EARLY_S, LATE_S, choose_phases
from ._anatomy import (
    Anatomy,
    TissueLayout,
    TissueSignal,
    bias_slab,
    build_anatomy,
    tissue_layout,
    tissue_values,
)
from ._lesion import Lesions, build_lesions
from ._phantom_kinetics import Kinetics
from ._spec import CaseSpec

__all__ = ["CaseModel", "build_case", "mask_image", "phase_image", "write_image"]

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]
I16 = npt.NDArray[np.int16]

# Slabs hold about this many voxels: float32 temporaries stay near 4 MiB each.
_SLAB_VOXELS = 1_000_000
# Phases up to this many voxels (32 MiB of int16) are built in numpy and copied into SimpleITK
# once; larger ones are pasted slab by slab (slower per voxel, but no second copy).
_COPY_MAX_VOXELS = 16 * 2**20
# Cases up to this many voxels keep their tissue layout and bias field between phases (about
# 9 bytes a voxel); larger ones recompute them for every phase, slab by slab.
_CACHE_MAX_VOXELS = 4 * 2**20
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
    anatomy: Anatomy
    lesions: Lesions
    tumour_base: float  # pre-contrast tumour signal (before the bias field)
    noise_sigma: float
    noise_offsets: tuple[int, ...]
    # Per-slab layout and bias, kept across the phases of a small case (the writer reuses one
    # model for the files of a case it writes in one process).
    slab_cache: dict[int, tuple[TissueLayout, F32]] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def box_lo_zyx(self) -> tuple[int, int, int]:
        return self.lesions.lo_zyx

    @property
    def box_hi_zyx(self) -> tuple[int, int, int]:
        return self.lesions.hi_zyx

    @property
    def expert_box(self) -> U8:
        out: U8 = (self.lesions.labels > 0).astype(np.uint8)
        return out

    @property
    def automatic_box(self) -> U8:
        return self.lesions.automatic

    @property
    def dice(self) -> float:
        return _dice(self.expert_box.astype(bool), self.automatic_box.astype(bool))

    @property
    def tumour_bbox_zyx(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """Expert-mask bounding box, ``min`` inclusive and ``max`` exclusive, array order."""
        where = np.argwhere(self.lesions.labels)
        lo = where.min(axis=0) + np.array(self.box_lo_zyx)
        hi = where.max(axis=0) + 1 + np.array(self.box_lo_zyx)
        return (
            (int(lo[0]), int(lo[1]), int(lo[2])),
            (int(hi[0]), int(hi[1]), int(hi[2])),
        )

    def truth(self, early: int, late: int) -> tuple[F64, F64]:
        """Noise-free PE (percent) and SER of every expert-mask voxel (box order, flattened),
        in closed form from the compartments' kinetics at phases ``early`` and ``late``."""
        times = self.spec.times_s
        labels = self.lesions.labels[self.lesions.labels > 0]
        pe = np.array([k.pe(times[early]) for k in self.lesions.kinetics])
        ser = np.array([k.ser(times[early], times[late]) or np.nan for k in self.lesions.kinetics])
        return pe[labels - 1], ser[labels - 1]


def build_case(spec: CaseSpec, seed: int) -> CaseModel:
    """Every random choice of one case; cheap (no full-volume arrays)."""
    rng = _case_rng(seed, spec.patient_id, 0)
    extent = np.array(spec.extent_xyz)
    d = np.array(spec.direction).reshape(3, 3).diagonal()
    spacing = np.array(spec.spacing_xyz)
    # Volume centre within a few cm of the scanner origin; origin = centre of voxel 0.
    centre_world = np.array([rng.uniform(-20, 20), rng.uniform(-10, 30), rng.uniform(-40, 40)])
    corner_world = centre_world - d * extent / 2
    origin = corner_world + d * spacing / 2

    # Intensities of a typical scanner's range; fat dark when the row says fat-suppressed.
    gland = rng.uniform(520, 680)
    fat = rng.uniform(180, 300) if spec.fat_suppressed else rng.uniform(1000, 1250)
    choice = choose_phases(spec.times_s, spec.num_phases)
    t_early = spec.times_s[choice.early] if choice is not None else EARLY_S
    t_late = spec.times_s[choice.late] if choice is not None else LATE_S
    signal = TissueSignal(
        fat=fat,
        gland=gland,
        skin=gland * rng.uniform(0.75, 0.9),
        muscle=gland * rng.uniform(0.45, 0.6),
        thorax=gland * rng.uniform(0.05, 0.1),
        blood=gland * rng.uniform(0.35, 0.45),
        fat_kinetics=Kinetics(rng.uniform(0.0, 0.05), 300.0, 0.0),
        gland_kinetics=Kinetics(rng.uniform(0.05, 0.2), rng.uniform(200.0, 400.0), 0.0),
        muscle_kinetics=Kinetics(rng.uniform(0.15, 0.3), rng.uniform(60.0, 120.0), 0.0),
        blood_kinetics=Kinetics(rng.uniform(3.5, 4.5), rng.uniform(15.0, 25.0), 1e-3),
    )
    anatomy = build_anatomy(spec, rng, _case_rng(seed, spec.patient_id, 2), signal)
    lesions = build_lesions(spec, anatomy, _case_rng(seed, spec.patient_id, 3), t_early, t_late)
    expert = lesions.labels > 0
    automatic = _perturbed(expert, lesions.automatic.astype(bool))
    lesions = dataclasses.replace(lesions, automatic=automatic.astype(np.uint8))
    nvox = spec.size_xyz[0] * spec.size_xyz[1] * spec.size_xyz[2]
    offsets = tuple(
        int(o) for o in rng.integers(0, max(1, min(nvox, _NOISE_BUFFER)), size=spec.num_phases)
    )
    return CaseModel(
        spec=spec,
        seed=seed,
        origin_xyz=(float(origin[0]), float(origin[1]), float(origin[2])),
        anatomy=anatomy,
        lesions=lesions,
        tumour_base=gland * rng.uniform(0.9, 1.1),
        noise_sigma=rng.uniform(6.0, 12.0),
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
    t = spec.times_s[phase]
    lesions = model.lesions
    # Signal of each lesion compartment (index = label) at this phase, before the bias field.
    lesion_now = np.array(
        [0.0, *(model.tumour_base * k.relative(t) for k in lesions.kinetics)], dtype=np.float32
    )
    buffer = _noise_buffer(model)
    plane = nx * ny
    zlo, ylo, xlo = lesions.lo_zyx
    zhi, yhi, xhi = lesions.hi_zyx
    keep = nx * ny * spec.size_xyz[2] <= _CACHE_MAX_VOXELS
    for z0, z1 in _slabs(model):
        k = z1 - z0
        cached = model.slab_cache.get(z0)
        if cached is None:
            cached = (tissue_layout(model.anatomy, spec, z0, z1), bias_slab(model.anatomy, z0, z1))
            if keep:
                model.slab_cache[z0] = cached
        layout, bias = cached
        value = tissue_values(layout, model.anatomy.signal, t)
        if z0 < zhi and z1 > zlo:
            a0, a1 = max(z0, zlo), min(z1, zhi)
            sub = value[a0 - z0 : a1 - z0, ylo:yhi, xlo:xhi]
            labels = lesions.labels[a0 - zlo : a1 - zlo]
            np.copyto(sub, lesion_now[labels], where=labels > 0)
        air = value == 0
        value *= bias
        value += _circular(buffer, model.noise_offsets[phase] + z0 * plane, k * plane).reshape(
            k, ny, nx
        )
        # Outside the body: air. Exact zeros, which also halve the gzip time of a phase.
        np.copyto(value, np.float32(0.0), where=air)
        np.clip(value, 0, 32767, out=value)
        yield z0, np.rint(value).astype(np.int16)


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
