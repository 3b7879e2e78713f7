"""``mmsearch worker``: a Celery worker for our app, on the queues the arguments name.

``--queues cpu,gpu,enrich`` are the logical names; they map to the configured queue names
(``MMSEARCH_INGEST__CPU_QUEUE``/``__GPU_QUEUE``/``__ENRICH_QUEUE``; enrich: OCR after embedding). A worker of the ``gpu`` queue writes the
store: with an embedded store (Edge or qdrant-client local mode, one process per folder) it
must be a single process, so its concurrency is 1.
"""

from __future__ import annotations

import argparse
import os

from mmsearch.output import EXIT_OK
from search.errors import ConfigError
from search.settings import Settings

_SINGLE_OWNER_SCHEMES = ("edge://", "local://", "memory://")


def run_worker_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the worker in this process until it is stopped (SIGTERM: warm shutdown)."""
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
    mapping = {"cpu": settings.ingest.cpu_queue, "gpu": settings.ingest.gpu_queue, "enrich": settings.ingest.enrich_queue}
    known = set(mapping.values())
    queues: list[str] = []
    for name in (part.strip() for part in spec.split(",")):
        if not name:
            continue
        queue = mapping.get(name, name)
        if queue not in known:
            raise ConfigError(f"unknown queue {name!r}: use cpu, gpu, enrich or several (cpu,gpu)")
        if queue not in queues:
            queues.append(queue)
    if not queues:
        raise ConfigError("--queues names no queue: use cpu, gpu or both (cpu,gpu)")
    return queues


def worker_concurrency(requested: int | None, queues: list[str], settings: Settings) -> int:
    """The worker's process count: 1 for a ``gpu`` or ``enrich`` worker over a single-owner store
    (both write it; there, one worker serves both: ``--queues gpu,enrich``)."""
    if requested is not None and requested < 1:
        raise ConfigError(f"--concurrency must be at least 1, got {requested}")
    single_owner = settings.resolved_store_url.startswith(_SINGLE_OWNER_SCHEMES)
    writes_store = settings.ingest.gpu_queue in queues or settings.ingest.enrich_queue in queues
    if writes_store and single_owner:
        if requested not in (None, 1):
            raise ConfigError(
                f"the store {settings.resolved_store_url} admits one process: a gpu or enrich worker over it runs with "
                "--concurrency 1 (use a Qdrant server, MMSEARCH_STORE_URL=http://host:6333, for more)"
            )
        return 1
    if settings.ingest.gpu_queue in queues:
        return requested or 1  # one model per process: more processes only help with several devices
    return requested or (os.cpu_count() or 1)
