"""The vector store facade: ``open_store`` picks the backend, everything else is shared types.

``open_store`` is the only code that reads ``settings.resolved_store_url``:

- ``edge://PATH``: Qdrant Edge in-process (the default); the collection lives in
  ``PATH/<collection>/``, because an Edge shard is one folder;
- ``http(s)://HOST:PORT``: a Qdrant server or cluster through qdrant-client;
- ``local://PATH`` / ``memory://``: qdrant-client's local mode, the server's test double.

Backends are imported lazily so an embedded install never loads qdrant-client and a
server deployment never loads the Edge engine. Every open checks the collection's payload
schema version and migrates an older collection (``search.store.schema``).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

from search.errors import ConfigError
from search.store.base import (
    Condition,
    FieldType,
    Filter,
    GeoBox,
    GeoRadius,
    HasId,
    Hit,
    IndexRun,
    IndexState,
    Match,
    Page,
    Point,
    Range,
    Vector,
    VectorStore,
)
from search.store.schema import ensure_schema

__all__ = [
    "Condition",
    "FieldType",
    "Filter",
    "GeoBox",
    "GeoRadius",
    "HasId",
    "Hit",
    "IndexRun",
    "IndexState",
    "Match",
    "Page",
    "Point",
    "Range",
    "Vector",
    "VectorStore",
    "collection_name",
    "open_store",
]

_PREFIX = "mmsearch"
_MAX_NAME = 96  # a folder name and a Qdrant collection name, with room to spare
_HASH_CHARS = 10

if TYPE_CHECKING:
    from search.settings import Settings


def collection_name(model: str, dim: int) -> str:
    """A readable, filesystem-safe collection name for one model's vector space.

    ``ViT-B-32:laion2b_s34b_b79k`` at 512 dims gives ``mmsearch__vit_b_32_laion2b_s34b_b79k__512``.
    Specs naming local files keep only the architecture and the file or folder name readable
    and add a hash of the whole spec, so two checkpoints called ``epoch_10.pt`` in different
    folders get different collections; over-long names are shortened the same way.
    """
    spec = model.strip()
    if not spec:
        raise ValueError("collection_name needs a model spec; got an empty string.")
    if dim < 1:
        raise ValueError(f"collection_name needs a positive vector size; got {dim}.")
    suffix = f"__{dim}"
    budget = _MAX_NAME - len(_PREFIX) - 2 - len(suffix)
    readable = _slug(_readable_part(spec))
    if _names_local_path(spec) or len(readable) > budget or not readable:
        tag = hashlib.sha256(spec.encode()).hexdigest()[:_HASH_CHARS]
        readable = f"{readable[: budget - _HASH_CHARS - 1].rstrip('_')}_{tag}".lstrip("_")
    return f"{_PREFIX}__{readable}{suffix}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _names_local_path(spec: str) -> bool:
    """True for specs holding a filesystem path (a checkpoint file or a model folder)."""
    return not spec.startswith("hf-hub:") and any(ch in spec for ch in "/\\~")


def _readable_part(spec: str) -> str:
    """For a path spec, its prefix (architecture or ``local-dir``) and the last path element."""
    if not _names_local_path(spec):
        return spec
    head, sep, tail = spec.partition(":")
    if sep and not re.search(r"[/\\~]", head) and not re.fullmatch(r"[A-Za-z]", head):
        return f"{head}_{Path(tail).name}"  # ARCH:/path/w.pt or local-dir:/path (not C:\...)
    return Path(spec).name


def open_store(settings: Settings, dim: int, model: str) -> VectorStore:
    """Open (creating on first use) the collection for ``model`` in the configured store,
    migrated to the current payload schema.

    Raises StoreUnavailable when the store cannot be reached or its folder is held by another
    process, ConfigError when the URL is unusable, the collection has another vector size, or
    a newer mmsearch wrote it.
    """
    store = _open_backend(settings, dim, model)
    try:
        ensure_schema(store)
    except BaseException:
        store.close()
        raise
    return store


def _open_backend(settings: Settings, dim: int, model: str) -> VectorStore:
    """The collection in the backend the URL names, as it is (no schema check)."""
    url = settings.resolved_store_url
    collection = collection_name(model, dim)
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"MMSEARCH_STORE_URL {url!r} names no scheme; use edge://, http(s)://, local:// or memory://.")
    if scheme == "edge":
        from search.store.edge import EdgeStore

        return EdgeStore(_folder(url, rest) / collection, collection, dim, settings.index)
    if scheme in ("http", "https"):
        from search.store.server import open_remote

        api_key = settings.store_api_key.get_secret_value() if settings.store_api_key else None
        return open_remote(url, api_key, collection, dim, settings.index)
    if scheme == "local":
        from search.store.server import open_local

        return open_local(_folder(url, rest), collection, dim, settings.index)
    if scheme == "memory":
        from search.store.server import open_local

        return open_local(None, collection, dim, settings.index)
    raise ConfigError(
        f"MMSEARCH_STORE_URL {url!r} has an unknown scheme {scheme!r}; use edge://, http(s)://, local:// or memory://."
    )


def _folder(url: str, rest: str) -> Path:
    """The folder of an ``edge://`` or ``local://`` URL, made absolute against the working directory."""
    if not rest:
        raise ConfigError(f"MMSEARCH_STORE_URL {url!r} names no folder, e.g. edge:///var/lib/mmsearch/qdrant-edge.")
    return Path(rest).expanduser().resolve()
