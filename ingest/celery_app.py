"""The one Celery app, configured from ``Settings`` (never from import-time globals).

Three queues, routed by task name: ``cpu`` (``mmsearch.ingest.cpu.*``: discovery, downloads,
job bookkeeping), ``gpu`` (``mmsearch.ingest.gpu.*``: decode+embed+store, and deletes,
since the processes that write the store own it) and ``enrich`` (``mmsearch.ingest.enrich.*``:
OCR after embedding, which writes payloads, so over a single-process store it shares the gpu
worker's process: ``--queues gpu,enrich``). Long idempotent tasks are acknowledged only
when done (``acks_late``), re-queued at once if their pool process dies
(``reject_on_worker_lost``), and each worker process reserves one message at a time (prefetch
multiplier 1), so a slow batch never holds others hostage. Results are not stored: progress
lives in the catalog.

A worker killed outright (SIGKILL, a lost machine) acknowledges nothing; with Redis its tasks
come back after ``ingest.visibility_timeout`` (30 s), found by the sweep every worker runs each
``ingest.broker_restore_interval`` (5 s), so its work resumes within about 35 s. Live workers
renew the tasks they hold (``ingest.visibility``), so no task, however long, is ever handed
to a second worker while the first still runs it.
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from ingest.visibility import KeepHeldTasksVisible
from search.errors import ConfigError
from search.settings import Settings

CPU_TASKS = "mmsearch.ingest.cpu.*"
GPU_TASKS = "mmsearch.ingest.gpu.*"
ENRICH_TASKS = "mmsearch.ingest.enrich.*"
_RESTORE_LOCK_S = 15  # kombu's lock around one restore sweep (default 300 s: a worker killed holding it stalls every restore)


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
        task_queues=tuple(_direct_queue(name) for name in (ingest.cpu_queue, ingest.gpu_queue, ingest.enrich_queue)),
        task_routes={
            CPU_TASKS: {"queue": ingest.cpu_queue},
            GPU_TASKS: {"queue": ingest.gpu_queue},
            ENRICH_TASKS: {"queue": ingest.enrich_queue},
        },
        broker_transport_options={
            "visibility_timeout": ingest.visibility_timeout,
            "unacked_restore_interval": ingest.broker_restore_interval,
            "unacked_restore_throttle": 1,  # every sweep scans (kombu's default: every 10th)
            "unacked_mutex_expire": _RESTORE_LOCK_S,
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_max_tasks_per_child=None,
        task_send_sent_event=False,
        worker_send_task_events=False,
    )
    app.steps["worker"].add(KeepHeldTasksVisible)
    app.mmsearch_settings = settings  # read by the worker processes
    from ingest.tasks import register_tasks

    register_tasks(app, settings)
    return app


def _direct_queue(name: str) -> Queue:
    """A queue bound to its own direct exchange by its own name: a bare ``Queue(name)`` is bound to
    the default queue's exchange and key by Celery, so every queue would share the ``cpu`` binding."""
    return Queue(name, Exchange(name, type="direct"), routing_key=name)
