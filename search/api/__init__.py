"""The HTTP API: ``create_app(settings, services=None, launcher=None)``."""

from search.api.app import create_app

__all__ = ["create_app"]
