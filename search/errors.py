"""Errors the core raises; outer layers (CLI, API) decide how the user sees them.

Each carries a message written for the user, not for a developer reading a traceback.
"""

from __future__ import annotations


class MMSearchError(Exception):
    """Base of every error mmsearch raises on purpose."""


class ConfigError(MMSearchError):
    """The settings are inconsistent or point at something that does not exist."""


class ModelUnavailable(MMSearchError):
    """The embedding model cannot be loaded (offline, unknown name, bad checkpoint)."""


class StoreUnavailable(MMSearchError):
    """The vector store cannot be reached or opened (server down, folder locked)."""


class NotFound(MMSearchError):
    """An id, job or media item that does not exist."""


class MediaChanged(MMSearchError):
    """A file on disk is no longer what was indexed (edited, replaced, not a regular file)."""


class BadQuery(MMSearchError):
    """A query that cannot be run as given; ``position`` points into query text when known."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class MediaError(MMSearchError):
    """A file or download that is not usable media (corrupt, empty, too large, wrong type).

    Permanent: retrying the same bytes cannot help, so ingestion records it and moves on.
    """


class TooLarge(MediaError):
    """Media over a configured size or pixel limit."""


class FetchError(MMSearchError):
    """A download failed; ``transient`` says whether a retry might succeed."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class BlockedAddress(FetchError):
    """A URL that resolves to a loopback, private or link-local address not allowlisted."""


class FetchTimeout(FetchError):
    """A remote that did not deliver the whole response within its total deadline (slow or dripping).

    Permanent for this request: the same server would most likely be as slow again.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


class Overloaded(MMSearchError):
    """Refused because too much work of this kind is in flight; ``retry_after`` seconds is a fair wait."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
