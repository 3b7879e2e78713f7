"""``GET /duplicates``: groups of identical and near-identical media, as JSON or CSV.

The whole archive is compared on each call (a batched nearest-neighbour pass; see
``search.duplicates`` and ``bench/duplicates.py`` for its run time), so a client should cache
the answer rather than poll it. Nothing is deleted here: ``DELETE /media/{id}`` does that.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from search.api.deps import State
from search.duplicates import find_duplicates, to_csv, to_document

router = APIRouter(tags=["duplicates"])


@router.get(
    "/duplicates",
    summary="Exact (same bytes) and near (similar embedding) duplicate groups, largest savings first",
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
async def list_duplicates(
    state: State,
    threshold: Annotated[float, Query(gt=0, le=1, description="cosine similarity of near duplicates")] = 0.95,
    neighbours: Annotated[int, Query(ge=1, le=100, description="nearest neighbours asked per picture")] = 8,
    kind: Annotated[Literal["all", "exact", "near"], Query(description="which groups to look for")] = "all",
    format: Annotated[Literal["json", "csv"], Query(description="json document, or csv with one row per file")] = "json",
) -> Any:
    services = state.services
    report = await run_in_threadpool(
        lambda: find_duplicates(
            services.store,
            services.catalog,
            threshold=threshold,
            neighbours=neighbours,
            exact=kind != "near",
            near=kind != "exact",
        )
    )
    if format == "csv":
        headers = {"Content-Disposition": 'attachment; filename="duplicates.csv"'}
        return Response(to_csv(report), media_type="text/csv", headers=headers)
    return to_document(report)
