"""Walk a local folder for media files: recursive, filtered, hidden-aware, loop-safe.

Candidates are chosen by extension (cheap: entries are only stat'ed while walking, never
opened); the bytes decide what a file really is when it is decoded, so a ``.jpg`` holding text
becomes a recorded failure, not a silent skip. Nothing named like media disappears silently:
an entry that is not a regular file (a FIFO, a socket, a device, a folder named ``x.jpg``) is
reported as ``Skipped`` with the reason, a dangling link or an unreadable entry as a
``Problem``. FIFOs and devices are never opened, so nothing here can block.

Symbolic links: a link whose target lies inside the walked folder is followed (each real folder
is entered at most once, by (device, inode), so a link pointing back up the tree cannot loop).
A link that leads outside the folder is not followed unless ``follow_symlinks`` is set
(``MMSEARCH_INGEST__FOLLOW_SYMLINKS``); it is reported as ``Skipped``. Entries that could not be
read are reported as ``Unreadable`` and the walk goes on: whatever was indexed at or below them
is kept, because unreadable is not deleted.

What is left out on purpose: dot-files and dot-folders (unless ``include_hidden``), the folders
that NAS boxes, desktops and Windows keep for themselves (``SYSTEM_FOLDERS``: never anyone's
photos, so skipped even with ``include_hidden``), the ``--include``/``--exclude`` globs, and the
patterns of a ``.mmsearchignore`` file (gitignore syntax, through ``pathspec``) in any folder,
which apply to that folder's subtree; a deeper file has the last word, as in git. A line that
does not parse is reported as a ``Problem`` naming the file and line, and the other lines apply.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pathspec

from ingest.items import Problem

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".avif", ".heic", ".heif", ".hif"}
    | {".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2", ".pef"}  # camera RAW, decoded through rawpy
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


IGNORE_FILE = ".mmsearchignore"
IGNORE_FILE_MAX_BYTES = 1024 * 1024
# Folders that thumbnailers, NAS boxes, desktops and Windows keep for themselves (fnmatch, any case).
SYSTEM_FOLDERS = (".thumbnails", "@eadir", ".@__thumb", ".trash-*", ".trashes", "$recycle.bin", "system volume information")


@dataclass(frozen=True)
class Skipped(Problem):
    """An entry named like media that is deliberately not indexed, and why (not a failure)."""


@dataclass(frozen=True)
class Unreadable(Problem):
    """A file or folder that could not be read: what was indexed at or below it is kept."""


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
        if is_system_folder(relative.name):
            return False
        if not self.include_hidden and _is_hidden(relative.name):
            return False
        return not _matches(relative, self.exclude)


def is_system_folder(name: str) -> bool:
    """True for a folder a system keeps for itself (``@eaDir``, ``$RECYCLE.BIN``, ``.Trash-1000`` ...)."""
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in SYSTEM_FOLDERS)


@dataclass(frozen=True)
class IgnoreLayer:
    """The patterns of one ``.mmsearchignore`` file; they apply below ``base``, the folder holding it."""

    base: Path
    spec: pathspec.GitIgnoreSpec


def read_ignore_file(folder: Path) -> tuple[IgnoreLayer | None, list[Problem]]:
    """The layer of ``folder``'s ignore file (None when it has none or no valid line), and a
    Problem for each line that does not parse. The message names the line, never its text."""
    path = folder / IGNORE_FILE
    try:
        with path.open("rb") as handle:
            data = handle.read(IGNORE_FILE_MAX_BYTES + 1)
    except FileNotFoundError:
        return None, []
    except OSError as exc:
        return None, [Problem(path.as_uri(), f"cannot read ignore file: {exc.strerror or exc}; its patterns are not applied")]
    if len(data) > IGNORE_FILE_MAX_BYTES:
        return None, [Problem(path.as_uri(), f"ignore file larger than {IGNORE_FILE_MAX_BYTES} bytes: not applied")]
    lines: list[str] = []
    problems: list[Problem] = []
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        try:
            pathspec.GitIgnoreSpec.from_lines([line])
        except (ValueError, re.error):  # pathspec's own error (a ValueError), or a bad [range]
            problems.append(
                Problem(path.as_uri(), f"line {number} is not a valid gitignore pattern: skipped, the other lines apply")
            )
            continue
        lines.append(line)
    spec = pathspec.GitIgnoreSpec.from_lines(lines)
    return (IgnoreLayer(folder, spec) if len(spec) else None), problems


def ignored(path: Path, is_dir: bool, layers: Sequence[IgnoreLayer]) -> bool:
    """Whether the ignore files above ``path`` leave it out; the deepest matching line decides."""
    verdict: bool | None = None
    for layer in layers:  # outermost first
        relative = path.relative_to(layer.base).as_posix() + ("/" if is_dir else "")
        result = layer.spec.check_file(relative)
        if result.include is not None:
            verdict = result.include
    return bool(verdict)


def kind_for_extension(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


FOLLOW_HINT = "set MMSEARCH_INGEST__FOLLOW_SYMLINKS=true to follow such links"


@dataclass(frozen=True)
class _Walk:
    root: Path  # as given (absolute): entries keep the names users gave them
    real_root: Path  # resolved: where "inside the folder" is judged
    file_filter: FileFilter
    follow_symlinks: bool


def walk_folder(
    root: Path, file_filter: FileFilter = FileFilter(), *, follow_symlinks: bool = False
) -> Iterator[FolderEntry | Problem]:
    """Yield media files under ``root`` in a stable (sorted) order, and problems met on the way.

    ``follow_symlinks`` also follows links whose target lies outside ``root``; links inside it
    are always followed.
    """
    root = root.absolute()
    walk = _Walk(root, Path(os.path.realpath(root)), file_filter, follow_symlinks)
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[Path, tuple[IgnoreLayer, ...]]] = [(root, ())]
    while stack:
        folder, layers = stack.pop()
        try:
            identity = _identity(folder)
            if identity in seen:
                continue  # a symlink back into the tree, or two links to one folder
            seen.add(identity)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            yield Unreadable(folder.as_uri(), f"cannot list folder: {exc.strerror or exc}")
            continue
        if any(entry.name == IGNORE_FILE for entry in entries):
            layer, problems = read_ignore_file(folder)
            yield from problems
            layers = (*layers, layer) if layer is not None else layers
        subfolders: list[Path] = []
        for entry in entries:
            found = _visit(entry, walk, subfolders, layers)
            if found is not None:
                yield found
        stack.extend((sub, layers) for sub in reversed(subfolders))  # depth-first, in name order


def _visit(
    entry: os.DirEntry[str], walk: _Walk, subfolders: list[Path], layers: Sequence[IgnoreLayer] = ()
) -> FolderEntry | Problem | None:
    """What one directory entry is: a candidate, a subfolder to walk, a recorded skip, or nothing.

    Only ``stat`` is called (``lstat`` first for links), so special files are never opened.
    """
    path = Path(entry.path)
    relative = PurePosixPath(path.relative_to(walk.root).as_posix())
    kind = kind_for_extension(path)
    wanted = kind is not None and walk.file_filter.wants_file(relative)
    link = entry.is_symlink()
    try:
        info = entry.stat(follow_symlinks=True)
    except FileNotFoundError:
        return Problem(path.as_uri(), "dangling symbolic link: its target does not exist") if link and wanted else None
    except OSError as exc:
        return Unreadable(path.as_uri(), f"cannot read {'link' if link else 'entry'}: {exc.strerror or exc}")
    is_dir = stat.S_ISDIR(info.st_mode)
    if layers and ignored(path, is_dir, layers):
        return None
    if link and not walk.follow_symlinks and not _inside(path, walk.real_root):
        if is_dir and walk.file_filter.wants_folder(relative):
            return Skipped(path.as_uri(), f"symbolic link to a folder outside the ingested folder, not followed; {FOLLOW_HINT}")
        if wanted:
            return Skipped(path.as_uri(), f"symbolic link to a file outside the ingested folder, not followed; {FOLLOW_HINT}")
        return None
    if is_dir:
        if not walk.file_filter.wants_folder(relative):
            return None
        subfolders.append(path)
        return Skipped(path.as_uri(), "a folder named like a media file: its contents are scanned") if wanted else None
    if not wanted or kind is None:
        return None
    if not stat.S_ISREG(info.st_mode):
        return Skipped(path.as_uri(), f"not a regular file but {_file_type(info.st_mode)}: never opened")
    return FolderEntry(path, info.st_size, info.st_mtime, kind)


def _inside(link: Path, real_root: Path) -> bool:
    target = Path(os.path.realpath(link))
    return target == real_root or target.is_relative_to(real_root)


def _file_type(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "a special file"


def _identity(folder: Path) -> tuple[int, int]:
    info = folder.stat()
    return info.st_dev, info.st_ino


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _matches(relative: PurePosixPath, patterns: Sequence[str]) -> bool:
    text = relative.as_posix()
    for pattern in patterns:
        target = text if "/" in pattern.strip("/") else relative.name
        if fnmatch.fnmatchcase(target.lower(), pattern.strip("/").lower()):
            return True
    return False
