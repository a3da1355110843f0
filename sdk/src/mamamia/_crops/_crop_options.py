"""``CropOptions``: the options of a crop stream, checked once, with errors naming the parameter."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mamamia._errors import InvalidRequest
from mamamia.raw import MASK_KINDS

__all__ = ["LABEL_KINDS", "LAYOUTS", "NORMALIZATIONS", "SAMPLERS", "CropOptions"]

SAMPLERS = ("tumor", "uniform", "grid")
NORMALIZATIONS = ("zscore",)
LABEL_KINDS: tuple[str, ...] = tuple(k.value for k in MASK_KINDS)
#: "native": numpy (C, Z, Y, X) dicts; "monai": MetaTensors (C, H, W, D) with their affine.
LAYOUTS = ("native", "monai")


@dataclass(frozen=True, init=False)
class CropOptions:
    """Everything that decides a crop stream except its cases: checked once, when made.

    ``Catalog.crops(cohort, **options)`` makes one from its keywords; the fields hold the
    normalised values (``size=64`` becomes ``(64, 64, 64)``). ``threads=None`` lets the stream
    choose (4 reader threads on a folder, 8 over a server); ``prefetch=None`` is twice
    ``threads``. A bad value raises ``InvalidRequest`` naming the parameter.
    """

    size: tuple[int, int, int]
    phases: tuple[int, ...]
    subtraction: bool
    label: str | None
    sampler: str
    pos_ratio: float
    per_case: int
    normalize: str | None
    spacing: tuple[float, float, float] | None
    overlap: tuple[int, int, int]
    seed: int
    epoch: int
    rank: int
    world_size: int
    even: bool
    threads: int | None
    prefetch: int | None
    layout: str

    def __init__(
        self,
        *,
        size: int | Sequence[int] = (64, 64, 64),
        phases: int | Sequence[int] = (0, 1),
        subtraction: bool = True,
        label: str | None = "expert",
        sampler: str = "tumor",
        pos_ratio: float = 0.5,
        per_case: int = 1,
        normalize: str | None = "zscore",
        spacing: float | Sequence[float] | None = None,
        overlap: int | Sequence[int] | None = None,
        seed: int = 0,
        epoch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        even: bool = False,
        threads: int | None = None,
        prefetch: int | None = None,
        layout: str = "native",
    ) -> None:
        crop_size = _triple_int("size", size, 1)
        phase_list = _phases(phases, subtraction)
        if label is not None and label not in LABEL_KINDS:
            raise InvalidRequest(f"label must be one of {LABEL_KINDS} or None, not {label!r}")
        if sampler not in SAMPLERS:
            raise InvalidRequest(f"sampler must be one of {SAMPLERS}, not {sampler!r}")
        if not isinstance(pos_ratio, int | float) or not 0.0 <= float(pos_ratio) <= 1.0:
            raise InvalidRequest(f"pos_ratio must be a number in [0, 1], not {pos_ratio!r}")
        _check_int("per_case", per_case, 1)
        if normalize is not None and normalize not in NORMALIZATIONS:
            raise InvalidRequest(f"normalize must be 'zscore' or None, not {normalize!r}")
        target: tuple[float, float, float] | None = None
        if spacing is not None:
            target = _spacing(spacing)
            if sampler == "grid":
                raise InvalidRequest(
                    "spacing= does not combine with sampler='grid': grid tiles map predictions "
                    "back voxel for voxel; resample the stitched prediction instead"
                )
        if overlap is None:
            tile_overlap = (crop_size[0] // 4, crop_size[1] // 4, crop_size[2] // 4)
        else:
            tile_overlap = _triple_int("overlap", overlap, 0)
        if any(o >= s for o, s in zip(tile_overlap, crop_size, strict=True)):
            raise InvalidRequest(f"overlap {tile_overlap} must be smaller than size {crop_size}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InvalidRequest(f"seed must be an int, not {seed!r}")
        _check_int("epoch", epoch, 0)
        _check_int("world_size", world_size, 1)
        if not isinstance(rank, int) or isinstance(rank, bool) or not 0 <= rank < world_size:
            raise InvalidRequest(
                f"rank must be an int in [0, world_size={world_size}), not {rank!r}"
            )
        if threads is not None:
            _check_int("threads", threads, 1)
            prefetch = 2 * threads if prefetch is None else prefetch
        if prefetch is not None:
            _check_int("prefetch", prefetch, 1)
        if layout not in LAYOUTS:
            raise InvalidRequest(f"layout must be one of {LAYOUTS}, not {layout!r}")
        values = {
            "size": crop_size,
            "phases": phase_list,
            "subtraction": bool(subtraction),
            "label": label,
            "sampler": sampler,
            "pos_ratio": float(pos_ratio),
            "per_case": per_case,
            "normalize": normalize,
            "spacing": target,
            "overlap": tile_overlap,
            "seed": seed,
            "epoch": epoch,
            "rank": rank,
            "world_size": world_size,
            "even": bool(even),
            "threads": threads,
            "prefetch": prefetch,
            "layout": layout,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)  # frozen: set once, here

    @property
    def read_phases(self) -> tuple[int, ...]:
        """Every phase a crop reads: the asked ones, plus 0 and 1 for the subtraction."""
        needed = set(self.phases) | ({0, 1} if self.subtraction else set())
        return tuple(sorted(needed))

    @property
    def channels(self) -> int:
        return len(self.phases) + (1 if self.subtraction else 0)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidRequest(f"{name} must be an int >= {minimum}, not {value!r}")


def _phases(phases: Any, subtraction: bool) -> tuple[int, ...]:
    if isinstance(phases, int) and not isinstance(phases, bool):
        phases = (phases,)
    try:
        phase_list = tuple(phases)
    except TypeError:
        raise InvalidRequest(
            f"phases must be a sequence of phase numbers, not {phases!r}"
        ) from None
    if not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in phase_list):
        raise InvalidRequest(f"phases must be non-negative ints, not {phases!r}")
    if len(set(phase_list)) != len(phase_list):
        raise InvalidRequest(f"phases lists a phase twice: {phases!r}")
    if not phase_list and not subtraction:
        raise InvalidRequest(
            "phases is empty and subtraction is off: the crops would have no channel"
        )
    return phase_list


def _triple_int(name: str, value: Any, minimum: int) -> tuple[int, int, int]:
    items = (value,) * 3 if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        triple = tuple(items)
    except TypeError:
        raise InvalidRequest(
            f"{name} must be an int or three ints (z, y, x), not {value!r}"
        ) from None
    if len(triple) != 3 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in triple
    ):
        raise InvalidRequest(
            f"{name} must be three ints >= {minimum} in (z, y, x) order, not {value!r}"
        )
    return (triple[0], triple[1], triple[2])


def _spacing(value: Any) -> tuple[float, float, float]:
    items: Sequence[Any] = (value,) * 3 if isinstance(value, int | float) else value
    try:
        triple = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise InvalidRequest(
            f"spacing must be three millimetres (z, y, x), not {value!r}"
        ) from None
    if len(triple) != 3 or not all(math.isfinite(v) and v > 0 for v in triple):
        raise InvalidRequest(f"spacing must be three positive millimetres (z, y, x), not {value!r}")
    return (triple[0], triple[1], triple[2])
