"""Per-case DCE kinetic features of the tumour: PE, SER, FTV, curve-type fractions, mean curve.

The ingest worker feeds every phase it already reads to a :class:`KineticsAccumulator`, which
keeps only the masks' bounding box of the pre-contrast, early and late phases (a tumour is a
small part of a volume) and each phase's mean over each mask. Definitions, the phase choice and
references: docs/features.md. Every value is a plain number or None, never NaN.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mamamia_ingest._features import EXACT_PERCENTILE_VOXELS, finite, percentiles

__all__ = [
    "BACKGROUND_FRACTION",
    "EARLY_S",
    "FEATURES_VERSION",
    "FTV_PE_THRESHOLD",
    "KINETIC_COLUMNS",
    "LATE_S",
    "SER_PERSISTENT_BELOW",
    "SER_WASHOUT_ABOVE",
    "KineticsAccumulator",
    "PhaseChoice",
    "choose_phases",
    "ftv_region",
    "mask_box",
]

#: Version of the per-case feature set stored in a generation (kinetics and shape: 2).
FEATURES_VERSION = 2
#: Target times of the early and late post-contrast phases, seconds after the pre-contrast one.
EARLY_S = 150.0
LATE_S = 450.0
#: FTV keeps voxels whose PE is at least this (percent).
FTV_PE_THRESHOLD = 70.0
#: FTV keeps voxels whose pre-contrast signal exceeds this fraction of the pre-contrast phase's
#: 95th percentile (excludes air and noise, where PE is meaningless).
BACKGROUND_FRACTION = 0.2
#: SER classes of FTV voxels: persistent below, washout above, plateau between (inclusive).
SER_PERSISTENT_BELOW = 0.9
SER_WASHOUT_ABOVE = 1.1

_STATS = ("mean", "median", "p90")
#: The kinetic columns of the cases table (``auto_`` ones from the automatic mask).
KINETIC_COLUMNS: tuple[str, ...] = (
    "kinetic_early_phase",
    "kinetic_late_phase",
    "kinetic_phase_fallback",
    *(f"pe_{s}" for s in _STATS),
    "pe_peak",
    *(f"ser_{s}" for s in _STATS),
    "ftv_cm3",
    "persistent_fraction",
    "plateau_fraction",
    "washout_fraction",
    "kinetic_curve",
    "auto_pe_mean",
    "auto_ser_mean",
    "auto_ftv_cm3",
    "auto_washout_fraction",
)

B = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PhaseChoice:
    """The early and late phase indices; ``fallback`` when times were missing or unusable."""

    early: int
    late: int
    fallback: bool


def choose_phases(times_s: Sequence[float | None] | None, num_phases: int) -> PhaseChoice | None:
    """I-SPY phases: the post-contrast phase nearest ``EARLY_S`` after phase 0 (not the last),
    then the later phase nearest ``LATE_S``. Without one time per phase, strictly increasing:
    phase 1 and the last phase, flagged. None for fewer than 3 phases."""
    if num_phases < 3:
        return None
    times = [t for t in times_s or () if t is not None and math.isfinite(t)]
    ok = len(times) == num_phases and all(b > a for a, b in itertools.pairwise(times))
    if not ok:
        return PhaseChoice(1, num_phases - 1, True)
    rel = [t - times[0] for t in times]
    early = min(range(1, num_phases - 1), key=lambda p: (abs(rel[p] - EARLY_S), p))
    late = min(range(early + 1, num_phases), key=lambda p: (abs(rel[p] - LATE_S), p))
    return PhaseChoice(early, late, False)


def mask_box(mask: npt.NDArray[Any]) -> tuple[slice, slice, slice] | None:
    """The bounding box of a 0/1 mask's ones (z, y, x slices), None when it has none."""
    m = mask.view(np.bool_) if mask.dtype == np.uint8 else mask.astype(bool)
    hit_z = np.flatnonzero(m.any(axis=(1, 2)))
    if hit_z.size == 0:
        return None
    z = slice(int(hit_z[0]), int(hit_z[-1]) + 1)
    slab = m[z]  # the other two projections only over the slices that hold the mask
    hit_y = np.flatnonzero(slab.any(axis=(0, 2)))
    hit_x = np.flatnonzero(slab.any(axis=(0, 1)))
    return z, slice(int(hit_y[0]), int(hit_y[-1]) + 1), slice(int(hit_x[0]), int(hit_x[-1]) + 1)


def ftv_region(pe: F64, ser_ok: B, s0_ok: B, region: B) -> B:
    """FTV voxels: in ``region``, PE >= threshold, background passed, SER defined and >= 0;
    then voxels without any of their 26 neighbours in the set are dropped (connectivity)."""
    keep = region & s0_ok & ser_ok & (pe >= FTV_PE_THRESHOLD)
    if not keep.any():
        return keep
    # Neighbour counts by 26 shifted adds over the (small) box: far cheaper than labelling.
    z, y, x = keep.shape
    padded = np.pad(keep, 1).view(np.uint8)
    neighbours = np.zeros(keep.shape, dtype=np.uint8)
    for dz, dy, dx in itertools.product((0, 1, 2), repeat=3):
        if (dz, dy, dx) != (1, 1, 1):
            neighbours += padded[dz : dz + z, dy : dy + y, dx : dx + x]
    out: B = keep & (neighbours > 0)
    return out


class KineticsAccumulator:
    """Collects what the kinetic features need while the phases stream past, one at a time."""

    def __init__(
        self,
        masks: Mapping[str, npt.NDArray[Any] | None],
        times_s: Sequence[float | None] | None,
        num_phases: int,
        spacing_xyz: Sequence[float],
    ) -> None:
        self.choice = choose_phases(times_s, num_phases)
        self.voxel_cm3 = float(np.prod(np.asarray(spacing_xyz, dtype=np.float64))) / 1000.0
        self.notes: list[str] = []
        self._masks: dict[str, B] = {}
        boxes = []
        for role, mask in masks.items():
            if mask is None:
                continue
            box = mask_box(mask)
            if box is None:
                if role == "expert":
                    self.notes.append("the expert mask is empty: its kinetic features are null")
                continue
            boxes.append((role, box))
        self._box: tuple[slice, slice, slice] | None = None
        if boxes:
            lo = [min(b[i].start for _, b in boxes) for i in range(3)]
            hi = [max(b[i].stop for _, b in boxes) for i in range(3)]
            self._box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
            for role, _ in boxes:
                mask = masks[role]
                assert mask is not None
                self._masks[role] = mask[self._box].astype(bool)
        self._curves: dict[str, list[float | None]] = {role: [] for role in self._masks}
        self._kept: dict[int, F64] = {}
        self._background: float | None = None
        self._keep = {0} if self.choice is None else {0, self.choice.early, self.choice.late}

    def add(self, phase: int, data: npt.NDArray[Any]) -> None:
        """Phase ``phase`` (the whole volume, z, y, x); phases come in order from 0."""
        if self._box is None:
            return
        crop = data[self._box]
        for role, m in self._masks.items():
            values = crop[m]
            self._curves[role].append(finite(values.mean(dtype=np.float64)))
        if phase in self._keep:
            self._kept[phase] = crop.astype(np.float64)
        if phase == 0:
            flat = data.reshape(-1)
            step = max(1, -(-flat.size // EXACT_PERCENTILE_VOXELS))
            (p95,) = percentiles(flat[::step], (95.0,))  # np.percentile's, from a histogram
            self._background = BACKGROUND_FRACTION * p95

    def features(self) -> dict[str, Any]:
        """The kinetic columns; reasons for nulls are appended to ``notes``."""
        out: dict[str, Any] = dict.fromkeys(KINETIC_COLUMNS)
        if self._box is None:
            return out
        curve = self._curves.get("expert")
        if curve is not None and None not in curve:
            out["kinetic_curve"] = curve
        choice = self.choice
        if choice is None:
            self.notes.append("fewer than 3 phases: PE, SER and FTV are null")
            return out
        out["kinetic_early_phase"] = choice.early
        out["kinetic_late_phase"] = choice.late
        out["kinetic_phase_fallback"] = choice.fallback
        if choice.fallback:
            self.notes.append(
                f"acquisition times missing or unusable: early phase {choice.early} and late "
                f"phase {choice.late} used for PE and SER"
            )
        s0 = self._kept[0]
        early = self._kept[choice.early]
        late = self._kept[choice.late]
        up_early = early - s0
        up_late = late - s0
        with np.errstate(divide="ignore", invalid="ignore"):
            pe = np.where(s0 > 0, 100.0 * up_early / np.where(s0 > 0, s0, 1.0), np.nan)
            ser = np.where(up_late > 0, up_early / np.where(up_late > 0, up_late, 1.0), np.nan)
        bg = self._background if self._background is not None else 0.0
        s0_ok = s0 > bg
        ser_ok = up_late > 0
        for role in ("expert", "automatic"):
            m = self._masks.get(role)
            if m is None:
                continue
            region_pe = pe[m & (s0 > 0)]
            if region_pe.size == 0:
                if role == "expert":
                    self.notes.append("zero pre-contrast signal in the whole tumour: PE is null")
                continue
            ftv = ftv_region(pe, ser_ok, s0_ok, m)
            n_ftv = int(ftv.sum())
            stats = _kinetic_stats(region_pe, ser[ftv], n_ftv * self.voxel_cm3)
            if role == "expert":
                out.update(stats)
                if n_ftv == 0:
                    self.notes.append("no voxel passes the FTV rule: SER and fractions are null")
            else:
                for key in ("pe_mean", "ser_mean", "ftv_cm3", "washout_fraction"):
                    out[f"auto_{key}"] = stats[key]
        return out


def _kinetic_stats(pe: F64, ser: F64, ftv_cm3: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "pe_mean": finite(pe.mean()),
        "pe_median": finite(np.median(pe)),
        "pe_p90": finite(np.percentile(pe, 90.0)),
        "pe_peak": finite(np.percentile(pe, 95.0)),
        "ftv_cm3": finite(ftv_cm3),
    }
    if ser.size:
        n = ser.size
        out.update(
            ser_mean=finite(ser.mean()),
            ser_median=finite(np.median(ser)),
            ser_p90=finite(np.percentile(ser, 90.0)),
            persistent_fraction=finite(np.count_nonzero(ser < SER_PERSISTENT_BELOW) / n),
            plateau_fraction=finite(
                np.count_nonzero((ser >= SER_PERSISTENT_BELOW) & (ser <= SER_WASHOUT_ABOVE)) / n
            ),
            washout_fraction=finite(np.count_nonzero(ser > SER_WASHOUT_ABOVE) / n),
        )
    else:
        for key in ("ser_mean", "ser_median", "ser_p90"):
            out[key] = None
        for key in ("persistent_fraction", "plateau_fraction", "washout_fraction"):
            out[key] = None
    return out
