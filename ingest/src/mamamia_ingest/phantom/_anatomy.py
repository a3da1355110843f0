"""The phantom's anatomy: breasts on a chest wall, skin, fat, fibroglandular tissue, a bias field.

Both views share one index-aligned frame (millimetres from the volume's outer corner): x runs
left-right, y anterior-posterior and z inferior-superior. Axial rows grow y posteriorly (LPS),
sagittal ones anteriorly (RAS, flipped y); either way the viewer's radiological planes show the
breasts pointing anterior (up in an axial view, left in a sagittal one), as in a prone breast MRI.

A breast is a half-ellipsoid in front of the chest wall; the torso behind it holds a layer of
subcutaneous fat, the pectoral muscle, a dark thorax and the heart. Inside the breast the
glandular fraction is a smooth texture of warped oblique plane waves, denser near the breast's
core than at its surface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._phantom_kinetics import Kinetics
from ._spec import CaseSpec

__all__ = [
    "Anatomy",
    "Breast",
    "TissueLayout",
    "TissueSignal",
    "bias_slab",
    "build_anatomy",
    "centres",
    "tissue_layout",
    "tissue_values",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]

_SKIN_MM = 2.0
_SUBCUT_MM = 8.0
_MUSCLE_MM = 14.0


def centres(n: int, spacing: float) -> F64:
    """Voxel-centre positions (mm) along one axis of the index-aligned frame."""
    return (np.arange(n, dtype=np.float64) + 0.5) * spacing


@dataclass(frozen=True)
class Breast:
    """A half-ellipsoid: centre (x, z) on the chest wall, radii along x and z, depth along y."""

    centre_x: float
    centre_z: float
    radius_x: float
    radius_z: float
    depth: float


@dataclass(frozen=True)
class TissueSignal:
    """Pre-contrast intensity of each tissue class and its kinetics."""

    fat: float
    gland: float
    skin: float
    muscle: float
    thorax: float
    blood: float
    fat_kinetics: Kinetics
    gland_kinetics: Kinetics
    muscle_kinetics: Kinetics
    blood_kinetics: Kinetics


@dataclass(frozen=True)
class Anatomy:
    """Everything about one case's body, in the index-aligned frame (mm)."""

    anterior: float  # +1 when the y index grows anteriorly (sagittal), -1 when posteriorly
    chest_wall_y: float
    breasts: tuple[Breast, ...]
    torso_centre_x: float
    torso_half_width: float
    torso_depth: float
    heart: tuple[float, float, float, float, float, float]  # centre x, d, z; radii x, d, z (mm)
    density: float  # shifts the glandular fraction (-0.2 fatty ... +0.2 dense)
    texture: tuple[tuple[F32, F32, F32], ...]  # plane-wave pairs: per-axis phase angles (x, y, z)
    bias: tuple[F32, F32, F32]  # multiplicative field = 1 + bx[x] + by[y] + bz[z]
    signal: TissueSignal

    def anterior_mm(self, y_mm: F64) -> F64:
        """Distance in front of the chest wall (negative behind it)."""
        out: F64 = self.anterior * (y_mm - self.chest_wall_y)
        return out


def _plane_wave(
    rng: np.random.Generator, spec: CaseSpec, wavelength: tuple[float, float]
) -> tuple[F32, F32, F32]:
    """A plane wave of random direction, wavelength and phase, as per-axis angle profiles whose
    broadcast sum is the wave's angle at each voxel."""
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction) or 1.0
    k = direction * 2 * np.pi / rng.uniform(*wavelength)
    phase = rng.uniform(0, 2 * np.pi)
    x, y, z = (
        (centres(n, s) * kk).astype(np.float32)
        for n, s, kk in zip(spec.size_xyz, spec.spacing_xyz, k, strict=True)
    )
    return x + np.float32(phase), y, z


def _bias(rng: np.random.Generator, spec: CaseSpec) -> tuple[F32, F32, F32]:
    """A smooth receive-coil bias: a gentle gradient and bump per axis, within about +-10 %."""
    out = []
    for n, s, e in zip(spec.size_xyz, spec.spacing_xyz, spec.extent_xyz, strict=True):
        u = centres(n, s) / e - 0.5
        profile = rng.uniform(-0.05, 0.05) * 2 * u + rng.uniform(-0.04, 0.04) * np.cos(
            2 * np.pi * u
        )
        out.append(profile.astype(np.float32))
    return out[0], out[1], out[2]


def build_anatomy(
    spec: CaseSpec, rng: np.random.Generator, tex_rng: np.random.Generator, signal: TissueSignal
) -> Anatomy:
    ex, ey, ez = spec.extent_xyz
    axial = spec.view == "axial"
    anterior = -1.0 if axial else 1.0
    # Axial: breasts in the front half (low y); sagittal: in the front 60 % (high y).
    wall = ey * (rng.uniform(0.5, 0.6) if axial else rng.uniform(0.35, 0.45))
    room = wall if axial else ey - wall
    breasts: list[Breast] = []
    if axial and spec.bilateral:
        for side in (-1.0, 1.0):
            cx = ex * (0.5 + side * rng.uniform(0.2, 0.25))
            breasts.append(
                Breast(
                    centre_x=cx,
                    centre_z=ez * rng.uniform(0.45, 0.55),
                    radius_x=ex * rng.uniform(0.18, 0.22),
                    radius_z=ez * rng.uniform(0.42, 0.48),
                    depth=min(room * 0.85, ex * rng.uniform(0.2, 0.26)),
                )
            )
    else:
        # One breast, filling the left-right extent of a sagittal volume or one side of an
        # axial one.
        cx = ex * (0.5 if not axial else rng.choice([0.3, 0.7]))
        breasts.append(
            Breast(
                centre_x=cx,
                centre_z=ez * rng.uniform(0.45, 0.55),
                radius_x=ex * (rng.uniform(0.4, 0.46) if not axial else rng.uniform(0.18, 0.22)),
                radius_z=ez * rng.uniform(0.35, 0.42),
                depth=min(room * 0.85, ez * rng.uniform(0.3, 0.38)),
            )
        )
    # Pairs (carrier, warp): the warp bends the carrier's fronts into curved, blob-like lobules.
    waves = [_plane_wave(tex_rng, spec, (15.0, 40.0)) for _ in range(6)]
    return Anatomy(
        anterior=anterior,
        chest_wall_y=wall,
        breasts=tuple(breasts),
        torso_centre_x=ex / 2,
        torso_half_width=ex * (rng.uniform(0.46, 0.5) if axial else 5.0),
        torso_depth=(ey - wall if axial else wall) * rng.uniform(1.05, 1.2),
        heart=_heart(rng, spec, ey - wall if axial else wall),
        density=rng.uniform(-0.2, 0.2),
        texture=tuple(waves),
        bias=_bias(rng, spec),
        signal=signal,
    )


def _heart(
    rng: np.random.Generator, spec: CaseSpec, behind: float
) -> tuple[float, float, float, float, float, float]:
    """The heart: an ellipsoid behind the chest wall (in the middle of an axial volume, at the
    medial edge of a sagittal one), bright after contrast like the blood pool of a real series."""
    ex, _, ez = spec.extent_xyz
    axial = spec.view == "axial"
    depth = _MUSCLE_MM + behind * rng.uniform(0.35, 0.45)
    return (
        ex * (rng.uniform(0.45, 0.55) if axial else 0.0),
        -depth,
        ez * rng.uniform(0.4, 0.6),
        ex * (rng.uniform(0.15, 0.2) if axial else 0.5),
        behind * rng.uniform(0.25, 0.3),
        ez * rng.uniform(0.35, 0.45),
    )


def _breast_q(b: Breast, x: F64, z: F64, d: F64, shrink: float) -> tuple[F64, F64, F64]:
    """Per-axis terms of the breast's squared normalized radius (broadcast sum = q)."""
    qx = ((x - b.centre_x) / max(b.radius_x - shrink, 1.0)) ** 2
    qz = ((z - b.centre_z) / max(b.radius_z - shrink, 1.0)) ** 2
    qd = (np.maximum(d, 0.0) / max(b.depth - shrink, 1.0)) ** 2
    return qx, qd, qz


# Tissue classes of a TissueLayout: indices into the per-phase intensity table.
AIR, THORAX, MUSCLE, FAT, SKIN, BLOOD, BREAST = range(7)


@dataclass(frozen=True)
class TissueLayout:
    """What does not change between phases in a slab: each voxel's tissue class and, in the
    breasts, its glandular fraction (0 elsewhere)."""

    classes: U8
    frac: F32


def tissue_layout(anatomy: Anatomy, spec: CaseSpec, z0: int, z1: int) -> TissueLayout:
    """The tissue classes and glandular fraction of slab ``z0:z1`` (zyx)."""
    nx, ny, _ = spec.size_xyz
    sx, sy, sz = spec.spacing_xyz
    x = centres(nx, sx)
    d = anatomy.anterior_mm(centres(ny, sy))
    z = centres(spec.size_xyz[2], sz)[z0:z1]
    k = z1 - z0

    # Torso: an ellipse in the (x, y) plane whose front is the skin over the subcutaneous fat.
    u = ((x - anatomy.torso_centre_x) / anatomy.torso_half_width) ** 2
    front = _SUBCUT_MM + _SKIN_MM
    v = ((d - front) / anatomy.torso_depth) ** 2
    torso_yx = (u[None, :] + v[:, None] <= 1.0) & (d[:, None] <= front)
    layer = np.full(ny, THORAX, dtype=np.uint8)
    layer[d > -_MUSCLE_MM] = MUSCLE
    layer[d > 0] = FAT
    layer[d > _SUBCUT_MM] = SKIN
    classes = np.empty((k, ny, nx), dtype=np.uint8)
    classes[:] = np.where(torso_yx, layer[:, None], np.uint8(AIR))[None, :, :]
    hx, hd, hz, rx, rd, rz = anatomy.heart
    hq_z = ((z - hz) / rz) ** 2
    if (hq_z <= 1.0).any():
        hq_yx = ((d[:, None] - hd) / rd) ** 2 + ((x[None, :] - hx) / rx) ** 2
        heart = (hq_z[:, None, None] + hq_yx[None, :, :] <= 1.0) & torso_yx[None, :, :]
        classes[heart] = BLOOD

    # Breasts: the smallest normalized radius over the breasts; skin where only the outer one
    # holds the voxel.
    q = np.full((k, ny, nx), np.inf, dtype=np.float32)
    q_in = np.full((k, ny, nx), np.inf, dtype=np.float32)
    tmp = np.empty((k, ny, nx), dtype=np.float32)
    for b in anatomy.breasts:
        for target, shrink in ((q, 0.0), (q_in, _SKIN_MM)):
            qx, qd, qz = _breast_q(b, x, z, d, shrink)
            np.add(qz[:, None, None] + qd[None, :, None], qx[None, None, :], out=tmp)
            np.minimum(target, tmp, out=target)
    breast = (q <= 1.0) & (d > 0)[None, :, None]
    skin = breast & (q_in > 1.0)
    classes[breast] = BREAST
    classes[skin] = SKIN
    frac = np.zeros((k, ny, nx), dtype=np.float32)
    warp = np.empty((k, ny, nx), dtype=np.float32)
    waves = anatomy.texture
    for (cx, cy, cz), (wx, wy, wz) in zip(waves[::2], waves[1::2], strict=True):
        np.add(wz[z0:z1, None, None] + wy[None, :, None], wx[None, None, :], out=warp)
        np.cos(warp, out=warp)
        warp *= np.float32(1.8)
        warp += cz[z0:z1, None, None] + cy[None, :, None]
        warp += cx[None, None, :]
        frac += np.cos(warp, out=warp)
    # Denser at the core (small q), fatty at the surface; warped plane-wave lobules in between.
    np.multiply(frac, np.float32(0.6), out=frac)
    frac += np.float32(0.8 + 2 * anatomy.density) - np.float32(2.2) * np.minimum(q, 1.0)
    # A soft step x / (1 + |x|) into (0, 1) rather than a clip: few voxels are pure gland, so
    # the brightest percent of a post-contrast phase is the enhancing tumour, as in a real one.
    np.divide(frac, np.abs(frac) + np.float32(1.0), out=tmp)
    np.multiply(tmp, np.float32(0.5), out=frac)
    frac += np.float32(0.5)
    np.copyto(frac, np.float32(0.0), where=classes != BREAST)
    return TissueLayout(classes=classes, frac=frac)


def tissue_values(layout: TissueLayout, signal: TissueSignal, t_s: float) -> F32:
    """Noise-free, bias-free signal of a layout at time ``t_s`` (float32; air 0)."""
    sig = signal
    fat = sig.fat * sig.fat_kinetics.relative(t_s)
    gland = sig.gland * sig.gland_kinetics.relative(t_s)
    table = np.array(
        [
            0.0,
            sig.thorax,
            sig.muscle * sig.muscle_kinetics.relative(t_s),
            fat,
            sig.skin,
            sig.blood * sig.blood_kinetics.relative(t_s),
            fat,
        ],
        dtype=np.float32,
    )
    value: F32 = table[layout.classes]
    value += np.float32(gland - fat) * layout.frac  # frac is 0 outside the breasts
    return value


def bias_slab(anatomy: Anatomy, z0: int, z1: int) -> F32:
    bx, by, bz = anatomy.bias
    out: F32 = (np.float32(1.0) + bz[z0:z1, None, None] + by[None, :, None]) + bx[None, None, :]
    return out
