"""Optional isolation: run queries in worker processes with an address-space limit.

DuckDB's deadline and ``memory_limit`` do not stop a single scalar call that builds a giant
string (docs/query-safety.md). The guard's allowlist keeps such functions out; this
pool is the second wall behind it. Each worker opens the engine's database read-only with
the same locked settings, under ``RLIMIT_AS``, so a runaway allocation fails inside DuckDB
(an ``OutOfMemoryException``, 413). The parent waits ``time_limit + grace`` at most, then
SIGKILLs the worker and starts a new one (504). Results come back as Arrow IPC bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict
from multiprocessing.connection import Connection
from typing import Any, Final

import pyarrow as pa

from mamamia import QueryError, QueryFailed, QueryRejected, QueryTimeout, QueryTooLarge
from mamamia.sqlguard import QueryLimits

from ._runner import ColumnSpec, columns, fetch, open_locked

__all__ = ["WorkerPool"]

_START_TIMEOUT_S: Final = 120.0
_MAX_HEADER: Final = 1 << 20
_MAX_BODY: Final = 1 << 31
_NO_MEMORY: Final = "the query needs more memory than the server allows"
_ERRORS: Final[dict[str, type[QueryError]]] = {
    cls.__name__: cls for cls in (QueryRejected, QueryTooLarge, QueryTimeout, QueryFailed)
}


def _serve(conn: Connection, path: str, limits: QueryLimits, address_space: int) -> None:
    """Body of one worker process: serve (op, sql, params, max_rows) requests until EOF."""
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    con = open_locked(path, limits)
    conn.send_bytes(json.dumps({"ready": True}).encode())
    while True:
        try:
            request = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            break
        op, sql, params, max_rows = (request[k] for k in ("op", "sql", "params", "max_rows"))
        cur = con.cursor()
        body = b""
        try:
            if op == "columns":
                reply: dict[str, Any] = {"ok": columns(cur, sql, params, limits, path)}
            else:
                table, specs = fetch(cur, sql, params, max_rows, limits, path)
                sink = pa.BufferOutputStream()
                with pa.ipc.new_stream(sink, table.schema) as writer:
                    writer.write_table(table)
                body = sink.getvalue().to_pybytes()
                reply = {"ok": specs}
        except QueryError as exc:
            reply = {"error": type(exc).__name__, "message": exc.message, "rule": exc.rule}
        except MemoryError:
            reply = {"error": "QueryTooLarge", "message": _NO_MEMORY, "rule": "memory"}
        except Exception:  # never let one query end the worker silently
            reply = {
                "error": "QueryFailed",
                "message": "the query failed in its worker",
                "rule": "worker",
            }
        finally:
            cur.close()
        # JSON and raw Arrow bytes only: the parent never unpickles what a worker sends.
        conn.send_bytes(json.dumps(reply).encode())
        if "ok" in reply and op != "columns":
            conn.send_bytes(body)


# The worker needs the engine modules only, not the web app that the package __init__
# imports: a stub package object pointing at this folder lets it import just those.
_BOOTSTRAP: Final = (
    "import sys, types; pkg = types.ModuleType('mamamia_server'); pkg.__path__ = [sys.argv[1]]; "
    "sys.modules['mamamia_server'] = pkg; "
    "from mamamia_server._worker import main; main(sys.argv[2:])"
)


def main(argv: list[str]) -> None:
    """Entry point of a worker process: ``argv`` = FD DATABASE_PATH LIMITS_JSON ADDRESS_SPACE."""
    fd, path, limits_json, space = argv[:4]
    conn = Connection(int(fd))
    _serve(conn, path, QueryLimits(**json.loads(limits_json)), int(space))


class _Worker:
    def __init__(self, path: str, limits: QueryLimits, address_space: int) -> None:
        parent, child = socket.socketpair()
        try:
            # A fresh interpreter, not fork (the server has threads) and not multiprocessing's
            # spawn (it re-imports the caller's __main__).
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _BOOTSTRAP,
                    os.path.dirname(os.path.abspath(__file__)),
                    str(child.fileno()),
                    path,
                    json.dumps(asdict(limits)),
                    str(address_space),
                ],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                close_fds=True,
            )
        finally:
            child.close()
        self.conn = Connection(parent.detach())
        self.ready = False

    def wait_ready(self, timeout: float) -> None:
        if self.ready:
            return
        try:
            if not self.conn.poll(timeout):
                raise RuntimeError("a query worker did not start in time")
            message = json.loads(self.conn.recv_bytes(1024))
        except (EOFError, OSError):
            self.kill()
            raise RuntimeError(
                f"a query worker exited while starting (exit code {self.process.poll()})"
            ) from None
        except RuntimeError:
            self.kill()
            raise
        if message != {"ready": True}:
            self.kill()
            raise RuntimeError("a query worker failed to start")
        self.ready = True

    def exitcode(self) -> int | None:
        with contextlib.suppress(Exception):
            return self.process.wait(1)
        return None

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.wait(5)
        with contextlib.suppress(Exception):
            self.conn.close()


class WorkerPool:
    """``size`` worker processes over the database at ``path``; thread-safe."""

    def __init__(
        self,
        path: str,
        limits: QueryLimits,
        *,
        size: int,
        address_space: int,
        grace_s: float = 2.0,
    ) -> None:
        if size < 1:
            raise ValueError(f"a worker pool needs at least 1 process, got {size}")
        self._path = path
        self._limits = limits
        self._address_space = address_space
        self._grace_s = grace_s
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        workers = [self._spawn() for _ in range(size)]
        try:
            for w in workers:
                w.wait_ready(_START_TIMEOUT_S)
        except BaseException:
            self.close()
            raise
        for w in workers:
            self._idle.put(w)

    def _spawn(self) -> _Worker:
        w = _Worker(self._path, self._limits, self._address_space)
        with self._lock:
            self._all.add(w)
        return w

    def _discard(self, w: _Worker) -> None:
        w.kill()
        with self._lock:
            self._all.discard(w)

    def _deadline_s(self) -> float:
        return self._limits.time_limit_ms / 1000 + self._grace_s

    def _call(self, request: dict[str, Any]) -> tuple[Any, bytes]:
        if self._closed:
            raise QueryFailed("the query engine is closed", rule="closed")
        try:
            w = self._idle.get(timeout=self._deadline_s())
        except queue.Empty:
            raise QueryTimeout(
                "every query worker is busy; try again shortly", rule="busy"
            ) from None
        healthy = True
        try:
            w.wait_ready(_START_TIMEOUT_S)
            w.conn.send_bytes(json.dumps(request).encode())
            if not w.conn.poll(self._deadline_s()):
                healthy = False
                raise QueryTimeout(
                    f"the query ran past the time limit of {self._limits.time_limit_ms} ms and its "
                    "worker was stopped",
                    rule="timeout",
                )
            try:
                reply = json.loads(w.conn.recv_bytes(_MAX_HEADER))
                with_body = "ok" in reply and request["op"] != "columns"
                body = w.conn.recv_bytes(_MAX_BODY) if with_body else b""
            except (EOFError, OSError):
                healthy = False
                code = w.exitcode()
                if code is not None and code < 0:
                    raise QueryTooLarge(
                        "the query was stopped by the operating system (memory)", rule="memory"
                    ) from None
                raise QueryFailed("the query ended its worker process", rule="worker") from None
        except (BrokenPipeError, EOFError, OSError):
            healthy = False
            raise QueryFailed("the query worker was not available", rule="worker") from None
        except RuntimeError:  # a replacement worker that did not start
            healthy = False
            raise QueryFailed("a query worker could not start", rule="worker") from None
        finally:
            if healthy and not self._closed:
                self._idle.put(w)
            else:
                self._discard(w)
                if not self._closed:
                    self._idle.put(self._spawn())  # started now, waited for on first use
        if "ok" in reply:
            return reply["ok"], body
        kind = _ERRORS.get(str(reply.get("error")), QueryFailed)
        message = str(reply.get("message", "the query failed"))
        raise kind(message, rule=str(reply.get("rule", "worker")))

    def fetch(
        self, sql: str, params: Mapping[str, object], max_rows: int
    ) -> tuple[pa.Table, list[ColumnSpec]]:
        request = {"op": "fetch", "sql": sql, "params": dict(params), "max_rows": max_rows}
        specs, data = self._call(request)
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
        return table, [(str(n), str(t)) for n, t in specs]

    def columns(self, sql: str, params: Mapping[str, object]) -> list[str]:
        request = {"op": "columns", "sql": sql, "params": dict(params), "max_rows": 0}
        names, _ = self._call(request)
        return [str(n) for n in names]

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        with self._lock:
            return [w.process.pid for w in self._all]

    def close(self) -> None:
        """Stop every worker. Idempotent."""
        self._closed = True
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for w in workers:
            with contextlib.suppress(Exception):
                w.conn.close()  # EOF: the worker leaves its loop
            with contextlib.suppress(Exception):
                w.process.wait(2)
            w.kill()
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            try:
                self._idle.get_nowait()
            except queue.Empty:
                break
