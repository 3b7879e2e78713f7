"""Ingestion: sources -> discovery -> fetch/decode -> embed -> store, as plain stages.

- ``sources/``: what a request names (folders, URL lists, crawls, manifests) as ``MediaItem``s;
- ``discovery``: admission (skip unchanged, count, register) and rescan deletions;
- ``stages/``: load, fetch, decode, points, pooling, record, write: one job each;
- ``pipeline``: the threaded engine that keeps the model busy;
- ``jobs``: run a job in-process (embedded mode) or dispatch it to Celery workers;
- ``work`` / ``tasks`` / ``celery_app``: the distributed mode's task bodies and thin wrappers;
- ``heartbeat`` / ``visibility``: who is still working on a job, and keeping a live worker's tasks its own.

What the ``mmsearch ingest``, ``jobs`` and ``worker`` commands print lives with the CLI, in ``mmsearch/``.
"""

import search  # noqa: F401 - first: it sets torch's OpenMP wait policy, which is read when torch loads
