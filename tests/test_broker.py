"""Broker health, as `mmsearch doctor` and the API's /readyz report it (real Redis, real closed port)."""

from __future__ import annotations

import socket

import pytest

from search.broker import EMBEDDED, broker_status, redact_url
from search.engine.status import readiness
from search.errors import StoreUnavailable
from search.services import Services
from search.settings import load_settings

pytestmark = pytest.mark.redis


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_embedded_mode_has_no_broker_to_check(tmp_path):
    assert broker_status(load_settings(data_dir=tmp_path, broker_url=None)) == EMBEDDED


def test_a_running_redis_answers(tmp_path):
    assert "answers PING" in broker_status(load_settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/15"))


def test_a_dead_broker_is_reported_with_its_address(tmp_path):
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    with pytest.raises(StoreUnavailable, match=f"broker {url} does not answer"):
        broker_status(load_settings(data_dir=tmp_path, broker_url=url), timeout=1.0)


def test_passwords_are_hidden():
    assert "s3cret" not in redact_url("redis://:s3cret@cache:6379/0")


def test_readiness_fails_on_the_broker_alone(tmp_path):
    settings = load_settings(data_dir=tmp_path, model="mmsearch-synthetic", broker_url=f"redis://127.0.0.1:{_closed_port()}/0")
    services = Services(settings)
    try:
        checks = {c.name: c for c in readiness(services)}
    finally:
        services.close()
    assert checks["model"].ok and checks["store"].ok and checks["catalog"].ok
    assert not checks["broker"].ok and "does not answer" in checks["broker"].detail


def test_each_queue_is_bound_to_its_own_exchange_and_key(tmp_path):
    """A gpu task must never be routable to the cpu queue, on Redis or on an AMQP broker."""
    from ingest.celery_app import make_celery

    app = make_celery(load_settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/15"))
    bindings = {name: (queue.exchange.name, queue.routing_key) for name, queue in app.amqp.queues.items()}
    assert bindings == {name: (name, name) for name in ("cpu", "gpu", "enrich")}
    assert app.amqp.router.route({}, "mmsearch.ingest.gpu.index")["queue"].name == "gpu"
