"""How the CLI speaks: human text on a terminal, or one JSON document with ``--json``.

The exit codes of every command are defined here, once:
0 success, 1 partial failure (some items failed, or the job did not finish), 2 usage or
configuration error, 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import json
import sys
from typing import Any

EXIT_OK = 0
EXIT_PARTIAL = 1  # the command ran, some items failed
EXIT_USAGE = 2  # bad arguments or configuration
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


def emit_json(document: Any) -> None:
    """One JSON document on stdout (progress and messages go to stderr, so it stays parseable)."""
    json.dump(document, sys.stdout, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


def say(line: str = "") -> None:
    print(line, flush=True)


def fail(message: str) -> int:
    print(f"mmsearch: error: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE
