"""The Synapse side of a sync, through the official synapseclient (login, listing, bundles, URLs).

Every REST call goes through ``Synapse.restPOST`` with a *bounded* retry policy: the client's
default retries for about 30 minutes, which would look like a hang.
The bytes themselves are not fetched here (see ``_download``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mamamia._sync._report import SyncError

__all__ = [
    "FILE_TYPE",
    "FOLDER_TYPE",
    "HandleInfo",
    "Listed",
    "Remote",
    "RemoteError",
    "SynapseRemote",
    "check_synapse_id",
]

FOLDER_TYPE = "org.sagebionetworks.repo.model.Folder"
FILE_TYPE = "org.sagebionetworks.repo.model.FileEntity"
INSTALL_HINT = "mamamia sync needs synapseclient: pip install 'mamamia[sync]'"
_SYN_ID = re.compile(r"syn\d+")


class RemoteError(SyncError):
    """A Synapse REST call failed after its retries; the message says which and why.

    ``permanent`` errors (no permission, not found, an unmet access requirement) are not worth
    another attempt.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def check_synapse_id(value: str, what: str = "--from") -> str:
    if not _SYN_ID.fullmatch(value or ""):
        raise SyncError(f"{what}: {value!r} is not a Synapse id like syn60868042")
    return value


@dataclass(frozen=True)
class Listed:
    """One file of the upstream listing: its entity id, path segments and version."""

    synapse_id: str
    segments: tuple[str, ...]
    version: int
    modified_on: str | None

    @property
    def path(self) -> str:
        return "/".join(self.segments)


@dataclass(frozen=True)
class HandleInfo:
    """What the entity bundle says about a file's current bytes."""

    file_handle_id: str
    md5: str | None
    size: int | None
    file_name: str
    version: int
    modified_on: str | None


class Remote(Protocol):
    def children(self, parent_id: str) -> list[dict[str, Any]]: ...

    def handle(self, synapse_id: str) -> HandleInfo: ...

    def download_url(self, file_handle_id: str, synapse_id: str) -> str: ...


class SynapseRemote:
    """A logged-in (or anonymous) synapseclient session used only for metadata."""

    def __init__(
        self,
        *,
        config_path: Path | None,
        cache_dir: Path,
        retries: int = 5,
        backoff_s: float = 1.0,
        connections: int = 10,
    ) -> None:
        try:
            import requests
            import synapseclient
            from synapseclient.api.configuration_services import get_config_authentication
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise SyncError(INSTALL_HINT) from exc
        if config_path is not None and not config_path.is_file():
            raise SyncError(f"--synapse-config: {config_path} does not exist")
        path = str(config_path or Path("~/.synapseConfig").expanduser())
        self._retry_policy = {
            "retries": max(0, retries),
            "wait": backoff_s,
            "max_wait": 30,
            "back_off": 2,
        }
        try:
            # skip_checks: no endpoint-redirect probes and no PyPI version check at login.
            # One pooled connection per worker thread (requests keeps 10 by default).
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(
                pool_connections=connections, pool_maxsize=max(10, connections)
            )
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self.syn = synapseclient.Synapse(
                configPath=path,
                requests_session=session,
                skip_checks=True,
                cache_root_dir=str(cache_dir),
                silent=True,
                cache_client=False,
            )
        except Exception as exc:
            raise SyncError(f"cannot set up the Synapse client from {path}: {exc}") from exc
        token = os.environ.get("SYNAPSE_AUTH_TOKEN")
        origin = "$SYNAPSE_AUTH_TOKEN"
        if not token:
            profile = os.environ.get("SYNAPSE_PROFILE", "default")
            token = get_config_authentication(config_path=path, profile=profile).get("authtoken")
            origin = f"the authtoken in {path}"
        self.anonymous = not token
        if token:
            try:
                self.syn.login(authToken=token, silent=True)
            except Exception as exc:
                raise SyncError(f"Synapse login with {origin} failed: {exc}") from exc

    def _post(self, uri: str, body: dict[str, Any], endpoint: str | None = None) -> Any:
        try:
            return self.syn.restPOST(
                uri,
                body=json.dumps(body),
                endpoint=endpoint,
                retryPolicy=self._retry_policy,
            )
        except Exception as exc:
            raise RemoteError(
                f"POST {uri}: {_describe(exc, self.anonymous)}", permanent=_permanent(exc)
            ) from exc

    def children(self, parent_id: str) -> list[dict[str, Any]]:
        """Every folder and file directly under ``parent_id`` (all pages), as EntityHeaders."""
        request: dict[str, Any] = {
            "parentId": parent_id,
            "includeTypes": ["folder", "file"],
            "sortBy": "NAME",
            "sortDirection": "ASC",
        }
        out: list[dict[str, Any]] = []
        while True:
            page = self._post("/entity/children", request)
            out.extend(page.get("page", []))
            token = page.get("nextPageToken")
            if not token:
                return out
            request["nextPageToken"] = token

    def handle(self, synapse_id: str) -> HandleInfo:
        bundle = self._post(
            f"/entity/{synapse_id}/bundle2",
            {"includeEntity": True, "includeFileHandles": True},
        )
        entity = bundle.get("entity") or {}
        fh_id = str(entity.get("dataFileHandleId") or "")
        handles = [h for h in bundle.get("fileHandles") or [] if str(h.get("id")) == fh_id]
        if not fh_id or not handles:
            raise RemoteError(
                f"{synapse_id}: the bundle has no file handle (no DOWNLOAD permission, or an "
                "unmet access requirement: accept the data terms on synapse.org)",
                permanent=True,
            )
        handle = handles[0]
        size = handle.get("contentSize")
        return HandleInfo(
            file_handle_id=fh_id,
            md5=handle.get("contentMd5") or None,
            size=int(size) if size is not None else None,
            file_name=str(handle.get("fileName") or ""),
            version=int(entity.get("versionNumber") or 0),
            modified_on=entity.get("modifiedOn"),
        )

    def download_url(self, file_handle_id: str, synapse_id: str) -> str:
        """A fresh presigned URL (asked again on every attempt: they expire)."""
        answer = self._post(
            "/fileHandle/batch",
            {
                "includeFileHandles": False,
                "includePreSignedURLs": True,
                "requestedFiles": [
                    {
                        "fileHandleId": file_handle_id,
                        "associateObjectId": synapse_id,
                        "associateObjectType": "FileEntity",
                    }
                ],
            },
            endpoint=self.syn.fileHandleEndpoint,
        )
        results = answer.get("requestedFiles") or [{}]
        failure = results[0].get("failureCode")
        if failure:
            raise RemoteError(
                f"{synapse_id}: file handle {file_handle_id}: {failure}", permanent=True
            )
        url = results[0].get("preSignedURL")
        if not url:
            raise RemoteError(f"{synapse_id}: Synapse gave no download URL")
        return str(url)


def _describe(exc: Exception, anonymous: bool) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if anonymous and ("401" in text or "403" in text or "not logged in" in text):
        text += " (anonymous: set SYNAPSE_AUTH_TOKEN or an authtoken in the Synapse config)"
    return text[:300]


def _permanent(exc: Exception) -> bool:
    """A 4xx other than 408/429, or a login problem: asking again will not help."""
    from synapseclient.core.exceptions import SynapseAuthenticationError, SynapseHTTPError

    if isinstance(exc, SynapseAuthenticationError):
        return True
    response = getattr(exc, "response", None) if isinstance(exc, SynapseHTTPError) else None
    status = getattr(response, "status_code", None)
    return isinstance(status, int) and 400 <= status < 500 and status not in (408, 429)
