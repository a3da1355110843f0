"""The phantom's lesions: a tumour in one breast, its compartments and kinetics, its masks.

The tumour's volume is drawn log-uniformly from about 0.5-100 cm3 (capped so that it fits its
breast and the volume). It is an ellipsoid (a mass) or, for about one case in five, an
irregular non-mass-like shape (an ellipsoid whose radius is modulated by plane waves). Masses of
8 mm equivalent radius or more may have a necrotic core that barely enhances; every tumour has an
inner part and a rim, each with its own curve type (persistent, plateau, washout), and about a
quarter of the cases a second, small focus nearby. The expert mask is exactly the lesion voxels;
the automatic mask the same lesion seen a little larger and off-centre, sometimes without the
focus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._anatomy import Anatomy, centres
from ._phantom_kinetics import CURVES, Kinetics, draw_kinetics
from ._spec import CaseSpec

__all__ = ["LABELS", "Lesions", "build_lesions"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

#: Compartment labels of ``Lesions.labels`` (0 is outside every lesion).
LABELS = {"necrosis": 1, "inner": 2, "rim": 3, "focus": 4}
_NECROSIS_RHO = 0.3  # normalized radius of the necrotic core
_INNER_RHO = 0.6  # normalized radius inside which the tumour is "inner", else "rim"
_ENHANCING_PE = (130.0, 280.0)
_NECROTIC_PE = (5.0, 30.0)


@dataclass(frozen=True)
class Lesions:
    """The lesions of one case inside their box (half-open, array order z, y, x)."""

    lo_zyx: tuple[int, int, int]
    hi_zyx: tuple[int, int, int]
    labels: U8  # compartment per box voxel, see LABELS
    automatic: U8  # the automatic mask over the box, 0/1
    kinetics: tuple[Kinetics, ...]  # per label - 1
    centre_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    non_mass: bool
    focus: bool


def _rho2(spec: CaseSpec, centre: F64, radii: F64, lo: I64, hi: I64) -> F64:
    """Squared normalized distance to ``centre`` for each voxel of box [lo, hi) (xyz), zyx."""
    s = spec.spacing_xyz
    d = [(centres(spec.size_xyz[a], s[a])[lo[a] : hi[a]] - centre[a]) / radii[a] for a in range(3)]
    out: F64 = d[2][:, None, None] ** 2 + d[1][None, :, None] ** 2 + d[0][None, None, :] ** 2
    return out


def _waves(spec: CaseSpec, rng: np.random.Generator, scale_mm: float, lo: I64, hi: I64) -> F64:
    """Mean of three plane waves (wavelength about the lesion's size) over the box: in [-1, 1]."""
    s = spec.spacing_xyz
    axes = [centres(spec.size_xyz[a], s[a])[lo[a] : hi[a]] for a in range(3)]
    total = np.zeros((hi[2] - lo[2], hi[1] - lo[1], hi[0] - lo[0]))
    for _ in range(3):
        k = rng.normal(size=3)
        k *= 2 * np.pi / (np.linalg.norm(k) or 1.0) / (scale_mm * rng.uniform(0.6, 1.2))
        phase = rng.uniform(0, 2 * np.pi)
        total += np.cos(
            (axes[2] * k[2])[:, None, None]
            + (axes[1] * k[1])[None, :, None]
            + (axes[0] * k[0] + phase)[None, None, :]
        )
    out: F64 = total / 3.0
    return out


def _box(spec: CaseSpec, centre: F64, radii: F64) -> tuple[I64, I64]:
    """Index box (xyz, half-open) covering the ellipsoid, at least the voxel holding its centre."""
    size = np.array(spec.size_xyz)
    s = np.array(spec.spacing_xyz)
    lo = np.ceil((centre - radii) / s - 0.5).astype(np.int64)
    hi = np.floor((centre + radii) / s - 0.5).astype(np.int64) + 1
    inner = np.clip(np.floor(centre / s).astype(np.int64), 0, size - 1)
    lo = np.minimum(np.clip(lo, 0, size), inner)
    hi = np.maximum(np.clip(hi, 0, size), inner + 1)
    return lo, hi


def build_lesions(
    spec: CaseSpec, anatomy: Anatomy, rng: np.random.Generator, t_early: float, t_late: float
) -> Lesions:
    extent = np.array(spec.extent_xyz)
    size = np.array(spec.size_xyz)
    spacing = np.array(spec.spacing_xyz)
    breast = anatomy.breasts[int(rng.integers(len(anatomy.breasts)))]
    volume_cm3 = float(np.exp(rng.uniform(np.log(0.5), np.log(100.0))))
    r_eq = (3000.0 * volume_cm3 / (4 * np.pi)) ** (1 / 3)
    shape = np.exp(rng.normal(0.0, 0.15, size=3))
    radii = r_eq * shape / np.prod(shape) ** (1 / 3)
    room = 0.4 * min(breast.radius_x, breast.radius_z, breast.depth)
    radii = np.minimum(np.minimum(radii, room), 0.2 * extent)
    depth = breast.depth * rng.uniform(0.35, 0.55)
    centre = np.array(
        [
            breast.centre_x + breast.radius_x * rng.uniform(-0.3, 0.3),
            anatomy.chest_wall_y + anatomy.anterior * depth,
            breast.centre_z + breast.radius_z * rng.uniform(-0.3, 0.3),
        ]
    )
    centre = np.clip(centre, np.minimum(radii, extent / 2), np.maximum(extent - radii, extent / 2))
    non_mass = bool(rng.random() < 0.2)
    necrotic = bool(not non_mass and r_eq * min(shape) >= 8.0 and rng.random() < 0.4)
    focus = bool(rng.random() < 0.25)
    reach = radii * (1.25 if non_mass else 1.0)
    f_radius = np.full(3, rng.uniform(2.5, 5.0))
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction) or 1.0
    f_centre = centre + direction * (reach.max() * rng.uniform(1.3, 1.8) + f_radius)
    f_centre = np.clip(f_centre, f_radius, extent - f_radius)
    # The automatic mask is the same lesion seen a little larger and off-centre.
    a_radii = radii * rng.uniform(1.08, 1.18)
    a_centre = centre + radii * rng.uniform(0.08, 0.15, size=3) * rng.choice([-1.0, 1.0], size=3)
    a_focus = focus and bool(rng.random() < 0.5)

    boxes = [_box(spec, centre, reach), _box(spec, a_centre, a_radii * reach / radii)]
    if focus:
        boxes.append(_box(spec, f_centre, f_radius))
    lo = np.maximum(np.min([b[0] for b in boxes], axis=0) - 1, 0)
    hi = np.minimum(np.max([b[1] for b in boxes], axis=0) + 1, size)

    rho2 = _rho2(spec, centre, radii, lo, hi)
    limit: F64 | float = 1.0
    if non_mass:
        limit = 1.0 + 0.5 * _waves(spec, rng, float(r_eq), lo, hi)
    labels = np.zeros(rho2.shape, dtype=np.uint8)
    inside = rho2 <= limit
    labels[inside] = LABELS["rim"]
    labels[inside & (rho2 < _INNER_RHO**2 * limit)] = LABELS["inner"]
    if necrotic:
        labels[inside & (rho2 < _NECROSIS_RHO**2)] = LABELS["necrosis"]
    f_inside = np.zeros(rho2.shape, dtype=bool)
    if focus:
        f_inside = _rho2(spec, f_centre, f_radius, lo, hi) <= 1.0
        labels[f_inside & (labels == 0)] = LABELS["focus"]
    if not labels.any():  # lesion smaller than a voxel: keep the voxel holding its centre
        k = np.clip(np.floor(centre / spacing).astype(np.int64), 0, size - 1) - lo
        labels[k[2], k[1], k[0]] = LABELS["rim"]
    automatic = _rho2(spec, a_centre, a_radii, lo, hi) <= limit
    if a_focus:
        automatic |= f_inside

    def curve(p: tuple[float, float, float]) -> str:
        return str(rng.choice(CURVES, p=p))

    kinetics = (
        draw_kinetics(rng, "persistent", _NECROTIC_PE, t_early, t_late),
        draw_kinetics(rng, curve((0.4, 0.3, 0.3)), _ENHANCING_PE, t_early, t_late),
        draw_kinetics(rng, curve((0.15, 0.35, 0.5)), _ENHANCING_PE, t_early, t_late),
        draw_kinetics(rng, curve((0.2, 0.3, 0.5)), _ENHANCING_PE, t_early, t_late),
    )
    return Lesions(
        lo_zyx=(int(lo[2]), int(lo[1]), int(lo[0])),
        hi_zyx=(int(hi[2]), int(hi[1]), int(hi[0])),
        labels=labels,
        automatic=automatic.astype(np.uint8),
        kinetics=kinetics,
        centre_mm=(float(centre[0]), float(centre[1]), float(centre[2])),
        radii_mm=(float(radii[0]), float(radii[1]), float(radii[2])),
        non_mass=non_mass,
        focus=focus,
    )
