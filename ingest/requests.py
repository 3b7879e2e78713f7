"""An ``IngestRequest`` stored in the job row, so any worker can redo the job from its id alone.

Local paths are made absolute here, at the moment the user's working directory still means
something; a worker started elsewhere reads the same paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ingest.sources import check_options
from search.errors import ConfigError
from search.services import IngestRequest

JOB_KIND = "ingest"


def validate_request(request: IngestRequest) -> IngestRequest:
    """The request with absolute paths and checked options; ConfigError when there is nothing to do."""
    if request.is_empty():
        raise ConfigError("nothing to ingest: give at least one path, URL, URL list, crawl start page or manifest")
    return IngestRequest(
        paths=tuple(_absolute(p) for p in request.paths),
        url_lists=tuple(_absolute(p) for p in request.url_lists),
        crawl=tuple(_checked_url(u) for u in request.crawl),
        manifests=tuple(_absolute(p) for p in request.manifests),
        include=tuple(request.include),
        exclude=tuple(request.exclude),
        options=check_options(request.options),
    )


def request_to_params(request: IngestRequest) -> dict[str, Any]:
    return {
        "paths": list(request.paths),
        "url_lists": list(request.url_lists),
        "crawl": list(request.crawl),
        "manifests": list(request.manifests),
        "include": list(request.include),
        "exclude": list(request.exclude),
        "options": dict(request.options),
    }


def request_from_params(params: dict[str, Any]) -> IngestRequest:
    return IngestRequest(
        paths=tuple(params.get("paths", ())),
        url_lists=tuple(params.get("url_lists", ())),
        crawl=tuple(params.get("crawl", ())),
        manifests=tuple(params.get("manifests", ())),
        include=tuple(params.get("include", ())),
        exclude=tuple(params.get("exclude", ())),
        options=dict(params.get("options", {})),
    )


def _absolute(entry: str) -> str:
    if urlparse(entry).scheme in ("http", "https"):
        return entry
    return str(Path(entry).expanduser().absolute())


def _checked_url(url: str) -> str:
    if urlparse(url).scheme not in ("http", "https") or not urlparse(url).netloc:
        raise ConfigError(f"a crawl starts from an http(s) URL, not {url!r}")
    return url
