"""Each collection's payload schema version: recorded in the collection, checked on every open.

The version is stored *in the store*, as a reserved point (``conversions.RECORD_ID``) that no
read, count or delete ever sees. Not in the catalog: the catalog is another database, which
can be reset, replaced or shared by several stores, while the version describes the points
themselves and must travel with them (a copied Edge folder, a restored Qdrant snapshot). And
a point, not collection metadata: Qdrant Edge has none, and the server only since 1.16, so a
point is the one mechanism that works the same on both backends.

Opening a collection (``ensure_schema``, called by ``open_store``):

- new and empty: its indexes are created and the current version recorded;
- older (no record means version 1, the layout before versioning): missing payload indexes are
  created, every point is brought to the current layout by scrolling and setting what
  ``normalise_payload`` changes (derived fields back-filled, mistyped values corrected), then
  the new version is recorded. Nothing is re-embedded and no key outside the contract is
  touched; a migration stopped half-way is redone on the next open;
- newer than this code knows: refused with a ConfigError saying what to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from search.errors import ConfigError
from search.payload import (
    FIELD_NAMES,
    INDEXED_FIELDS,
    SCHEMA_HISTORY,
    SCHEMA_VERSION,
    CollectionRecord,
    PayloadError,
    normalise_payload,
)
from search.store.base import VectorStore

log = logging.getLogger(__name__)

UNVERSIONED = 1  # a collection with points but no record was written before versioning
_PAGE = 512


@dataclass(frozen=True)
class SchemaCheck:
    """What opening a collection found and did."""

    found: int  # the version the collection had (the current one for a new collection)
    version: int  # the version it has now
    indexed: tuple[str, ...]  # payload indexes created
    backfilled: int  # points rewritten to the current layout


def ensure_schema(store: VectorStore) -> SchemaCheck:
    """Bring ``store``'s collection to ``SCHEMA_VERSION``, or refuse one from a newer mmsearch."""
    found, recorded = _found_version(store)
    if found > SCHEMA_VERSION:
        raise ConfigError(
            f"The collection {store.collection!r} ({store.backend} store) has payload schema version {found}, "
            f"but this mmsearch knows versions up to {SCHEMA_VERSION}: a newer mmsearch wrote it. Upgrade mmsearch "
            "(pip install -U mmsearch) before opening it, or point MMSEARCH_STORE_URL (or MMSEARCH_DATA_DIR) at "
            "another store."
        )
    indexed = tuple(store.ensure_indexes(INDEXED_FIELDS))
    backfilled = 0
    if found < SCHEMA_VERSION:
        log.warning(
            "Migrating collection %s from payload schema version %d to %d (%s); nothing is re-embedded.",
            store.collection,
            found,
            SCHEMA_VERSION,
            "; ".join(SCHEMA_HISTORY[v] for v in range(found + 1, SCHEMA_VERSION + 1)),
        )
        backfilled = normalise_points(store)
    if found < SCHEMA_VERSION or not recorded:
        store.write_record(CollectionRecord(SCHEMA_VERSION).to_payload())
    return SchemaCheck(found, SCHEMA_VERSION, indexed, backfilled)


def schema_version(store: VectorStore) -> int | None:
    """The version recorded in the collection; None when it has no record (yet)."""
    found, recorded = _found_version(store)
    return found if recorded else None


def normalise_points(store: VectorStore) -> int:
    """Scroll every point of a known kind and set the contract fields whose current form
    differs from what is stored (a field whose value cannot be read is set to null)."""
    updated = 0
    cursor: str | None = None
    while True:
        page = store.scroll(limit=_PAGE, offset=cursor)
        updates = {}
        for hit in page.hits:
            fresh = normalise_payload(hit.payload)
            if fresh is None:
                continue  # not one of ours: left as it is
            stored = hit.payload
            changed = {name: value for name, value in fresh.items() if name in FIELD_NAMES and stored.get(name) != value}
            changed |= {name: None for name in FIELD_NAMES & stored.keys() - fresh.keys() if stored[name] not in (None, [])}
            if changed:
                updates[hit.id] = changed
        if updates:
            updated += store.set_payload(updates)
        if page.next_offset is None:
            return updated
        cursor = page.next_offset


def _found_version(store: VectorStore) -> tuple[int, bool]:
    """(version, whether a record says so): no record means a new collection if it is empty,
    else one written before versioning."""
    record = store.read_record()
    if record is None:
        return (SCHEMA_VERSION if store.count() == 0 else UNVERSIONED), False
    try:
        return CollectionRecord.from_payload(record).schema_version, True
    except PayloadError as exc:
        raise ConfigError(
            f"The collection {store.collection!r} ({store.backend} store) has a damaged schema record: {exc} "
            "Re-index into a new data directory or collection."
        ) from exc
