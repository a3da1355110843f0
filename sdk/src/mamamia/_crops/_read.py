"""One case's crops: where they go (tumour, uniform, grid) and what they hold."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mamamia._crops._crop_options import CropOptions
from mamamia._crops._region import Window
from mamamia._errors import CatalogFormatError, InvalidRequest

if TYPE_CHECKING:
    from mamamia._case import Case
    from mamamia._volume import Volume

__all__ = ["UNION_BUDGET", "UNION_GAIN", "CaseReader", "Tumour"]

#: Most bytes (source dtype) one case visit reads at once to share chunks between its crops.
UNION_BUDGET = 64 << 20
#: A union read pays off only where crops overlap: the chunk reader decodes just the planes a
#: box needs, so separate reads of scattered crops decode less than their union (measured on
#: full-size volumes: unions up to 4x the crops' voxels made 8 crops per case 10-20% slower).
UNION_GAIN = 1

Crop = dict[str, Any]


@dataclass(frozen=True)
class Tumour:
    """The expert mask's nonzero voxels, as flat indices into its bounding box."""

    box_min: tuple[int, int, int]
    box_shape: tuple[int, int, int]
    flat: npt.NDArray[np.intp]

    def voxel(self, rng: np.random.Generator) -> tuple[int, int, int]:
        flat = int(self.flat[rng.integers(len(self.flat))])
        z, y, x = np.unravel_index(flat, self.box_shape)
        return (self.box_min[0] + int(z), self.box_min[1] + int(y), self.box_min[2] + int(x))


class CaseReader:
    """Reads the crops of one case (opened through the Catalog interface only)."""

    def __init__(self, case: Case, options: CropOptions) -> None:
        self.options = options
        self.patient_id = case.patient_id
        self._case = case
        self.image: Volume = case.image
        self.shape = self.image.spatial_shape
        phases = self.image.shape[0]
        missing = [p for p in options.read_phases if p >= phases]
        if missing:
            why = "" if missing[0] in options.phases else " (the subtraction needs phases 0 and 1)"
            raise InvalidRequest(
                f"case {self.patient_id} has {phases} phases (0..{phases - 1}); the crops ask "
                f"for phase {missing[0]}{why}"
            )
        self.label: Volume | None = None
        if options.label is not None:
            self.label = self._mask(options.label)
        self.source_spacing = self.image.spacing
        if options.spacing is None:
            self.ratio: tuple[float, float, float] = (1.0, 1.0, 1.0)
            self.spacing = self.source_spacing
        else:
            self.spacing = options.spacing
            self.ratio = (
                options.spacing[0] / self.source_spacing[0],
                options.spacing[1] / self.source_spacing[1],
                options.spacing[2] / self.source_spacing[2],
            )
        self._stats = self._phase_stats() if options.normalize == "zscore" else {}
        self._affine = self.image.affine(ras=True)
        self._tumour: Tumour | None = None
        self._tumour_read = False

    def _mask(self, kind: str) -> Volume:
        mask = self._case.mask(kind)
        if mask.spatial_shape != self.shape:
            raise CatalogFormatError(
                f"case {self.patient_id}: the {kind} mask has shape {mask.spatial_shape}, the "
                f"image {self.shape}"
            )
        return mask

    def _phase_stats(self) -> dict[int, tuple[float, float]]:
        stats: dict[int, tuple[float, float]] = {}
        for row in self._case.volumes:
            if row.get("kind") != "image" or row.get("phase") is None:
                continue
            mean, std = row.get("mean"), row.get("std")
            if mean is None or std is None or not math.isfinite(mean) or not math.isfinite(std):
                continue
            # A constant phase has std 0: centring alone keeps it finite.
            stats[int(row["phase"])] = (float(mean), float(std) if std > 0 else 1.0)
        for phase in self.options.read_phases:
            if phase not in stats:
                raise CatalogFormatError(
                    f"case {self.patient_id}: the volumes table has no mean/std for phase "
                    f"{phase}; normalize='zscore' needs them (use normalize=None)"
                )
        return stats

    # Where crops go -----------------------------------------------------------------------

    def tumour(self) -> Tumour | None:
        """The expert mask's voxels inside the catalog's bounding box (read once, lazily)."""
        if self._tumour_read:
            return self._tumour
        self._tumour_read = True
        fields = self._case
        for column in ("tumor_bbox_min_zyx", "tumor_bbox_max_zyx", "tumor_voxels"):
            if column not in fields:
                raise CatalogFormatError(
                    f"case {self.patient_id}: the cases table has no {column} column, which "
                    "sampler='tumor' needs; re-ingest the catalog or use sampler='uniform'"
                )
        lo, hi = fields.get("tumor_bbox_min_zyx"), fields.get("tumor_bbox_max_zyx")
        voxels = fields.get("tumor_voxels")
        if lo is None or hi is None or not voxels:
            return None  # no tumour in the catalog: tumour draws fall back to uniform ones
        box_min = (int(lo[0]), int(lo[1]), int(lo[2]))
        box_max = (int(hi[0]), int(hi[1]), int(hi[2]))
        if not all(0 <= a < b <= n for a, b, n in zip(box_min, box_max, self.shape, strict=True)):
            raise CatalogFormatError(
                f"case {self.patient_id}: tumour bounding box {box_min}..{box_max} does not fit "
                f"the volume {self.shape}"
            )
        expert = self.label if self.options.label == "expert" else self._mask("expert")
        assert expert is not None
        region = expert[tuple(slice(a, b) for a, b in zip(box_min, box_max, strict=True))]
        flat = np.flatnonzero(region)
        if flat.size == 0:
            raise CatalogFormatError(
                f"case {self.patient_id}: the catalog counts {voxels} tumour voxels in "
                f"{box_min}..{box_max}, but the expert mask is empty there"
            )
        box_shape = (region.shape[0], region.shape[1], region.shape[2])
        self._tumour = Tumour(box_min, box_shape, flat.astype(np.intp, copy=False))
        return self._tumour

    def centred_start(self, centre: Sequence[int]) -> tuple[int, int, int]:
        """The start that puts the window's middle voxel (size // 2) on ``centre``."""
        start: list[int] = []
        for a in range(3):
            half, r = self.options.size[a] // 2, self.ratio[a]
            first = int(centre[a]) - math.floor(half * r + 0.5)
            # Labels take the nearest voxel: make sure the middle one lands on the centre.
            for candidate in (first, first + 1, first - 1):
                if math.floor(candidate + half * r + 0.5) == int(centre[a]):
                    first = candidate
                    break
            start.append(first)
        return (start[0], start[1], start[2])

    def uniform_start(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """A start anywhere: inside the volume where it fits, else overhanging evenly at random."""
        start: list[int] = []
        for a in range(3):
            n, extent = self.shape[a], self.extent(a)
            if n >= extent:
                start.append(int(rng.integers(0, n - extent + 1)))
            else:
                start.append(int(rng.integers(n - extent, 1)))
        return (start[0], start[1], start[2])

    def extent(self, axis: int) -> int:
        """Source voxels a window spans along ``axis``."""
        return math.floor((self.options.size[axis] - 1) * self.ratio[axis] + 1e-9) + 1

    def random_starts(self, rng: np.random.Generator) -> list[tuple[int, int, int]]:
        """``per_case`` starts for the tumour or uniform sampler, from this visit's stream."""
        starts: list[tuple[int, int, int]] = []
        for _ in range(self.options.per_case):
            positive = self.options.sampler == "tumor" and rng.random() < self.options.pos_ratio
            tumour = self.tumour() if positive else None
            if tumour is not None:
                starts.append(self.centred_start(tumour.voxel(rng)))
            else:
                starts.append(self.uniform_start(rng))
        return starts

    # What crops hold ----------------------------------------------------------------------

    def read(self, start: Sequence[int]) -> Crop:
        """One crop, reading only the source box its window needs."""
        return self._assemble(Window(start, self.options.size, self.ratio, self.shape), self._fetch)

    def read_many(self, starts: Sequence[Sequence[int]]) -> list[Crop]:
        """Several crops of this case; overlapping ones share one read when that is cheaper.

        When the union of the crops' source boxes fits ``UNION_BUDGET`` bytes and holds at most
        ``UNION_GAIN`` times their summed voxels, it is read once and every crop is cut from it,
        so each chunk is decompressed once per case visit instead of once per crop.
        """
        options = self.options
        windows = [Window(start, options.size, self.ratio, self.shape) for start in starts]
        live = [w for w in windows if not w.empty]
        if len(live) < 2:
            return [self._assemble(w, self._fetch) for w in windows]
        lo = [min(w.axes[a].lo for w in live) for a in range(3)]
        hi = [max(w.axes[a].hi for w in live) for a in range(3)]
        union = math.prod(b - a for a, b in zip(lo, hi, strict=True))
        separate = sum(math.prod(ax.hi - ax.lo for ax in w.axes) for w in live)
        per_voxel = len(options.read_phases) * self.image.dtype.itemsize
        per_voxel += 1 if self.label is not None else 0
        if union > UNION_GAIN * separate or union * per_voxel > UNION_BUDGET:
            return [self._assemble(w, self._fetch) for w in windows]
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        rows = {p: self.image[(p, *box)] for p in options.read_phases}
        labels = self.label[box] if self.label is not None else None

        def cut(sub: tuple[slice, slice, slice]) -> tuple[dict[int, Any], Any]:
            local = tuple(slice(s.start - o, s.stop - o) for s, o in zip(sub, lo, strict=True))
            return (
                {p: rows[p][local] for p in rows},
                labels[local] if labels is not None else None,
            )

        return [self._assemble(w, cut) for w in windows]

    def _fetch(self, box: tuple[slice, slice, slice]) -> tuple[dict[int, Any], Any]:
        # One call per phase: measured faster in zarr than one call over a phase range.
        rows = {p: self.image[(p, *box)] for p in self.options.read_phases}
        return rows, (self.label[box] if self.label is not None else None)

    def _assemble(
        self,
        window: Window,
        fetch: Callable[[tuple[slice, slice, slice]], tuple[dict[int, Any], Any]],
    ) -> Crop:
        options = self.options
        crop: Crop = {"patient_id": self.patient_id}
        image = np.zeros((options.channels, *options.size), dtype=np.float32)
        label = np.zeros(options.size, dtype=np.uint8) if self.label is not None else None
        if not window.empty:
            rows, region = fetch(window.source_box)
            if window.identity:
                # Normalise straight into the padded output: no temporaries per channel.
                self._channels(rows, image[(slice(None), *window.placement)])
            else:
                lead = (options.channels, *(ax.hi - ax.lo for ax in window.axes))
                source = np.empty(lead, dtype=np.float32)
                self._channels(rows, source)
                image = window.sample_linear(source)
            if region is not None:
                label = window.sample_nearest(region, np.uint8)
        crop["image"] = image
        if label is not None:
            crop["label"] = label
        crop["index"] = window.start
        crop["spacing"] = self.spacing
        crop["affine"] = self.window_affine(window.start)
        return crop

    def window_affine(self, start: Sequence[int]) -> npt.NDArray[np.float64]:
        """The RAS 4x4 of a window's voxels, indexed (i, j, k) = (x, y, z) as nibabel does.

        Target voxel ``i`` of an axis sits on source index ``start + i * ratio``, so the window's
        affine is the volume's, scaled by the ratio and shifted to the start: what MONAI,
        TorchIO and a stitcher need to put the crop back where it lies.
        """
        step = np.eye(4)
        for column, axis in enumerate((2, 1, 0)):  # (x, y, z) columns from (z, y, x) axes
            step[column, column] = self.ratio[axis]
            step[column, 3] = float(start[axis])
        affine: npt.NDArray[np.float64] = self._affine @ step
        return affine

    def _channels(self, rows: dict[int, npt.NDArray[Any]], out: npt.NDArray[np.float32]) -> None:
        """Write the channels (C, z, y, x) of a source box into ``out``, normalised.

        Normalising before any resampling is exact (linear interpolation commutes with the
        affine z-score) and keeps the padding at exactly 0.
        """
        options = self.options
        for channel, p in enumerate(options.phases):
            target = out[channel]
            if self._stats:
                mean, std = self._stats[p]
                np.subtract(rows[p], np.float32(mean), out=target, dtype=np.float32)
                np.divide(target, np.float32(std), out=target)
            else:
                target[...] = rows[p]
        if options.subtraction:
            target = out[len(options.phases)]
            np.subtract(rows[1], rows[0], out=target, dtype=np.float32)
            if self._stats:
                np.divide(target, np.float32(self._stats[0][1]), out=target)
