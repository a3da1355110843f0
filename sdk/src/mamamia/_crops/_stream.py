"""CropStream: training or inference crops of a cohort, read on a thread pool."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mamamia._case import Case
from mamamia._crops._crop_options import CropOptions
from mamamia._crops._grid import GridStitcher, grid_starts
from mamamia._crops._plan import ShardSlot, rank_slots, sample_rng, shard_slots
from mamamia._crops._read import CaseReader, Crop
from mamamia._errors import InvalidRequest, MamamiaError, NotFoundError

if TYPE_CHECKING:
    from mamamia._catalog import Catalog
    from mamamia._cohort import Cohort

__all__ = ["REMOTE_THREADS", "CropStream", "catalog_opener", "cohort_ids"]

#: Default reader threads over a server (requests overlap; measured ~1.7x over 2 threads).
REMOTE_THREADS = 8

#: Grid tiles per task: neighbours share one read of their union, and memory stays low.
_TILES_PER_TASK = 8
#: Cases whose rows one query fetches: one round trip instead of two per case.
_ROWS_PER_QUERY = 64


@dataclass(frozen=True)
class _Task:
    slot: ShardSlot
    case: Case
    starts: tuple[tuple[int, int, int], ...] | None  # grid tiles; None: draw random starts


def cohort_ids(cohort: Cohort | Iterable[str]) -> list[str]:
    """The (sorted, unique, uppercase) patient ids of a cohort or of a list of ids."""
    if isinstance(cohort, str):
        raise InvalidRequest("pass a cohort or a list of patient ids, not one string")
    ids = getattr(cohort, "case_ids", None)
    values: list[Any] = list(ids) if ids is not None else list(cohort)
    for value in values:
        if not isinstance(value, str):
            raise InvalidRequest(f"patient ids must be strings, not {value!r}")
    return sorted({value.upper() for value in values})


class CropStream:
    """Crops of a cohort's cases as dicts ``{patient_id, image, label, index, spacing}``.

    Iterate it for one epoch of this rank's shard; ``len()`` is that shard's number of crops;
    ``set_epoch(n)`` moves to another epoch; ``torch()`` wraps it as a torch ``IterableDataset``.
    Made by ``Catalog.crops``.
    """

    def __init__(
        self,
        catalog: Catalog,
        case_ids: Sequence[str],
        options: CropOptions,
        *,
        epoch: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        even: bool | None = None,
        worker: int = 0,
        num_workers: int = 1,
        validate: bool = True,
    ) -> None:
        shard = {"epoch": epoch, "rank": rank, "world_size": world_size, "even": even}
        changes: dict[str, Any] = {k: v for k, v in shard.items() if v is not None}
        if options.threads is None:
            # Local reads are CPU-bound (decompression); remote ones wait on the network.
            changes["threads"] = REMOTE_THREADS if catalog.remote else min(4, os.cpu_count() or 1)
        if not 0 <= worker < num_workers:
            raise InvalidRequest(f"worker {worker} is outside [0, {num_workers})")
        self.catalog = catalog
        self.case_ids = list(case_ids)
        self.options = replace(options, **changes) if changes else options
        self.worker = worker
        self.num_workers = num_workers
        self._shapes: dict[str, tuple[int, int, int]] | None = None
        # Each case's table rows, kept across epochs: the catalog version is pinned, so they
        # never change, and a new epoch need not query them again (bounded by the cohort).
        self._rows: dict[str, tuple[dict[str, Any], pa.Table]] = {}
        if validate:
            self._check_cases()

    @property
    def epoch(self) -> int:
        return self.options.epoch

    @property
    def rank(self) -> int:
        return self.options.rank

    @property
    def world_size(self) -> int:
        return self.options.world_size

    @property
    def even(self) -> bool:
        return self.options.even

    @property
    def _threads(self) -> int:
        assert self.options.threads is not None  # resolved in __init__
        return self.options.threads

    @property
    def _prefetch(self) -> int:
        assert self.options.prefetch is not None  # follows threads, resolved in __init__
        return self.options.prefetch

    def __repr__(self) -> str:
        c = self.options
        return (
            f"<CropStream {len(self.case_ids)} cases sampler={c.sampler} size={c.size} "
            f"channels={c.channels} epoch={self.epoch} rank={self.rank}/{self.world_size}>"
        )

    def _check_cases(self) -> None:
        if not self.case_ids:
            return
        found = self.catalog.sql(
            "SELECT patient_id FROM cases WHERE list_contains($ids, patient_id)",
            ids=self.case_ids,
        )
        known = {str(v) for v in found.column("patient_id").to_pylist()}
        unknown = [pid for pid in self.case_ids if pid not in known]
        if unknown:
            raise NotFoundError(
                f"{len(unknown)} cases of the cohort are not in catalog {self.catalog.version}: "
                f"{unknown[:10]}"
            )

    # The plan -----------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Use another epoch's order and crops (like ``DistributedSampler.set_epoch``)."""
        self.options = replace(self.options, epoch=epoch)

    def slots(self) -> list[ShardSlot]:
        """The case visits of this shard in this epoch, in the order they are read."""
        return shard_slots(
            self.case_ids,
            seed=self.options.seed,
            epoch=self.epoch,
            rank=self.rank,
            world_size=self.world_size,
            worker=self.worker,
            num_workers=self.num_workers,
            even=self.even,
        )

    def shard_case_ids(self) -> list[str]:
        """The patient ids of this shard in this epoch (repeats where ``even`` padded)."""
        return [slot.patient_id for slot in self.slots()]

    def rank_length(self) -> int:
        """Crops of the whole rank (all its DataLoader workers) in this epoch."""
        slots = rank_slots(
            self.case_ids,
            seed=self.options.seed,
            epoch=self.epoch,
            rank=self.rank,
            world_size=self.world_size,
            even=self.even,
        )
        return self._count(slots)

    def __len__(self) -> int:
        return self._count(self.slots())

    def _count(self, slots: Sequence[ShardSlot]) -> int:
        if self.options.sampler != "grid":
            return len(slots) * self.options.per_case
        shapes = self.shapes()
        return sum(self.tiles(shapes[slot.patient_id]) for slot in slots)

    def shapes(self) -> dict[str, tuple[int, int, int]]:
        """Spatial shape (z, y, x) of every case of the cohort (one query, cached)."""
        if self._shapes is None:
            table = self.catalog.sql(
                "SELECT patient_id, shape FROM volumes WHERE kind = 'image' "
                "AND list_contains($ids, patient_id) ORDER BY phase",
                ids=self.case_ids,
            )
            shapes: dict[str, tuple[int, int, int]] = {}
            for pid, shape in zip(
                table.column("patient_id").to_pylist(),
                table.column("shape").to_pylist(),
                strict=True,
            ):
                shapes.setdefault(str(pid), (int(shape[0]), int(shape[1]), int(shape[2])))
            missing = [pid for pid in self.case_ids if pid not in shapes]
            if missing:
                raise NotFoundError(f"cases without images in this catalog: {missing[:10]}")
            self._shapes = shapes
        return self._shapes

    def tiles(self, shape: Sequence[int]) -> int:
        """Number of grid tiles of a volume of this shape."""
        return len(grid_starts(shape, self.options.size, self.options.overlap))

    def _cases(self, slots: Sequence[ShardSlot]) -> Iterator[tuple[ShardSlot, Case]]:
        """Each slot with its Case, the rows fetched a batch of cases per query (once per
        stream: later epochs reuse them)."""
        for at in range(0, len(slots), _ROWS_PER_QUERY):
            batch = slots[at : at + _ROWS_PER_QUERY]
            ids = sorted({slot.patient_id for slot in batch} - self._rows.keys())
            if ids:
                self._fetch_rows(ids)
            made: dict[str, Case] = {}
            for slot in batch:
                pid = slot.patient_id
                if pid not in made:
                    fields, own = self._rows[pid]
                    made[pid] = Case(self.catalog, fields, own)
                yield slot, made[pid]

    def _fetch_rows(self, ids: list[str]) -> None:
        rows = self.catalog.sql(
            "SELECT * FROM cases WHERE list_contains($ids, patient_id)", ids=ids
        ).to_pylist()
        fields = {str(row["patient_id"]): row for row in rows}
        volumes = self.catalog.sql(
            "SELECT * FROM volumes WHERE list_contains($ids, patient_id) "
            "ORDER BY patient_id, kind, phase NULLS FIRST",
            ids=ids,
        )
        column = volumes.column("patient_id")
        for pid in ids:
            if pid not in fields:
                raise NotFoundError(f"no case {pid} in catalog {self.catalog.version}")
            self._rows[pid] = (fields[pid], volumes.filter(pc.equal(column, pid)))

    def _tasks(self) -> Iterator[_Task]:
        if self.options.sampler != "grid":
            for slot, case in self._cases(self.slots()):
                yield _Task(slot, case, None)
            return
        shapes = self.shapes()
        for slot, case in self._cases(self.slots()):
            starts = grid_starts(shapes[slot.patient_id], self.options.size, self.options.overlap)
            for i in range(0, len(starts), _TILES_PER_TASK):
                yield _Task(slot, case, tuple(starts[i : i + _TILES_PER_TASK]))

    # Reading --------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Crop]:
        readers = _ReaderCache(self.options, keep=self._threads + 1)
        epoch, seed = self.epoch, self.options.seed
        convert = _layout_converter(self.options.layout)

        def run(task: _Task) -> list[Crop]:
            try:
                reader = readers.get(task.case)
                if task.starts is None:
                    starts = reader.random_starts(sample_rng(seed, epoch, task.slot))
                else:
                    starts = list(task.starts)
                return [convert(crop) for crop in reader.read_many(starts)]
            except MamamiaError:
                raise
            except Exception as exc:
                # Name the case: a bare zarr or numpy error says nothing about which one.
                raise MamamiaError(
                    f"case {task.slot.patient_id}: reading crops failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc

        tasks = self._tasks()
        pending: deque[Future[list[Crop]]] = deque()
        pool = ThreadPoolExecutor(self._threads, thread_name_prefix="mamamia-crops")
        try:
            for task in tasks:
                pending.append(pool.submit(run, task))
                # Bounded prefetch: never more than `prefetch` tasks read ahead of the consumer.
                if len(pending) >= self._prefetch:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    # Grid helpers ---------------------------------------------------------------------------

    def stitcher(self, patient_id: str) -> GridStitcher:
        """An empty stitcher shaped like this case's volume."""
        shapes = self.shapes()
        key = patient_id.upper()
        if key not in shapes:
            raise NotFoundError(f"case {key} is not in this stream's cohort")
        return GridStitcher(shapes[key])

    def stitch(
        self, pairs: Iterable[tuple[Crop, Any]], dtype: Any = np.float32
    ) -> Iterator[tuple[str, npt.NDArray[Any]]]:
        """Stitch ``(crop, prediction)`` pairs of a grid stream back into whole volumes.

        Yields ``(patient_id, volume)`` as soon as a case has received all its tiles, so only
        the cases in progress are held in memory.
        """
        if self.options.sampler != "grid":
            raise InvalidRequest("stitch() needs a stream made with sampler='grid'")
        if self.options.layout != "native":
            raise InvalidRequest("stitch() takes predictions in the native (Z, Y, X) layout")
        open_cases: dict[str, GridStitcher] = {}
        for crop, prediction in pairs:
            pid = str(crop["patient_id"])
            stitcher = open_cases.get(pid)
            if stitcher is None:
                stitcher = open_cases[pid] = self.stitcher(pid)
            stitcher.add(prediction, crop["index"])
            if stitcher.tiles == self.tiles(stitcher.shape):
                del open_cases[pid]
                yield pid, stitcher.result(dtype)
        if open_cases:
            raise InvalidRequest(
                f"the predictions ended before all tiles of {sorted(open_cases)[:10]} arrived"
            )

    # torch ----------------------------------------------------------------------------------

    def torch(self) -> Any:
        """This stream as a torch ``IterableDataset`` for ``DataLoader(num_workers=...)``.

        Each DataLoader worker reopens the catalog and reads its own part of this rank's shard.
        Start the workers with ``multiprocessing_context="spawn"`` or ``"forkserver"``.
        """
        try:
            from mamamia._crops._torch import CropDataset
        except ImportError as exc:
            raise ImportError("stream.torch() needs PyTorch: pip install 'mamamia[torch]'") from exc
        return CropDataset(
            opener=catalog_opener(self.catalog),
            stream_type=type(self),
            catalog=self.catalog,
            case_ids=self.case_ids,
            options=self.options,
        )


class _ReaderCache:
    """The few most recently used case readers (grid tasks of one case share one)."""

    def __init__(self, options: CropOptions, keep: int) -> None:
        self._options = options
        self._keep = keep
        self._readers: OrderedDict[str, CaseReader] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, case: Case) -> CaseReader:
        key = case.patient_id
        with self._lock:
            reader = self._readers.get(key)
            if reader is not None:
                self._readers.move_to_end(key)
                return reader
        reader = CaseReader(case, self._options)
        with self._lock:
            self._readers[key] = reader
            while len(self._readers) > self._keep:
                self._readers.popitem(last=False)
        return reader


def _layout_converter(layout: str) -> Callable[[Crop], Crop]:
    if layout == "monai":
        from mamamia._interop._monai import monai_sample

        return monai_sample
    return lambda crop: crop


def catalog_opener(catalog: Catalog) -> Callable[[], Catalog] | None:
    """A picklable callable that reopens ``catalog`` (in a DataLoader worker), or None."""
    return catalog.reopener()
