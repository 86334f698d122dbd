"""Local files: which paths a command means, and writes that never leave half a file."""
from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import LocalError

# What looks like a picture when walking a folder. The server decides what it accepts and says
# why it refuses the rest (a TIFF, a broken JPEG): these only keep documents and archives out.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def walk(folder: Path) -> list[Path]:
    """Every file under a folder, hidden ones (.DS_Store, .git) left out, in a stable order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not is_hidden(p, folder))


@dataclass
class Selection:
    images: list[Path]
    skipped: list[tuple[Path, str]]


def select_images(args: list[str]) -> Selection:
    """Files as named, folders walked, globs expanded (``**`` included).

    A file named on the command line is always taken (the server judges it); from
    folders and globs only names that look like pictures are. Each file once.
    """
    seen: dict[Path, None] = {}
    skipped: list[tuple[Path, str]] = []
    for arg in args:
        path = Path(arg).expanduser()
        if path.is_dir():
            for p in walk(path):
                if is_image_name(p):
                    seen.setdefault(p, None)
                else:
                    skipped.append((p, "not an image file name"))
        elif path.is_file():
            seen.setdefault(path, None)
        elif glob.has_magic(arg):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(arg), recursive=True))
            files = [m for m in matches if m.is_file() and is_image_name(m)]
            if not files:
                raise LocalError(f"{arg}: no image file matches")
            for p in files:
                seen.setdefault(p, None)
        else:
            raise LocalError(f"{arg}: no such file or folder")
    return Selection(list(seen), skipped)


@contextlib.contextmanager
def atomic_file(dest: Path, mode: int = 0o644):
    """Write to a temporary file beside `dest` and rename it into place only when complete."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_atomic(dest: Path, data: bytes, mode: int = 0o644) -> None:
    try:
        with atomic_file(dest, mode) as fh:
            fh.write(data)
    except OSError as exc:
        raise LocalError(f"cannot write {dest}: {exc.strerror or exc}") from exc
