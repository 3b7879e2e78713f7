"""Keep the tasks a live worker holds away from other workers, however long they run.

With Redis as the broker there are no consumer acknowledgements on the wire: kombu records
each message it hands to a worker in a sorted set (``unacked_index``) scored by the delivery
time, and every worker periodically re-queues the messages older than ``visibility_timeout``
(``restore_visible``). That is how the work of a worker killed outright comes back; but with
the usual one-hour timeout a crashed worker stalls its job for an hour, and with a short one a
long task (a feature film, a batch of huge photos) would be handed to a second worker while
the first still runs it.

So the timeout is short (``ingest.visibility_timeout``, 30 s) and each worker renews the
messages it holds, running, waiting for a pool slot or for their countdown, every third of the
timeout (``ZADD XX``: it only touches entries that still exist, never re-adds an acknowledged
one). A live worker's tasks therefore never expire, and a dead worker's expire at most one
timeout after its last renewal; the sweep every ``ingest.broker_restore_interval`` seconds then
puts them back on their queue. This runs in the worker's main process, a thread of its own, so
it keeps renewing while a task occupies a pool process or, with ``--pool solo``, the main thread.

Other brokers need none of this (RabbitMQ redelivers as soon as a consumer's connection drops).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import Celery, bootsteps

log = logging.getLogger(__name__)

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
DEFAULT_INDEX_KEY = "unacked_index"  # kombu.transport.redis.Channel.unacked_index_key


def renew_interval(visibility_timeout: float) -> float:
    """How often held messages are renewed: a third of the timeout, so two renewals may fail."""
    return visibility_timeout / 3


def held_delivery_tags() -> list[str]:
    """Delivery tags of every message this worker process holds (reserved, active, scheduled)."""
    from celery.worker import state

    for _ in range(3):
        try:
            requests = list(state.requests.values())
            break
        except RuntimeError:  # the consumer changed the dict while it was copied
            continue
    else:
        return []
    tags = []
    for request in requests:
        tag = getattr(getattr(request, "message", None), "delivery_tag", None)
        if tag:
            tags.append(str(tag))
    return tags


class VisibilityKeeper:
    """Renews this worker's held messages in Redis until stopped."""

    def __init__(self, broker_url: str, visibility_timeout: float, transport_options: dict[str, Any]) -> None:
        import redis

        prefix = str(transport_options.get("global_keyprefix", "") or "")
        self.key = prefix + str(transport_options.get("unacked_index_key", DEFAULT_INDEX_KEY))
        self.interval = renew_interval(visibility_timeout)
        self._client = redis.Redis.from_url(broker_url, socket_timeout=self.interval, socket_connect_timeout=self.interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="visibility-keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)
        self._client.close()

    def renew(self) -> int:
        """Give every held message a fresh delivery time; returns how many were renewed."""
        tags = held_delivery_tags()
        if not tags:
            return 0
        now = time.time()
        return int(self._client.zadd(self.key, dict.fromkeys(tags, now), xx=True, ch=True) or 0)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.renew()
            except Exception as exc:  # the broker is away: the consumer reconnects, we try again
                log.warning("could not renew the tasks this worker holds: %s", exc)


class KeepHeldTasksVisible(bootsteps.StartStopStep):
    """Worker bootstep: runs a ``VisibilityKeeper`` in the worker's main process (Redis only)."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.keeper: VisibilityKeeper | None = None

    def start(self, worker: Any) -> None:
        app: Celery = worker.app
        url = str(app.conf.broker_url or "")
        if not url.startswith(REDIS_SCHEMES):
            return
        options = dict(app.conf.broker_transport_options or {})
        self.keeper = VisibilityKeeper(url, float(options["visibility_timeout"]), options)
        self.keeper.start()

    def stop(self, worker: Any) -> None:
        if self.keeper is not None:
            self.keeper.stop()
            self.keeper = None
