"""What the ``mmsearch ingest``, ``jobs`` and ``worker`` commands do, behind ``mmsearch.cli``.

The CLI module only parses arguments; these functions turn them into an ``IngestRequest``, run
it (in-process, or through Celery workers when a broker is configured), draw the progress bar
and print the summary users read: how many items were indexed, skipped and failed, and why
each failure happened. Exit codes follow ``mmsearch.output``: 1 when any item failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm

from ingest.tracker import Progress
from search.catalog import Catalog
from search.catalog.types import FailureRecord, JobRecord
from search.errors import ConfigError
from search.services import IngestRequest, Services
from search.settings import Settings

EXIT_OK = 0  # the values of mmsearch.output's codes; ingest does not import the CLI package
EXIT_PARTIAL = 1  # some items failed, the rest is indexed
SUMMARY_FAILURES = 50  # failures printed by the text summary; --json lists them all
_SINGLE_OWNER_SCHEMES = ("edge://", "local://", "memory://")


# -- mmsearch ingest ---------------------------------------------------------------------------


def run_ingest_command(args: argparse.Namespace, settings: Settings) -> int:
    """Index what the arguments name; 0 when everything worked, 1 when any item failed."""
    request = request_from_args(args)  # before the heavy imports: a usage error answers at once
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
    """1 when the job lost anything (an item failed, or the run itself broke), else 0."""
    if job.failed or job.status in ("failed", "cancelled"):
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
    job: JobRecord, catalog: Catalog, *, failures: list[FailureRecord] | None = None, limit: int = SUMMARY_FAILURES
) -> None:
    """Counters, then each failure with its reason (the first ``limit`` of them)."""
    failures = catalog.job_failures(job.id) if failures is None else failures
    say(f"job {job.id}: {job.status}")
    say(f"  discovered {job.discovered}, indexed {job.indexed}, skipped {job.skipped} (unchanged), failed {job.failed}")
    if job.error:
        say(f"  error: {job.error}")
    if failures:
        say(f"  failures ({len(failures)}):")
        for failure in failures[:limit]:
            say(f"    {failure.uri}: {failure.reason}")
        if len(failures) > limit:
            say(f"    … and {len(failures) - limit} more (mmsearch jobs {job.id} --json lists them all)")


def job_document(job: JobRecord, failures: list[FailureRecord] | None = None) -> dict[str, Any]:
    """A job as plain JSON for ``--json``: counters, timings and (optionally) failures."""
    document: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "discovered": job.discovered,
        "indexed": job.indexed,
        "skipped": job.skipped,
        "failed": job.failed,
        "error": job.error,
        "params": job.params,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
    if failures is not None:
        document["failures"] = [{"uri": f.uri, "reason": f.reason} for f in failures]
    return document


# -- mmsearch jobs ------------------------------------------------------------------------------


def run_jobs_command(args: argparse.Namespace, settings: Settings) -> int:
    """List recent jobs, or show one job and its failures. Reads only the catalog."""
    catalog = Catalog.open(settings.resolved_catalog_url)
    try:
        job_id = getattr(args, "job_id", None)
        if job_id:
            return _show_job(catalog, job_id, bool(getattr(args, "json", False)))
        return _list_jobs(catalog, int(getattr(args, "limit", 20) or 20), bool(getattr(args, "json", False)))
    finally:
        catalog.close()


def _show_job(catalog: Catalog, job_id: str, as_json: bool) -> int:
    job = catalog.get_job(job_id)  # NotFound becomes exit 2 with its message in the CLI
    failures = catalog.job_failures(job_id)
    if as_json:
        emit_json(job_document(job, failures))
    else:
        print_summary(job, catalog, failures=failures)
    return EXIT_OK


def _list_jobs(catalog: Catalog, limit: int, as_json: bool) -> int:
    if limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    jobs = catalog.list_jobs(limit=limit)
    if as_json:
        emit_json({"jobs": [job_document(job) for job in jobs]})
        return EXIT_OK
    if not jobs:
        say("no ingest jobs yet")
        return EXIT_OK
    say(f"{'id':<36}  {'status':<9}  {'created (UTC)':<19}  {'found':>6} {'indexed':>7} {'skipped':>7} {'failed':>6}")
    for job in jobs:
        created = job.created_at.strftime("%Y-%m-%d %H:%M:%S")
        say(
            f"{job.id:<36}  {job.status:<9}  {created:<19}  {job.discovered:>6} {job.indexed:>7} {job.skipped:>7} {job.failed:>6}"
        )
    return EXIT_OK


# -- mmsearch worker ----------------------------------------------------------------------------


def run_worker_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run a Celery worker for our app in this process, consuming the queues the args name.

    ``--queues cpu,gpu`` are the logical names; they map to the configured queue names
    (``MMSEARCH_INGEST__CPU_QUEUE``/``__GPU_QUEUE``). A worker of the ``gpu`` queue writes the
    store: with an embedded store (Edge or qdrant-client local mode, one process per folder)
    it must be a single process, so its concurrency is 1.
    """
    from ingest.celery_app import make_celery

    queues = worker_queues(str(getattr(args, "queues", "cpu,gpu") or "cpu,gpu"), settings)
    concurrency = worker_concurrency(getattr(args, "concurrency", None), queues, settings)
    app = make_celery(settings)
    argv = [
        "worker",
        f"--queues={','.join(queues)}",
        f"--concurrency={concurrency}",
        f"--loglevel={getattr(args, 'loglevel', 'INFO') or 'INFO'}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    pool = getattr(args, "pool", None)
    if pool:
        argv.append(f"--pool={pool}")
    app.worker_main(argv=argv)
    return EXIT_OK


def worker_queues(spec: str, settings: Settings) -> list[str]:
    """``cpu,gpu`` → the configured queue names; a configured name may also be given as is."""
    mapping = {"cpu": settings.ingest.cpu_queue, "gpu": settings.ingest.gpu_queue}
    known = set(mapping.values())
    queues: list[str] = []
    for name in (part.strip() for part in spec.split(",")):
        if not name:
            continue
        queue = mapping.get(name, name)
        if queue not in known:
            raise ConfigError(f"unknown queue {name!r}: use cpu, gpu or both (cpu,gpu)")
        if queue not in queues:
            queues.append(queue)
    if not queues:
        raise ConfigError("--queues names no queue: use cpu, gpu or both (cpu,gpu)")
    return queues


def worker_concurrency(requested: int | None, queues: list[str], settings: Settings) -> int:
    """The worker's process count: 1 for a ``gpu`` worker over a single-owner store."""
    if requested is not None and requested < 1:
        raise ConfigError(f"--concurrency must be at least 1, got {requested}")
    single_owner = settings.resolved_store_url.startswith(_SINGLE_OWNER_SCHEMES)
    if settings.ingest.gpu_queue in queues and single_owner:
        if requested not in (None, 1):
            raise ConfigError(
                f"the store {settings.resolved_store_url} admits one process: a gpu worker over it runs with "
                "--concurrency 1 (use a Qdrant server, MMSEARCH_STORE_URL=http://host:6333, for more)"
            )
        return 1
    if settings.ingest.gpu_queue in queues:
        return requested or 1  # one model per process: more processes only help with several devices
    return requested or (os.cpu_count() or 1)


def say(line: str = "") -> None:
    print(line, flush=True)


def emit_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write("\n")
    sys.stdout.flush()
