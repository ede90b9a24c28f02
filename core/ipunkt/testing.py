"""Helpers for the tests of ipunkt and of its plugins (importable by third-party plugins too)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SPECS_ENV = "IPUNKT_SPECS"


def specs_dir() -> Path:
    """The folder of published specs named by ``IPUNKT_SPECS``.

    It defaults to ``../shared/specs`` beside the checkout. Tests that check wire formats
    skip with a clear reason when it is missing, so that the suite runs outside the workshop.
    """
    configured = os.environ.get(SPECS_ENV)
    if configured:
        path = Path(configured)
    else:
        path = Path(__file__).resolve().parents[2].parent / "shared" / "specs"
    if not path.is_dir():
        pytest.skip(f"published specs not found at {path} (set {SPECS_ENV})")
    return path
