"""The torch face of a CropStream: an IterableDataset that DataLoader workers share out.

Imported only by ``CropStream.torch()`` (torch is an optional dependency). The dataset pickles
to (how to reopen the catalog, the case ids, the options), never an open catalog: each worker
process opens its own, then reads ``rank_shard[worker::num_workers]``.

zarr runs an asyncio event-loop thread and DuckDB its own threads; forking a process that has
threads is unsafe, so start the workers with ``multiprocessing_context="spawn"`` (or
``"forkserver"``).
"""

# torch may be absent when mypy runs (it is an optional extra): its classes are Any then.
# mypy: disallow-subclassing-any=False

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from mamamia._crops._crop_options import CropOptions
from mamamia._errors import InvalidRequest

if TYPE_CHECKING:
    from mamamia._catalog import Catalog
    from mamamia._crops._stream import CropStream

__all__ = ["CropDataset"]


class CropDataset(IterableDataset[dict[str, Any]]):
    """Crops as tensors: ``image`` float32 (C, Z, Y, X), ``label`` uint8 (Z, Y, X),
    ``index`` int64 (3,), ``spacing`` float64 (3,), ``patient_id`` str.

    ``len()`` is this rank's number of crops per epoch (all its workers together);
    ``set_epoch(n)`` before each epoch's ``DataLoader`` iteration (keep
    ``persistent_workers=False``, so that workers get the new epoch).
    """

    def __init__(
        self,
        *,
        opener: Callable[[], Catalog] | None,
        stream_type: type[CropStream],
        catalog: Catalog | None = None,
        case_ids: Sequence[str],
        options: CropOptions,
    ) -> None:
        super().__init__()
        self.opener = opener
        # The stream's class is handed in (it pickles by name): this module is imported only
        # by the stream, lazily, and so never imports it back.
        self.stream_type = stream_type
        self.case_ids = list(case_ids)
        self.options = options
        self._catalog: Catalog | None = catalog

    def __getstate__(self) -> dict[str, Any]:
        if self.opener is None:
            raise InvalidRequest(
                f"the catalog {self._catalog!r} cannot be reopened in DataLoader worker "
                "processes; use num_workers=0 with it, or a local catalog"
            )
        state = dict(self.__dict__)
        state["_catalog"] = None  # workers reopen the catalog themselves
        return state

    def set_epoch(self, epoch: int) -> None:
        self.options = replace(self.options, epoch=epoch)

    def _stream(self, worker: int, num_workers: int) -> CropStream:
        if self._catalog is None:
            assert self.opener is not None  # a dataset without one is never unpickled
            self._catalog = self.opener()
        return self.stream_type(
            self._catalog,
            self.case_ids,
            self.options,
            worker=worker,
            num_workers=num_workers,
            validate=False,
        )

    def __len__(self) -> int:
        return self._stream(0, 1).rank_length()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, num_workers = (0, 1) if info is None else (int(info.id), int(info.num_workers))
        for crop in self._stream(worker, num_workers):
            yield _as_tensors(crop)


def _as_tensors(crop: dict[str, Any]) -> dict[str, Any]:
    if isinstance(crop["image"], torch.Tensor):
        return crop  # layout="monai": MetaTensors already
    out: dict[str, Any] = {
        "patient_id": crop["patient_id"],
        "image": torch.from_numpy(crop["image"]),
        "index": torch.tensor(crop["index"], dtype=torch.int64),
        "spacing": torch.tensor(crop["spacing"], dtype=torch.float64),
        "affine": torch.from_numpy(crop["affine"]),
    }
    if "label" in crop:
        out["label"] = torch.from_numpy(crop["label"])
    return out
