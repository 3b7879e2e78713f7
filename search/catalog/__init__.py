"""The catalog: the relational record of sources, media items, ingest jobs and their failures.

Open one with ``Catalog.open(settings.resolved_catalog_url)`` and pass it down; it returns
frozen records (``types.py``) and raises ``search.errors`` types.
"""

from .catalog import Catalog, CatalogClosed, CatalogUnavailable, MediaWrite, clean_json, record_is_unchanged, source_id
from .migrations import SCHEMA_VERSION, ensure_schema
from .types import (
    JOB_STATUSES,
    MEDIA_KINDS,
    MEDIA_STATUSES,
    SOURCE_KINDS,
    FailureRecord,
    JobRecord,
    JobStatus,
    MediaKind,
    MediaRecord,
    MediaStatus,
    SourceKind,
    SourceRecord,
)

__all__ = [
    "JOB_STATUSES",
    "MEDIA_KINDS",
    "MEDIA_STATUSES",
    "SCHEMA_VERSION",
    "SOURCE_KINDS",
    "Catalog",
    "CatalogClosed",
    "CatalogUnavailable",
    "FailureRecord",
    "JobRecord",
    "JobStatus",
    "MediaKind",
    "MediaRecord",
    "MediaStatus",
    "MediaWrite",
    "SourceKind",
    "SourceRecord",
    "clean_json",
    "ensure_schema",
    "record_is_unchanged",
    "source_id",
]
