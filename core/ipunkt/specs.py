"""Where the published specs are: the folder named by ``IPUNKT_SPECS``.

Fakes check requests against them when they are there (tests, the sandbox in a checkout);
nothing requires them at run time.
"""

from __future__ import annotations

import os
from pathlib import Path

SPECS_ENV = "IPUNKT_SPECS"


def specs_folder() -> Path | None:
    """``$IPUNKT_SPECS``, else ``../shared/specs`` beside the checkout; None if absent."""
    configured = os.environ.get(SPECS_ENV)
    if configured:
        path = Path(configured)
    else:
        path = Path(__file__).resolve().parents[2].parent / "shared" / "specs"
    return path if path.is_dir() else None
