"""Which server-side paths a request may make the server read: only those inside an allowed root.

An API client names folders, URL lists and manifests by their path on the server. Without a
fence, ``/etc/passwd`` as a URL list is read line by line; so every such path must resolve
(symlinks followed, ``..`` removed) to a place inside one of the allowed roots. Relative paths
are refused outright: on a server they would mean the server's working directory.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

ROOTS_HINT = "its operator adds folders with MMSEARCH_INGEST__ALLOWED_ROOTS or `mmsearch serve --root`"


def inside(path: Path, roots: Iterable[Path]) -> bool:
    """True when ``path``, with its symlinks resolved, is one of ``roots`` (resolved) or lies below one."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return False
    return any(resolved.is_relative_to(root) for root in roots)


def request_path_problem(entry: str, roots: Iterable[Path]) -> str | None:
    """Why a local path sent by a client may not be read, or None when it may.

    The answer is the same whether or not the path exists, so it tells a client nothing about
    what lies outside the roots.
    """
    path = Path(entry)
    if not path.is_absolute():
        return "the path must be absolute (a path on the server) or an http(s) URL"
    if not inside(path, roots):
        return f"the path is not inside the allowed roots, the folders this server may read; {ROOTS_HINT}"
    return None
