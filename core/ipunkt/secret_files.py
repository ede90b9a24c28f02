"""Secrets that ipunkt generates on first use and keeps in a file (the store key, the webhook
signing secret).

Such a file must appear whole or not at all, and survive a power cut once it is in use: payloads
sealed with a store key that was lost are lost with it. So it is written aside, flushed to disk,
then linked into place (two processes starting at once end up with the same secret), and its
folder is flushed too.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ipunkt.durable import sync_folder


def create_once(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` (mode 0600) unless it exists; True if this call made it."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, aside = tempfile.mkstemp(dir=folder, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp makes it 0600
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(aside, path)
        except FileExistsError:
            return False  # another process made it first: theirs stands
        sync_folder(folder)
        return True
    finally:
        os.unlink(aside)


def read_secret(path: Path, what: str) -> str:
    """The file's text, refused when empty (as a file cut short before this module was used
    may be) rather than taken for a secret."""
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        raise ValueError(f"{path} is empty; delete it to generate a new {what}")
    return text

