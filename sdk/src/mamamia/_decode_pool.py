"""The decode pool: a few threads per process that decode the chunks of one read in parallel
(blosc releases the GIL), and how a read's chunks are split over it."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["DECODE_THREADS", "decode_pool", "run_split"]

#: At most this many threads decode the chunks of one read (shared by all arrays).
DECODE_THREADS = max(1, min(4, os.cpu_count() or 1))

_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # A forked DataLoader worker inherits no running threads: start afresh, lock included.
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def decode_pool() -> ThreadPoolExecutor:
    """One lazily started pool per process (a DataLoader worker gets its own after fork)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="mamamia-decode")
            _pool_pid = os.getpid()
        return _pool


def run_split(task: Callable[[Any], None], items: list[Any], inline: int = 1) -> None:
    """Run ``task`` on each item, the items split into ``DECODE_THREADS`` runs: the caller
    takes the first run, the pool the others (one hand-off per thread, not per chunk: a future
    per chunk cost as much as decoding a small one); up to ``inline`` items all on the caller.
    The first error is raised once all have ended."""
    if len(items) <= inline:
        for item in items:
            task(item)
        return
    runs = [items[i::DECODE_THREADS] for i in range(min(DECODE_THREADS, len(items)))]

    def run_all(run: list[Any]) -> None:
        for item in run:
            task(item)

    pending = [decode_pool().submit(run_all, run) for run in runs[1:]]
    try:
        run_all(runs[0])
    finally:
        errors = [future.exception() for future in pending]
    for error in errors:
        if error is not None:
            raise error
