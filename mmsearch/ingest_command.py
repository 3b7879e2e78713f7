"""``mmsearch ingest`` and ``mmsearch jobs``: run a job, draw its progress, tell what happened.

The CLI module only parses arguments; these functions turn them into an ``IngestRequest``, run
it (in-process, or through Celery workers when a broker is configured), draw the progress bar
and print the summary users read: how many items were indexed, skipped and failed, why each
failure happened, and whether the run continued an interrupted one. Exit codes are
``mmsearch.output``'s: 1 when any item failed or the job did not finish.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ingest.tracker import Progress
from mmsearch.output import EXIT_OK, EXIT_PARTIAL, emit_json, say
from mmsearch.remote import Server, find_server
from search.catalog import Catalog
from search.catalog.owners import JobOwner
from search.catalog.types import FailureRecord, JobRecord
from search.errors import ConfigError
from search.services import IngestRequest, Services
from search.settings import Settings

SUMMARY_FAILURES = 50  # failures printed by the text summary; --json lists them all
POLL_S = 0.5  # a job run by the server: how often its progress is asked
JOB_FIELDS = tuple(f.name for f in dataclasses.fields(JobRecord))


# -- mmsearch ingest ---------------------------------------------------------------------------


def run_ingest_command(args: argparse.Namespace, settings: Settings) -> int:
    """Index what the arguments name; 0 when everything worked, 1 when any item failed."""
    request = request_from_args(args)  # before the heavy imports: a usage error answers at once
    server = find_server(settings)
    if server is not None:  # a running server owns the store: it runs the job, we draw its progress
        return _ingest_through(server, request, bool(getattr(args, "json", False)))
    from ingest.jobs import run_ingest

    services = Services(settings)
    try:
        as_json = bool(getattr(args, "json", False))
        with progress_bar("indexing", disable=as_json) as progress:
            job = run_ingest(services, request, progress=progress)
        failures = services.catalog.job_failures(job.id)
        if as_json:
            emit_json(job_document(job, failures))
        else:
            print_summary(job, services.catalog, failures=failures)
    finally:
        services.close()
    return exit_code(job)


def _ingest_through(server: Server, request: IngestRequest, as_json: bool) -> int:
    """Start the job on the server and follow it until it finishes, printing what a local run prints."""
    body = {
        "paths": [_absolute(p) for p in request.paths],
        "url_lists": [_absolute(p) for p in request.url_lists],
        "crawl": list(request.crawl),
        "manifests": [_absolute(p) for p in request.manifests],
        "include": list(request.include),
        "exclude": list(request.exclude),
    }
    job_id = server.post("/ingest", body)["job_id"]
    with progress_bar("indexing", disable=as_json) as progress:
        while True:
            document = server.get(f"/jobs/{job_id}")
            job, failures = job_from_api(document)
            progress(job)
            if document["finished"]:
                break
            time.sleep(POLL_S)
    if as_json:
        emit_json(job_document(job, failures))
    else:
        print_summary(job, None, failures=failures)
    return exit_code(job)


def job_from_api(document: dict[str, Any]) -> tuple[JobRecord, list[FailureRecord]]:
    """A job as the API's ``JobOut`` describes it, in the catalog's types (for the same output)."""
    fields: dict[str, Any] = {f: document.get(f) for f in JOB_FIELDS}
    for name in ("created_at", "started_at", "finished_at", "heartbeat_at"):
        fields[name] = datetime.fromisoformat(str(fields[name])) if fields[name] else None
    job = JobRecord(**fields)
    failures = [
        FailureRecord(i, job.id, f["uri"], f["reason"], datetime.fromisoformat(f["at"]))
        for i, f in enumerate(document["failures"])
    ]
    return job, failures


def _absolute(path: str) -> str:
    """Local paths as the server needs them (absolute); URLs as they are."""
    return path if path.startswith(("http://", "https://")) else str(Path(path).expanduser().resolve())


def request_from_args(args: argparse.Namespace) -> IngestRequest:
    """The request the ``ingest`` arguments describe; ConfigError when they name nothing."""
    request = IngestRequest(
        paths=tuple(getattr(args, "paths", ()) or ()),
        url_lists=tuple(getattr(args, "url_list", ()) or ()),
        crawl=tuple(getattr(args, "crawl", ()) or ()),
        manifests=tuple(getattr(args, "manifest", ()) or ()),
        include=tuple(getattr(args, "include", ()) or ()),
        exclude=tuple(getattr(args, "exclude", ()) or ()),
    )
    if request.is_empty():
        raise ConfigError("nothing to ingest: give a PATH_OR_URL, --manifest FILE, --url-list FILE or --crawl URL")
    return request


def exit_code(job: JobRecord) -> int:
    """1 when the job lost anything (an item failed, or the run broke or stopped), else 0."""
    if job.failed or job.status != "done":
        return EXIT_PARTIAL
    return EXIT_OK


@contextmanager
def progress_bar(label: str, *, disable: bool = False) -> Iterator[Progress]:
    """A tqdm bar fed with job records; its total grows as discovery finds items.

    Written to stderr, so ``--json`` output on stdout stays one clean document.
    """
    bar = tqdm(total=0, desc=label, unit="item", disable=disable, file=sys.stderr, dynamic_ncols=True)
    started = False

    def update(job: JobRecord) -> None:
        nonlocal started
        if not started:  # the clock starts with the job, not with the model load before it
            bar.reset(total=job.discovered)
            started = True
        if bar.total != job.discovered:
            bar.total = job.discovered
        bar.n = job.processed
        bar.set_postfix(indexed=job.indexed, skipped=job.skipped, failed=job.failed, refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def print_summary(
    job: JobRecord, catalog: Catalog | None, *, failures: list[FailureRecord] | None = None, limit: int = SUMMARY_FAILURES
) -> None:
    """Counters, how the job relates to other runs, then each failure with its reason."""
    if failures is None:
        failures = catalog.job_failures(job.id) if catalog is not None else []
    say(f"job {job.id}: {job.status}")
    if job.resumed_from:
        say(f"  resumed from job {job.resumed_from}: what it finished is skipped as unchanged")
    if job.resumed_by:
        say(f"  resumed by job {job.resumed_by}")
    say(f"  discovered {job.discovered}, indexed {job.indexed}, skipped {job.skipped} (unchanged), failed {job.failed}")
    if job.status in ("queued", "running"):
        say(f"  {_runner(job)}")
    if job.error:
        say(f"  error: {job.error}")
    if failures:
        say(f"  failures ({len(failures)}):")
        for failure in failures[:limit]:
            say(f"    {failure.uri}: {failure.reason}")
        if len(failures) > limit:
            say(f"    … and {len(failures) - limit} more (mmsearch jobs {job.id} --json lists them all)")


def job_document(job: JobRecord, failures: list[FailureRecord] | None = None) -> dict[str, Any]:
    """A job as plain JSON for ``--json``: counters, timings, runner, resumes and (optionally) failures."""
    owner = JobOwner.parse(job.owner) if job.owner else None
    document: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "discovered": job.discovered,
        "indexed": job.indexed,
        "skipped": job.skipped,
        "failed": job.failed,
        "error": job.error,
        "params": job.params,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "owner": {"host": owner.host, "pid": owner.pid} if owner is not None else None,
        "heartbeat_at": _iso(job.heartbeat_at),
        "resumed_from": job.resumed_from,
        "resumed_by": job.resumed_by,
    }
    if failures is not None:
        document["failures"] = [{"uri": f.uri, "reason": f.reason} for f in failures]
    return document


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _runner(job: JobRecord) -> str:
    owner = JobOwner.parse(job.owner) if job.owner else None
    who = owner.describe() if owner is not None else "Celery workers"
    if job.heartbeat_at is None:
        return f"run by {who}, no heartbeat yet"
    age = (datetime.now(timezone.utc) - job.heartbeat_at).total_seconds()
    return f"run by {who}, last heartbeat {age:.0f} s ago"


# -- mmsearch jobs ------------------------------------------------------------------------------


def run_jobs_command(args: argparse.Namespace, settings: Settings) -> int:
    """List recent jobs, or show one job and its failures. Reads only the catalog, after
    marking interrupted the jobs whose runner is gone (so a killed run does not look alive)."""
    server = find_server(settings)
    if server is not None:  # the server's view (it owns the jobs it runs)
        return _jobs_through(server, args)
    catalog = Catalog.open(settings.resolved_catalog_url)
    try:
        catalog.interrupt_orphaned_jobs(settings.ingest.heartbeat_timeout)
        job_id = getattr(args, "job_id", None)
        if job_id:
            return _show_job(catalog, job_id, bool(getattr(args, "json", False)))
        return _list_jobs(catalog, int(getattr(args, "limit", 20) or 20), bool(getattr(args, "json", False)))
    finally:
        catalog.close()


def _jobs_through(server: Server, args: argparse.Namespace) -> int:
    as_json = bool(getattr(args, "json", False))
    job_id = getattr(args, "job_id", None)
    if job_id:
        job, failures = job_from_api(server.get(f"/jobs/{job_id}"))
        return _print_job(job, failures, as_json)
    limit = int(getattr(args, "limit", 20) or 20)
    if limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    jobs = [job_from_api(d)[0] for d in server.get("/jobs", params={"limit": limit})["jobs"]]
    return _print_jobs(jobs, as_json)


def _show_job(catalog: Catalog, job_id: str, as_json: bool) -> int:
    job = catalog.get_job(job_id)  # NotFound becomes exit 2 with its message in the CLI
    return _print_job(job, catalog.job_failures(job_id), as_json)


def _print_job(job: JobRecord, failures: list[FailureRecord], as_json: bool) -> int:
    if as_json:
        emit_json(job_document(job, failures))
    else:
        print_summary(job, None, failures=failures)
    return EXIT_OK


def _list_jobs(catalog: Catalog, limit: int, as_json: bool) -> int:
    if limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    return _print_jobs(catalog.list_jobs(limit=limit), as_json)


def _print_jobs(jobs: list[JobRecord], as_json: bool) -> int:
    if as_json:
        emit_json({"jobs": [job_document(job) for job in jobs]})
        return EXIT_OK
    if not jobs:
        say("no ingest jobs yet")
        return EXIT_OK
    say(f"{'id':<36}  {'status':<11}  {'created (UTC)':<19}  {'found':>6} {'indexed':>7} {'skipped':>7} {'failed':>6}")
    for job in jobs:
        created = job.created_at.strftime("%Y-%m-%d %H:%M:%S")
        counts = f"{job.discovered:>6} {job.indexed:>7} {job.skipped:>7} {job.failed:>6}"
        say(f"{job.id:<36}  {job.status:<11}  {created:<19}  {counts}{_relations(job)}")
    return EXIT_OK


def _relations(job: JobRecord) -> str:
    """The resume links of a listed job, with short ids (the first 8 characters identify a job)."""
    notes = []
    if job.resumed_from:
        notes.append(f"resumed from {job.resumed_from[:8]}")
    if job.resumed_by:
        notes.append(f"resumed by {job.resumed_by[:8]}")
    return f"  ({', '.join(notes)})" if notes else ""
