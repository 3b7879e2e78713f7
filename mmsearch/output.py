"""How the CLI speaks: human text on a terminal, or one JSON document with ``--json``."""

from __future__ import annotations

import json
import sys
from typing import Any

EXIT_OK = 0
EXIT_PARTIAL = 1  # the command ran, some items failed
EXIT_USAGE = 2  # bad arguments or configuration


def emit_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write("\n")


def say(line: str = "") -> None:
    print(line, flush=True)


def fail(message: str) -> int:
    print(f"mmsearch: error: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE
