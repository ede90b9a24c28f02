"""What a file written to last needs besides its own fsync: its folder's.

A file renamed or linked into place is only sure to be there after a power cut once the folder
that names it is flushed too.
"""

from __future__ import annotations

import os
from pathlib import Path


def sync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (the names in it) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
