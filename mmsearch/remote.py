"""The CLI and a running ``mmsearch serve``: where the server listens, and talking to it.

The embedded store is one process's at a time, so while ``mmsearch serve`` (or ``demo``) runs,
a second ``mmsearch search`` could not open it. The server therefore records where it listens
in ``<data dir>/server.json`` (its pid and URL), removed when it stops cleanly; the CLI's
``search``, ``ingest`` and ``jobs`` read it and go through the server's HTTP API (with the API
key from the settings) instead, and open the store themselves only when no live server owns
it. A record whose pid is gone (the server was killed) is stale: ignored, and removed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from search.errors import MMSearchError, StoreUnavailable
from search.settings import Settings

RECORD_NAME = "server.json"
CONNECT_WAIT_S = 10.0  # a server that has written its record may still be starting up
REQUEST_TIMEOUT_S = 120.0  # one search or job request; ingest progress is polled in short requests


class RemoteError(MMSearchError):
    """The server refused the request; the message is the API's own (the same words the CLI
    would have printed running the command itself)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def record_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / RECORD_NAME


def write_server_record(settings: Settings, url: str) -> Path:
    """Say that this process serves the data dir at ``url`` (written atomically)."""
    path = record_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{RECORD_NAME}.{os.getpid()}")
    scratch.write_text(json.dumps({"pid": os.getpid(), "url": url, "started_at": time.time()}))
    os.replace(scratch, path)
    return path


def remove_server_record(settings: Settings) -> None:
    """Remove the record if it is this process's (a newer server's record is left alone)."""
    path = record_path(settings)
    record = _read(path)
    if record is not None and record.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Server:
    """A live server owning the data dir, and how to reach it."""

    url: str
    pid: int
    api_key: str | None

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._send("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._send("POST", path, json=body)

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"X-API-Key": self.api_key} if self.api_key else {}
        deadline = time.monotonic() + CONNECT_WAIT_S
        while True:
            try:
                response = httpx.request(method, self.url + path, headers=headers, timeout=REQUEST_TIMEOUT_S, **kwargs)
                break
            except httpx.ConnectError as exc:
                if time.monotonic() > deadline or not _alive(self.pid):
                    raise StoreUnavailable(f"the mmsearch server at {self.url} (pid {self.pid}) does not answer: {exc}") from exc
                time.sleep(0.2)
            except httpx.HTTPError as exc:
                raise StoreUnavailable(f"the mmsearch server at {self.url} failed to answer: {exc}") from exc
        if response.status_code >= 400:
            raise RemoteError(_detail(response), response.status_code)
        return response.json()


def find_server(settings: Settings) -> Server | None:
    """The live server that owns this data dir, or None (a stale record is removed)."""
    path = record_path(settings)
    record = _read(path)
    if record is None:
        return None
    pid, url = record.get("pid"), record.get("url")
    if not isinstance(pid, int) or not isinstance(url, str) or not _alive(pid):
        path.unlink(missing_ok=True)  # stale: the server is gone
        return None
    key = settings.api.api_key.get_secret_value() if settings.api.api_key else None
    return Server(url.rstrip("/"), pid, key)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but alive
    return True


def _detail(response: httpx.Response) -> str:
    """The API's message (``detail``), never the raw body."""
    try:
        body = response.json()
    except ValueError:
        return f"the server answered {response.status_code}"
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):  # a validation error: name the fields
        return "; ".join(f"{'.'.join(map(str, d.get('loc', ())))}: {d.get('msg', '')}" for d in detail if isinstance(d, dict))
    return f"the server answered {response.status_code}"
