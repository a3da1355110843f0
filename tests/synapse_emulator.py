"""A small Synapse REST emulator: serves a local folder tree as a Synapse project over real HTTP.

It answers the routes the unmodified synapseclient 4.x uses for login, listing, entity bundles,
presigned URLs and blob downloads, so both ``mamamia sync`` and
synapseclient's own ``syncFromSynapse`` can run against it. On top of that it counts requests,
injects faults (N error statuses on a route, corrupted or cut-off bodies, a throttled file) and
changes the tree (a new version of a file, a deletion, hostile names).

Unknown routes answer 404 with a JSON ``reason``, never 5xx: synapseclient retries 5xx for up to
20 minutes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["SynapseEmulator", "write_synapse_config"]

FOLDER = "org.sagebionetworks.repo.model.Folder"
FILE = "org.sagebionetworks.repo.model.FileEntity"
PROJECT = "org.sagebionetworks.repo.model.Project"
S3_HANDLE = "org.sagebionetworks.repo.model.file.S3FileHandle"
TYPE_NAMES = {FOLDER: "folder", FILE: "file", PROJECT: "project"}


@dataclass
class _Handle:
    id: str
    file_name: str
    content: bytes
    md5: str
    # Served as contentMd5 in the bundle; differs from md5 only when a test lies on purpose.
    advertised_md5: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "concreteType": S3_HANDLE,
            "fileName": self.file_name,
            "contentMd5": self.advertised_md5 or self.md5,
            "contentSize": len(self.content),
            "contentType": "application/octet-stream",
            "bucketName": "emulated-bucket",
            "key": f"blobs/{self.id}/{self.file_name}",
            "etag": self.md5,
        }


@dataclass
class _Entity:
    id: str
    name: str
    parent_id: str | None
    concrete_type: str
    version: int = 1
    modified_on: str = ""
    handle_id: str | None = None
    # version number -> file handle id, for /version/{v}/bundle2
    versions: dict[int, str] = field(default_factory=dict)
    etag: str = ""

    def as_json(self, version: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "parentId": self.parent_id,
            "concreteType": self.concrete_type,
            "etag": self.etag,
            "modifiedOn": self.modified_on,
            "createdOn": self.modified_on,
        }
        if self.concrete_type == FILE:
            v = version or self.version
            body["versionNumber"] = v
            body["versionLabel"] = str(v)
            body["isLatestVersion"] = v == self.version
            body["dataFileHandleId"] = self.versions[v]
        return body

    def header(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "type": self.concrete_type,
            "modifiedOn": self.modified_on,
            "benefactorId": "syn1",
        }
        if self.concrete_type == FILE:
            body["versionNumber"] = self.version
            body["versionLabel"] = str(self.version)
            body["isLatestVersion"] = True
        return body


@dataclass
class _Fault:
    status: int
    remaining: int
    retry_after: float | None = None


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class SynapseEmulator:
    """Serve ``root`` (a folder tree) as the Synapse project ``project_id`` on 127.0.0.1.

    Use as a context manager, or call :meth:`start` / :meth:`stop`. ``base_url`` is the server,
    ``repo_endpoint`` / ``file_endpoint`` / ``auth_endpoint`` the endpoints for a client config.
    Presigned blob URLs use ``blob_host`` (``localhost`` by default, the way real S3 is another
    host than the repo) so a client does not forward its bearer token to them.
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        project_id: str = "syn60868042",
        project_name: str = "MAMA-MIA",
        page_size: int = 50,
        token: str | None = None,
        blob_host: str = "localhost",
    ) -> None:
        self.project_id = project_id
        self.page_size = page_size
        self.token = token
        self.blob_host = blob_host
        self.entities: dict[str, _Entity] = {}
        self.handles: dict[str, _Handle] = {}
        self.children: dict[str, list[str]] = {}
        self._next_id = 1000
        self._lock = threading.RLock()
        self.request_log: list[tuple[str, str, str]] = []
        self.route_counts: Counter[str] = Counter()
        self._faults: dict[str, _Fault] = {}
        self._corrupt: dict[
            str, int
        ] = {}  # handle id -> remaining corrupted responses (-1 forever)
        self._drop: dict[str, tuple[int, float]] = {}  # handle id -> (remaining, fraction sent)
        self._throttle: dict[str, float] = {}  # handle id -> bytes per second
        self._denied: set[str] = set()  # handle ids /fileHandle/batch refuses
        self.blob_bytes_sent = 0
        self.partial_responses = 0  # 206 answers (resumed or ranged downloads)
        root_entity = _Entity(project_id, project_name, None, PROJECT, modified_on=_now_iso())
        root_entity.etag = "e0"
        self.entities[project_id] = root_entity
        self.children[project_id] = []
        if root is not None:
            self.load_tree(root)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ tree building
    def _new_id(self) -> str:
        self._next_id += 1
        return f"syn{self._next_id}"

    def _new_handle(self, file_name: str, content: bytes) -> _Handle:
        self._next_id += 1
        md5 = hashlib.md5(content).hexdigest()
        handle = _Handle(str(self._next_id), file_name, content, md5)
        self.handles[handle.id] = handle
        return handle

    def load_tree(self, root: Path) -> None:
        """Add every folder and file under ``root`` (sorted, so ids are deterministic)."""

        def add(folder: Path, parent_id: str) -> None:
            for item in sorted(folder.iterdir(), key=lambda p: p.name):
                if item.is_dir():
                    add(item, self.add_folder(parent_id, item.name))
                elif item.is_file():
                    self.add_file(parent_id, item.name, item.read_bytes())

        add(root, self.project_id)

    def add_folder(self, parent_id: str, name: str) -> str:
        with self._lock:
            entity = _Entity(self._new_id(), name, parent_id, FOLDER, modified_on=_now_iso())
            entity.etag = f"e{entity.id}"
            self.entities[entity.id] = entity
            self.children[entity.id] = []
            self.children[parent_id].append(entity.id)
            return entity.id

    def add_file(
        self, parent_id: str, name: str, content: bytes, *, file_name: str | None = None
    ) -> str:
        """Add a file entity; ``file_name`` (the handle's name) defaults to ``name``."""
        with self._lock:
            handle = self._new_handle(file_name if file_name is not None else name, content)
            entity = _Entity(self._new_id(), name, parent_id, FILE, modified_on=_now_iso())
            entity.handle_id = handle.id
            entity.versions[1] = handle.id
            entity.etag = f"e{entity.id}.1"
            self.entities[entity.id] = entity
            self.children[parent_id].append(entity.id)
            return entity.id

    def resolve(self, relpath: str) -> _Entity:
        """The entity at a '/'-separated path under the project."""
        current = self.entities[self.project_id]
        for part in [p for p in relpath.split("/") if p]:
            for child_id in self.children.get(current.id, []):
                if self.entities[child_id].name == part:
                    current = self.entities[child_id]
                    break
            else:
                raise KeyError(relpath)
        return current

    def ensure_folder(self, relpath: str) -> str:
        """The id of the folder at ``relpath``, creating missing folders."""
        current = self.project_id
        for part in [p for p in relpath.split("/") if p]:
            found = [c for c in self.children[current] if self.entities[c].name == part]
            current = found[0] if found else self.add_folder(current, part)
        return current

    def handle_of(self, relpath: str) -> _Handle:
        entity = self.resolve(relpath)
        assert entity.handle_id is not None
        return self.handles[entity.handle_id]

    def replace_file(self, relpath: str, content: bytes) -> None:
        """Upload a new version: new file handle, version + 1, new modifiedOn."""
        with self._lock:
            entity = self.resolve(relpath)
            handle = self._new_handle(entity.name, content)
            entity.version += 1
            entity.versions[entity.version] = handle.id
            entity.handle_id = handle.id
            entity.modified_on = _now_iso()
            entity.etag = f"e{entity.id}.{entity.version}"

    def move(self, relpath: str, new_parent: str, new_name: str | None = None) -> None:
        """Rename and/or move an entity (same id, version and bytes; new modifiedOn)."""
        with self._lock:
            entity = self.resolve(relpath)
            parent_id = self.ensure_folder(new_parent)
            assert entity.parent_id is not None
            self.children[entity.parent_id].remove(entity.id)
            self.children[parent_id].append(entity.id)
            entity.parent_id = parent_id
            entity.name = new_name or entity.name
            entity.modified_on = _now_iso()

    def delete(self, relpath: str) -> None:
        with self._lock:
            entity = self.resolve(relpath)
            assert entity.parent_id is not None
            self.children[entity.parent_id].remove(entity.id)
            del self.entities[entity.id]

    # ------------------------------------------------------------------ faults
    def fail_next(
        self, route: str, count: int, status: int = 503, retry_after: float | None = None
    ) -> None:
        """Answer the next ``count`` requests on ``route`` with ``status``.

        Routes: ``entity``, ``bundle2``, ``children``, ``batch``, ``blob``, ``generatedBy``,
        ``userProfile``.
        """
        with self._lock:
            self._faults[route] = _Fault(status, count, retry_after)

    def corrupt(self, relpath: str, times: int = 1) -> None:
        """Flip one byte in the next ``times`` bodies of that file (-1: every time)."""
        with self._lock:
            self._corrupt[self.handle_of(relpath).id] = times

    def drop_mid_body(self, relpath: str, times: int = 1, fraction: float = 0.5) -> None:
        """Close the connection after ``fraction`` of the body, the next ``times`` downloads."""
        with self._lock:
            self._drop[self.handle_of(relpath).id] = (times, fraction)

    def deny(self, relpath: str) -> None:
        """``/fileHandle/batch`` answers UNAUTHORIZED for that file (no DOWNLOAD permission)."""
        with self._lock:
            self._denied.add(self.handle_of(relpath).id)

    def throttle(self, relpath: str, bytes_per_second: float | None) -> None:
        """Serve that file at ``bytes_per_second`` (None: full speed again)."""
        with self._lock:
            fh_id = self.handle_of(relpath).id
            if bytes_per_second:
                self._throttle[fh_id] = bytes_per_second
            else:
                self._throttle.pop(fh_id, None)

    def count(self, route: str) -> int:
        with self._lock:
            return self.route_counts[route]

    def reset_counts(self) -> None:
        with self._lock:
            self.route_counts.clear()
            self.request_log.clear()
            self.blob_bytes_sent = 0
            self.partial_responses = 0

    # ------------------------------------------------------------------ server
    @property
    def port(self) -> int:
        assert self._server is not None, "emulator not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def repo_endpoint(self) -> str:
        return self.base_url + "/repo/v1"

    @property
    def auth_endpoint(self) -> str:
        return self.base_url + "/auth/v1"

    @property
    def file_endpoint(self) -> str:
        return self.base_url + "/file/v1"

    def start(self) -> SynapseEmulator:
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SynapseEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _take_fault(self, route: str) -> _Fault | None:
        with self._lock:
            fault = self._faults.get(route)
            if fault is None or fault.remaining == 0:
                return None
            fault.remaining -= 1
            return fault

    def _take(self, table: dict[str, Any], key: str) -> Any:
        with self._lock:
            value = table.get(key)
            if value is None:
                return None
            remaining = value[0] if isinstance(value, tuple) else value
            if remaining == 0:
                return None
            new = remaining - 1 if remaining > 0 else remaining
            table[key] = (new, *value[1:]) if isinstance(value, tuple) else new
            return value

    def presigned_url(self, handle: _Handle) -> str:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return (
            f"http://{self.blob_host}:{self.port}/blob/{handle.id}"
            f"?X-Amz-Date={stamp}&X-Amz-Expires=3600&X-Amz-Signature=emulated"
        )


class _Handler(BaseHTTPRequestHandler):
    emulator: SynapseEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # ---------------------------------------------------------------- plumbing
    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else {}

    def _send_json(self, status: int, body: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self, reason: str = "not found") -> None:
        self._send_json(404, {"reason": reason})

    def _route(self, method: str) -> tuple[str, dict[str, str]] | None:
        path = urlsplit(self.path).path
        patterns = [
            ("GET", r"/repo/v1/entity/(?P<id>syn\d+)", "entity"),
            ("POST", r"/repo/v1/entity/(?P<id>syn\d+)/bundle2", "bundle2"),
            ("POST", r"/repo/v1/entity/(?P<id>syn\d+)/version/(?P<v>\d+)/bundle2", "bundle2"),
            (
                "GET",
                r"/repo/v1/entity/(?P<id>syn\d+)/version/(?P<v>\d+)/generatedBy",
                "generatedBy",
            ),
            ("GET", r"/repo/v1/entity/(?P<id>syn\d+)/generatedBy", "generatedBy"),
            ("POST", r"/repo/v1/entity/children", "children"),
            ("POST", r"/file/v1/fileHandle/batch", "batch"),
            ("GET", r"/blob/(?P<fh>\d+)", "blob"),
            ("GET", r"/repo/v1/userProfile", "userProfile"),
            ("GET", r"/(repo/v1|auth/v1|file/v1)?/?", "root"),
        ]
        for m, pattern, name in patterns:
            match = re.fullmatch(pattern, path)
            if m == method and match:
                return name, match.groupdict()
        return None

    def _authorized(self) -> bool:
        token = self.emulator.token
        if token is None:
            return True
        return self.headers.get("Authorization") == f"Bearer {token}"

    def _dispatch(self, method: str) -> None:
        emu = self.emulator
        routed = self._route(method)
        if routed is None:
            if method == "POST":
                self._body()
            self._not_found(f"no route {method} {self.path}")
            return
        name, params = routed
        with emu._lock:
            emu.route_counts[name] += 1
            emu.request_log.append((method, name, self.path))
        body = self._body() if method == "POST" else {}
        fault = emu._take_fault(name)
        if fault is not None:
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after else None
            self._send_json(fault.status, {"reason": "injected fault"}, extra)
            return
        if name not in ("blob", "root") and not self._authorized():
            self._send_json(401, {"reason": "invalid bearer token"})
            return
        handler = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)
        getattr(self, f"_do_{handler}")(params, body)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # ---------------------------------------------------------------- routes
    def _do_root(self, params: dict[str, str], body: dict[str, Any]) -> None:
        self._send_json(200, {"status": "emulated"})

    def _do_user_profile(self, params: dict[str, str], body: dict[str, Any]) -> None:
        self._send_json(
            200,
            {"ownerId": "3000001", "userName": "emulated-user", "displayName": "Emulated User"},
        )

    def _entity_or_404(self, syn_id: str) -> _Entity | None:
        entity = self.emulator.entities.get(syn_id)
        if entity is None:
            self._not_found(f"entity {syn_id} does not exist")
        return entity

    def _do_entity(self, params: dict[str, str], body: dict[str, Any]) -> None:
        entity = self._entity_or_404(params["id"])
        if entity is not None:
            self._send_json(200, entity.as_json())

    def _do_bundle2(self, params: dict[str, str], body: dict[str, Any]) -> None:
        emu = self.emulator
        with emu._lock:
            entity = self._entity_or_404(params["id"])
            if entity is None:
                return
            version = int(params["v"]) if params.get("v") else None
            if version is not None and version not in entity.versions:
                self._not_found(f"{entity.id} has no version {version}")
                return
            bundle: dict[str, Any] = {}
            if body.get("includeEntity", True):
                bundle["entity"] = entity.as_json(version)
                bundle["entityType"] = TYPE_NAMES[entity.concrete_type]
            if body.get("includeFileHandles") and entity.concrete_type == FILE:
                handle = emu.handles[entity.versions[version or entity.version]]
                bundle["fileHandles"] = [handle.as_json()]
            if body.get("includeAnnotations"):
                bundle["annotations"] = {
                    "id": entity.id,
                    "etag": entity.etag,
                    "annotations": {},
                }
            if body.get("includeRestrictionInformation"):
                bundle["restrictionInformation"] = {
                    "objectId": int(entity.id[3:]),
                    "restrictionLevel": "OPEN",
                    "hasUnmetAccessRequirement": False,
                }
        self._send_json(200, bundle)

    def _do_generated_by(self, params: dict[str, str], body: dict[str, Any]) -> None:
        self._not_found(f"no activity for {params['id']}")

    def _do_children(self, params: dict[str, str], body: dict[str, Any]) -> None:
        emu = self.emulator
        with emu._lock:
            parent = body.get("parentId")
            if parent not in emu.children:
                self._not_found(f"entity {parent} does not exist")
                return
            wanted = {t.lower() for t in body.get("includeTypes") or ["folder", "file"]}
            kids = [emu.entities[c] for c in emu.children[parent]]
            kids = [k for k in kids if TYPE_NAMES[k.concrete_type] in wanted]
            kids.sort(key=lambda e: e.name, reverse=body.get("sortDirection") == "DESC")
            start = int(body.get("nextPageToken") or 0)
            page = kids[start : start + emu.page_size]
            answer: dict[str, Any] = {"page": [k.header() for k in page]}
            if start + emu.page_size < len(kids):
                answer["nextPageToken"] = str(start + emu.page_size)
        self._send_json(200, answer)

    def _do_batch(self, params: dict[str, str], body: dict[str, Any]) -> None:
        emu = self.emulator
        results: list[dict[str, Any]] = []
        with emu._lock:
            for request in body.get("requestedFiles", []):
                fh_id = str(request.get("fileHandleId"))
                handle = emu.handles.get(fh_id)
                owner = emu.entities.get(str(request.get("associateObjectId")))
                if handle is None or owner is None:
                    results.append({"fileHandleId": fh_id, "failureCode": "NOT_FOUND"})
                    continue
                if fh_id not in owner.versions.values() or fh_id in emu._denied:
                    results.append({"fileHandleId": fh_id, "failureCode": "UNAUTHORIZED"})
                    continue
                item: dict[str, Any] = {"fileHandleId": fh_id}
                if body.get("includeFileHandles"):
                    item["fileHandle"] = handle.as_json()
                if body.get("includePreSignedURLs"):
                    item["preSignedURL"] = emu.presigned_url(handle)
                results.append(item)
        self._send_json(200, {"requestedFiles": results})

    def _do_blob(self, params: dict[str, str], body: dict[str, Any]) -> None:
        emu = self.emulator
        query = parse_qs(urlsplit(self.path).query)
        handle = emu.handles.get(params["fh"])
        if handle is None or query.get("X-Amz-Signature") != ["emulated"]:
            self._send_json(403, {"reason": "bad signature or unknown blob"})
            return
        content = handle.content
        size = len(content)
        etag = f'"{handle.md5}"'
        start, stop, status = 0, size, 200
        range_header = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if range_header and (if_range is None or if_range == etag):
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if match is None:
                self._send_json(416, {"reason": "bad range"})
                return
            first, last = match.groups()
            if first == "":
                start = max(0, size - int(last))
            else:
                start = int(first)
                stop = min(size, int(last) + 1) if last else size
            if start >= size or start >= stop:
                self._send_json(
                    416, {"reason": "range not satisfiable"}, {"Content-Range": f"bytes */{size}"}
                )
                return
            status = 206
            with emu._lock:
                emu.partial_responses += 1
        payload = content[start:stop]
        if emu._take(emu._corrupt, handle.id) is not None and payload:
            flipped = bytearray(payload)
            flipped[len(flipped) // 2] ^= 0xFF
            payload = bytes(flipped)
        drop = emu._take(emu._drop, handle.id)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        self.end_headers()
        limit = len(payload) if drop is None else int(len(payload) * drop[1])
        rate = emu._throttle.get(handle.id)
        chunk = 16384 if rate else 1 << 20
        sent = 0
        try:
            while sent < limit:
                piece = payload[sent : min(limit, sent + chunk)]
                self.wfile.write(piece)
                sent += len(piece)
                with emu._lock:
                    emu.blob_bytes_sent += len(piece)
                if rate:
                    self.wfile.flush()
                    time.sleep(len(piece) / rate)
            if drop is not None:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def write_synapse_config(path: Path, emulator: SynapseEmulator, token: str | None = None) -> Path:
    """A ``.synapseConfig`` whose ``[endpoints]`` point at ``emulator`` (and an authtoken)."""
    lines = [
        "[endpoints]",
        f"repoEndpoint = {emulator.repo_endpoint}",
        f"authEndpoint = {emulator.auth_endpoint}",
        f"fileHandleEndpoint = {emulator.file_endpoint}",
        f"portalEndpoint = {emulator.base_url}/",
        "",
    ]
    if token is not None:
        lines[0:0] = ["[authentication]", f"authtoken = {token}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
