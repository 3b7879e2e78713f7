"""Sources and watched folders: list where media comes from, and keep folders indexed.

Watching runs in the process that owns the store (``mmsearch serve`` in embedded mode), which
hands the API a ``WatchControl``; the API itself never imports ingest. A folder to watch must
lie inside the folders this server may read, checked as ``POST /ingest`` checks its paths. A
folder that does not exist yet (a disk not mounted now) may be watched: it is reported
``missing`` until it appears, so the answer says nothing about what exists outside the roots.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from search.api.deps import AppState, State, require_api_key
from search.api.schemas import ErrorOut
from search.roots import request_path_problem
from search.services import WatchControl, WatchedFolder

router = APIRouter(tags=["sources"])

Glob = Annotated[str, Field(min_length=1, max_length=256)]


class WatchIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"path": "/data/photos", "exclude": ["*/cache/*"]}]}
    )

    path: str = Field(min_length=1, max_length=4096, description="absolute folder on the server, inside the allowed roots")
    include: list[Glob] = Field(default_factory=list, max_length=100, description="only files matching one of these globs")
    exclude: list[Glob] = Field(default_factory=list, max_length=100, description="skip files matching any of these globs")


class WatchOut(BaseModel):
    id: str = Field(description="the folder's source id (DELETE /sources/{id}/watch stops watching it)")
    path: str
    include: list[str]
    exclude: list[str]
    state: str = Field(description="starting, watching, scanning, missing (unmounted or removed) or empty (looks unmounted)")
    detail: str
    last_job: str | None = None


class SourceOut(BaseModel):
    id: str
    kind: str = Field(description="folder, url, urls, crawl or manifest")
    uri: str
    created_at: datetime
    last_scan_at: datetime | None = None
    watch: WatchOut | None = Field(None, description="set when the folder is watched")


class SourcesOut(BaseModel):
    sources: list[SourceOut]
    watching: bool = Field(description="whether this server can watch folders")


@router.get("/sources", response_model=SourcesOut, summary="Sources of indexed media, and the watched folders")
def list_sources(state: State) -> SourcesOut:
    watched = {f.id: watch_out(f) for f in state.watcher.watched()} if state.watcher is not None else {}
    listed = [
        SourceOut(
            id=s.id, kind=s.kind, uri=s.uri, created_at=s.created_at, last_scan_at=s.last_scan_at, watch=watched.pop(s.id, None)
        )
        for s in state.services.catalog.list_sources()
    ]
    pending = [  # registered but not scanned yet (missing, or the first scan still queued)
        SourceOut(id=w.id, kind="folder", uri=w.path, created_at=datetime.now().astimezone(), watch=w) for w in watched.values()
    ]
    return SourcesOut(sources=listed + pending, watching=state.watcher is not None)


@router.post(
    "/sources/watch",
    status_code=201,
    response_model=WatchOut,
    dependencies=[Depends(require_api_key)],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        422: {"model": ErrorOut, "description": "a bad field, or a folder outside the folders this server may read"},
        503: {"model": ErrorOut, "description": "this server does not watch folders"},
    },
    summary="Watch a folder: index what is added or changed, remove what is deleted",
)
def watch_folder(body: WatchIn, state: State) -> WatchOut:
    watcher = _watcher(state)
    problem = request_path_problem(body.path, state.settings.ingest_roots)
    if problem:
        raise RequestValidationError([{"type": "path_not_allowed", "loc": ("body", "path"), "msg": problem}])
    return watch_out(watcher.watch(body.path, body.include, body.exclude))


@router.delete(
    "/sources/{source_id}/watch",
    status_code=204,
    dependencies=[Depends(require_api_key)],
    responses={404: {"model": ErrorOut}, 503: {"model": ErrorOut}},
    summary="Stop watching a folder (what was indexed stays)",
)
def unwatch_folder(state: State, source_id: Annotated[str, Path(min_length=1, max_length=200)]) -> Response:
    if not _watcher(state).unwatch(source_id):
        raise HTTPException(404, f"no watched folder with id {source_id!r}")
    return Response(status_code=204)


def _watcher(state: AppState) -> WatchControl:
    if state.watcher is None:
        raise HTTPException(
            503, "This server does not watch folders: run `mmsearch serve` in embedded mode, or `mmsearch watch PATH`."
        )
    return state.watcher


def watch_out(folder: WatchedFolder) -> WatchOut:
    return WatchOut(
        id=folder.id,
        path=folder.path,
        include=list(folder.include),
        exclude=list(folder.exclude),
        state=folder.state,
        detail=folder.detail,
        last_job=folder.last_job,
    )
