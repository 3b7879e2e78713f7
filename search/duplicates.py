"""The duplicate finder: groups of identical files and of near-identical pictures, across the archive.

Exact duplicates share their bytes. Images are hashed (sha256) when ingest reads them, and the
catalog keeps the hash; other files (videos, which ingest streams rather than reads whole) are
hashed here, but only when another file has exactly the same size, so a large archive is not
re-read to find the few that collide.

Near duplicates are pictures whose embeddings are closer than ``threshold`` (cosine): a resized
copy, a re-encoded JPEG, a burst of nearly the same shot. They are found with the engine's own
nearest-neighbour search, one batched query per page of points (``VectorStore.query_batch``),
never by comparing all pairs: each point asks for its ``neighbours`` nearest above the
threshold, and pairs are joined into groups (single linkage, so A~B and B~C make one group).
A near group whose members all share one hash is left out: it is already an exact group.

Groups come sorted by the bytes a user would free by keeping one member (the largest), so
what is worth deciding about comes first. Nothing is deleted here.
"""

from __future__ import annotations

import csv
import hashlib
import io
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse
from urllib.request import url2pathname

from search.catalog import Catalog
from search.catalog.types import MediaRecord
from search.errors import BadQuery
from search.payload import KIND, read_payload
from search.store import Filter, Match, VectorStore

GroupKind = Literal["exact", "near"]
NEAR_KINDS = ("image", "product")  # one vector per picture: what "looks the same" is asked of
HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class DuplicateItem:
    """One member of a group: enough to decide which copy to keep."""

    media_id: str
    uri: str
    kind: str
    size_bytes: int | None
    taken_at: float | None  # unix seconds: EXIF date taken, else the file's mtime
    width: int | None = None
    height: int | None = None
    similarity: float = 1.0  # to the group's first member; 1.0 for exact copies
    point_id: str | None = None


@dataclass(frozen=True)
class DuplicateGroup:
    kind: GroupKind
    key: str  # the shared sha256 (exact) or the first member's point id (near)
    items: tuple[DuplicateItem, ...]

    @property
    def reclaimable_bytes(self) -> int:
        """What keeping only the largest member would free."""
        sizes = [i.size_bytes or 0 for i in self.items]
        return sum(sizes) - max(sizes, default=0)


@dataclass(frozen=True)
class DuplicateReport:
    groups: tuple[DuplicateGroup, ...]
    media_checked: int
    points_checked: int
    threshold: float
    seconds: float
    hashed_files: int = 0  # files read here because another had the same size
    problems: tuple[str, ...] = field(default=())  # files that could not be read for hashing

    @property
    def exact(self) -> list[DuplicateGroup]:
        return [g for g in self.groups if g.kind == "exact"]

    @property
    def near(self) -> list[DuplicateGroup]:
        return [g for g in self.groups if g.kind == "near"]


def find_duplicates(
    store: VectorStore,
    catalog: Catalog,
    *,
    threshold: float = 0.95,
    neighbours: int = 8,
    batch: int = 256,
    exact: bool = True,
    near: bool = True,
) -> DuplicateReport:
    """Every exact and near duplicate group of the archive (see the module docstring)."""
    if not 0.0 < threshold <= 1.0:
        raise BadQuery(f"threshold must lie in (0, 1], got {threshold}")
    if not 1 <= neighbours <= 100:
        raise BadQuery(f"neighbours must lie between 1 and 100, got {neighbours}")
    started = time.perf_counter()
    records = [r for source in catalog.list_sources() for r in catalog.media_for_source(source.id) if r.status != "deleted"]
    hashes, hashed, problems = file_hashes(records)
    groups: list[DuplicateGroup] = exact_groups(records, hashes) if exact else []
    points = 0
    if near:
        near_found, points = near_groups(store, threshold, neighbours, batch)
        groups += [g for g in near_found if len({hashes.get(i.media_id) or i.media_id for i in g.items}) > 1]
    groups.sort(key=lambda g: (-g.reclaimable_bytes, g.kind, g.key))
    return DuplicateReport(tuple(groups), len(records), points, threshold, time.perf_counter() - started, hashed, tuple(problems))


# -- exact -----------------------------------------------------------------------------------------


def file_hashes(records: Sequence[MediaRecord]) -> tuple[dict[str, str], int, list[str]]:
    """media id → sha256: the hash ingest stored, else one computed here when the size collides."""
    hashes = {r.id: h for r in records if (h := stored_sha256(r))}
    by_size: dict[int, list[MediaRecord]] = defaultdict(list)
    for record in records:
        if record.size_bytes:
            by_size[record.size_bytes].append(record)
    hashed, problems = 0, []
    for same_size in by_size.values():
        if len(same_size) < 2:
            continue
        for record in same_size:
            if record.id in hashes:
                continue
            path = local_path(record.uri)
            if path is None:
                continue
            try:
                hashes[record.id] = sha256_of(path)
                hashed += 1
            except OSError as exc:
                problems.append(f"{record.uri}: cannot read to compare: {exc.strerror or exc}")
    return hashes, hashed, problems


def stored_sha256(record: MediaRecord) -> str | None:
    """The sha256 of the file's bytes as ingest recorded it, if it did."""
    value = record.metadata.get("sha256") if record.metadata else None
    if isinstance(value, str) and len(value) == 64:
        return value
    if record.kind == "image" and record.content_hash and len(record.content_hash) == 64 and record.uri.startswith("file:"):
        return record.content_hash  # local images: the content hash is the bytes' sha256
    return None


def exact_groups(records: Iterable[MediaRecord], hashes: dict[str, str]) -> list[DuplicateGroup]:
    by_hash: dict[str, list[MediaRecord]] = defaultdict(list)
    for record in records:
        digest = hashes.get(record.id)
        if digest is not None:
            by_hash[digest].append(record)
    return [
        DuplicateGroup("exact", digest, tuple(_record_item(r) for r in sorted(members, key=lambda r: r.uri)))
        for digest, members in by_hash.items()
        if len(members) > 1
    ]


def _record_item(record: MediaRecord) -> DuplicateItem:
    taken = record.metadata.get("taken_at") if record.metadata else None
    return DuplicateItem(
        media_id=record.id,
        uri=record.uri,
        kind=record.kind,
        size_bytes=record.size_bytes,
        taken_at=float(taken) if isinstance(taken, (int, float)) else record.mtime,
        width=record.width,
        height=record.height,
    )


def local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    return Path(url2pathname(parsed.path)) if parsed.scheme == "file" else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# -- near ------------------------------------------------------------------------------------------


def near_groups(store: VectorStore, threshold: float, neighbours: int, batch: int) -> tuple[list[DuplicateGroup], int]:
    """Groups of pictures within ``threshold`` of each other, and how many points were asked."""
    pictures = Filter(must=(Match(KIND, NEAR_KINDS),))
    parent: dict[str, str] = {}
    best: dict[tuple[str, str], float] = {}
    items: dict[str, DuplicateItem] = {}
    points = 0
    for page in _pages(store, pictures, batch):
        points += len(page)
        for hit in page:
            items[hit.id] = _payload_item(hit.id, hit.payload)
        results = store.query_batch([h.vector for h in page], pictures, limit=neighbours + 1, score_threshold=threshold)
        for hit, found in zip(page, results):
            for other in found:
                if other.id == hit.id:
                    continue
                pair = (hit.id, other.id) if hit.id < other.id else (other.id, hit.id)
                best[pair] = max(best.get(pair, 0.0), other.score)
                _union(parent, hit.id, other.id)
                items.setdefault(other.id, _payload_item(other.id, other.payload))
    members: dict[str, list[str]] = defaultdict(list)
    for point in parent:
        members[_find(parent, point)].append(point)
    groups = []
    for ids in members.values():
        if len(ids) < 2:
            continue
        ids.sort()
        first = ids[0]
        rows = [items[first]] + [_with_similarity(items[i], _similarity(best, first, i, ids)) for i in ids[1:]]
        groups.append(DuplicateGroup("near", first, tuple(rows)))
    return groups, points


def _pages(store: VectorStore, flt: Filter, batch: int) -> Iterator[list[Any]]:
    offset = None
    while True:
        page = store.scroll(flt, limit=batch, offset=offset, with_vectors=True)
        hits = [h for h in page.hits if h.vector is not None]
        if hits:
            yield hits
        if page.next_offset is None:
            return
        offset = page.next_offset


def _payload_item(point_id: str, payload: dict[str, Any]) -> DuplicateItem:
    """The item a point stands for, read through the payload contract (not ours: blank)."""
    typed = read_payload(payload)
    if typed is None:
        return DuplicateItem(
            media_id="", uri="", kind="", size_bytes=None, taken_at=None, width=None, height=None, point_id=point_id
        )
    return DuplicateItem(
        media_id=typed.media_id,
        uri=typed.uri,
        kind=typed.kind,
        size_bytes=typed.size_bytes,
        taken_at=typed.taken_at,
        width=typed.width,
        height=typed.height,
        point_id=point_id,
    )


def _similarity(best: dict[tuple[str, str], float], first: str, other: str, ids: Sequence[str]) -> float:
    """To the first member when they were compared, else the best link ``other`` has in the group."""
    direct = best.get((first, other))
    if direct is not None:
        return round(direct, 6)
    links = [best.get((a, b), 0.0) for a, b in ((min(other, i), max(other, i)) for i in ids if i != other)]
    return round(max(links, default=0.0), 6)


def _with_similarity(item: DuplicateItem, similarity: float) -> DuplicateItem:
    return DuplicateItem(**{**asdict(item), "similarity": similarity})


def _find(parent: dict[str, str], point: str) -> str:
    parent.setdefault(point, point)
    root = point
    while parent[root] != root:
        root = parent[root]
    while parent[point] != root:  # path compression
        parent[point], point = root, parent[point]
    return root


def _union(parent: dict[str, str], a: str, b: str) -> None:
    ra, rb = _find(parent, a), _find(parent, b)
    if ra != rb:
        parent[max(ra, rb)] = min(ra, rb)


# -- export ----------------------------------------------------------------------------------------

CSV_COLUMNS = ("group", "kind", "key", "media_id", "uri", "size_bytes", "taken_at", "width", "height", "similarity")


def to_document(report: DuplicateReport) -> dict[str, Any]:
    """The report as plain JSON (``--format json`` and the API)."""
    return {
        "threshold": report.threshold,
        "media_checked": report.media_checked,
        "points_checked": report.points_checked,
        "hashed_files": report.hashed_files,
        "seconds": round(report.seconds, 3),
        "exact_groups": len(report.exact),
        "near_groups": len(report.near),
        "reclaimable_bytes": sum(g.reclaimable_bytes for g in report.groups),
        "problems": list(report.problems),
        "groups": [
            {
                "kind": g.kind,
                "key": g.key,
                "reclaimable_bytes": g.reclaimable_bytes,
                "items": [{k: v for k, v in asdict(i).items() if k != "point_id"} for i in g.items],
            }
            for g in report.groups
        ],
    }


def to_csv(report: DuplicateReport) -> str:
    """One row per member, numbered by group (``--format csv``)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for number, group in enumerate(report.groups, start=1):
        for item in group.items:
            writer.writerow(
                [number, group.kind, group.key, item.media_id, item.uri, item.size_bytes, item.taken_at, item.width, item.height]
                + [item.similarity]
            )
    return out.getvalue()
