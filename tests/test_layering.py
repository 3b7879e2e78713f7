"""The rooms of the code base and who may import whom, checked on the source text.

- ``ui`` talks to the API over HTTP only: it imports nothing of ``search``, ``ingest`` or ``mmsearch``.
- ``search`` is the core: it imports neither ``ingest`` nor the CLI.
- the procedural world (``synthetic``) trains the bundled model and builds demo and benchmark
  corpora; nothing in ``search`` or ``ingest`` imports it, so the product never depends on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _top_level_imports(package: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for source in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            found += [(str(source.relative_to(ROOT)), name.split(".")[0]) for name in names]
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("ui", {"search", "ingest", "mmsearch", "synthetic"}),
        ("search", {"ingest", "mmsearch", "synthetic", "ui"}),
        ("ingest", {"mmsearch", "synthetic", "ui"}),
    ],
)
def test_each_room_imports_only_what_it_may(package: str, forbidden: set[str]) -> None:
    offending = [(where, name) for where, name in _top_level_imports(package) if name in forbidden]
    assert offending == [], f"{package} imports {offending}"
