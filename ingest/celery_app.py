"""The one Celery app, configured from ``Settings`` (never from import-time globals).

Two queues, routed by task name: ``cpu`` (``mmsearch.ingest.cpu.*``: discovery, downloads,
job bookkeeping) and ``gpu`` (``mmsearch.ingest.gpu.*``: decode+embed+store, and deletes,
since the processes that write the store own it). Long idempotent tasks are acknowledged only
when done (``acks_late``), re-queued if their worker dies (``reject_on_worker_lost``; a worker
killed outright is redelivered by the broker after ``visibility_timeout``), and each worker
process reserves one message at a time (prefetch multiplier 1), so a slow batch never holds
others hostage. Results are not stored: progress lives in the catalog.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from search.errors import ConfigError
from search.settings import Settings

CPU_TASKS = "mmsearch.ingest.cpu.*"
GPU_TASKS = "mmsearch.ingest.gpu.*"


def make_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings.broker_url`` with the ingestion tasks registered."""
    if settings.broker_url is None:
        raise ConfigError(
            "Celery needs a broker: set MMSEARCH_BROKER_URL=redis://host:6379/0 (without it, "
            "ingestion runs in-process and no worker is needed)"
        )
    ingest = settings.ingest
    app = Celery("mmsearch", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=ingest.cpu_queue,
        task_queues=(Queue(ingest.cpu_queue), Queue(ingest.gpu_queue)),
        task_routes={CPU_TASKS: {"queue": ingest.cpu_queue}, GPU_TASKS: {"queue": ingest.gpu_queue}},
        broker_transport_options={"visibility_timeout": ingest.visibility_timeout},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_max_tasks_per_child=None,
        task_send_sent_event=False,
        worker_send_task_events=False,
    )
    app.mmsearch_settings = settings  # type: ignore[attr-defined]  # read by the worker processes
    from ingest.tasks import register_tasks

    register_tasks(app, settings)
    return app
