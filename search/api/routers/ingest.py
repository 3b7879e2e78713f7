"""Starting ingestion and watching its jobs.

A request names places on the server; every local one must lie inside the folders the server may
read (``Settings.ingest_roots``), checked here before a job exists, so a refused request leaves
no trace but its 422.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from fastapi.exceptions import RequestValidationError

from search.api import convert
from search.api.deps import BaseUrl, State, require_api_key
from search.api.schemas import ErrorOut, IngestAccepted, IngestIn, JobOut, JobsOut
from search.catalog.types import JobStatus
from search.roots import request_path_problem
from search.services import IngestRequest

router = APIRouter(tags=["ingest"])

JobStatusName = Annotated[JobStatus | None, Query(description="only jobs in this status")]


@router.post(
    "/ingest",
    status_code=202,
    response_model=IngestAccepted,
    dependencies=[Depends(require_api_key)],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        422: {"model": ErrorOut, "description": "a bad field, or a path outside the folders this server may read"},
        503: {"model": ErrorOut, "description": "no ingest runner"},
    },
    summary="Start an ingest job",
)
def start_ingest(body: IngestIn, state: State, base: BaseUrl, response: Response) -> IngestAccepted:
    """Queue a job and return at once; watch it at ``status_url``."""
    if state.launcher is None:
        raise HTTPException(
            503,
            "This server cannot run ingestion: it was started without an ingest runner. Use `mmsearch ingest` or `mmsearch serve`.",
        )
    _check_paths(body, state.settings.ingest_roots)
    request = IngestRequest(
        paths=tuple(body.paths),
        url_lists=tuple(body.url_lists),
        crawl=tuple(body.crawl),
        manifests=tuple(body.manifests),
        include=tuple(body.include),
        exclude=tuple(body.exclude),
        options=body.options.model_dump(exclude_none=True),
    )
    job_id = state.launcher(request)
    url = f"{base}/jobs/{job_id}"
    response.headers["Location"] = url
    return IngestAccepted(job_id=job_id, status_url=url)


def _check_paths(body: IngestIn, roots: Sequence[pathlib.Path]) -> None:
    """422 naming every local path (``paths.1``) that is relative or outside the allowed roots."""
    problems = [
        {"type": "path_not_allowed", "loc": ("body", name, index), "msg": reason}
        for name in ("paths", "url_lists", "manifests")
        for index, entry in enumerate(getattr(body, name))
        if not _is_url(entry) and (reason := request_path_problem(entry, roots))
    ]
    if problems:
        raise RequestValidationError(problems)


def _is_url(entry: str) -> bool:
    parsed = urlparse(entry)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


@router.get("/jobs", response_model=JobsOut, summary="Recent ingest jobs, newest first")
def list_jobs(
    state: State,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status: JobStatusName = None,
    failures: Annotated[int, Query(ge=0, le=100, description="failures listed per job")] = 5,
) -> JobsOut:
    catalog = state.services.catalog
    catalog.interrupt_orphaned_jobs(state.services.settings.ingest.heartbeat_timeout)  # a dead runner's job is not running
    jobs = catalog.list_jobs(limit=limit, status=status)
    return JobsOut(
        jobs=[convert.job_out(j, catalog.job_failures(j.id, limit=failures) if failures and j.failed else []) for j in jobs]
    )


@router.get("/jobs/{job_id}", response_model=JobOut, responses={404: {"model": ErrorOut}}, summary="One job and its failures")
def get_job(
    state: State,
    job_id: Annotated[str, Path(min_length=1, max_length=200)],
    failures: Annotated[int, Query(ge=0, le=10_000)] = 100,
) -> JobOut:
    catalog = state.services.catalog
    catalog.interrupt_orphaned_jobs(state.services.settings.ingest.heartbeat_timeout)
    job = catalog.get_job(job_id)
    return convert.job_out(job, catalog.job_failures(job_id, limit=failures) if failures else [])
