"""Walk a local folder for media files: recursive, filtered, hidden-aware, loop-safe.

Candidates are chosen by extension (cheap, no file is opened while walking); the bytes decide
what a file really is when it is decoded, so a ``.jpg`` holding text becomes a recorded failure,
not a silent skip. Symlinked folders are followed once: each real folder is entered at most
once, by (device, inode), so a link pointing back up the tree cannot loop. A folder that cannot
be listed is reported as a ``Problem`` and the walk goes on.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ingest.items import Problem

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".avif", ".heic", ".heif"}
)
VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".avi",
        ".wmv",
        ".flv",
        ".mpg",
        ".mpeg",
        ".ts",
        ".mts",
        ".m2ts",
        ".3gp",
        ".ogv",
    }
)


@dataclass(frozen=True)
class FolderEntry:
    """A candidate media file and the facts the incremental check needs."""

    path: Path
    size: int
    mtime: float
    kind: str  # "image" or "video", from the extension


@dataclass(frozen=True)
class FileFilter:
    """Include/exclude globs: a pattern without ``/`` matches the file name, one with ``/``
    matches the path relative to the walked folder (``*`` also crosses folders). Matching
    ignores case, so ``*.jpg`` also takes ``IMG_0001.JPG``."""

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    include_hidden: bool = False

    def wants_file(self, relative: PurePosixPath) -> bool:
        if not self.include_hidden and _is_hidden(relative.name):
            return False
        if _matches(relative, self.exclude):
            return False
        return not self.include or _matches(relative, self.include)

    def wants_folder(self, relative: PurePosixPath) -> bool:
        if not self.include_hidden and _is_hidden(relative.name):
            return False
        return not _matches(relative, self.exclude)


def kind_for_extension(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


def walk_folder(root: Path, file_filter: FileFilter = FileFilter()) -> Iterator[FolderEntry | Problem]:
    """Yield media files under ``root`` in a stable (sorted) order, and problems met on the way."""
    root = root.absolute()
    seen: set[tuple[int, int]] = set()
    stack: list[Path] = [root]
    while stack:
        folder = stack.pop()
        try:
            identity = _identity(folder)
            if identity in seen:
                continue  # a symlink back into the tree, or two links to one folder
            seen.add(identity)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            yield Problem(folder.as_uri(), f"cannot list folder: {exc.strerror or exc}")
            continue
        subfolders: list[Path] = []
        for entry in entries:
            found = _visit(entry, root, file_filter, subfolders)
            if found is not None:
                yield found
        stack.extend(reversed(subfolders))  # depth-first, in name order


def _visit(entry: os.DirEntry[str], root: Path, file_filter: FileFilter, subfolders: list[Path]) -> FolderEntry | Problem | None:
    path = Path(entry.path)
    relative = PurePosixPath(path.relative_to(root).as_posix())
    try:
        if entry.is_dir(follow_symlinks=True):
            if file_filter.wants_folder(relative):
                subfolders.append(path)
            return None
        if not entry.is_file(follow_symlinks=True):
            return None  # sockets, fifos, dangling links
        kind = kind_for_extension(path)
        if kind is None or not file_filter.wants_file(relative):
            return None
        stat = entry.stat(follow_symlinks=True)
    except OSError as exc:
        return Problem(path.as_uri(), f"cannot read file: {exc.strerror or exc}")
    return FolderEntry(path, stat.st_size, stat.st_mtime, kind)


def _identity(folder: Path) -> tuple[int, int]:
    stat = folder.stat()
    return stat.st_dev, stat.st_ino


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _matches(relative: PurePosixPath, patterns: Sequence[str]) -> bool:
    text = relative.as_posix()
    for pattern in patterns:
        target = text if "/" in pattern.strip("/") else relative.name
        if fnmatch.fnmatchcase(target.lower(), pattern.strip("/").lower()):
            return True
    return False
