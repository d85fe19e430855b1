"""Atomic file writes (a reader never sees a half-written file, a crash never leaves one), and output
paths checked before any work is done."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from qrl.errors import QRLError


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix + ".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; a written file gets the usual mode
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_unfinished_writes(folder: Path) -> None:
    """Delete under ``folder`` the temporary files :func:`atomic_write` leaves when its process is killed mid-write
    (``.<name>.<random><suffix>.tmp``; the files they were to replace are as before)."""
    for tmp in Path(folder).rglob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_yaml(path: Path, data: Any) -> None:
    write_text(path, yaml.safe_dump(data, sort_keys=False))


def check_output_folder(path: str | Path, flag: str = "--out") -> Path:
    """``path`` as a folder results can be written to (created later, by the writer): refused now, before
    minutes of work, if it is a file or under one, or if its nearest existing folder is not writable."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise QRLError(f"{flag} {path}: {existing} is a file; expected a folder; try {flag} {path.parent / 'out'}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise QRLError(f"{flag} {path}: {existing} is not writable; expected a folder you can write to; "
                       f"try {flag} runs")
    return path


IMAGE_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp", "gif")


def check_image_path(path: str | Path, flag: str = "--out") -> Path:
    """An image path with a format matplotlib writes (by its extension), in a folder that can be written."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt and fmt not in IMAGE_FORMATS:  # no extension: PNG
        raise QRLError(f"{flag} {path}: expected an image file ending in .{', .'.join(IMAGE_FORMATS)}; "
                       f"got {path.suffix or 'no extension'}; try {path.with_suffix('.png')}")
    check_output_folder(path.parent, flag)
    return path
