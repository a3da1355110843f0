"""Contrast kinetics of the phantom's tissue classes, in closed form.

Every class has the signal ``S(t) = S0 * (1 + E * u(t))`` at ``t`` seconds after the
pre-contrast phase, with the uptake ``u(t) = (1 - exp(-t / tau)) * exp(-w * t)`` (0 for
``t <= 0``). A multiplicative bias field scales ``S0`` and ``S(t)`` alike, so a voxel's percent
enhancement ``PE = 100 * E * u(t_early)`` and signal enhancement ratio
``SER = u(t_early) / u(t_late)`` depend on its class alone: the truth the ingest features are
tested against (docs/features.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CURVES", "Kinetics", "draw_kinetics"]

#: Curve types of a tumour compartment, by its SER class (< 0.9, 0.9-1.1, > 1.1).
CURVES = ("persistent", "plateau", "washout")

# SER drawn well inside each class, so that noise rarely moves a voxel across a class boundary.
_SER_BAND = {"persistent": (0.6, 0.8), "plateau": (0.97, 1.03), "washout": (1.25, 1.6)}
# Uptake time constants: slow for persistent curves, fast for plateau and washout.
_TAU_S = {"persistent": (200.0, 400.0), "plateau": (30.0, 80.0), "washout": (30.0, 80.0)}


@dataclass(frozen=True)
class Kinetics:
    """One tissue class's enhancement: amplitude ``E``, uptake time ``tau`` and washout ``w``."""

    amplitude: float
    tau_s: float
    washout_per_s: float
    curve: str = "persistent"

    def uptake(self, t_s: float) -> float:
        if t_s <= 0:
            return 0.0
        return (1.0 - math.exp(-t_s / self.tau_s)) * math.exp(-self.washout_per_s * t_s)

    def relative(self, t_s: float) -> float:
        """``S(t) / S0``."""
        return 1.0 + self.amplitude * self.uptake(t_s)

    def pe(self, t_early_s: float) -> float:
        """Percent enhancement at the early phase."""
        return 100.0 * self.amplitude * self.uptake(t_early_s)

    def ser(self, t_early_s: float, t_late_s: float) -> float | None:
        """Signal enhancement ratio (None when the late phase shows no enhancement)."""
        late = self.uptake(t_late_s)
        return self.uptake(t_early_s) / late if late > 0 else None


def draw_kinetics(
    rng: np.random.Generator,
    curve: str,
    pe_range: tuple[float, float],
    t_early_s: float,
    t_late_s: float,
) -> Kinetics:
    """Kinetics of ``curve`` whose PE and SER at the two phases are drawn from ``pe_range`` and
    the curve's SER band: ``tau`` is drawn, then ``w`` solved so that the SER is the one drawn."""
    tau = float(rng.uniform(*_TAU_S[curve]))
    ser = float(rng.uniform(*_SER_BAND[curve]))
    pe = float(rng.uniform(*pe_range))
    te = max(t_early_s, 1.0)
    tl = max(t_late_s, te + 1.0)
    rise = (1.0 - math.exp(-te / tau)) / (1.0 - math.exp(-tl / tau))
    w = math.log(ser / rise) / (tl - te)
    u_early = (1.0 - math.exp(-te / tau)) * math.exp(-w * te)
    return Kinetics(amplitude=pe / (100.0 * u_early), tau_s=tau, washout_per_s=w, curve=curve)
