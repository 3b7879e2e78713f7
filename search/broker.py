"""Is the Celery broker reachable? Shared by ``mmsearch doctor`` and the API's readiness probe."""

from __future__ import annotations

from search.errors import StoreUnavailable
from search.settings import Settings

EMBEDDED = "none configured: tasks run in-process (embedded mode)"


def broker_status(settings: Settings, timeout: float = 3.0) -> str:
    """A one-line description of the broker; raises StoreUnavailable when it does not answer.

    Only Redis brokers are probed (the one docker-compose and the docs use); for other schemes
    Celery itself reports problems when a task is sent.
    """
    url = settings.broker_url
    if not url:
        return EMBEDDED
    shown = redact_url(url)
    if not url.startswith(("redis://", "rediss://")):
        return f"{shown} (not probed: only Redis brokers are checked)"
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping()
    except redis.RedisError as exc:
        raise StoreUnavailable(f"broker {shown} does not answer: {exc}") from exc
    return f"{shown} answers PING"


def redact_url(url: str) -> str:
    """Hide passwords in URLs before printing them."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: show it as given
        return url
