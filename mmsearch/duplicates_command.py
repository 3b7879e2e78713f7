"""``mmsearch duplicates``: list groups of identical and near-identical media, or export them.

Reads the store and the catalog, deletes nothing: the groups are for a user to decide on.
``--format csv|json`` prints a document for a spreadsheet or a script (to stdout, or ``--output``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from mmsearch.output import EXIT_OK, say
from search.services import Services
from search.settings import Settings

if TYPE_CHECKING:
    from search.duplicates import DuplicateReport

TEXT_GROUPS = 100  # groups the text listing prints; csv/json hold them all


def add_arguments(commands: argparse._SubParsersAction, command: Callable[..., argparse.ArgumentParser]) -> None:
    sub = command(commands, "duplicates", run_duplicates_command, "list groups of exact and near-duplicate media")
    sub.add_argument("--threshold", type=float, default=0.95, help="cosine similarity above which pictures are near duplicates")
    sub.add_argument("--neighbours", type=int, default=8, help="nearest neighbours asked per picture")
    sub.add_argument("--exact-only", action="store_true", help="only identical files (content hash)")
    sub.add_argument("--near-only", action="store_true", help="only near duplicates (embedding similarity)")
    sub.add_argument("--format", choices=("text", "csv", "json"), default="text")
    sub.add_argument("--output", metavar="FILE", help="write the csv/json document here instead of stdout")


def run_duplicates_command(args: argparse.Namespace, settings: Settings) -> int:
    from search.duplicates import find_duplicates, to_csv, to_document  # the store and catalog load only when run

    services = Services(settings)
    try:
        report = find_duplicates(
            services.store,
            services.catalog,
            threshold=args.threshold,
            neighbours=args.neighbours,
            exact=not args.near_only,
            near=not args.exact_only,
        )
    finally:
        services.close()
    if args.format == "text":
        print_report(report)
        return EXIT_OK
    text = to_csv(report) if args.format == "csv" else json.dumps(to_document(report), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        say(f"wrote {len(report.groups)} groups to {args.output}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def print_report(report: DuplicateReport, limit: int = TEXT_GROUPS) -> None:
    freed = sum(g.reclaimable_bytes for g in report.groups)
    say(
        f"{len(report.exact)} exact and {len(report.near)} near-duplicate groups among {report.media_checked} media "
        f"({report.points_checked} pictures compared, {report.seconds:.1f} s); keeping one of each frees {_size(freed)}"
    )
    for problem in report.problems:
        say(f"  could not compare: {problem}")
    for number, group in enumerate(report.groups[:limit], start=1):
        say(f"\n#{number} {group.kind}  {len(group.items)} files, {_size(group.reclaimable_bytes)} reclaimable")
        for item in group.items:
            similarity = "" if group.kind == "exact" else f"  sim {item.similarity:.3f}"
            say(f"  {_size(item.size_bytes or 0):>9}  {_date(item.taken_at)}  {item.uri}{similarity}")
    if len(report.groups) > limit:
        say(f"\n… and {len(report.groups) - limit} more groups (--format csv or json lists them all)")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _date(at: float | None) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M") if at is not None else "(no date)".ljust(16)
