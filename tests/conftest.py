from __future__ import annotations

from pathlib import Path

import pytest

from ipunkt.testing import specs_dir as _specs_dir


@pytest.fixture(scope="session")
def specs_dir() -> Path:
    """The published specs (``IPUNKT_SPECS``); skips the test when they are missing."""
    return _specs_dir()
