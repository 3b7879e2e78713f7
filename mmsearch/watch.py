"""``mmsearch watch PATH…``: keep folders indexed in the foreground until Ctrl-C.

The process that owns the store runs the watcher: this command in embedded mode (a running
``mmsearch serve`` owns the store instead, so watched folders are then added through its API
or the Ingest page). Without PATHs, the folders registered through the API are watched.
Each rescan is an ordinary ingest job (``mmsearch jobs`` lists them) and prints one line.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable

from mmsearch.output import EXIT_OK, say
from search.errors import ConfigError
from search.services import IngestRequest, Services
from search.settings import Settings


def add_arguments(commands: argparse._SubParsersAction, command: Callable[..., argparse.ArgumentParser]) -> None:
    sub = command(commands, "watch", run_watch_command, "keep folders indexed as files are added, changed and deleted")
    sub.add_argument("paths", nargs="*", metavar="PATH", help="folders to watch (default: those registered through the API)")
    sub.add_argument("--include", action="append", default=[], metavar="GLOB", help="only files matching a glob")
    sub.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip files matching a glob")


def run_watch_command(args: argparse.Namespace, settings: Settings) -> int:
    """Watch until interrupted; a missing folder is reported and waited for, never fatal."""
    from ingest.jobs import run_ingest
    from ingest.watch import FolderWatcher, registry_for

    paths = list(getattr(args, "paths", ()) or ())
    services = Services(settings)
    try:

        def rescan(request: IngestRequest) -> str:
            job = run_ingest(services, request)
            say(
                f"{request.paths[0]}: job {job.id[:8]} {job.status}, {job.indexed} indexed, "
                f"{job.skipped} unchanged, {job.failed} failed"
            )
            return job.id

        registry = None if paths else registry_for(settings)
        watcher = FolderWatcher(settings, services.catalog, rescan, registry=registry)
        for path in paths:
            watcher.watch(path, args.include, args.exclude)
        folders = watcher.watched()
        if not folders:
            raise ConfigError("nothing to watch: give a PATH, or register folders through the API (POST /sources/watch)")
        for folder in folders:
            say(f"watching {folder.path}")
        say("Press Ctrl-C to stop.")
        stop = threading.Event()
        try:
            watcher.run(stop)
        except KeyboardInterrupt:
            stop.set()
    finally:
        services.close()
    return EXIT_OK
