"""Where media comes from: an ``IngestRequest`` becomes sources, and each source yields items.

Each source kind lives in its own module (``folder``, ``crawl``, ``manifest``); this module only
maps the request onto them and turns what they find into ``MediaItem``s with canonical URIs.
Nothing here touches the catalog or the store: admission (skip unchanged, count, record
failures) is ``ingest.discovery``'s job.

The paths a request names were checked where the request came in (the API keeps them inside
its allowed roots; the CLI's user names what they may read). What a file names in turn is
checked here: a manifest's photos must lie in the manifest's folder or an allowed root, and a
manifest on the web may name only web images.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ingest.items import MediaItem, Problem, file_uri, path_of_file_uri
from ingest.sources.crawl import Crawler, CrawlLimits, FoundMedia
from ingest.sources.folder import FileFilter, FolderEntry, kind_for_extension, walk_folder
from ingest.sources.manifest import ProductPhoto, read_manifest, read_url_list
from search.errors import ConfigError, FetchError, MediaError
from search.fetch import Fetcher
from search.roots import inside
from search.services import IngestRequest
from search.settings import IngestSettings

# Per-job options a request may carry (``IngestRequest.options``), with their types.
OPTION_TYPES: Mapping[str, type] = {
    "crawl_max_depth": int,
    "crawl_max_pages": int,
    "crawl_delay": float,
    "crawl_same_host": bool,
    "include_hidden": bool,
}

# Sources whose scan lists everything they hold: what a rescan no longer sees was removed.
COMPLETE_LISTINGS = frozenset({"folder", "manifest"})
_LIST_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class SourceSpec:
    """One source of a request: ``kind`` as the catalog names it and its canonical ``uri``."""

    kind: str  # folder | url | urls | crawl | manifest
    uri: str  # folder: absolute path; others: a path or an http(s) URL
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def complete_listing(self) -> bool:
        return self.kind in COMPLETE_LISTINGS


@dataclass(frozen=True)
class SourceContext:
    """What a source needs to list its items."""

    settings: IngestSettings
    fetcher: Fetcher
    source_id: str
    options: Mapping[str, Any]


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a request's per-job options; raise ConfigError naming the bad key."""
    checked: dict[str, Any] = {}
    for key, value in options.items():
        expected = OPTION_TYPES.get(key)
        if expected is None:
            raise ConfigError(f"unknown ingest option {key!r}; known options: {', '.join(OPTION_TYPES)}")
        try:
            checked[key] = _coerce(value, expected)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"ingest option {key!r} must be {expected.__name__}, got {value!r}") from exc
    return checked


def sources_of(request: IngestRequest) -> list[SourceSpec | Problem]:
    """The request's sources in the order given; a path that does not exist is a Problem."""
    options = check_options(request.options)
    found: list[SourceSpec | Problem] = []
    for entry in request.paths:
        found.append(_path_source(entry, request, options))
    found += [SourceSpec("urls", _location(u), options) for u in request.url_lists]
    found += [SourceSpec("crawl", u, options) for u in request.crawl]
    found += [SourceSpec("manifest", _location(m), options) for m in request.manifests]
    return found


def discover(spec: SourceSpec, ctx: SourceContext) -> Iterator[MediaItem | Problem]:
    """Every item ``spec`` holds, in a stable order, and the problems met listing it."""
    if spec.kind == "folder":
        yield from _folder_items(spec, ctx)
    elif spec.kind == "url":
        yield _single_item(spec, ctx)
    elif spec.kind == "urls":
        yield from _url_list_items(spec, ctx)
    elif spec.kind == "crawl":
        yield from _crawl_items(spec, ctx)
    elif spec.kind == "manifest":
        yield from _manifest_items(spec, ctx)
    else:
        raise ConfigError(f"unknown source kind {spec.kind!r}")


# -- per kind ---------------------------------------------------------------------------------


def _path_source(entry: str, request: IngestRequest, options: dict[str, Any]) -> SourceSpec | Problem:
    if _is_url(entry):
        return SourceSpec("url", entry, options)
    path = Path(entry).expanduser().absolute()
    if path.is_dir():
        folder_options = {**options, "include": list(request.include), "exclude": list(request.exclude)}
        return SourceSpec("folder", str(path), folder_options)
    if path.is_file():
        return SourceSpec("url", file_uri(path), options)
    return Problem(file_uri(path), f"no such file or folder: {entry}")


def _folder_items(spec: SourceSpec, ctx: SourceContext) -> Iterator[MediaItem | Problem]:
    hidden = bool(ctx.options.get("include_hidden", ctx.settings.include_hidden))
    include = [*ctx.settings.include, *spec.options.get("include", ())]  # settings, then the request's own
    exclude = [*ctx.settings.exclude, *spec.options.get("exclude", ())]
    file_filter = FileFilter(include, exclude, hidden)
    for found in walk_folder(Path(spec.uri), file_filter, follow_symlinks=ctx.settings.follow_symlinks):
        if isinstance(found, FolderEntry):
            yield MediaItem(file_uri(found.path), ctx.source_id, found.kind, str(found.path), found.size, found.mtime)  # type: ignore[arg-type]
        else:
            yield found


def _single_item(spec: SourceSpec, ctx: SourceContext) -> MediaItem | Problem:
    if _is_url(spec.uri):
        return MediaItem(spec.uri, ctx.source_id, "auto")
    return _local_item(path_of_file_uri(spec.uri), ctx.source_id, kind=None)


def _url_list_items(spec: SourceSpec, ctx: SourceContext) -> Iterator[MediaItem | Problem]:
    text = _read_text(spec.uri, ctx.fetcher)
    if isinstance(text, Problem):
        yield text
        return
    base = spec.uri if _is_url(spec.uri) else None
    for found in read_url_list(text, base, name=spec.uri):
        yield found if isinstance(found, Problem) else MediaItem(found, ctx.source_id, "auto")


def _crawl_items(spec: SourceSpec, ctx: SourceContext) -> Iterator[MediaItem | Problem]:
    settings, options = ctx.settings, ctx.options
    limits = CrawlLimits(
        max_depth=int(options.get("crawl_max_depth", settings.crawl_max_depth)),
        max_pages=int(options.get("crawl_max_pages", settings.crawl_max_pages)),
        delay=float(options.get("crawl_delay", settings.crawl_delay)),
        same_host=bool(options.get("crawl_same_host", True)),
    )
    crawler = Crawler(ctx.fetcher, limits, settings.user_agent)
    for found in crawler.crawl([spec.uri]):
        if isinstance(found, FoundMedia):
            yield MediaItem(found.url, ctx.source_id, "auto")
        else:
            yield found


def _manifest_items(spec: SourceSpec, ctx: SourceContext) -> Iterator[MediaItem | Problem]:
    text = _read_text(spec.uri, ctx.fetcher)
    if isinstance(text, Problem):
        yield text
        return
    remote = _is_url(spec.uri)
    base = spec.uri if remote else str(Path(spec.uri).parent)
    name = spec.uri if remote else Path(spec.uri).name
    # a local manifest may name photos beside it or in an allowed root; a remote one, none on this disk
    roots = () if remote else (Path(base).resolve(), *(Path(r).expanduser().resolve() for r in ctx.settings.allowed_roots))
    for found in read_manifest(text, name, base):
        if isinstance(found, ProductPhoto):
            yield _product_item(found, ctx.source_id, spec.uri, name, roots)
        else:
            yield found


def _product_item(photo: ProductPhoto, source_id: str, manifest: str, name: str, roots: tuple[Path, ...]) -> MediaItem | Problem:
    """The photo as an item; a Problem naming the line (never the cell) when it may not be read."""
    if _is_url(photo.location):
        return MediaItem(photo.location, source_id, "product", product=photo.product, fingerprint=photo.fingerprint)
    where = f"{manifest}#L{photo.line}"
    if not roots:
        return Problem(where, f"{name} line {photo.line}: a manifest on the web may name only http(s) images")
    path = path_of_file_uri(photo.location)
    if not inside(path, roots):
        return Problem(where, f"{name} line {photo.line}: the image lies outside the folders this server may read")
    item = _local_item(path, source_id, kind="product")
    if isinstance(item, Problem):
        return Problem(item.uri, f"{name} line {photo.line}: {item.reason}")
    return MediaItem(item.uri, source_id, "product", item.path, item.size, item.mtime, photo.product, photo.fingerprint)


def _local_item(path: Path, source_id: str, kind: str | None) -> MediaItem | Problem:
    try:
        stat = path.stat()
    except OSError as exc:
        return Problem(file_uri(path), f"cannot read file: {exc.strerror or exc}")
    hint = kind or kind_for_extension(path) or "auto"
    return MediaItem(file_uri(path), source_id, hint, str(path.absolute()), stat.st_size, stat.st_mtime)  # type: ignore[arg-type]


def _read_text(location: str, fetcher: Fetcher) -> str | Problem:
    """A URL list's or manifest's text, local or remote; a Problem when it cannot be read."""
    try:
        if _is_url(location):
            return fetcher.fetch(location, max_bytes=_LIST_MAX_BYTES).text()
        return _read_local_text(Path(location))
    except (FetchError, MediaError) as exc:
        return Problem(location, f"cannot read {location}: {exc}")
    except OSError as exc:
        return Problem(_as_uri(location), f"cannot read {location}: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        return Problem(_as_uri(location), f"cannot read {location}: not UTF-8 text ({exc.reason})")


def _read_local_text(path: Path) -> str:
    """A local list's text: a regular file (never a FIFO or a device, which would block or never
    end), opened without blocking and read up to the same size limit as a download."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise MediaError("not a regular file")
        data = file.read(_LIST_MAX_BYTES + 1)
    if len(data) > _LIST_MAX_BYTES:
        raise MediaError(f"larger than {_LIST_MAX_BYTES // (1024 * 1024)} MiB")
    return data.decode("utf-8-sig")


def _location(entry: str) -> str:
    return entry if _is_url(entry) else str(Path(entry).expanduser().absolute())


def _as_uri(location: str) -> str:
    return location if _is_url(location) else file_uri(Path(location))


def _is_url(text: str) -> bool:
    return urlparse(text).scheme in ("http", "https")


def _coerce(value: Any, expected: type) -> Any:
    if expected is bool:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return lowered in ("true", "1", "yes")
        return bool(value)
    if isinstance(value, bool):
        raise TypeError(value)
    return expected(value)
